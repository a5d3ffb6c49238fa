//! The push-event queue of the store (I5, I6): every test body is written once and runs on a
//! fresh SQLite file and, when `KWAISHOP_TEST_PG_URL` is set, on a fresh Postgres database.

use crate::common_db;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common_db::{add_shop, item, order, refund};
use kwaishop_sync::store::{
    Backend, ClaimedEvent, EventKind, EventOutcome, EventStatus, NewEvent, PageOutcome, QueueStats,
    ShopStatus, Source, Store, StoreError,
};
use sqlx::Connection;

const SHOP: &str = "shop-1";
const NOW: i64 = 1_700_100_000_000;
const LEASE: i64 = 30_000;

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
    enqueue_keeps_every_field_and_ignores_duplicates,
    concurrent_duplicate_batches_store_each_event_once,
    unknown_shop_events_wait_and_are_never_claimed,
    claims_respect_due_times_and_leases,
    four_concurrent_claimers_never_share_an_event,
    completing_writes_the_records_and_the_done_mark_together,
    completing_items_writes_them_or_soft_deletes_them,
    a_stale_fence_commits_nothing,
    the_version_guard_holds_through_completion,
    failed_attempts_retry_die_or_give_the_attempt_back,
    dead_events_can_be_retried,
    related_events_are_claimed_together,
    purging_deletes_only_old_done_events,
    stats_count_every_status,
    listing_is_newest_first,
    a_failed_enqueue_stores_nothing,
    an_event_whose_leases_keep_ending_dies_after_max_attempts,
    events_of_a_shop_needing_reauthorization_are_parked,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_a_failure_mid_completion_leaves_nothing() {
    common_db::on_sqlite_with_url(a_failure_mid_completion_leaves_nothing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_a_failure_mid_completion_leaves_nothing() {
    common_db::on_postgres_with_url(a_failure_mid_completion_leaves_nothing).await;
}

/// A push about `biz_id` received at `received_at_ms`, every field set.
fn push(event_id: &str, kind: EventKind, biz_id: i64, received_at_ms: i64) -> NewEvent {
    let event = match kind {
        EventKind::Order => "kwaishop_order_paySuccess",
        EventKind::Refund => "kwaishop_aftersales_addRefund",
        EventKind::Item => "kwaishop_item_itemChange",
        EventKind::Other => "kwaishop_shop_notice",
    };
    NewEvent {
        event_id: event_id.to_string(),
        msg_id: Some(format!("msg-{event_id}")),
        app_key: "ks-app".into(),
        shop_id: Some(SHOP.into()),
        open_id: Some("open-1".into()),
        user_id: Some(42),
        event: event.into(),
        kind,
        biz_id: Some(biz_id),
        info: format!("{{\"id\":{biz_id},\"status\":\"已付款\"}}"),
        raw: format!(
            "{{ \"eventId\" :\"{event_id}\",\"info\":\"{{\\\"id\\\":{biz_id}}}\" ,\n\t\"t\":1.50}}"
        ),
        event_update_time: Some(received_at_ms - 5),
        received_at_ms,
    }
}

/// Order pushes `e-0`, `e-1`, … about oids 1, 2, …, received one ms apart from `NOW`.
fn order_pushes(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            push(
                &format!("e-{i}"),
                EventKind::Order,
                i as i64 + 1,
                NOW + i as i64,
            )
        })
        .collect()
}

async fn enqueue(store: &Store, events: &[NewEvent]) -> Vec<bool> {
    store.enqueue_events(events).await.expect("enqueue")
}

async fn claim(store: &Store, now_ms: i64, limit: i64) -> Vec<ClaimedEvent> {
    store
        .claim_events(now_ms, LEASE, limit)
        .await
        .expect("claim")
}

async fn event(store: &Store, id: i64) -> kwaishop_sync::store::EventRow {
    store
        .event(id)
        .await
        .expect("read")
        .expect("the event exists")
}

fn fences(claimed: &[ClaimedEvent]) -> Vec<(i64, i64)> {
    claimed.iter().map(|c| (c.id, c.fence)).collect()
}

