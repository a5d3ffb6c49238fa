//! Instances and (shop, stream) leases shared by several daemons: every test body is written
//! once and runs on a fresh SQLite file and, when `KWAISHOP_TEST_PG_URL` is set, on a fresh
//! Postgres database.

use crate::common_db;

use std::sync::Arc;

use common_db::{add_shop, order, refund};
use kwaishop_sync::store::{
    InstanceRow, LeaseFence, LeaseRow, ResyncKind, Source, Store, StoreError, Stream, StreamState,
};
use tokio::sync::Barrier;

const SHOP: &str = "shop-1";
const OTHER_SHOP: &str = "shop-2";
const NOW: i64 = 1_700_100_000_000;
const TTL: i64 = 30_000;

/// Runs each named body on both backends: `on_sqlite::name` and `on_postgres::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::common_db::on_sqlite(super::$name).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::common_db::on_postgres(super::$name).await;
                }
            )*
        }
    };
}

both_backends!(
    of_ten_concurrent_acquirers_exactly_one_wins,
    the_holder_reacquires_with_a_higher_fence,
    another_holder_takes_over_only_after_expiry,
    renewing_extends_the_lease_and_a_lapsed_lease_cannot_be_renewed,
    releasing_lets_another_holder_take_it_at_once,
    unregistering_releases_every_lease_of_the_instance,
    heartbeats_count_live_instances_and_purge_long_dead_ones,
    a_heartbeat_brings_back_a_purged_instance,
    registering_again_replaces_the_instance,
    leases_of_different_shops_and_streams_are_independent,
    bad_requests_are_refused,
    a_joiner_waits_until_every_live_instance_counts_it,
    a_write_under_a_lease_taken_over_is_rolled_back,
);

async fn acquire(store: &Store, shop: &str, stream: Stream, holder: &str, now: i64) -> Option<i64> {
    store
        .acquire_lease(shop, stream, holder, now, TTL)
        .await
        .expect("acquire")
}

async fn renew(store: &Store, stream: Stream, holder: &str, fence: i64, now: i64) -> bool {
    store
        .renew_lease(SHOP, stream, holder, fence, now, TTL)
        .await
        .expect("renew")
}

async fn release(store: &Store, stream: Stream, holder: &str, fence: i64) {
    store
        .release_lease(SHOP, stream, holder, fence)
        .await
        .expect("release");
}

async fn lease(store: &Store, shop: &str, stream: Stream) -> LeaseRow {
    store
        .leases()
        .await
        .expect("list leases")
        .into_iter()
        .find(|l| l.shop_id == shop && l.stream == stream)
        .expect("the lease has a row")
}

fn held(shop: &str, stream: Stream, holder: &str, fence: i64, expires_at_ms: i64) -> LeaseRow {
    LeaseRow {
        shop_id: shop.into(),
        stream,
        holder: holder.into(),
        fence,
        expires_at_ms,
    }
}

async fn register(store: &Store, instance_id: &str, now: i64) {
    store
        .register_instance(instance_id, "host-a", 4242, now)
        .await
        .expect("register");
}

async fn heartbeat(store: &Store, instance_id: &str, now: i64, ttl: i64) -> i64 {
    store
        .heartbeat_instance(instance_id, now, ttl)
        .await
        .expect("heartbeat")
}

async fn instance_ids(store: &Store) -> Vec<String> {
    let rows = store.instances().await.expect("list instances");
    rows.into_iter().map(|i| i.instance_id).collect()
}

