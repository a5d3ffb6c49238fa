use super::*;
use std::time::Duration;

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

fn planner() -> Planner {
    Planner::new(0, 60 * DAY, 10 * MIN, DAY, 50, 16)
}

#[test]
fn windows_overlap_by_the_lookback_and_end_at_the_last_end() {
    let mut p = planner();
    // Blind: a quarter of the range shared out, 60 days / 64.
    let blind = 60 * DAY / 64;
    let first = p.next_window().expect("first");
    assert_eq!(first, (0, blind));
    let second = p.next_window().expect("second");
    assert_eq!(second, (blind - 10 * MIN, 2 * blind - 10 * MIN));
    // Four of them (16 read at once), then the next waits for one to be read.
    p.next_window().expect("third");
    p.next_window().expect("fourth");
    assert_eq!(p.next_window(), None);
    p.learned(first.0, first.1, 0);
    let mut last = p.last.expect("planned");
    while let Some(w) = p.next_window() {
        assert_eq!(w.0, last.1 - 10 * MIN);
        assert!(w.1 > w.0);
        last = w;
        p.learned(w.0, w.1, 0);
    }
    assert_eq!(last.1, 60 * DAY);
    assert_eq!(p.next_window(), None);
}

#[test]
fn no_more_windows_wait_to_tell_what_they_hold_than_the_blind_ones() {
    let mut p = planner();
    let blind: Vec<_> = std::iter::from_fn(|| p.next_window()).collect();
    assert_eq!(blind.len(), 4);
    // Empty so far: as many in flight as the blind windows, no more.
    p.learned(blind[0].0, blind[0].1, 0);
    let a = p.next_window().expect("replaces the empty one");
    assert_eq!(
        p.next_window(),
        None,
        "three blind and one more are in flight"
    );
    // Then a's first page (a window's end and first page may come in any order): 50 orders
    // in ten minutes, dense. It sizes the next window (60 pages at most), which waits.
    for w in &blind[1..] {
        p.learned(w.0, w.1, 0);
    }
    p.learned(a.0, a.1, 0);
    p.glimpsed(a.0, 50, a.0, a.0 + 10 * MIN);
    let b = p.next_window().expect("sized from the dense glimpse");
    // 49 records in ten minutes a millisecond apart each: 60 pages are 612 minutes.
    assert_eq!(
        b.1 - b.0,
        (3_000.0 / (49.0 / (10 * MIN) as f64)) as i64,
        "{b:?}"
    );
    // Dense: three more planned ahead of what b holds, sized from a's density; b and
    // they wait to tell, as many as the blind windows.
    let ahead: Vec<_> = std::iter::from_fn(|| p.next_window()).collect();
    assert_eq!(ahead.len(), 3, "{ahead:?}");
    assert_eq!(ahead[0].0, b.1 - 10 * MIN);
    assert_eq!(ahead[2].1 - ahead[2].0, b.1 - b.0);
    // An older window's glimpse does not unblock, nor size the next from its density.
    p.glimpsed(blind[3].0, 2, 0, DAY);
    assert_eq!(p.next_window(), None);
    p.glimpsed(b.0, 50, b.0, b.0 + 10 * MIN);
    let c = p.next_window().expect("b told");
    assert_eq!(c.0, ahead[2].1 - 10 * MIN);
    assert_eq!(p.next_window(), None, "four untold again");
    // Sparse: a window holds a page or less, and none is waited for.
    p.learned(c.0, c.1, 3);
    let (e, f) = (p.next_window().expect("e"), p.next_window().expect("f"));
    assert_eq!(f.0, e.1 - 10 * MIN);
}

#[test]
fn widths_follow_the_density_within_bounds() {
    let mut p = planner();
    let (b, e) = (0, 41 * MIN);
    p.width = 41 * MIN;
    // Empty: four times as wide, not wider than the configured window.
    p.learned(b, e, 0);
    assert_eq!(p.width, 164 * MIN);
    for _ in 0..5 {
        p.learned(b, e, 0);
    }
    assert_eq!(p.width, DAY);
    // Dense: 1,000 records in 41 minutes; a share of what is left would be far more than
    // sixty pages, so sixty pages' worth of time.
    p.next_window();
    p.learned(b, e, 1_000);
    let per_ms = 1_000.0 / (41 * MIN) as f64;
    assert_eq!(p.width, (3_000.0 / per_ms) as i64);
    // Very dense: never narrower than four lookbacks and a minute.
    p.learned(b, e, 1_000_000);
    assert_eq!(p.width, 41 * MIN);
    // Near the end: a share of what is left (two days, 16,000 records: 500, ten pages) …
    let mut p = planner().after(60 * DAY - 2 * DAY);
    p.learned(0, DAY, 8_000);
    assert_eq!(p.width, (500.0 / (8_000.0 / DAY as f64)) as i64);
    // … and at least eight pages' worth.
    let mut p = planner().after(60 * DAY - DAY);
    p.learned(0, DAY, 8_000);
    assert_eq!(p.width, (400.0 / (8_000.0 / DAY as f64)) as i64);
}