async fn enqueue_keeps_every_field_and_ignores_duplicates(store: Store) {
    add_shop(&store, SHOP).await;
    let a = push("a", EventKind::Order, 11, NOW);
    let b = push("b", EventKind::Refund, 22, NOW + 1);
    let c = push("c", EventKind::Item, 33, NOW + 2);
    let mut a_again = push("a", EventKind::Other, 99, NOW + 9);
    a_again.raw = "a different body".into();
    assert_eq!(
        enqueue(&store, &[a.clone(), b.clone(), a_again.clone()]).await,
        [true, true, false],
        "twice in one batch: the first is kept"
    );
    assert_eq!(
        enqueue(&store, &[b.clone(), c.clone(), a_again]).await,
        [false, true, false],
        "already stored"
    );
    assert_eq!(enqueue(&store, &[]).await, Vec::<bool>::new());

    let rows = store.list_events(None, 10).await.expect("list");
    assert_eq!(rows.len(), 3);
    for (row, want) in rows.iter().rev().zip([&a, &b, &c]) {
        assert_eq!(row.event_id, want.event_id);
        assert_eq!(row.msg_id, want.msg_id);
        assert_eq!(row.app_key, want.app_key);
        assert_eq!(row.shop_id, want.shop_id);
        assert_eq!(row.open_id, want.open_id);
        assert_eq!(row.user_id, want.user_id);
        assert_eq!(row.event, want.event);
        assert_eq!(row.kind, want.kind);
        assert_eq!(row.biz_id, want.biz_id);
        assert_eq!(row.info, want.info);
        assert_eq!(row.raw.as_bytes(), want.raw.as_bytes(), "raw byte for byte");
        assert_eq!(row.event_update_time, want.event_update_time);
        assert_eq!(row.received_at_ms, want.received_at_ms);
        assert_eq!(row.status, EventStatus::Pending);
        assert_eq!(row.next_attempt_at_ms, want.received_at_ms);
        assert_eq!(
            (row.attempts, row.fence, row.lease_until_ms),
            (0, 0, None),
            "{row:?}"
        );
        assert_eq!((row.last_error.as_deref(), row.done_at_ms), (None, None));
        assert_eq!(event(&store, row.id).await, *row);
    }
    assert_eq!(store.event(-1).await.expect("read"), None);
}

async fn concurrent_duplicate_batches_store_each_event_once(store: Store) {
    add_shop(&store, SHOP).await;
    let events = order_pushes(1_000);
    let reversed: Vec<NewEvent> = events.iter().rev().cloned().collect();
    // Two batches with the same events, in opposite orders, at once; then a third.
    let (s1, s2) = (store.clone(), store.clone());
    let (first, second) = (events.clone(), reversed);
    let one = tokio::spawn(async move { s1.enqueue_events(&first).await });
    let two = tokio::spawn(async move { s2.enqueue_events(&second).await });
    let one = one.await.expect("joined").expect("first batch");
    let mut two = two.await.expect("joined").expect("second batch");
    two.reverse();
    let three = enqueue(&store, &events).await;
    for i in 0..events.len() {
        let stored = [one[i], two[i], three[i]];
        assert_eq!(
            stored.iter().filter(|s| **s).count(),
            1,
            "event {i} newly stored exactly once: {stored:?}"
        );
    }
    assert!(three.iter().all(|s| !s), "the third batch stored nothing");
    let stats = store.queue_stats().await.expect("stats");
    assert_eq!(stats.pending, 1_000);
    let all = store.list_events(None, 5_000).await.expect("list");
    let ids: HashSet<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!((all.len(), ids.len()), (1_000, 1_000));
}

async fn unknown_shop_events_wait_and_are_never_claimed(store: Store) {
    add_shop(&store, SHOP).await;
    let mut lost = push("lost", EventKind::Order, 1, NOW);
    lost.shop_id = None;
    let known = push("known", EventKind::Order, 2, NOW + 1);
    assert_eq!(enqueue(&store, &[lost, known]).await, [true, true]);
    let rows = store
        .list_events(Some(EventStatus::UnknownShop), 10)
        .await
        .expect("list");
    assert_eq!(rows.len(), 1);
    let lost = &rows[0];
    assert_eq!(
        (lost.event_id.as_str(), lost.shop_id.as_deref()),
        ("lost", None)
    );

    let claimed = claim(&store, NOW + 1_000_000, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event_id, "known");
    let reclaimed = claim(&store, NOW + 10_000_000, 10).await;
    assert_eq!(reclaimed.len(), 1, "the expired lease only");
    assert_eq!(
        event(&store, lost.id).await.status,
        EventStatus::UnknownShop
    );

    // Without a shop it cannot be retried; once its shop is known, it can.
    assert!(!store.retry_event(lost.id, None, NOW).await.expect("retry"));
    add_shop(&store, "shop-2").await;
    let later = NOW + 20_000_000;
    assert!(
        store
            .retry_event(lost.id, Some("shop-2"), later)
            .await
            .expect("retry")
    );
    let row = event(&store, lost.id).await;
    assert_eq!(row.status, EventStatus::Pending);
    assert_eq!(row.shop_id.as_deref(), Some("shop-2"));
    assert_eq!(row.next_attempt_at_ms, later);
    let claimed = claim(&store, later, 10).await;
    assert!(
        claimed
            .iter()
            .any(|c| c.id == lost.id && c.shop_id == "shop-2")
    );
}