/// Ten holders ask for the lease at the same moment; returns each one's answer.
async fn race(store: &Store, prefix: &str, now: i64) -> Vec<(String, Option<i64>)> {
    let barrier = Arc::new(Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let holder = format!("{prefix}-{n}");
            tokio::spawn(async move {
                barrier.wait().await;
                let won = store
                    .acquire_lease(SHOP, Stream::Orders, &holder, now, TTL)
                    .await;
                (holder, won.expect("acquire"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("joined"));
    }
    answers
}

async fn of_ten_concurrent_acquirers_exactly_one_wins(store: Store) {
    add_shop(&store, SHOP).await;
    // A lease nobody held yet, then one that expired: both paths of the upsert race.
    for (round, now) in [("first", NOW), ("takeover", NOW + TTL)] {
        let answers = race(&store, round, now).await;
        let winners: Vec<_> = answers.iter().filter(|(_, won)| won.is_some()).collect();
        assert_eq!(winners.len(), 1, "{round}: {answers:?}");
        let (holder, fence) = winners[0];
        let fence = fence.expect("the winner has a fence");
        let want_fence = if round == "first" { 1 } else { 2 };
        assert_eq!(fence, want_fence, "{round}");
        assert_eq!(
            store.leases().await.expect("list"),
            [held(SHOP, Stream::Orders, holder, fence, now + TTL)],
            "{round}"
        );
    }
}

async fn the_holder_reacquires_with_a_higher_fence(store: Store) {
    add_shop(&store, SHOP).await;
    let first = acquire(&store, SHOP, Stream::Orders, "a", NOW)
        .await
        .expect("free");
    let again = acquire(&store, SHOP, Stream::Orders, "a", NOW + 5)
        .await
        .expect("its own lease");
    assert!(again > first, "{again} > {first}");
    assert_eq!(
        lease(&store, SHOP, Stream::Orders).await,
        held(SHOP, Stream::Orders, "a", again, NOW + 5 + TTL)
    );
    // The re-take retired the earlier fence.
    assert!(!renew(&store, Stream::Orders, "a", first, NOW + 10).await);
    assert!(renew(&store, Stream::Orders, "a", again, NOW + 10).await);
}

async fn another_holder_takes_over_only_after_expiry(store: Store) {
    add_shop(&store, SHOP).await;
    let old = acquire(&store, SHOP, Stream::Orders, "a", NOW)
        .await
        .expect("free");
    let a_holds = held(SHOP, Stream::Orders, "a", old, NOW + TTL);
    assert_eq!(
        acquire(&store, SHOP, Stream::Orders, "b", NOW + TTL - 1).await,
        None
    );
    assert_eq!(
        lease(&store, SHOP, Stream::Orders).await,
        a_holds,
        "untouched"
    );

    let new = acquire(&store, SHOP, Stream::Orders, "b", NOW + TTL)
        .await
        .expect("expired");
    assert!(new > old, "{new} > {old}");
    let b_holds = held(SHOP, Stream::Orders, "b", new, NOW + 2 * TTL);
    assert_eq!(lease(&store, SHOP, Stream::Orders).await, b_holds);

    // The old holder wakes up: its fence no longer counts for anything.
    assert!(!renew(&store, Stream::Orders, "a", old, NOW + TTL + 1).await);
    release(&store, Stream::Orders, "a", old).await;
    assert_eq!(lease(&store, SHOP, Stream::Orders).await, b_holds);
    assert_eq!(
        acquire(&store, SHOP, Stream::Orders, "a", NOW + TTL + 2).await,
        None
    );
    assert_eq!(lease(&store, SHOP, Stream::Orders).await, b_holds);
    // Not even with the new holder's fence.
    assert!(!renew(&store, Stream::Orders, "a", new, NOW + TTL + 3).await);
    release(&store, Stream::Orders, "a", new).await;
    assert_eq!(lease(&store, SHOP, Stream::Orders).await, b_holds);

    assert!(renew(&store, Stream::Orders, "b", new, NOW + TTL + 4).await);
    assert_eq!(
        lease(&store, SHOP, Stream::Orders).await,
        held(SHOP, Stream::Orders, "b", new, NOW + 2 * TTL + 4)
    );
}

async fn renewing_extends_the_lease_and_a_lapsed_lease_cannot_be_renewed(store: Store) {
    add_shop(&store, SHOP).await;
    let fence = acquire(&store, SHOP, Stream::Orders, "a", NOW)
        .await
        .expect("free");
    let half = TTL / 2;
    assert!(renew(&store, Stream::Orders, "a", fence, NOW + half).await);
    assert_eq!(
        lease(&store, SHOP, Stream::Orders).await,
        held(SHOP, Stream::Orders, "a", fence, NOW + half + TTL),
        "renewing keeps the fence"
    );
    assert_eq!(
        acquire(&store, SHOP, Stream::Orders, "b", NOW + TTL).await,
        None,
        "the first term is over, the renewed one is not"
    );
    let b = acquire(&store, SHOP, Stream::Orders, "b", NOW + half + TTL).await;
    assert_eq!(b, Some(fence + 1));

    // Expired but taken by nobody: still not renewable; acquiring again gives a new fence.
    let fence = acquire(&store, SHOP, Stream::Refunds, "a", NOW)
        .await
        .expect("free");
    assert!(!renew(&store, Stream::Refunds, "a", fence, NOW + TTL).await);
    assert_eq!(
        lease(&store, SHOP, Stream::Refunds).await,
        held(SHOP, Stream::Refunds, "a", fence, NOW + TTL)
    );
    let again = acquire(&store, SHOP, Stream::Refunds, "a", NOW + TTL).await;
    assert_eq!(again, Some(fence + 1));
}

async fn releasing_lets_another_holder_take_it_at_once(store: Store) {
    add_shop(&store, SHOP).await;
    let old = acquire(&store, SHOP, Stream::Items, "a", NOW)
        .await
        .expect("free");
    // Released only by its holder, with its fence.
    release(&store, Stream::Items, "b", old).await;
    release(&store, Stream::Items, "a", old + 1).await;
    assert_eq!(
        acquire(&store, SHOP, Stream::Items, "b", NOW + 1).await,
        None
    );

    release(&store, Stream::Items, "a", old).await;
    assert_eq!(
        lease(&store, SHOP, Stream::Items).await,
        held(SHOP, Stream::Items, "a", old, LeaseRow::RELEASED)
    );
    assert!(!renew(&store, Stream::Items, "a", old, NOW + 1).await);
    let new = acquire(&store, SHOP, Stream::Items, "b", NOW + 1)
        .await
        .expect("released");
    assert!(new > old, "{new} > {old}");
    release(&store, Stream::Items, "a", old).await;
    assert_eq!(
        lease(&store, SHOP, Stream::Items).await,
        held(SHOP, Stream::Items, "b", new, NOW + 1 + TTL)
    );
}

async fn unregistering_releases_every_lease_of_the_instance(store: Store) {
    add_shop(&store, SHOP).await;
    add_shop(&store, OTHER_SHOP).await;
    register(&store, "a", NOW).await;
    register(&store, "b", NOW).await;
    let a_leases = [
        (SHOP, Stream::Orders),
        (SHOP, Stream::Items),
        (OTHER_SHOP, Stream::Refunds),
    ];
    for (shop, stream) in a_leases {
        assert_eq!(acquire(&store, shop, stream, "a", NOW).await, Some(1));
    }
    let b_fence = acquire(&store, OTHER_SHOP, Stream::Orders, "b", NOW).await;
    assert_eq!(b_fence, Some(1));
    assert_eq!(
        acquire(&store, SHOP, Stream::Orders, "b", NOW + 1).await,
        None
    );

    store.unregister_instance("a").await.expect("unregister");
    assert_eq!(instance_ids(&store).await, ["b"]);
    for (shop, stream) in a_leases {
        let taken = acquire(&store, shop, stream, "b", NOW + 2).await;
        assert_eq!(taken, Some(2), "{shop} {stream}");
    }
    assert_eq!(
        lease(&store, OTHER_SHOP, Stream::Orders).await,
        held(OTHER_SHOP, Stream::Orders, "b", 1, NOW + TTL),
        "b's own lease untouched"
    );
}

async fn heartbeats_count_live_instances_and_purge_long_dead_ones(store: Store) {
    let ttl = 10_000;
    let t = NOW + 1_000_000;
    register(&store, "dead", t - 10 * ttl - 1).await; // silent more than 10 × ttl
    register(&store, "long-silent", t - 10 * ttl).await; // exactly 10 × ttl: kept
    register(&store, "silent", t - ttl - 1).await; // beyond ttl: not live
    register(&store, "live", t - ttl).await; // within ttl
    register(&store, "me", NOW).await;

    assert_eq!(heartbeat(&store, "me", t, ttl).await, 2, "me and live");
    assert_eq!(
        instance_ids(&store).await,
        ["live", "long-silent", "me", "silent"]
    );
    let me = store
        .instances()
        .await
        .expect("list")
        .into_iter()
        .find(|i| i.instance_id == "me")
        .expect("me is registered");
    assert_eq!(
        me,
        InstanceRow {
            instance_id: "me".into(),
            host: "host-a".into(),
            pid: 4242,
            started_at_ms: NOW,
            heartbeat_at_ms: t,
        }
    );

    assert_eq!(
        heartbeat(&store, "live", t + 1, ttl).await,
        2,
        "live and me"
    );
    assert_eq!(
        heartbeat(&store, "silent", t + 2, ttl).await,
        3,
        "speaks again"
    );
    store.unregister_instance("live").await.expect("unregister");
    assert_eq!(
        heartbeat(&store, "me", t + 3, ttl).await,
        2,
        "me and silent"
    );
    assert_eq!(
        heartbeat(&store, "me", t + 3 + 20 * ttl, ttl).await,
        1,
        "alone; the others purged"
    );
    assert_eq!(instance_ids(&store).await, ["me"]);
}

async fn a_heartbeat_brings_back_a_purged_instance(store: Store) {
    let ttl = 10_000;
    register(&store, "suspended", NOW).await;
    register(&store, "other", NOW).await;
    let later = NOW + 10 * ttl + 1;
    assert_eq!(heartbeat(&store, "other", later, ttl).await, 1);
    assert_eq!(instance_ids(&store).await, ["other"]);

    assert_eq!(heartbeat(&store, "suspended", later + 1, ttl).await, 2);
    assert_eq!(heartbeat(&store, "other", later + 2, ttl).await, 2);
    let rows = store.instances().await.expect("list");
    let back = rows
        .iter()
        .find(|i| i.instance_id == "suspended")
        .expect("back in the registry");
    assert_eq!(
        (back.host.as_str(), back.pid, back.heartbeat_at_ms),
        ("", 0, later + 1)
    );
}

async fn registering_again_replaces_the_instance(store: Store) {
    register(&store, "a", NOW).await;
    store
        .register_instance("a", "host-b", 7, NOW + 100)
        .await
        .expect("register again");
    assert_eq!(
        store.instances().await.expect("list"),
        [InstanceRow {
            instance_id: "a".into(),
            host: "host-b".into(),
            pid: 7,
            started_at_ms: NOW + 100,
            heartbeat_at_ms: NOW + 100,
        }]
    );
}

async fn leases_of_different_shops_and_streams_are_independent(store: Store) {
    add_shop(&store, SHOP).await;
    add_shop(&store, OTHER_SHOP).await;
    let fence = acquire(&store, SHOP, Stream::Orders, "a", NOW).await;
    assert_eq!(fence, Some(1));
    assert_eq!(
        acquire(&store, SHOP, Stream::Orders, "a", NOW).await,
        Some(2)
    );
    for (shop, stream, holder) in [
        (SHOP, Stream::Refunds, "b"),
        (SHOP, Stream::Items, "c"),
        (OTHER_SHOP, Stream::Orders, "b"),
    ] {
        assert_eq!(
            acquire(&store, shop, stream, holder, NOW + 1).await,
            Some(1)
        );
    }
    assert!(renew(&store, Stream::Refunds, "b", 1, NOW + 2).await);
    release(&store, Stream::Orders, "a", 2).await;
    assert_eq!(
        store.leases().await.expect("list"),
        [
            held(SHOP, Stream::Items, "c", 1, NOW + 1 + TTL),
            held(SHOP, Stream::Orders, "a", 2, LeaseRow::RELEASED),
            held(SHOP, Stream::Refunds, "b", 1, NOW + 2 + TTL),
            held(OTHER_SHOP, Stream::Orders, "b", 1, NOW + 1 + TTL),
        ]
    );
}

async fn bad_requests_are_refused(store: Store) {
    add_shop(&store, SHOP).await;
    for ttl in [0, -1] {
        let acquired = store
            .acquire_lease(SHOP, Stream::Orders, "a", NOW, ttl)
            .await;
        assert!(
            matches!(acquired, Err(StoreError::Invalid(_))),
            "{acquired:?}"
        );
        let beat = store.heartbeat_instance("a", NOW, ttl).await;
        assert!(matches!(beat, Err(StoreError::Invalid(_))), "{beat:?}");
    }
    let unknown = store
        .acquire_lease("no-such-shop", Stream::Orders, "a", NOW, TTL)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::Query { .. })),
        "{unknown:?}"
    );
    assert_eq!(store.leases().await.expect("list"), []);
    assert_eq!(instance_ids(&store).await, Vec::<String>::new());
}

