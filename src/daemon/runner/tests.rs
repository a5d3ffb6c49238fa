use super::*;

/// A migrated SQLite store in a temporary folder, kept while the folder lives.
async fn migrated_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = Store::connect(&url).await.expect("store");
    store.migrate().await.expect("migrate");
    (dir, store)
}

/// A long run of (shop, stream) that keeps its turn until the sender is used or dropped;
/// returned once it runs (or waits) here.
async fn hold(
    runner: &std::sync::Arc<Runner>,
    store: &Store,
    clock: &SharedClock,
    cancel: &CancellationToken,
    key: (&'static str, Stream),
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Option<()>>,
) {
    let (shop, stream) = key;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let run = {
        let (runner, store, clock, cancel) =
            (runner.clone(), store.clone(), clock.clone(), cancel.clone());
        tokio::spawn(async move {
            runner
                .exclusive(&store, &clock, shop, stream, &cancel, |_, _| async {
                    let _ = released.await;
                })
                .await
        })
    };
    while !runner.is_running(shop, stream) {
        tokio::task::yield_now().await;
    }
    (release, run)
}

#[tokio::test]
async fn a_run_that_panics_or_is_dropped_releases_its_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = Store::connect(&url).await.expect("store");
    let clock: SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
    let runner = std::sync::Arc::new(Runner::new(None, Duration::from_secs(60), 4));
    let cancel = CancellationToken::new();

    let panicking = {
        let (runner, store, clock, cancel) =
            (runner.clone(), store.clone(), clock.clone(), cancel.clone());
        tokio::spawn(async move {
            runner
                .exclusive(&store, &clock, "s", Stream::Orders, &cancel, |_, _| async {
                    panic!("a job that panics")
                })
                .await
        })
    };
    assert!(panicking.await.is_err(), "the job panicked");
    assert!(!runner.is_running("s", Stream::Orders));

    let run = runner.exclusive(&store, &clock, "s", Stream::Refunds, &cancel, |_, _| {
        std::future::pending::<()>()
    });
    let dropped = tokio::time::timeout(Duration::from_millis(50), run).await;
    assert!(dropped.is_err(), "the job never finishes");
    assert!(!runner.is_running("s", Stream::Refunds));
    let ran = runner
        .exclusive(
            &store,
            &clock,
            "s",
            Stream::Refunds,
            &cancel,
            |_, _| async { 7 },
        )
        .await;
    assert_eq!(ran, Some(7), "the stream runs again");
    store.close().await;
}

/// With one turn per stream, a second shop's orders wait for the first's to end, while
/// its refunds run at once; a run waiting its turn counts as running (a second tick is
/// skipped), and a cancel ends the wait without running it.
#[tokio::test]
async fn runs_of_a_stream_wait_their_turn_and_streams_do_not_wait_for_each_other() {
    let (_dir, store) = migrated_store().await;
    let clock: SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
    let runner = std::sync::Arc::new(Runner::new(None, Duration::from_secs(60), 1));
    let cancel = CancellationToken::new();
    let (release, first) = hold(&runner, &store, &clock, &cancel, ("a", Stream::Orders)).await;
    let (started, mut second_started) = tokio::sync::watch::channel(false);
    let second = {
        let (runner, store, clock, cancel) =
            (runner.clone(), store.clone(), clock.clone(), cancel.clone());
        tokio::spawn(async move {
            runner
                .exclusive(
                    &store,
                    &clock,
                    "b",
                    Stream::Orders,
                    &cancel,
                    |_, _| async move {
                        started.send_replace(true);
                        "b"
                    },
                )
                .await
        })
    };
    let refunds = runner.exclusive(
        &store,
        &clock,
        "b",
        Stream::Refunds,
        &cancel,
        |_, _| async { "refunds" },
    );
    let refunds = tokio::time::timeout(Duration::from_secs(5), refunds).await;
    assert_eq!(
        refunds.expect("refunds do not wait for orders"),
        Some("refunds")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!*second_started.borrow(), "b's orders wait for a's");
    assert!(
        runner.is_running("b", Stream::Orders),
        "waiting counts as running"
    );
    let again = runner.exclusive(&store, &clock, "b", Stream::Orders, &cancel, |_, _| async {
        "again"
    });
    assert_eq!(again.await, None, "a second tick is skipped while b waits");

    release.send(()).expect("release");
    assert_eq!(first.await.expect("first"), Some(()));
    second_started.wait_for(|s| *s).await.expect("b runs");
    assert_eq!(second.await.expect("second"), Some("b"));

    // A run waiting its turn when the service stops never runs.
    let (held, holder) = hold(&runner, &store, &clock, &cancel, ("a", Stream::Items)).await;
    let waiting = runner.exclusive(&store, &clock, "b", Stream::Items, &cancel, |_, _| async {
        panic!("a cancelled wait must not run")
    });
    let stop = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancel.cancel();
    };
    let (waited, ()) = tokio::join!(waiting, stop);
    assert_eq!(waited, None);
    assert!(!runner.is_running("b", Stream::Items));
    drop(held);
    holder.await.expect("holder");
    store.close().await;
}