async fn claims_respect_due_times_and_leases(store: Store) {
    add_shop(&store, SHOP).await;
    let events = [
        push("late", EventKind::Order, 3, NOW + 300),
        push("early", EventKind::Refund, 1, NOW + 100),
        push("middle", EventKind::Other, 2, NOW + 200),
    ];
    enqueue(&store, &events).await;
    assert!(claim(&store, NOW + 99, 10).await.is_empty(), "nothing due");
    assert!(claim(&store, NOW, 0).await.is_empty(), "a zero limit");

    let first = claim(&store, NOW + 250, 1).await;
    assert_eq!(first.len(), 1, "the limit holds");
    let early = &first[0];
    assert_eq!(early.event_id, "early");
    assert_eq!((early.fence, early.attempts), (1, 1));
    assert_eq!(early.shop_id, SHOP);
    assert_eq!(early.kind, EventKind::Refund);
    assert_eq!(early.biz_id, Some(1));
    assert_eq!(early.event, "kwaishop_aftersales_addRefund");
    assert_eq!(early.info, events[1].info);
    let row = event(&store, early.id).await;
    assert_eq!(row.status, EventStatus::Running);
    assert_eq!(row.lease_until_ms, Some(NOW + 250 + LEASE));

    let second = claim(&store, NOW + 250, 10).await;
    assert_eq!(second.len(), 1, "leased and not yet due events stay");
    assert_eq!(second[0].event_id, "middle");

    // The first lease ends at NOW + 250 + LEASE: not a millisecond before.
    let ends = NOW + 250 + LEASE;
    let before = claim(&store, ends - 1, 10).await;
    assert_eq!(
        before
            .iter()
            .map(|c| c.event_id.as_str())
            .collect::<Vec<_>>(),
        ["late"]
    );
    let again = claim(&store, ends, 10).await;
    let ids: Vec<&str> = again.iter().map(|c| c.event_id.as_str()).collect();
    assert_eq!(ids, ["early", "middle"], "both leases ended");
    assert_eq!((again[0].fence, again[0].attempts), (2, 2), "a new fence");

    // The first holder's completion is refused: its lease is gone.
    let err = store
        .complete_events(SHOP, &fences(&first), EventOutcome::Nothing, ends)
        .await
        .expect_err("stale fence");
    assert!(matches!(err, StoreError::LeaseLost), "{err}");
    store
        .complete_events(SHOP, &fences(&again[..1]), EventOutcome::Nothing, ends)
        .await
        .expect("current fence");
    assert_eq!(event(&store, early.id).await.status, EventStatus::Done);
}

async fn four_concurrent_claimers_never_share_an_event(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(&store, &order_pushes(500)).await;
    // All four start together and let the others in between their claims, so a claimer that
    // got its connection first cannot drain the queue before the rest have started.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                start.wait().await;
                loop {
                    let claimed = store
                        .claim_events(NOW + 1_000, LEASE, 7)
                        .await
                        .expect("claim");
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed);
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut busy_claimers = 0;
    for claimer in claimers {
        let mine = claimer.await.expect("joined");
        busy_claimers += usize::from(!mine.is_empty());
        all.extend(mine);
    }
    let ids: BTreeSet<i64> = all.iter().map(|c| c.id).collect();
    assert_eq!(all.len(), 500, "every event claimed exactly once");
    assert_eq!(ids.len(), 500, "no event claimed twice");
    assert!(all.iter().all(|c| c.fence == 1 && c.attempts == 1));
    assert!(busy_claimers >= 2, "the claimers ran side by side");
    let stats = store.queue_stats().await.expect("stats");
    assert_eq!((stats.pending, stats.running), (0, 500));
}