/// A joins a running B and C: until both have published a share in force that counts three
/// instances, A is told some are behind; a dead instance does not hold it back.
async fn a_joiner_waits_until_every_live_instance_counts_it(store: Store) {
    for id in ["b", "c", "dead"] {
        register(&store, id, NOW - 60_000).await;
    }
    store.publish_share("dead", 1).await.expect("publish");
    heartbeat(&store, "b", NOW, TTL).await;
    assert_eq!(
        heartbeat(&store, "c", NOW, TTL).await,
        2,
        "dead is past its ttl"
    );
    for id in ["b", "c"] {
        store.publish_share(id, 2).await.expect("publish");
    }
    register(&store, "a", NOW).await;
    let live = heartbeat(&store, "a", NOW, TTL).await;
    assert_eq!(live, 3);
    let behind = |now| store.instances_behind("a", live, now, TTL);
    assert_eq!(
        behind(NOW).await.expect("read"),
        2,
        "b and c still divide by two"
    );
    assert_eq!(heartbeat(&store, "b", NOW + 10, TTL).await, 3);
    store.publish_share("b", 3).await.expect("publish");
    assert_eq!(
        behind(NOW + 10).await.expect("read"),
        1,
        "c still divides by two"
    );
    assert_eq!(heartbeat(&store, "c", NOW + 20, TTL).await, 3);
    store.publish_share("c", 3).await.expect("publish");
    assert_eq!(behind(NOW + 20).await.expect("read"), 0);
    // An instance that stops beating stops holding a joiner back after its ttl.
    store.publish_share("c", 2).await.expect("publish");
    assert_eq!(behind(NOW + 20).await.expect("read"), 1);
    assert_eq!(behind(NOW + 20 + TTL + 1).await.expect("read"), 0);
}