#[test]
fn a_window_waiting_longer_than_reading_it_again_takes_is_read_again() {
    let p = planner();
    let (wait, answer) = (Duration::from_millis(1_500), Duration::from_millis(60));
    // Six hours holding 12 pages: four idle readers read three pages each in 180 ms.
    let six_hours = (DAY, DAY + 360 * MIN);
    let per_ms = Some(600.0 / (360 * MIN) as f64);
    let pieces = p
        .reread(six_hours, per_ms, 4, wait, answer)
        .expect("read again");
    assert_eq!(pieces.len(), 4, "{pieces:?}");
    assert_eq!(pieces[0].0, six_hours.0);
    assert_eq!(pieces.last().expect("pieces").1, six_hours.1);
    for pair in pieces.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 - 10 * MIN, "{pair:?}");
    }
    // A wait shorter than those three pages, or no reader idle: it waits.
    let short = Duration::from_millis(150);
    assert_eq!(p.reread(six_hours, per_ms, 4, short, answer), None);
    assert_eq!(p.reread(six_hours, per_ms, 0, wait, answer), None);
    // No more pieces than pages, nor narrower than the narrowest window (41 minutes and a
    // lookback): a window too narrow to share is read again whole, if that is quicker.
    let two_pages = Some(100.0 / (360 * MIN) as f64);
    assert_eq!(
        p.reread(six_hours, two_pages, 8, wait, answer)
            .map(|v| v.len()),
        Some(2)
    );
    let half_hour = (DAY, DAY + 30 * MIN);
    assert_eq!(
        p.reread(half_hour, per_ms, 8, wait, answer),
        Some(vec![half_hour])
    );
    let dense = Some(2_000.0 / (30 * MIN) as f64);
    assert_eq!(
        p.reread(half_hour, dense, 8, wait, answer),
        None,
        "40 pages: 2.4 s"
    );
    // The density unknown (none learned yet): read again as one page would be.
    assert_eq!(
        p.reread(half_hour, None, 8, wait, answer),
        Some(vec![half_hour])
    );
}

#[test]
fn a_window_far_denser_than_planned_is_shared_out() {
    let p = planner();
    // Answered in 55 ms, 270 calls a second; in 1 ms; in 1 ms at 20 calls a second.
    let far = Some((Duration::from_millis(55), 270.0));
    let near = Some((Duration::from_millis(1), 270.0));
    let slow_limit = Some((Duration::from_millis(55), 20.0));
    // A week read blind; its first page: 50 orders in 20 minutes, about 504 pages a week:
    // more than twice the most a window is planned for, whatever the pace.
    let week = (DAY, 8 * DAY);
    let pieces = p
        .split(week, 50, (DAY, DAY + 20 * MIN), None)
        .expect("shared out");
    assert_eq!(pieces.len(), 15, "about 34 pages each: {pieces:?}");
    assert_eq!(pieces[0].0, DAY);
    assert_eq!(pieces.last().expect("pieces").1, 8 * DAY);
    for pair in pieces.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 - 10 * MIN, "{pair:?}");
        assert!(pair[1].1 > pair[1].0);
    }
    // Denser still: no more pieces than windows read at once.
    let many = p
        .split(week, 50, (DAY, DAY + MIN), near)
        .expect("shared out");
    assert_eq!(many.len(), 16);
    // 82 pages, where a window planned at that density would hold 25, read in 4.5 s while
    // the range's 790 pages take 2.9 s at the limit: four pieces. Answered in a
    // millisecond, or at 20 calls a second, it is read as it is.
    let two_hours = (DAY, DAY + 2 * 60 * MIN);
    let four = p.split(week, 50, two_hours, far).expect("shared out");
    assert_eq!(four.len(), 4, "{four:?}");
    assert_eq!(p.split(week, 50, two_hours, near), None);
    assert_eq!(p.split(week, 50, two_hours, slow_limit), None);
    assert_eq!(p.split(week, 50, two_hours, None), None, "pace unknown");
    // A page with one record, or an empty window, tells nothing.
    assert_eq!(p.split(week, 1, (DAY, DAY), far), None);
    // A small shop: 49 pages in a week, three times the fifteen a window planned at its
    // density would hold (a 32nd of the 470 pages the range would hold at that density).
    let small = p
        .split(week, 50, (DAY, DAY + 7 * DAY / 50), far)
        .expect("shared out");
    assert_eq!(small.len(), 4, "about 12 pages each: {small:?}");
    // 16 pages: twice what a window would hold (the fewest, 8), or less: read as it is.
    let sixteen = (DAY, DAY + 7 * DAY * 49 / 800);
    assert_eq!(p.split(week, 50, sixteen, far), None);
    // Pieces are never narrower than the narrowest window.
    let narrow = (0, 120 * MIN);
    let few = p.split(narrow, 50, (0, 1), None).expect("shared out");
    assert_eq!(few.len(), 2, "{few:?}");
}

#[test]
fn a_window_no_wider_than_its_lookback_is_planned_once() {
    let mut p = Planner::new(0, DAY, 10 * MIN, 10 * MIN, 50, 16);
    assert_eq!(p.next_window(), Some((0, 10 * MIN)));
    p.learned(0, 10 * MIN, 0);
    assert_eq!(p.next_window(), None);
}

#[test]
fn continuing_after_planned_windows() {
    let mut p = planner().after(10 * DAY);
    let blind = 60 * DAY / 64;
    assert_eq!(
        p.next_window(),
        Some((10 * DAY - 10 * MIN, 10 * DAY - 10 * MIN + blind))
    );
    let mut p = planner().after(60 * DAY);
    assert_eq!(p.next_window(), None);
}