async fn completing_writes_the_records_and_the_done_mark_together(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(
        &store,
        &[
            push("o1", EventKind::Order, 1, NOW),
            push("o2", EventKind::Order, 1, NOW + 1),
            push("r1", EventKind::Refund, 7, NOW + 2),
            push("x1", EventKind::Other, 9, NOW + 3),
        ],
    )
    .await;
    let claimed = claim(&store, NOW + 10, 10).await;
    assert_eq!(claimed.len(), 4);
    let done_at = NOW + 500;

    let orders = [order(1, 300, 1)];
    let written = store
        .complete_events(
            SHOP,
            &fences(&claimed[..2]),
            EventOutcome::Orders(&orders),
            done_at,
        )
        .await
        .expect("complete orders");
    assert_eq!(
        written,
        PageOutcome {
            received: 2,
            written: 2
        }
    );
    let rows = store.order_rows(SHOP).await.expect("orders");
    assert_eq!(rows.len(), 2, "the order and its gift");
    assert!(
        rows.iter()
            .all(|r| r.source == Source::Push && r.synced_at == done_at)
    );
    assert_eq!(rows[0].to_order().expect("readable").raw, orders[0].raw);

    let refunds = [refund(7, 400)];
    store
        .complete_events(
            SHOP,
            &fences(&claimed[2..3]),
            EventOutcome::Refunds(&refunds),
            done_at,
        )
        .await
        .expect("complete refunds");
    let rows = store.refund_rows(SHOP).await.expect("refunds");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].to_refund(), refunds[0]);
    assert_eq!(rows[0].source, Source::Push);

    let nothing = store
        .complete_events(SHOP, &fences(&claimed[3..]), EventOutcome::Nothing, done_at)
        .await
        .expect("complete other");
    assert_eq!(nothing, PageOutcome::default());

    for c in &claimed {
        let row = event(&store, c.id).await;
        assert_eq!(row.status, EventStatus::Done, "{row:?}");
        assert_eq!((row.done_at_ms, row.lease_until_ms), (Some(done_at), None));
        assert_eq!(row.fence, c.fence);
    }
    // Done is final: completing again is a lost lease, and writes nothing.
    let again = [order(1, 900, 0)];
    let err = store
        .complete_events(
            SHOP,
            &fences(&claimed[..1]),
            EventOutcome::Orders(&again),
            done_at,
        )
        .await
        .expect_err("already done");
    assert!(matches!(err, StoreError::LeaseLost), "{err}");
    let rows = store.order_rows(SHOP).await.expect("orders");
    assert_eq!(rows[0].update_time, 300);

    let err = store
        .complete_events(SHOP, &[], EventOutcome::Nothing, done_at)
        .await
        .expect_err("no events");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

async fn completing_items_writes_them_or_soft_deletes_them(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(
        &store,
        &[
            push("i1", EventKind::Item, 10, NOW),
            push("i2", EventKind::Item, 10, NOW + 1),
        ],
    )
    .await;
    let claimed = claim(&store, NOW + 10, 10).await;
    let items = [item(10, 100, &[101, 102])];
    let written = store
        .complete_events(
            SHOP,
            &fences(&claimed[..1]),
            EventOutcome::Items(&items),
            NOW + 20,
        )
        .await
        .expect("complete items");
    assert_eq!(written.written, 3, "the item and its two SKUs");
    let rows = store.item_rows(SHOP).await.expect("items");
    assert_eq!(
        (rows.len(), rows[0].source, rows[0].deleted_at),
        (1, Source::Push, None)
    );
    assert_eq!(store.sku_rows(SHOP).await.expect("skus").len(), 2);

    let gone = store
        .complete_events(
            SHOP,
            &fences(&claimed[1..]),
            EventOutcome::ItemGone(10),
            NOW + 30,
        )
        .await
        .expect("complete item gone");
    assert_eq!(gone.written, 1);
    let rows = store.item_rows(SHOP).await.expect("items");
    assert_eq!(
        rows[0].deleted_at,
        Some(NOW + 30),
        "soft-deleted, not removed"
    );
    let skus = store.sku_rows(SHOP).await.expect("skus");
    assert!(skus.iter().all(|s| s.deleted_at == Some(NOW + 30)));
    assert_eq!(store.queue_stats().await.expect("stats").done, 2);
}

async fn a_stale_fence_commits_nothing(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(
        &store,
        &[
            push("a", EventKind::Order, 1, NOW),
            push("b", EventKind::Order, 1, NOW + 1),
        ],
    )
    .await;
    let mine = claim(&store, NOW + 10, 1).await;
    let other = claim(&store, NOW + 10, 1).await;
    assert_eq!((mine.len(), other.len()), (1, 1));
    // My lease on `a` ends; another worker takes it over.
    let theirs = claim(&store, NOW + 10 + LEASE, 10).await;
    assert_eq!(fences(&theirs), [(mine[0].id, 2), (other[0].id, 2)]);

    let orders = [order(1, 100, 0)];
    let both = [(mine[0].id, mine[0].fence), (other[0].id, 2)];
    let err = store
        .complete_events(SHOP, &both, EventOutcome::Orders(&orders), NOW + 20)
        .await
        .expect_err("one fence is stale");
    assert!(matches!(err, StoreError::LeaseLost), "{err}");
    assert!(
        store.order_rows(SHOP).await.expect("orders").is_empty(),
        "no record"
    );
    for id in [mine[0].id, other[0].id] {
        let row = event(&store, id).await;
        assert_eq!(
            (row.status, row.fence, row.done_at_ms),
            (EventStatus::Running, 2, None),
            "neither event done"
        );
    }
    assert!(
        !store
            .fail_event(mine[0].id, mine[0].fence, "late", Some(NOW), true)
            .await
            .expect("fail"),
        "a stale fence cannot fail it either"
    );
    assert_eq!(event(&store, mine[0].id).await.status, EventStatus::Running);

    // An event of another shop is refused, and nothing is written.
    add_shop(&store, "shop-2").await;
    let err = store
        .complete_events(
            "shop-2",
            &fences(&theirs),
            EventOutcome::Orders(&orders),
            NOW,
        )
        .await
        .expect_err("wrong shop");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(
        store.count_rows("orders", "shop-2").await.expect("count"),
        0
    );

    store
        .complete_events(
            SHOP,
            &fences(&theirs),
            EventOutcome::Orders(&orders),
            NOW + 30,
        )
        .await
        .expect("the current holder completes");
    assert_eq!(store.order_rows(SHOP).await.expect("orders").len(), 1);
}