/// A holds the orders lease, it expires, B takes it: every write A makes of the stream's
/// progress — a page and its checkpoint, a state on its own, a resync's page and progress — is
/// rolled back with `Fenced`, and B's writes go through. Streams A still holds are unaffected.
async fn a_write_under_a_lease_taken_over_is_rolled_back(store: Store) {
    add_shop(&store, SHOP).await;
    let fence_a = acquire(&store, SHOP, Stream::Orders, "a", NOW)
        .await
        .expect("A takes it");
    let refunds_a = acquire(&store, SHOP, Stream::Refunds, "a", NOW)
        .await
        .expect("A takes it");
    let a = store.fenced(LeaseFence {
        shop_id: SHOP.into(),
        stream: Stream::Orders,
        holder: "a".into(),
        fence: fence_a,
    });
    let state = |checkpoint: i64| StreamState {
        checkpoint_ms: Some(checkpoint),
        ..StreamState::new(SHOP, Stream::Orders)
    };
    // While A holds it, A's page commits.
    a.commit_order_page(
        SHOP,
        &[order(1, NOW, 0)],
        Source::Poll,
        &state(NOW),
        NOW,
        &[],
    )
    .await
    .expect("A holds the lease");

    // A pauses past its expiry; B takes the lease over.
    let later = NOW + TTL + 1;
    let fence_b = acquire(&store, SHOP, Stream::Orders, "b", later)
        .await
        .expect("B takes it");
    assert!(fence_b > fence_a);
    let fenced = |r: Result<_, StoreError>, what: &str| match r {
        Err(StoreError::Fenced { fence, .. }) => assert_eq!(fence, fence_a, "{what}"),
        other => panic!("{what}: A's write must be refused, got {other:?}"),
    };
    fenced(
        a.commit_order_page(
            SHOP,
            &[order(2, later, 0)],
            Source::Poll,
            &state(later),
            later,
            &[],
        )
        .await
        .map(drop),
        "A's next page",
    );
    fenced(a.save_state(&state(later + 1)).await, "A's state save");
    let (id, _) = store
        .request_resync(
            SHOP,
            Stream::Orders,
            ResyncKind::Resync,
            NOW - 1_000,
            NOW,
            NOW,
        )
        .await
        .expect("request");
    let mut request = store
        .open_resyncs()
        .await
        .expect("open")
        .into_iter()
        .find(|r| r.id == id)
        .expect("the request");
    request.rows = 99;
    fenced(
        a.commit_resync_page(&[order(3, later, 0)], &[], &request, later, &[])
            .await
            .map(drop),
        "A's resync page",
    );
    fenced(a.save_resync(&request).await, "A's resync progress");

    // Nothing of A's was written: the orders are the first page's, the checkpoint is NOW, the
    // request's progress is untouched.
    let oids: Vec<i64> = store
        .order_rows(SHOP)
        .await
        .expect("rows")
        .iter()
        .map(|r| r.oid)
        .collect();
    assert_eq!(
        oids,
        vec![1],
        "only the page committed under the lease is stored"
    );
    let stored = store
        .load_state(SHOP, Stream::Orders)
        .await
        .expect("state")
        .expect("saved");
    assert_eq!(stored.checkpoint_ms, Some(NOW));
    let open = store.open_resyncs().await.expect("open");
    assert_eq!(open.iter().find(|r| r.id == id).map(|r| r.rows), Some(0));

    // B's writes go through, and so do A's writes of the refunds it still holds.
    let b = store.fenced(LeaseFence {
        shop_id: SHOP.into(),
        stream: Stream::Orders,
        holder: "b".into(),
        fence: fence_b,
    });
    b.commit_order_page(
        SHOP,
        &[order(2, later, 0)],
        Source::Poll,
        &state(later),
        later,
        &[],
    )
    .await
    .expect("B holds the lease");
    let a_refunds = store.fenced(LeaseFence {
        shop_id: SHOP.into(),
        stream: Stream::Refunds,
        holder: "a".into(),
        fence: refunds_a,
    });
    a_refunds
        .commit_refund_page(
            SHOP,
            &[refund(7, later)],
            Source::Poll,
            &StreamState::new(SHOP, Stream::Refunds),
            later,
            &[],
        )
        .await
        .expect("A still holds the refunds");
    assert_eq!(store.order_rows(SHOP).await.expect("rows").len(), 2);
}
