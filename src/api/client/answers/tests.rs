use super::*;

#[test]
fn the_quick_timeout_is_ten_times_the_ninth_decile_within_bounds() {
    let times = AnswerTimes::default();
    let configured = Duration::from_secs(30);
    let m = Method::ItemList;
    for _ in 0..15 {
        times.add(m, Duration::from_millis(50));
    }
    assert_eq!(
        times.quick_timeout(m, configured),
        configured,
        "too few answers"
    );
    times.add(m, Duration::from_millis(50));
    assert_eq!(times.quick_timeout(m, configured), QUICK_TIMEOUT_FLOOR);
    for _ in 0..64 {
        times.add(m, Duration::from_millis(700));
    }
    assert_eq!(times.quick_timeout(m, configured), Duration::from_secs(7));
    assert_eq!(
        times.quick_timeout(m, Duration::from_secs(5)),
        Duration::from_secs(5)
    );
    assert_eq!(
        times.quick_timeout(Method::OrderCursorList, configured),
        Duration::from_secs(7),
        "a list not timed yet: the other lists' answers"
    );
    assert_eq!(
        times.quick_timeout(Method::OrderDetail, configured),
        configured,
        "a detail: its own answers only"
    );
}

/// A request is sent again beside a slow first after four answers, not the quick
/// timeout's sixteen: three times the ninth decile, at least half a second.
#[test]
fn a_second_request_needs_only_a_few_answers() {
    let times = AnswerTimes::default();
    let m = Method::OrderCursorList;
    for _ in 0..3 {
        times.add(m, Duration::from_millis(60));
    }
    assert_eq!(times.hedge_after(m), None, "three answers");
    times.add(m, Duration::from_millis(60));
    assert_eq!(times.hedge_after(m), Some(HEDGE_FLOOR));
    assert_eq!(
        times.quick_timeout(m, Duration::from_secs(30)),
        Duration::from_secs(30),
        "the quick timeout still waits for sixteen"
    );
    times.add(m, Duration::from_millis(400));
    assert_eq!(times.hedge_after(m), Some(Duration::from_millis(1_200)));
}