async fn the_version_guard_holds_through_completion(store: Store) {
    add_shop(&store, SHOP).await;
    let newer = order(1, 200, 0);
    store
        .upsert_orders(SHOP, std::slice::from_ref(&newer), Source::Poll, NOW)
        .await
        .expect("poll");
    enqueue(&store, &[push("a", EventKind::Order, 1, NOW)]).await;
    let claimed = claim(&store, NOW, 1).await;
    let mut older = order(1, 100, 0);
    older.status = 10;
    let written = store
        .complete_events(
            SHOP,
            &fences(&claimed),
            EventOutcome::Orders(&[older]),
            NOW + 1,
        )
        .await
        .expect("complete");
    assert_eq!(written.written, 0, "an older fetch replaces nothing (I4)");
    let rows = store.order_rows(SHOP).await.expect("orders");
    assert_eq!((rows[0].update_time, rows[0].status), (200, 30));
    assert_eq!(rows[0].source, Source::Poll);
    assert_eq!(event(&store, claimed[0].id).await.status, EventStatus::Done);
}

async fn failed_attempts_retry_die_or_give_the_attempt_back(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(&store, &[push("a", EventKind::Order, 1, NOW)]).await;
    let first = claim(&store, NOW, 1).await.remove(0);
    let retry_at = NOW + 5_000;
    assert!(
        store
            .fail_event(first.id, first.fence, "HTTP 503", Some(retry_at), true)
            .await
            .expect("fail")
    );
    let row = event(&store, first.id).await;
    assert_eq!(row.status, EventStatus::Pending);
    assert_eq!((row.next_attempt_at_ms, row.attempts), (retry_at, 1));
    assert_eq!(
        (row.lease_until_ms, row.last_error.as_deref()),
        (None, Some("HTTP 503"))
    );
    assert!(
        claim(&store, retry_at - 1, 1).await.is_empty(),
        "not due yet"
    );
    assert!(
        !store
            .fail_event(first.id, first.fence, "again", None, true)
            .await
            .expect("fail"),
        "not running any more"
    );

    // A quota pause is not the event's fault: the attempt is given back.
    let second = claim(&store, retry_at, 1).await.remove(0);
    assert_eq!((second.fence, second.attempts), (2, 2));
    let tomorrow = NOW + 86_400_000;
    assert!(
        store
            .fail_event(second.id, second.fence, "quota", Some(tomorrow), false)
            .await
            .expect("pause")
    );
    let row = event(&store, first.id).await;
    assert_eq!((row.attempts, row.next_attempt_at_ms), (1, tomorrow));
    assert_eq!(row.last_error.as_deref(), Some("quota"));

    let third = claim(&store, tomorrow, 1).await.remove(0);
    assert_eq!((third.fence, third.attempts), (3, 2));
    assert!(
        store
            .fail_event(third.id, third.fence, "order not found", None, true)
            .await
            .expect("dead")
    );
    let row = event(&store, first.id).await;
    assert_eq!(row.status, EventStatus::Dead);
    assert_eq!(
        (row.attempts, row.last_error.as_deref()),
        (2, Some("order not found"))
    );
    assert!(
        claim(&store, tomorrow * 2, 10).await.is_empty(),
        "dead is never claimed"
    );
}

async fn dead_events_can_be_retried(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(
        &store,
        &[
            push("dead", EventKind::Order, 1, NOW),
            push("pending", EventKind::Order, 2, NOW + 1),
        ],
    )
    .await;
    let claimed = claim(&store, NOW, 1).await.remove(0);
    store
        .fail_event(claimed.id, claimed.fence, "gone", None, true)
        .await
        .expect("dead");
    let later = NOW + 60_000;
    assert!(
        store
            .retry_event(claimed.id, None, later)
            .await
            .expect("retry")
    );
    let row = event(&store, claimed.id).await;
    assert_eq!(row.status, EventStatus::Pending);
    assert_eq!((row.attempts, row.next_attempt_at_ms), (0, later));
    assert_eq!(
        row.last_error.as_deref(),
        Some("gone"),
        "the reason is kept"
    );
    assert_eq!(row.shop_id.as_deref(), Some(SHOP));

    assert!(
        !store
            .retry_event(claimed.id, None, later)
            .await
            .expect("retry"),
        "pending is not dead"
    );
    let pending = store.list_events(None, 10).await.expect("list")[0].id;
    assert!(
        !store
            .retry_event(pending, Some(SHOP), later)
            .await
            .expect("retry")
    );
    assert!(!store.retry_event(9_999, None, later).await.expect("retry"));

    let again = claim(&store, later, 10).await;
    let again: Vec<_> = again.iter().filter(|c| c.id == claimed.id).collect();
    assert_eq!((again[0].attempts, again[0].fence), (1, 2));
}

