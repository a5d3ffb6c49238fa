use super::*;

#[tokio::test]
async fn a_batch_waits_for_one_in_flight_that_writes_the_same_records() {
    let keys = |ids: &[i64]| Some(ids.iter().copied().collect::<HashSet<i64>>());
    // A batch in flight, never ending (aborted when dropped).
    let committing = |keys| Committing {
        task: tokio::spawn(std::future::pending()),
        keys,
        told: None,
    };
    let mut in_flight = InFlight::default();
    in_flight.batches.push_back(committing(keys(&[1, 2])));
    in_flight.batches.push_back(committing(keys(&[3])));
    assert!(!in_flight.must_wait(keys(&[4, 5]).as_ref()));
    assert!(
        in_flight.must_wait(keys(&[5, 2]).as_ref()),
        "order 2 is in flight"
    );
    assert!(in_flight.must_wait(None), "rows no key set describes");
    in_flight.batches.push_back(committing(None));
    assert!(
        in_flight.must_wait(keys(&[9]).as_ref()),
        "beside quarantined elements"
    );
    in_flight.batches.pop_back();
    in_flight.batches.push_back(committing(keys(&[7])));
    assert_eq!(in_flight.batches.len(), BATCHES_AT_ONCE);
    assert!(
        in_flight.must_wait(keys(&[9]).as_ref()),
        "as many in flight as allowed"
    );
}