/// A scheduled poll of a caught-up stream does not wait behind the long runs of its
/// stream (a backfill holding every long turn); a poll of a stream far behind does.
#[tokio::test]
async fn a_caught_up_poll_does_not_wait_behind_backfills() {
    let (_dir, store) = migrated_store().await;
    let clock: SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
    for (shop, behind) in [("fresh", 60_000), ("behind", 2 * SHORT_RUN_BEHIND_MS)] {
        store
            .ensure_shop(&crate::store::ShopRow::new(shop))
            .await
            .expect("shop");
        let mut state = crate::store::StreamState::new(shop, Stream::Orders);
        state.checkpoint_ms = Some(clock.now_ms() - behind);
        store.save_state(&state).await.expect("state");
    }
    let runner = std::sync::Arc::new(Runner::new(None, Duration::from_secs(60), 1));
    let cancel = CancellationToken::new();
    let (release, backfill) = hold(&runner, &store, &clock, &cancel, ("new", Stream::Orders)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let poll = runner.exclusive_poll(
        &store,
        &clock,
        "fresh",
        Stream::Orders,
        &cancel,
        |_, _| async { "polled" },
    );
    let poll = tokio::time::timeout(Duration::from_secs(5), poll).await;
    assert_eq!(poll.expect("the caught-up poll ran"), Some("polled"));
    let far = runner.exclusive_poll(
        &store,
        &clock,
        "behind",
        Stream::Orders,
        &cancel,
        |_, _| async { "caught up" },
    );
    let far = tokio::time::timeout(Duration::from_millis(100), far).await;
    assert!(
        far.is_err(),
        "a stream far behind waits its turn among the long runs"
    );
    release.send(()).expect("release");
    backfill.await.expect("backfill");
    store.close().await;
}

/// A run whose lease is taken over (the clock jumps past its expiry and another holder
/// takes it) is cancelled at the next renewal, and its store refuses its writes; a run whose
/// renewal fails (the database is gone) is cancelled too.
#[tokio::test]
async fn a_lost_or_unrenewable_lease_cancels_the_run() {
    let (_dir, store) = migrated_store().await;
    let shop = crate::store::ShopRow::new("s");
    store.ensure_shop(&shop).await.expect("shop");
    let clock = std::sync::Arc::new(kwaishop_sim::ScaledClock::stopped_at(1_000_000));
    let shared: SharedClock = clock.clone();
    let runner = Runner::new(Some("a".into()), Duration::from_millis(300), 4);
    let cancel = CancellationToken::new();

    let taken = {
        let (store, clock) = (store.clone(), clock.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            clock.advance(301);
            let b = store
                .acquire_lease("s", Stream::Orders, "b", clock.now_ms(), 300)
                .await
                .expect("acquire");
            assert!(b.is_some(), "B takes the lapsed lease");
        }
    };
    let run = runner.exclusive(
        &store,
        &shared,
        "s",
        Stream::Orders,
        &cancel,
        |token, fenced| async move {
            let fence = fenced.fence().cloned().expect("the job's store is fenced");
            tokio::time::timeout(Duration::from_secs(5), token.cancelled())
                .await
                .expect("the run is cancelled once its lease is lost");
            let state = crate::store::StreamState::new("s", Stream::Orders);
            fenced.save_state(&state).await.map(|_| fence)
        },
    );
    let (out, ()) = tokio::join!(run, taken);
    match out.expect("ran") {
        Err(crate::store::StoreError::Fenced { fence, .. }) => assert_eq!(fence, 1),
        other => panic!("the stale holder's write must be refused: {other:?}"),
    }

    let closing = {
        let store = store.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.close().await;
        }
    };
    let run = runner.exclusive(
        &store,
        &shared,
        "s",
        Stream::Refunds,
        &cancel,
        |token, _| async move {
            tokio::time::timeout(Duration::from_secs(5), token.cancelled())
                .await
                .is_ok()
        },
    );
    let (cancelled, ()) = tokio::join!(run, closing);
    assert_eq!(cancelled, Some(true), "a failed renewal cancels the run");
}