async fn related_events_are_claimed_together(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(
        &store,
        &[
            push("o1-a", EventKind::Order, 1, NOW),
            push("o2", EventKind::Order, 2, NOW + 1),
            push("o1-b", EventKind::Order, 1, NOW + 2),
            push("r1", EventKind::Refund, 1, NOW + 3),
            push("o1-c", EventKind::Order, 1, NOW + 9_000),
        ],
    )
    .await;
    let first = claim(&store, NOW + 10, 1).await;
    assert_eq!(first[0].event_id, "o1-a");
    let related = store
        .claim_related_events(SHOP, EventKind::Order, 1, NOW + 10, LEASE, 10)
        .await
        .expect("related");
    let ids: Vec<&str> = related.iter().map(|c| c.event_id.as_str()).collect();
    assert_eq!(ids, ["o1-b", "o1-c"], "the same order, due or not");
    assert!(related.iter().all(|c| c.fence == 1 && c.attempts == 1));
    let group: Vec<(i64, i64)> = fences(&first).into_iter().chain(fences(&related)).collect();
    store
        .complete_events(
            SHOP,
            &group,
            EventOutcome::Orders(&[order(1, 5, 0)]),
            NOW + 20,
        )
        .await
        .expect("complete the group");
    let stats = store.queue_stats().await.expect("stats");
    assert_eq!((stats.done, stats.pending), (3, 2), "o2 and r1 wait");
    let none = store
        .claim_related_events(SHOP, EventKind::Order, 1, NOW + 30, LEASE, 10)
        .await
        .expect("related");
    assert!(none.is_empty());
}

async fn purging_deletes_only_old_done_events(store: Store) {
    add_shop(&store, SHOP).await;
    // More than one purge transaction's worth.
    let n = 6_100;
    enqueue(&store, &order_pushes(n)).await;
    let claimed = claim(&store, NOW + n as i64, n as i64).await;
    assert_eq!(claimed.len(), n);
    let (old, recent) = claimed.split_at(6_000);
    store
        .complete_events(SHOP, &fences(old), EventOutcome::Nothing, NOW + 1_000)
        .await
        .expect("complete old");
    store
        .complete_events(
            SHOP,
            &fences(&recent[..50]),
            EventOutcome::Nothing,
            NOW + 2_000,
        )
        .await
        .expect("complete recent");
    assert_eq!(
        store.purge_done_events(NOW + 1_000).await.expect("purge"),
        0
    );
    assert_eq!(
        store.purge_done_events(NOW + 1_001).await.expect("purge"),
        6_000
    );
    assert_eq!(
        store.purge_done_events(NOW + 1_001).await.expect("purge"),
        0
    );
    let stats = store.queue_stats().await.expect("stats");
    assert_eq!(
        (stats.done, stats.running),
        (50, 50),
        "recent and unfinished kept"
    );
    assert!(store.event(old[0].id).await.expect("read").is_none());

    // A purged event id is never handed out again.
    enqueue(&store, &[push("new", EventKind::Order, 1, NOW)]).await;
    let newest = store.list_events(None, 1).await.expect("list").remove(0);
    assert!(newest.id > claimed[n - 1].id, "{} reused", newest.id);
}

async fn stats_count_every_status(store: Store) {
    assert_eq!(
        store.queue_stats().await.expect("stats"),
        QueueStats::default()
    );
    add_shop(&store, SHOP).await;
    let mut lost = push("lost", EventKind::Order, 9, NOW - 50);
    lost.shop_id = None;
    let mut events = order_pushes(5);
    events.push(lost);
    enqueue(&store, &events).await;
    let claimed = claim(&store, NOW + 2, 3).await; // e-0, e-1, e-2 (due at NOW..NOW+2)
    store
        .complete_events(SHOP, &fences(&claimed[..1]), EventOutcome::Nothing, NOW)
        .await
        .expect("done");
    store
        .fail_event(claimed[1].id, claimed[1].fence, "x", None, true)
        .await
        .expect("dead");
    let stats = store.queue_stats().await.expect("stats");
    assert_eq!(
        stats,
        QueueStats {
            pending: 2,
            running: 1,
            done: 1,
            dead: 1,
            unknown_shop: 1,
            oldest_pending_received_at_ms: Some(NOW + 3),
        }
    );
}

async fn listing_is_newest_first(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(&store, &order_pushes(5)).await;
    let claimed = claim(&store, NOW + 1, 2).await;
    let all = store.list_events(None, 10).await.expect("list");
    let names: Vec<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(names, ["e-4", "e-3", "e-2", "e-1", "e-0"]);
    let two = store.list_events(None, 2).await.expect("list");
    assert_eq!(two, all[..2]);
    let running = store
        .list_events(Some(EventStatus::Running), 10)
        .await
        .expect("list");
    assert_eq!(
        running.iter().map(|e| e.id).collect::<Vec<_>>(),
        [claimed[1].id, claimed[0].id]
    );
    assert!(
        store
            .list_events(Some(EventStatus::Dead), 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(store.list_events(None, -1).await.expect("list").is_empty());
}

async fn a_failed_enqueue_stores_nothing(store: Store) {
    add_shop(&store, SHOP).await;
    let good = push("good", EventKind::Order, 1, NOW);
    let mut bad = push("bad", EventKind::Order, 2, NOW);
    bad.shop_id = Some("no-such-shop".into());
    let err = store
        .enqueue_events(&[good.clone(), bad])
        .await
        .expect_err("the shop does not exist");
    assert!(matches!(err, StoreError::Query { .. }), "{err}");
    assert!(
        store.list_events(None, 10).await.expect("list").is_empty(),
        "all or nothing"
    );
    assert_eq!(
        enqueue(&store, &[good]).await,
        [true],
        "the batch can be sent again"
    );
}

/// Makes every SKU insert fail, after the item rows of the same transaction were written.
async fn fail_sku_inserts(store: &Store, url: &str, on: bool) {
    let statements: &[&str] = match (store.backend(), on) {
        (Backend::Sqlite, true) => &["CREATE TRIGGER no_skus BEFORE INSERT ON skus \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"],
        (Backend::Sqlite, false) => &["DROP TRIGGER no_skus"],
        (Backend::Postgres, true) => &[
            "CREATE FUNCTION no_skus() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
            "CREATE TRIGGER no_skus BEFORE INSERT ON skus \
             FOR EACH ROW EXECUTE FUNCTION no_skus()",
        ],
        (Backend::Postgres, false) => &["DROP TRIGGER no_skus ON skus"],
    };
    match store.backend() {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            for sql in statements {
                sqlx::query(*sql).execute(&mut conn).await.expect("trigger");
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            for sql in statements {
                sqlx::query(*sql).execute(&mut conn).await.expect("trigger");
            }
        }
    }
}

async fn a_failure_mid_completion_leaves_nothing(store: Store, url: String) {
    add_shop(&store, SHOP).await;
    enqueue(&store, &[push("i", EventKind::Item, 10, NOW)]).await;
    let claimed = claim(&store, NOW, 1).await;
    fail_sku_inserts(&store, &url, true).await;
    let items = [item(10, 100, &[101])];
    let err = store
        .complete_events(
            SHOP,
            &fences(&claimed),
            EventOutcome::Items(&items),
            NOW + 1,
        )
        .await
        .expect_err("the SKU insert fails");
    assert!(matches!(err, StoreError::Query { .. }), "{err}");
    assert_eq!(
        store.count_rows("items", SHOP).await.expect("count"),
        0,
        "no item"
    );
    assert_eq!(store.count_rows("skus", SHOP).await.expect("count"), 0);
    let row = event(&store, claimed[0].id).await;
    assert_eq!(
        (row.status, row.fence, row.done_at_ms),
        (EventStatus::Running, claimed[0].fence, None),
        "not done"
    );

    fail_sku_inserts(&store, &url, false).await;
    store
        .complete_events(
            SHOP,
            &fences(&claimed),
            EventOutcome::Items(&items),
            NOW + 2,
        )
        .await
        .expect("the holder completes once the failure is gone");
    assert_eq!(store.count_rows("skus", SHOP).await.expect("count"), 1);
    assert_eq!(event(&store, claimed[0].id).await.status, EventStatus::Done);
}

/// Milliseconds since the epoch, for the load test's real-time queue.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A worker as the queue expects one: claims a batch, "fetches" each record (2 ms), and
/// completes each record's events with it, until `stop`. Returns how many it completed.
async fn load_worker(store: Store, stop: Arc<AtomicBool>) -> usize {
    let mut completed = 0;
    while !stop.load(Ordering::Relaxed) {
        let claimed = store
            .claim_events(wall_ms(), LEASE, 20)
            .await
            .expect("claim");
        if claimed.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let mut by_record: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
        for c in &claimed {
            let biz_id = c.biz_id.expect("order events name their order");
            by_record.entry(biz_id).or_default().push((c.id, c.fence));
        }
        for (oid, group) in by_record {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let fetched = [order(oid, wall_ms(), 0)];
            store
                .complete_events(SHOP, &group, EventOutcome::Orders(&fetched), wall_ms())
                .await
                .expect("complete");
            completed += group.len();
        }
    }
    completed
}

/// The receiver's budget on SQLite (synchronous = FULL): 500 events/s, each batch committed
/// within 50 ms of its arrival at the 99th percentile, while two workers claim and complete
/// beside it. Each commit waits for an fsync, so this measures the disk as much as the code:
/// run it on purpose, and with `TMPDIR=/dev/shm` to see the code's share alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a timing measurement: cargo test --release --test store_events -- --ignored"]
async fn sqlite_acknowledges_500_events_a_second_within_50_ms() {
    let (store, _dir) = common_db::sqlite_store().await;
    add_shop(&store, SHOP).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(load_worker(store.clone(), stop.clone())))
        .collect();

    // Every 10 ms a batch of 5 events arrives; its latency counts from when it was due, so a
    // slow commit also delays the batches queued behind it.
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut n = 0_i64;
    while started.elapsed() < Duration::from_secs(6) {
        let due = ticks.tick().await;
        let batch: Vec<NewEvent> = (0..5)
            .map(|_| {
                n += 1;
                push(&format!("load-{n}"), EventKind::Order, n % 400, wall_ms())
            })
            .collect();
        let stored = store.enqueue_events(&batch).await.expect("enqueue");
        assert!(stored.iter().all(|s| *s));
        latencies.push(due.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let mut completed = 0;
    for worker in workers {
        completed += worker.await.expect("joined");
    }

    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
    let rate = n as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "{n} events ({rate:.0}/s) in {} batches: p50 {p50:?}, p99 {p99:?}, max {max:?}; \
         {completed} completed by the workers",
        latencies.len()
    );
    assert!(completed as i64 >= n / 2, "the workers made progress");
}

/// A worker that claims an event and never finishes (it crashed, hung or was killed) leaves it
/// running until its lease ends; the next claim takes it again and counts the attempt. On its
/// last allowed attempt it is buried as dead instead of being claimed forever.
async fn an_event_whose_leases_keep_ending_dies_after_max_attempts(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(&store, &order_pushes(1)).await;
    const MAX: i64 = 3;
    let mut now = NOW + 10;
    let mut id = 0;
    let bury_and_claim = |now: i64| {
        let store = store.clone();
        async move {
            store
                .bury_and_claim_events(now, LEASE, 10, MAX)
                .await
                .expect("claim")
        }
    };
    for attempt in 1..=MAX {
        let (buried, claimed) = bury_and_claim(now).await;
        assert_eq!(buried, 0, "attempt {attempt}: not yet");
        assert_eq!(claimed.len(), 1, "attempt {attempt}: claimed again");
        assert_eq!(claimed[0].attempts, attempt, "the attempt is counted");
        id = claimed[0].id;
        // The claimer goes silent; its lease ends.
        now += LEASE;
    }
    let (buried, claimed) = bury_and_claim(now).await;
    assert_eq!((buried, claimed.len()), (1, 0), "buried, not claimed");
    let row = event(&store, id).await;
    assert_eq!(row.status, EventStatus::Dead);
    assert_eq!(row.attempts, MAX);
    assert_eq!(row.lease_until_ms, None);
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("abandoned")),
        "{:?}",
        row.last_error
    );
    assert!(
        claim(&store, now + LEASE, 10).await.is_empty(),
        "never claimed again"
    );
    assert_eq!(store.queue_stats().await.expect("stats").dead, 1);
}

/// While a shop needs re-authorization no call for it can succeed: its events are not claimed
/// (not retried every hour, no attempt spent), and they are claimed as soon as it is active.
async fn events_of_a_shop_needing_reauthorization_are_parked(store: Store) {
    add_shop(&store, SHOP).await;
    enqueue(&store, &order_pushes(3)).await;
    store
        .set_shop_status(SHOP, ShopStatus::NeedsReauth, Some("revoked"))
        .await
        .expect("status");
    assert!(claim(&store, NOW + 10, 10).await.is_empty(), "parked");
    assert!(
        claim(&store, NOW + 30 * 86_400_000, 10).await.is_empty(),
        "still parked a month later"
    );
    assert_eq!(store.queue_stats().await.expect("stats").pending, 3);
    store
        .set_shop_status(SHOP, ShopStatus::Active, None)
        .await
        .expect("status");
    let claimed = claim(&store, NOW + 20, 10).await;
    assert_eq!(claimed.len(), 3, "claimed once the shop is active");
    assert!(
        claimed.iter().all(|c| c.attempts == 1),
        "no attempt was spent"
    );
}
