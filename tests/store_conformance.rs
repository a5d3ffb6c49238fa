//! The store's conformance suite: every test body is written once and runs on a fresh SQLite
//! file and, when `KWAISHOP_TEST_PG_URL` is set, on a fresh Postgres database.

use crate::common_db;

use common_db::{add_shop, item, order, refund};
use kwaishop_sync::api::limits::UsageStore;
use kwaishop_sync::api::oauth::{TokenSet, TokenStore};
use kwaishop_sync::api::{HourlyCalls, HourlyCount, Method};
use kwaishop_sync::app::flush_api_calls;
use kwaishop_sync::secret::Secret;
use kwaishop_sync::store::{
    ApiCallRow, EventKind, EventStatus, FinishedRun, NewEvent, PageOutcome, ResyncKind,
    ResyncStatus, RunEnd, RunKind, ShopRow, ShopStatus, Source, Store, StoreError, Stream,
    StreamState,
};

const SHOP: &str = "shop-1";
const NOW: i64 = 1_700_100_000_000;

/// Runs each named body on both backends: `on_sqlite::name` and `on_postgres::name`.
macro_rules! conformance {
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

conformance!(
    migrating_twice_is_fine,
    orders_read_back_field_by_field_with_gifts_as_rows,
    refunds_read_back_field_by_field,
    items_and_skus_read_back_field_by_field,
    an_older_version_never_replaces_a_newer_row,
    duplicates_within_a_batch_keep_the_newest,
    a_page_commit_writes_records_and_state_together,
    a_failed_page_commit_leaves_neither_records_nor_state,
    an_item_scan_soft_deletes_only_unseen_items,
    skus_dropped_from_a_newer_item_are_soft_deleted,
    a_push_write_during_a_scan_counts_as_seen,
    deleting_an_item_is_soft,
    tokens_round_trip_and_rotation_replaces_both,
    usage_counts_per_shop_and_day,
    usage_limit_holds_under_concurrency,
    blocks_of_calls_stop_at_the_limit_and_go_back,
    quota_pause_round_trip,
    api_calls_add_up_per_shop_hour_method_and_outcome,
    api_calls_from_concurrent_daemons_all_count,
    a_failed_flush_keeps_the_counts,
    run_log_round_trip,
    states_round_trip,
    shops_keep_their_status,
    a_thousand_orders_commit_in_one_page,
    a_closed_database_gives_errors_not_panics,
    concurrent_resync_requests_leave_one_waiting,
    learning_a_shop_hands_it_the_pushes_that_waited,
    an_api_pause_covers_one_api_of_one_shop,
    windows_move_the_checkpoint_over_the_finished_ones_from_the_first,
    pages_of_several_windows_commit_together,
    a_window_shared_out_is_read_again_as_its_pieces,
    a_batch_written_while_the_one_before_commits_waits_for_it,
);

async fn migrating_twice_is_fine(store: Store) {
    store.migrate().await.expect("second migrate");
    store.migrate().await.expect("third migrate");
    store.ping().await.expect("ping");
}

async fn orders_read_back_field_by_field_with_gifts_as_rows(store: Store) {
    add_shop(&store, SHOP).await;
    let orders = [order(1_001, 500, 2), order(1_002, 600, 0)];
    let outcome = store
        .upsert_orders(SHOP, &orders, Source::Push, NOW)
        .await
        .expect("upsert");
    assert_eq!(
        outcome,
        PageOutcome {
            received: 4,
            written: 4
        }
    );

    let rows = store.order_rows(SHOP).await.expect("read back");
    let mut expected: Vec<_> = orders
        .iter()
        .flat_map(|o| {
            let main = kwaishop_sync::api::records::Order {
                gifts: Vec::new(),
                ..o.clone()
            };
            std::iter::once(main).chain(o.gifts.clone())
        })
        .collect();
    expected.sort_by_key(|o| o.oid);
    assert_eq!(rows.len(), expected.len());
    for (row, want) in rows.iter().zip(&expected) {
        assert_eq!(&row.to_order().expect("readable"), want);
        assert_eq!(row.raw.as_bytes(), want.raw.as_bytes(), "raw byte for byte");
        assert_eq!(row.shop_id, SHOP);
        assert_eq!(row.source, Source::Push);
        assert_eq!(row.synced_at, NOW);
    }
    let gifts: Vec<_> = rows.iter().filter(|r| r.parent_oid.is_some()).collect();
    assert_eq!(gifts.len(), 2);
    assert!(gifts.iter().all(|g| g.parent_oid == Some(1_001)));
    assert_eq!(store.count_rows("orders", SHOP).await.expect("count"), 4);
    assert_eq!(store.count_rows("orders", "other").await.expect("count"), 0);
    // Every shop's counts in one read (the status page's, whatever the number of shops).
    let counts = store.row_counts().await.expect("row counts");
    assert_eq!(counts, vec![(SHOP.to_string(), "orders", 4)]);
}

async fn refunds_read_back_field_by_field(store: Store) {
    add_shop(&store, SHOP).await;
    let refunds = [refund(7, 100), refund(3, 200)];
    let outcome = store
        .upsert_refunds(SHOP, &refunds, Source::Detail, NOW)
        .await
        .expect("upsert");
    assert_eq!(
        outcome,
        PageOutcome {
            received: 2,
            written: 2
        }
    );
    let rows = store.refund_rows(SHOP).await.expect("read back");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].to_refund(), refunds[1]);
    assert_eq!(rows[1].to_refund(), refunds[0]);
    assert!(
        rows.iter()
            .all(|r| r.source == Source::Detail && r.synced_at == NOW)
    );
}

async fn items_and_skus_read_back_field_by_field(store: Store) {
    add_shop(&store, SHOP).await;
    let items = [item(20, 100, &[201, 202]), item(10, 100, &[101])];
    let outcome = store
        .upsert_items(SHOP, &items, Source::Poll, NOW)
        .await
        .expect("upsert");
    assert_eq!(
        outcome,
        PageOutcome {
            received: 5,
            written: 5
        }
    );
    let rows = store.item_rows(SHOP).await.expect("items");
    assert_eq!(rows.len(), 2);
    for (row, want) in rows.iter().zip([&items[1], &items[0]]) {
        let bare = kwaishop_sync::api::records::Item {
            skus: Vec::new(),
            ..want.clone()
        };
        assert_eq!(row.to_item(), bare);
        assert_eq!(row.deleted_at, None);
    }
    let skus = store.sku_rows(SHOP).await.expect("skus");
    let want: Vec<_> = [&items[1].skus[0], &items[0].skus[0], &items[0].skus[1]]
        .into_iter()
        .cloned()
        .collect();
    let got: Vec<_> = skus.iter().map(|s| s.to_sku()).collect();
    assert_eq!(got, want);
    assert!(
        skus.iter()
            .all(|s| s.version == 100 && s.deleted_at.is_none())
    );
}

async fn an_older_version_never_replaces_a_newer_row(store: Store) {
    add_shop(&store, SHOP).await;
    let newer = order(1, 200, 1);
    store
        .upsert_orders(SHOP, std::slice::from_ref(&newer), Source::Push, NOW)
        .await
        .expect("newer");
    let mut older = order(1, 100, 1);
    older.status = 10;
    older.gifts[0].update_time = 100;
    let outcome = store
        .upsert_orders(SHOP, &[older], Source::Poll, NOW + 1)
        .await
        .expect("older");
    assert_eq!(
        outcome.written, 0,
        "nothing replaced by an older version (I4)"
    );
    let rows = store.order_rows(SHOP).await.expect("rows");
    assert_eq!(rows[0].update_time, 200);
    assert_eq!(rows[0].status, 30);
    assert_eq!(rows[0].source, Source::Push);
    assert_eq!(rows[0].raw, newer.raw);

    // An equal version is accepted: the same version re-read may carry more detail.
    let mut same = order(1, 200, 0);
    same.remark = Some("detail".into());
    let outcome = store
        .upsert_orders(SHOP, &[same], Source::Detail, NOW + 2)
        .await
        .expect("same");
    assert_eq!(outcome.written, 1);
    let rows = store.order_rows(SHOP).await.expect("rows");
    assert_eq!(rows[0].remark.as_deref(), Some("detail"));

    store
        .upsert_refunds(SHOP, &[refund(9, 50)], Source::Push, NOW)
        .await
        .expect("refund");
    let stale = store
        .upsert_refunds(SHOP, &[refund(9, 40)], Source::Resync, NOW)
        .await
        .expect("stale refund");
    assert_eq!(stale.written, 0);
    assert_eq!(
        store.refund_rows(SHOP).await.expect("rows")[0].update_time,
        50
    );

    store
        .upsert_items(SHOP, &[item(5, 50, &[51])], Source::Push, NOW)
        .await
        .expect("item");
    let mut old_item = item(5, 40, &[51]);
    old_item.title = Some("stale".into());
    old_item.skus[0].sku_stock = 0;
    let stale = store
        .upsert_items(SHOP, &[old_item], Source::Poll, NOW)
        .await
        .expect("stale item");
    assert_eq!(stale.written, 0);
    assert_eq!(
        store.item_rows(SHOP).await.expect("items")[0].update_time,
        50
    );
    assert_eq!(store.sku_rows(SHOP).await.expect("skus")[0].sku_stock, 10);
}

async fn duplicates_within_a_batch_keep_the_newest(store: Store) {
    add_shop(&store, SHOP).await;
    let orders = [order(1, 100, 0), order(1, 300, 0), order(1, 200, 0)];
    let outcome = store
        .upsert_orders(SHOP, &orders, Source::Poll, NOW)
        .await
        .expect("orders");
    assert_eq!(
        outcome,
        PageOutcome {
            received: 3,
            written: 1
        }
    );
    let rows = store.order_rows(SHOP).await.expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].update_time, 300);

    let refunds = [refund(2, 9), refund(2, 7)];
    store
        .upsert_refunds(SHOP, &refunds, Source::Poll, NOW)
        .await
        .expect("refunds");
    assert_eq!(
        store.refund_rows(SHOP).await.expect("rows")[0].update_time,
        9
    );

    let items = [item(3, 5, &[31]), item(3, 8, &[31, 32]), item(3, 6, &[])];
    store
        .upsert_items(SHOP, &items, Source::Poll, NOW)
        .await
        .expect("items");
    assert_eq!(
        store.item_rows(SHOP).await.expect("items")[0].update_time,
        8
    );
    assert_eq!(store.count_rows("skus", SHOP).await.expect("skus"), 2);
}

fn orders_state(checkpoint: i64) -> StreamState {
    StreamState {
        checkpoint_ms: Some(checkpoint),
        window_begin_ms: Some(checkpoint - 600_000),
        window_end_ms: Some(checkpoint + 3_600_000),
        cursor: Some("cursor-2".into()),
        rows_total: 2,
        ..StreamState::new(SHOP, Stream::Orders)
    }
}

async fn a_page_commit_writes_records_and_state_together(store: Store) {
    add_shop(&store, SHOP).await;
    let state = orders_state(1_000);
    let outcome = store
        .commit_order_page(
            SHOP,
            &[order(1, 10, 1), order(2, 10, 0)],
            Source::Poll,
            &state,
            NOW,
            &[],
        )
        .await
        .expect("commit");
    assert_eq!(
        outcome,
        PageOutcome {
            received: 3,
            written: 3
        }
    );
    assert_eq!(store.count_rows("orders", SHOP).await.expect("count"), 3);
    let saved = store
        .load_state(SHOP, Stream::Orders)
        .await
        .expect("load")
        .expect("saved");
    assert_eq!(
        saved,
        StreamState {
            updated_at_ms: NOW,
            ..state
        }
    );

    let refunds_state = StreamState {
        cursor: Some("nomore".into()),
        ..StreamState::new(SHOP, Stream::Refunds)
    };
    store
        .commit_refund_page(
            SHOP,
            &[refund(1, 1)],
            Source::Poll,
            &refunds_state,
            NOW,
            &[],
        )
        .await
        .expect("refund page");
    let saved = store
        .load_state(SHOP, Stream::Refunds)
        .await
        .expect("load")
        .expect("saved");
    assert_eq!(saved.cursor.as_deref(), Some("nomore"));
    assert_eq!(store.count_rows("refunds", SHOP).await.expect("count"), 1);
}

async fn a_failed_page_commit_leaves_neither_records_nor_state(store: Store) {
    add_shop(&store, SHOP).await;
    let good = orders_state(1_000);
    store
        .commit_order_page(SHOP, &[order(1, 10, 0)], Source::Poll, &good, NOW, &[])
        .await
        .expect("first page");

    // The state write fails inside the transaction (rows_total must not be negative), after
    // the records were written: the whole page must roll back.
    let bad = StreamState {
        rows_total: -1,
        ..orders_state(2_000)
    };
    let err = store
        .commit_order_page(
            SHOP,
            &[order(2, 20, 1), order(1, 30, 0)],
            Source::Poll,
            &bad,
            NOW + 1,
            &[],
        )
        .await
        .expect_err("the state violates a constraint");
    assert!(matches!(err, StoreError::Query { .. }), "{err}");
    let rows = store.order_rows(SHOP).await.expect("rows");
    assert_eq!(rows.len(), 1, "no record of the failed page");
    assert_eq!(rows[0].update_time, 10, "no update of the failed page");
    let saved = store
        .load_state(SHOP, Stream::Orders)
        .await
        .expect("load")
        .expect("saved");
    assert_eq!(
        saved.checkpoint_ms,
        Some(1_000),
        "checkpoint not moved (I3)"
    );

    let items_state = StreamState {
        rows_total: -5,
        ..StreamState::new(SHOP, Stream::Items)
    };
    store
        .commit_item_page(SHOP, &[item(1, 1, &[11])], 7, &items_state, NOW, &[])
        .await
        .expect_err("bad item state");
    assert_eq!(store.count_rows("items", SHOP).await.expect("count"), 0);
    assert_eq!(store.count_rows("skus", SHOP).await.expect("count"), 0);

    // A state of another stream or shop is refused before anything is written.
    let err = store
        .commit_refund_page(SHOP, &[refund(1, 1)], Source::Poll, &good, NOW, &[])
        .await
        .expect_err("orders state on a refund page");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(store.count_rows("refunds", SHOP).await.expect("count"), 0);
}

fn items_state(scan_id: i64, page: &str) -> StreamState {
    StreamState {
        scan_id: Some(scan_id),
        cursor: Some(page.into()),
        ..StreamState::new(SHOP, Stream::Items)
    }
}

async fn an_item_scan_soft_deletes_only_unseen_items(store: Store) {
    add_shop(&store, SHOP).await;
    let (a, b, c) = (
        item(1, 10, &[11]),
        item(2, 10, &[21, 22]),
        item(3, 10, &[31]),
    );
    let page1 = [a.clone(), b.clone()];
    store
        .commit_item_page(SHOP, &page1, 1, &items_state(1, "2"), NOW, &[])
        .await
        .expect("page 1");
    store
        .commit_item_page(
            SHOP,
            std::slice::from_ref(&c),
            1,
            &items_state(1, "3"),
            NOW,
            &[],
        )
        .await
        .expect("2");
    assert!(
        store
            .unseen_items(SHOP, 1)
            .await
            .expect("unseen")
            .is_empty()
    );
    let deleted = store
        .finish_item_scan(SHOP, 1, &items_state(1, "done"), NOW)
        .await
        .expect("end");
    assert_eq!(deleted, 0);

    // Scan 2 lists A (unchanged version: still seen) and C, not B.
    let page = [a.clone(), c.clone()];
    store
        .commit_item_page(SHOP, &page, 2, &items_state(2, "2"), NOW + 1, &[])
        .await
        .expect("scan 2");
    assert_eq!(store.unseen_items(SHOP, 2).await.expect("unseen"), vec![2]);
    let later = NOW + 10;
    let deleted = store
        .finish_item_scan(SHOP, 2, &items_state(2, "done"), later)
        .await
        .expect("end");
    assert_eq!(deleted, 1);
    let items = store.item_rows(SHOP).await.expect("items");
    let deleted_at: Vec<_> = items
        .iter()
        .map(|i| (i.kwai_item_id, i.deleted_at))
        .collect();
    assert_eq!(deleted_at, vec![(1, None), (2, Some(later)), (3, None)]);
    let skus = store.sku_rows(SHOP).await.expect("skus");
    let sku_deleted: Vec<_> = skus.iter().map(|s| (s.kwai_sku_id, s.deleted_at)).collect();
    assert_eq!(
        sku_deleted,
        vec![(11, None), (21, Some(later)), (22, Some(later)), (31, None)]
    );
    let state = store
        .load_state(SHOP, Stream::Items)
        .await
        .expect("load")
        .expect("state");
    assert_eq!(state.cursor.as_deref(), Some("done"));
    assert_eq!(
        store.count_rows("items", SHOP).await.expect("count"),
        3,
        "never hard-deleted"
    );

    // Scan 3 lists B again, same version: it and its SKUs are live again.
    store
        .commit_item_page(SHOP, &[b], 3, &items_state(3, "2"), NOW + 20, &[])
        .await
        .expect("scan 3");
    let items = store.item_rows(SHOP).await.expect("items");
    assert_eq!(items[1].deleted_at, None);
    assert_eq!(items[1].seen_scan, Some(3));
    let skus = store.sku_rows(SHOP).await.expect("skus");
    assert!(skus.iter().all(|s| s.deleted_at.is_none()), "{skus:?}");
}

async fn skus_dropped_from_a_newer_item_are_soft_deleted(store: Store) {
    add_shop(&store, SHOP).await;
    store
        .upsert_items(SHOP, &[item(1, 10, &[11, 12, 13])], Source::Poll, NOW)
        .await
        .expect("v1");
    // An older version without SKU 13 is ignored, SKUs included.
    store
        .upsert_items(SHOP, &[item(1, 5, &[11])], Source::Poll, NOW)
        .await
        .expect("old");
    assert!(
        store
            .sku_rows(SHOP)
            .await
            .expect("skus")
            .iter()
            .all(|s| s.deleted_at.is_none())
    );

    let outcome = store
        .upsert_items(SHOP, &[item(1, 20, &[11, 12])], Source::Push, NOW + 1)
        .await
        .expect("v2");
    assert_eq!(
        outcome,
        PageOutcome {
            received: 3,
            written: 3
        }
    );
    let skus = store.sku_rows(SHOP).await.expect("skus");
    let state: Vec<_> = skus
        .iter()
        .map(|s| (s.kwai_sku_id, s.deleted_at, s.version))
        .collect();
    assert_eq!(
        state,
        vec![(11, None, 20), (12, None, 20), (13, Some(NOW + 1), 10)]
    );

    // A SKU's own updateTime is its version: an older one is not written.
    let mut v3 = item(1, 30, &[11, 12]);
    v3.skus[0].update_time = Some(1);
    v3.skus[0].sku_stock = 0;
    let outcome = store
        .upsert_items(SHOP, &[v3], Source::Push, NOW + 2)
        .await
        .expect("v3");
    assert_eq!(outcome.written, 2, "item and SKU 12");
    assert_eq!(store.sku_rows(SHOP).await.expect("skus")[0].sku_stock, 10);
}

async fn a_push_write_during_a_scan_counts_as_seen(store: Store) {
    add_shop(&store, SHOP).await;
    store
        .commit_item_page(SHOP, &[item(1, 10, &[])], 4, &items_state(4, "2"), NOW, &[])
        .await
        .expect("p");
    // Created while scan 4 runs, after the page that would have listed it.
    store
        .upsert_items(SHOP, &[item(2, 10, &[21])], Source::Detail, NOW)
        .await
        .expect("detail");
    assert!(
        store
            .unseen_items(SHOP, 4)
            .await
            .expect("unseen")
            .is_empty()
    );
    let deleted = store
        .finish_item_scan(SHOP, 4, &items_state(4, "done"), NOW)
        .await
        .expect("end");
    assert_eq!(deleted, 0);
}

async fn deleting_an_item_is_soft(store: Store) {
    add_shop(&store, SHOP).await;
    store
        .upsert_items(SHOP, &[item(1, 10, &[11, 12])], Source::Poll, NOW)
        .await
        .expect("item");
    assert!(store.delete_item(SHOP, 1, NOW + 5).await.expect("delete"));
    assert!(!store.delete_item(SHOP, 1, NOW + 6).await.expect("again"));
    assert!(
        !store
            .delete_item(SHOP, 404, NOW + 6)
            .await
            .expect("unknown")
    );
    let items = store.item_rows(SHOP).await.expect("items");
    assert_eq!(items[0].deleted_at, Some(NOW + 5));
    let skus = store.sku_rows(SHOP).await.expect("skus");
    assert!(skus.iter().all(|s| s.deleted_at == Some(NOW + 5)));
    // The platform returns it again (a detail fetch): live again, SKUs too.
    store
        .upsert_items(SHOP, &[item(1, 10, &[11, 12])], Source::Detail, NOW + 7)
        .await
        .expect("back");
    assert_eq!(
        store.item_rows(SHOP).await.expect("items")[0].deleted_at,
        None
    );
    assert!(
        store
            .sku_rows(SHOP)
            .await
            .expect("skus")
            .iter()
            .all(|s| s.deleted_at.is_none())
    );
}

fn tokens(access: &str, refresh: &str, expires: i64) -> TokenSet {
    TokenSet {
        access_token: Secret::new(access),
        access_expires_at: expires,
        refresh_token: Secret::new(refresh),
        refresh_expires_at: expires * 10,
        open_id: "open-1".into(),
        scopes: vec!["merchant_order".into(), "merchant_item".into()],
    }
}

async fn tokens_round_trip_and_rotation_replaces_both(store: Store) {
    let tokens_store: &dyn TokenStore = &store;
    assert_eq!(tokens_store.load(SHOP).await.expect("load"), None);
    // No shop row yet: saving tokens adds one (authorization can come first).
    let first = tokens("AT1", "RT1", 1_000);
    tokens_store.save(SHOP, &first).await.expect("save");
    assert_eq!(tokens_store.load(SHOP).await.expect("load"), Some(first));
    let rotated = TokenSet {
        scopes: vec![],
        ..tokens("AT2", "RT2", 2_000)
    };
    tokens_store.save(SHOP, &rotated).await.expect("rotate");
    assert_eq!(tokens_store.load(SHOP).await.expect("load"), Some(rotated));
    assert_eq!(store.shops().await.expect("shops").len(), 1);
    // The expiries of every shop, without the tokens.
    tokens_store
        .save("shop-2", &tokens("AT3", "RT3", 3_000))
        .await
        .expect("save");
    let mut expiries = store.token_expiries().await.expect("expiries");
    expiries.sort();
    assert_eq!(
        expiries,
        vec![
            (SHOP.to_string(), 2_000, 20_000),
            ("shop-2".to_string(), 3_000, 30_000)
        ]
    );
    let debug = format!("{store:?}");
    assert!(!debug.contains("AT2") && !debug.contains("RT2"), "{debug}");
}

async fn usage_counts_per_shop_and_day(store: Store) {
    let usage: &dyn UsageStore = &store;
    let add = |shop, day, method, limit| usage.try_add_call(shop, day, method, limit);
    assert_eq!(
        add(SHOP, 1, Method::OrderCursorList, Some(3))
            .await
            .expect("1"),
        Some(1)
    );
    assert_eq!(
        add(SHOP, 1, Method::RefundList, Some(3)).await.expect("2"),
        Some(2)
    );
    assert_eq!(
        add(SHOP, 1, Method::ItemList, Some(3)).await.expect("3"),
        Some(3)
    );
    assert_eq!(
        add(SHOP, 1, Method::ItemList, Some(3)).await.expect("4"),
        None,
        "over the limit"
    );
    assert_eq!(
        usage.calls(SHOP, 1).await.expect("calls"),
        3,
        "summed over methods"
    );
    assert_eq!(
        add(SHOP, 2, Method::ItemList, Some(3))
            .await
            .expect("day 2"),
        Some(1)
    );
    assert_eq!(
        add("shop-2", 1, Method::ItemList, None)
            .await
            .expect("other"),
        Some(1)
    );
    assert_eq!(usage.calls("shop-2", 1).await.expect("calls"), 1);
    assert_eq!(usage.calls("nobody", 1).await.expect("calls"), 0);
    // Every shop's calls of a day in one read.
    let mut day_1 = store.calls_by_shop_on(1).await.expect("calls by shop");
    day_1.sort();
    assert_eq!(
        day_1,
        vec![(SHOP.to_string(), 3), ("shop-2".to_string(), 1)]
    );
    assert_eq!(store.calls_by_shop_on(3).await.expect("none"), vec![]);
}

/// Calls counted ahead in blocks: a block is cut to what the limit leaves, none is counted
/// past it, and the ones given back leave the day's count (never below zero).
async fn blocks_of_calls_stop_at_the_limit_and_go_back(store: Store) {
    let usage: &dyn UsageStore = &store;
    let (orders, refunds) = (Method::OrderCursorList, Method::RefundList);
    let add = |method, want| usage.try_add_calls(SHOP, 7, method, want, Some(15));
    assert_eq!(add(orders, 10).await.expect("a block"), 10);
    assert_eq!(
        add(refunds, 10).await.expect("cut"),
        5,
        "what the limit leaves"
    );
    assert_eq!(add(orders, 1).await.expect("none"), 0, "at the limit");
    assert_eq!(usage.calls(SHOP, 7).await.expect("calls"), 15);
    usage.give_back(SHOP, 7, orders, 4).await.expect("back");
    assert_eq!(usage.calls(SHOP, 7).await.expect("calls"), 11);
    assert_eq!(add(orders, 32).await.expect("room again"), 4);
    usage.give_back(SHOP, 7, refunds, 99).await.expect("back");
    assert_eq!(
        usage.calls(SHOP, 7).await.expect("calls"),
        10,
        "never below zero"
    );
    // Without a limit a block is counted whole.
    let unlimited = usage.try_add_calls(SHOP, 8, orders, 32, None);
    assert_eq!(unlimited.await.expect("unlimited"), 32);
}

/// Counting calls never waits for a transaction that writes a row of the shop's (Postgres):
/// such a row's reference locks the shop's row against key changes, and the counter's lock on
/// it (taken so that counters of one shop take turns) used to be one that waits for that. A
/// backfill's batch of pages is such a transaction: every call of every window waited for the
/// batch being committed each time a block of calls was counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counting_calls_does_not_wait_for_a_batch_being_committed_postgres() {
    use sqlx::Connection as _;
    common_db::on_postgres_with_url(|store, url| async move {
        add_shop(&store, SHOP).await;
        let mut other = sqlx::PgConnection::connect(&url).await.expect("connect");
        let mut open = other.begin().await.expect("begin");
        sqlx::query("INSERT INTO api_pauses (shop_id, method, until_ms) VALUES ($1, 'x', 1)")
            .bind(SHOP)
            .execute(&mut *open)
            .await
            .expect("a row of the shop's, not committed");
        let usage: &dyn UsageStore = &store;
        let counted = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            usage.try_add_calls(SHOP, 7, Method::OrderCursorList, 32, None),
        )
        .await
        .expect("counted while the other transaction is open")
        .expect("counted");
        assert_eq!(counted, 32);
        open.rollback().await.expect("rollback");
    })
    .await;
}

/// Postgres compresses the raw JSON columns with lz4 where the server has it: pglz, the
/// default, cost the server about 16 us a row of a backfill (an order's raw JSON, about 2 KB,
/// crosses the compression threshold), for the same size on disk.
#[tokio::test]
async fn raw_json_is_compressed_with_lz4_postgres() {
    common_db::on_postgres_with_url(|_store, url| async move {
        let lz4_here = common_db::fetch_i64(
            &url,
            "SELECT count(*) FROM pg_settings \
             WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)",
        )
        .await;
        let lz4_columns = common_db::fetch_i64(
            &url,
            "SELECT count(*) FROM pg_attribute WHERE attname = 'raw' AND attcompression = 'l' \
             AND attrelid IN ('orders'::regclass, 'refunds'::regclass, 'items'::regclass, \
             'skus'::regclass, 'events'::regclass, 'quarantine'::regclass)",
        )
        .await;
        assert_eq!(
            lz4_columns,
            6 * lz4_here,
            "every raw column, where lz4 is built in"
        );
    })
    .await;
}

async fn usage_limit_holds_under_concurrency(store: Store) {
    const LIMIT: u64 = 7;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let method = if i % 2 == 0 {
                Method::OrderDetail
            } else {
                Method::RefundDetail
            };
            tokio::spawn(async move { store.try_add_call(SHOP, 9, method, Some(LIMIT)).await })
        })
        .collect();
    let mut granted = Vec::new();
    for task in tasks {
        let answer = task.await.expect("task").expect("no storage error");
        granted.extend(answer);
    }
    granted.sort_unstable();
    assert_eq!(
        granted,
        (1..=LIMIT).collect::<Vec<_>>(),
        "each total handed out once"
    );
    assert_eq!(
        UsageStore::calls(&store, SHOP, 9).await.expect("calls"),
        LIMIT
    );
}

/// Ten requests at once for one (shop, stream), over the pool's many connections, as ten
/// `resync` commands in a burst would: one waiting request holds the union of their ranges.
async fn concurrent_resync_requests_leave_one_waiting(store: Store) {
    add_shop(&store, SHOP).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .request_resync(
                        SHOP,
                        Stream::Orders,
                        ResyncKind::Resync,
                        NOW - i,
                        NOW + i,
                        NOW,
                    )
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut merged = 0;
    for task in tasks {
        let (id, was_merged) = task.await.expect("task").expect("no storage error");
        ids.push(id);
        merged += usize::from(was_merged);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one request: {ids:?}");
    assert_eq!(merged, 9, "nine merged into the first");
    let open = store.open_resyncs().await.expect("open");
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].since_ms, open[0].until_ms), (NOW - 9, NOW + 9));
    // Once it runs, the next request waits beside it.
    let mut running = open[0].clone();
    running.status = ResyncStatus::Running;
    store.save_resync(&running).await.expect("save");
    let (next, was_merged) = store
        .request_resync(
            SHOP,
            Stream::Orders,
            ResyncKind::Reconcile,
            NOW,
            NOW + 1,
            NOW,
        )
        .await
        .expect("request");
    assert!(!was_merged && next != running.id);
}

fn waiting_event(event_id: &str, user_id: Option<i64>, open_id: Option<&str>) -> NewEvent {
    NewEvent {
        event_id: event_id.into(),
        msg_id: None,
        app_key: "ks000000000000000001".into(),
        shop_id: None,
        open_id: open_id.map(str::to_string),
        user_id,
        event: "kwaishop_order_paySuccess".into(),
        kind: EventKind::Order,
        biz_id: Some(1),
        info: "{}".into(),
        raw: "{}".into(),
        event_update_time: None,
        received_at_ms: NOW,
    }
}

/// Pushes that came before their shop was known wait as `unknown_shop`; learning the shop hands
/// it those that name it (by seller id or one of its open ids), and no others.
async fn learning_a_shop_hands_it_the_pushes_that_waited(store: Store) {
    store
        .enqueue_events(&[
            waiting_event("by-seller", Some(42), Some("unrelated")),
            waiting_event("by-open-id", None, Some("merchant-open-id")),
            waiting_event("by-token-open-id", Some(7), Some("token-open-id")),
            waiting_event("someone-else", Some(99), Some("other")),
        ])
        .await
        .expect("enqueue");
    let adopted = store
        .learn_shop_identity(
            SHOP,
            42,
            Some("merchant-open-id"),
            Some("小店"),
            &["merchant-open-id", "token-open-id"],
            NOW + 5,
        )
        .await
        .expect("learn");
    assert_eq!(adopted, 3);
    let shop = store
        .shops()
        .await
        .expect("shops")
        .into_iter()
        .find(|s| s.shop_id == SHOP)
        .expect("the shop");
    assert_eq!(
        (
            shop.seller_id,
            shop.open_id.as_deref(),
            shop.name.as_deref()
        ),
        (Some(42), Some("merchant-open-id"), Some("小店"))
    );
    let mine: Vec<String> = store
        .list_events(Some(EventStatus::Pending), 10)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.shop_id.as_deref() == Some(SHOP))
        .map(|e| e.event_id)
        .collect();
    assert_eq!(mine.len(), 3, "{mine:?}");
    let left = store
        .list_events(Some(EventStatus::UnknownShop), 10)
        .await
        .expect("events");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event_id, "someone-else");
    // Learning again hands over what came since, and nothing twice.
    assert_eq!(
        store
            .adopt_unknown_events(SHOP, 42, &["merchant-open-id"], NOW + 6)
            .await
            .expect("adopt"),
        0
    );
}

async fn an_api_pause_covers_one_api_of_one_shop(store: Store) {
    add_shop(&store, SHOP).await;
    assert_eq!(
        store
            .api_pause(SHOP, Method::OrderDetail)
            .await
            .expect("none"),
        None
    );
    store
        .set_api_pause(SHOP, Method::OrderDetail, NOW + 9)
        .await
        .expect("pause");
    store
        .set_api_pause(SHOP, Method::OrderDetail, NOW + 10)
        .await
        .expect("again");
    assert_eq!(
        store
            .api_pause(SHOP, Method::OrderDetail)
            .await
            .expect("read"),
        Some(NOW + 10)
    );
    assert_eq!(
        store.api_pause(SHOP, Method::ItemList).await.expect("read"),
        None
    );
    assert_eq!(
        store.quota_pause(SHOP).await.expect("read"),
        None,
        "the shop goes on"
    );
}

async fn quota_pause_round_trip(store: Store) {
    assert_eq!(store.paused_until(SHOP).await.expect("none"), None);
    store.pause_until(SHOP, NOW + 99).await.expect("pause");
    assert_eq!(
        store.paused_until(SHOP).await.expect("read"),
        Some(NOW + 99)
    );
    let shops = store.shops().await.expect("shops");
    assert_eq!(shops[0].quota_paused_until, Some(NOW + 99));
}

/// An hour's first instant.
const HOUR: i64 = 1_700_110_800_000;
const HOUR_MS: i64 = 3_600_000;

fn count(
    shop: &str,
    hour_ms: i64,
    method: Method,
    outcome: &'static str,
    calls: u64,
) -> HourlyCount {
    HourlyCount {
        shop_id: shop.into(),
        hour_ms,
        method,
        outcome,
        calls,
    }
}

fn call_row(method: Method, hour_ms: i64, outcome: &str, calls: i64) -> ApiCallRow {
    ApiCallRow {
        method: method.name().into(),
        hour_ms,
        outcome: outcome.into(),
        calls,
    }
}

async fn api_calls_add_up_per_shop_hour_method_and_outcome(store: Store) {
    let list = Method::OrderCursorList;
    store
        .add_api_calls(&[
            count(SHOP, HOUR, list, "ok", 3),
            // The same key twice in one batch is added, not refused.
            count(SHOP, HOUR, list, "ok", 1),
            count(SHOP, HOUR, list, "transient", 1),
            count(SHOP, HOUR + HOUR_MS, Method::ItemList, "ok", 2),
            count("shop-2", HOUR, list, "ok", 4),
            // Older than anything read below.
            count(SHOP, HOUR - HOUR_MS, list, "ok", 7),
        ])
        .await
        .expect("first flush");
    store
        .add_api_calls(&[count(SHOP, HOUR, list, "ok", 10)])
        .await
        .expect("second flush");
    store.add_api_calls(&[]).await.expect("nothing to add");
    assert_eq!(
        store.api_calls_since(None, HOUR).await.expect("all shops"),
        vec![
            call_row(Method::ItemList, HOUR + HOUR_MS, "ok", 2),
            call_row(list, HOUR, "ok", 18),
            call_row(list, HOUR, "transient", 1),
        ]
    );
    assert_eq!(
        store
            .api_calls_since(Some("shop-2"), HOUR)
            .await
            .expect("one shop"),
        vec![call_row(list, HOUR, "ok", 4)]
    );
    assert_eq!(
        store.prune_api_calls(HOUR).await.expect("prune"),
        1,
        "only the hour before"
    );
    assert_eq!(
        store.api_calls_since(None, 0).await.expect("after pruning")[2],
        call_row(list, HOUR, "transient", 1)
    );
}

async fn api_calls_from_concurrent_daemons_all_count(store: Store) {
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .add_api_calls(&[count(SHOP, HOUR, Method::OrderDetail, "ok", 1)])
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("no storage error");
    }
    assert_eq!(
        store.api_calls_since(Some(SHOP), HOUR).await.expect("read"),
        vec![call_row(Method::OrderDetail, HOUR, "ok", 10)]
    );
}

async fn a_failed_flush_keeps_the_counts(store: Store) {
    let calls = HourlyCalls::default();
    calls.add(SHOP, HOUR, Method::RefundList, "ok", 2);
    calls.add(SHOP, HOUR, Method::RefundList, "throttled", 1);
    assert_eq!(flush_api_calls(&calls, &store).await.expect("flush"), 2);
    assert!(calls.is_empty());
    assert_eq!(flush_api_calls(&calls, &store).await.expect("nothing"), 0);
    calls.add(SHOP, HOUR, Method::RefundList, "ok", 5);
    store.close().await;
    flush_api_calls(&calls, &store)
        .await
        .expect_err("the database is closed");
    assert_eq!(
        calls.drain(),
        vec![count(SHOP, HOUR, Method::RefundList, "ok", 5)],
        "kept for the next flush"
    );
}

async fn run_log_round_trip(store: Store) {
    add_shop(&store, SHOP).await;
    add_shop(&store, "shop-2").await;
    let first = store
        .start_run(SHOP, Stream::Orders, RunKind::Poll, NOW)
        .await
        .expect("start");
    let second = store
        .start_run("shop-2", Stream::Items, RunKind::Reconcile, NOW + 1)
        .await
        .expect("start");
    assert!(second > first);
    store
        .finish_run(
            first,
            &FinishedRun {
                finished_at_ms: NOW + 5,
                end: RunEnd::Failed,
                pages: 3,
                rows: 120,
                calls: 4,
                error: Some("window failed".into()),
            },
        )
        .await
        .expect("finish");
    let runs = store.recent_runs(None, 10).await.expect("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, second, "newest first");
    assert_eq!(runs[0].finished_at_ms, None);
    let run = &runs[1];
    assert_eq!(
        (run.shop_id.as_str(), run.stream, run.kind),
        (SHOP, Stream::Orders, RunKind::Poll)
    );
    assert_eq!(
        (run.started_at_ms, run.finished_at_ms),
        (NOW, Some(NOW + 5))
    );
    assert_eq!((run.pages, run.rows, run.calls), (3, 120, 4));
    assert_eq!(
        (run.outcome.as_deref(), run.error.as_deref()),
        (Some("failed"), Some("window failed"))
    );
    let mine = store.recent_runs(Some(SHOP), 10).await.expect("mine");
    assert_eq!(mine.iter().map(|r| r.id).collect::<Vec<_>>(), vec![first]);
    assert_eq!(store.recent_runs(None, 1).await.expect("one").len(), 1);
    assert!(
        store
            .finish_run(
                9_999,
                &FinishedRun {
                    finished_at_ms: NOW,
                    end: RunEnd::CaughtUp,
                    pages: 0,
                    rows: 0,
                    calls: 0,
                    error: None,
                }
            )
            .await
            .is_err()
    );
}

async fn states_round_trip(store: Store) {
    add_shop(&store, SHOP).await;
    add_shop(&store, "shop-0").await;
    assert_eq!(
        store.load_state(SHOP, Stream::Refunds).await.expect("none"),
        None
    );
    let full = StreamState {
        shop_id: SHOP.into(),
        stream: Stream::Refunds,
        checkpoint_ms: Some(1),
        window_begin_ms: Some(2),
        window_end_ms: Some(3),
        cursor: Some("c".into()),
        scan_id: Some(4),
        last_success_ms: Some(5),
        last_error: Some("throttled: 请稍后".into()),
        last_error_at_ms: Some(6),
        paused_until_ms: Some(7),
        rows_total: 8,
        failures_in_row: 10,
        updated_at_ms: 9,
    };
    store.save_state(&full).await.expect("save");
    assert_eq!(
        store.load_state(SHOP, Stream::Refunds).await.expect("load"),
        Some(full.clone())
    );
    let cleared = StreamState {
        last_error: None,
        paused_until_ms: None,
        ..full.clone()
    };
    store.save_state(&cleared).await.expect("overwrite");
    assert_eq!(
        store.load_state(SHOP, Stream::Refunds).await.expect("load"),
        Some(cleared.clone())
    );
    let other = StreamState::new("shop-0", Stream::Items);
    store.save_state(&other).await.expect("save other");
    let orders = StreamState::new(SHOP, Stream::Orders);
    store.save_state(&orders).await.expect("save orders");
    let all = store.all_states().await.expect("all");
    assert_eq!(all, vec![other, orders, cleared]);
}

async fn shops_keep_their_status(store: Store) {
    let shop = ShopRow {
        open_id: Some("open-1".into()),
        seller_id: Some(42),
        name: Some("小店".into()),
        ..ShopRow::new(SHOP)
    };
    store.ensure_shop(&shop).await.expect("add");
    store
        .set_shop_status(SHOP, ShopStatus::NeedsReauth, Some("refresh token revoked"))
        .await
        .expect("status");
    let renamed = ShopRow {
        name: Some("新名字".into()),
        open_id: None,
        ..ShopRow::new(SHOP)
    };
    store.ensure_shop(&renamed).await.expect("update");
    let shops = store.shops().await.expect("shops");
    assert_eq!(
        shops,
        vec![ShopRow {
            name: Some("新名字".into()),
            status: ShopStatus::NeedsReauth,
            status_reason: Some("refresh token revoked".into()),
            ..shop
        }]
    );
    assert_eq!(
        store.shop_status(SHOP).await.expect("status"),
        Some(ShopStatus::NeedsReauth)
    );
    assert_eq!(store.shop_status("nobody").await.expect("status"), None);
    let err = store
        .set_shop_status("nobody", ShopStatus::Active, None)
        .await
        .expect_err("unknown");
    assert!(matches!(err, StoreError::UnknownShop(_)), "{err}");
    // Records of a shop that was never added are refused (foreign key), not orphaned.
    assert!(
        store
            .upsert_orders("nobody", &[order(1, 1, 0)], Source::Poll, NOW)
            .await
            .is_err()
    );
}

async fn a_thousand_orders_commit_in_one_page(store: Store) {
    add_shop(&store, SHOP).await;
    let orders: Vec<_> = (0..1_000)
        .map(|i| order(10_000 + i, 5, (i % 3) as usize))
        .collect();
    let state = orders_state(5_000);
    let outcome = store
        .commit_order_page(SHOP, &orders, Source::Resync, &state, NOW, &[])
        .await
        .expect("commit");
    assert_eq!(outcome.received, 1_999);
    assert_eq!(outcome.written, 1_999);
    assert_eq!(
        store.count_rows("orders", SHOP).await.expect("count"),
        1_999
    );
    // Again: all equal versions, all accepted, still one row each.
    let again = store
        .commit_order_page(SHOP, &orders, Source::Poll, &state, NOW + 1, &[])
        .await
        .expect("again");
    assert_eq!(again.written, 1_999);
    assert_eq!(
        store.count_rows("orders", SHOP).await.expect("count"),
        1_999
    );
}

async fn a_closed_database_gives_errors_not_panics(store: Store) {
    add_shop(&store, SHOP).await;
    store
        .upsert_orders(SHOP, &[order(1, 1, 0)], Source::Poll, NOW)
        .await
        .expect("before");
    store.close().await;
    let err = store.ping().await.expect_err("closed");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    assert!(err.is_transient());
    let state = orders_state(1);
    let err = store
        .commit_order_page(SHOP, &[order(2, 1, 0)], Source::Poll, &state, NOW, &[])
        .await
        .expect_err("closed");
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(store.count_rows("bogus", SHOP).await.is_err());
}

#[tokio::test]
async fn sqlite_file_is_owner_only_and_keeps_commits_across_reopening() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kw.db");
    let url = format!("sqlite:{}", path.display());
    let store = Store::connect(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    add_shop(&store, SHOP).await;
    store
        .upsert_orders(SHOP, &[order(1, 1, 1)], Source::Poll, NOW)
        .await
        .expect("write");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "the database holds tokens");
    let wal = dir.path().join("kw.db-wal");
    assert!(wal.exists(), "journal_mode=WAL");
    assert_eq!(mode(&wal), 0o600);
    store.close().await;

    let reopened = Store::connect(&url).await.expect("reopen");
    reopened.migrate().await.expect("migrate again");
    assert_eq!(reopened.count_rows("orders", SHOP).await.expect("count"), 2);
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn sqlite_open_errors_name_the_path() {
    let err = Store::connect("sqlite:///nonexistent-kwaishop-dir/sub/mirror.db")
        .await
        .expect_err("no such directory");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("/nonexistent-kwaishop-dir/sub/mirror.db"),
        "{err}"
    );
    let err = Store::connect("sqlite::memory:").await.expect_err("memory");
    assert!(matches!(err, StoreError::BadUrl { .. }), "{err}");
}

#[tokio::test]
async fn connection_errors_never_show_the_password() {
    for url in [
        "postgres://kw:hunter2secret@127.0.0.1:1/kw",
        "postgresql://kw@127.0.0.1:1/kw?password=hunter2secret",
        "mysql://kw:hunter2secret@127.0.0.1/kw",
    ] {
        let err = Store::connect(url)
            .await
            .expect_err("nothing listens on port 1");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}

#[tokio::test]
async fn a_store_shows_no_url() {
    let Ok(url) = std::env::var(common_db::PG_URL_VAR) else {
        eprintln!("skipped: {} not set", common_db::PG_URL_VAR);
        return;
    };
    let store = Store::connect(&url).await.expect("connect");
    let shown = format!("{store:?}");
    assert_eq!(shown, "Store { backend: Postgres, .. }");
}

/// Windows read side by side: each page commits its window's cursor with its records; a
/// window's last page moves the checkpoint over the finished windows from the first only, so it
/// is never ahead of a window still being read; those windows go.
/// What the writer of windows read side by side commits at once: windows planned, pages of
/// several windows (the same order twice: the newer version kept), each window's last cursor,
/// and the checkpoint moved over the finished ones from the first; a batch naming a window that
/// is not being read writes nothing.
async fn pages_of_several_windows_commit_together(store: Store) {
    use kwaishop_sync::store::WindowPage;
    add_shop(&store, SHOP).await;
    let page = |begin_ms, orders, next_cursor| WindowPage {
        begin_ms,
        orders,
        refunds: &[],
        rejected: &[],
        next_cursor,
    };
    let (a, b, c) = (
        vec![order(1, 50, 0), order(2, 60, 0)],
        vec![order(2, 95, 0)],
        vec![order(3, 150, 0)],
    );
    let pages = [
        page(0, &a[..], Some("a-1")),
        page(90, &c[..], Some("b-1")),
        page(0, &b[..], None),
    ];
    let planned = [(0, 100), (90, 200)];
    let (outcome, moved) = store
        .commit_window_pages(SHOP, Stream::Orders, &planned, &pages, &[], NOW)
        .await
        .expect("batch");
    assert_eq!((outcome.received, outcome.written), (4, 3));
    assert_eq!(moved, Some(100), "the first window finished");
    let rows = store.windows(SHOP, Stream::Orders).await.expect("windows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].begin_ms, rows[0].cursor.as_deref()),
        (90, Some("b-1"))
    );
    let stored = store.order_rows(SHOP).await.expect("rows");
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1].update_time, 95, "the newer version of order 2");
    let stray = [page(90, &[], None), page(500, &a[..], None)];
    assert!(
        store
            .commit_window_pages(SHOP, Stream::Orders, &[], &stray, &[], NOW)
            .await
            .is_err()
    );
    let rows = store.windows(SHOP, Stream::Orders).await.expect("windows");
    assert_eq!(rows[0].cursor.as_deref(), Some("b-1"), "nothing moved");
}

/// The writer writes a batch's records while the batch before it commits: on Postgres the
/// second transaction writes side by side with the first (even a record the first also wrote,
/// once the first commits), on SQLite it waits its turn; its cursors are moved after the first
/// has committed, and the checkpoint over both batches' finished windows. A batch written and
/// dropped before it finished commits nothing.
async fn a_batch_written_while_the_one_before_commits_waits_for_it(store: Store) {
    use kwaishop_sync::api::records::Order;
    use kwaishop_sync::store::{Backend, OpenPages, WindowPage};
    use std::time::Duration;
    fn page<'a>(
        begin_ms: i64,
        orders: &'a [Order],
        next_cursor: Option<&'a str>,
    ) -> WindowPage<'a> {
        WindowPage {
            begin_ms,
            orders,
            refunds: &[],
            rejected: &[],
            next_cursor,
        }
    }
    // The second batch: the first window's last page (order 2 again, newer) and the second
    // window's first page, written in a task of its own.
    let write_second = |store: Store, open: OpenPages| {
        tokio::spawn(async move {
            let (end_of_a, b) = (vec![order(2, 60, 0)], vec![order(3, 150, 0)]);
            let pages = [page(0, &end_of_a[..], None), page(100, &b[..], Some("b-1"))];
            let written = store
                .write_window_pages(open, SHOP, Stream::Orders, &[], &pages, NOW)
                .await
                .expect("write the second batch");
            (written, end_of_a, b)
        })
    };
    add_shop(&store, SHOP).await;
    let first = [order(1, 50, 0), order(2, 55, 0)];
    let planned = [(0, 100), (100, 200)];
    let pages_a = [page(0, &first[..], Some("a-1"))];
    let open = store
        .begin_window_pages(SHOP, Stream::Orders)
        .await
        .expect("begin the first batch");
    let written_a = store
        .write_window_pages(open, SHOP, Stream::Orders, &planned, &pages_a, NOW)
        .await
        .expect("write the first batch");
    let finish_a =
        |written| store.finish_window_pages(written, SHOP, Stream::Orders, &pages_a, &[], NOW);
    let second = if store.backend() == Backend::Postgres {
        // Side by side; order 2 is the first batch's until it commits, and the second
        // waits for that row.
        let open = store
            .begin_window_pages(SHOP, Stream::Orders)
            .await
            .expect("begin the second batch beside the first");
        let second = write_second(store.clone(), open);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !second.is_finished(),
            "a row of the open first batch was written over"
        );
        finish_a(written_a).await.expect("commit the first batch");
        tokio::time::timeout(Duration::from_secs(30), second)
            .await
            .expect("the second batch went on once the first committed")
            .expect("second task")
    } else {
        // SQLite: the second transaction begins once the first has committed.
        let second = tokio::spawn({
            let store = store.clone();
            async move { store.begin_window_pages(SHOP, Stream::Orders).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !second.is_finished(),
            "two write transactions at once on SQLite"
        );
        finish_a(written_a).await.expect("commit the first batch");
        let open = second.await.expect("task").expect("begin the second batch");
        write_second(store.clone(), open)
            .await
            .expect("second task")
    };
    let rows = store.windows(SHOP, Stream::Orders).await.expect("windows");
    assert_eq!(
        rows[0].cursor.as_deref(),
        Some("a-1"),
        "only the first batch is committed"
    );
    let (written_b, end_of_a, b) = second;
    let pages_b = [page(0, &end_of_a[..], None), page(100, &b[..], Some("b-1"))];
    let (outcome, moved) = store
        .finish_window_pages(written_b, SHOP, Stream::Orders, &pages_b, &[], NOW)
        .await
        .expect("commit the second batch");
    assert_eq!((outcome.received, outcome.written), (2, 2));
    assert_eq!(moved, Some(100), "the first window finished");
    let rows = store.windows(SHOP, Stream::Orders).await.expect("windows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].begin_ms, rows[0].cursor.as_deref()),
        (100, Some("b-1"))
    );
    let stored = store.order_rows(SHOP).await.expect("rows");
    let versions: Vec<_> = stored.iter().map(|r| (r.oid, r.update_time)).collect();
    assert_eq!(versions, [(1, 50), (2, 60), (3, 150)]);

    // Written, then dropped unfinished: nothing of it stays.
    let c = [order(4, 170, 0)];
    let open = store
        .begin_window_pages(SHOP, Stream::Orders)
        .await
        .expect("begin a third batch");
    let written_c = store
        .write_window_pages(
            open,
            SHOP,
            Stream::Orders,
            &[],
            &[page(100, &c[..], None)],
            NOW,
        )
        .await
        .expect("write a third batch");
    drop(written_c);
    assert_eq!(store.count_rows("orders", SHOP).await.expect("count"), 3);
    let rows = store.windows(SHOP, Stream::Orders).await.expect("windows");
    assert_eq!(rows[0].cursor.as_deref(), Some("b-1"), "nothing moved");
}

/// A window found far denser than planned is shared out, in the transaction of the last pages it
/// read (as the writer does): its first piece takes its place from its start, with no cursor;
/// the others follow; the checkpoint moves over them as over any windows. Pieces that leave a
/// gap, or a window already finished, are refused, and nothing of the batch is written.
async fn a_window_shared_out_is_read_again_as_its_pieces(store: Store) {
    use kwaishop_sync::store::{WindowPage, WindowRow};
    add_shop(&store, SHOP).await;
    let (orders, second) = ([order(1, 50, 0)], [order(2, 60, 0)]);
    let page = |begin_ms, next_cursor| WindowPage {
        begin_ms,
        orders: &orders,
        refunds: &[],
        rejected: &[],
        next_cursor,
    };
    store
        .plan_windows(SHOP, Stream::Orders, &[(0, 300), (290, 400)])
        .await
        .expect("plan");
    store
        .commit_window_page(SHOP, Stream::Orders, page(0, Some("p-2")), NOW)
        .await
        .expect("first page");
    let row = |begin_ms, end_ms| WindowRow {
        begin_ms,
        end_ms,
        cursor: None,
        done: false,
    };
    // The window's second page, read before it stopped, and the split after it.
    let read = [WindowPage {
        orders: &second,
        ..page(0, Some("p-3"))
    }];
    let before = store.windows(SHOP, Stream::Orders).await.expect("windows");
    for bad in [
        &[(0, 100), (120, 300)][..],
        &[(10, 150), (140, 300)][..],
        &[(0, 150), (140, 299)][..],
        &[][..],
    ] {
        let refused = store
            .commit_window_pages(SHOP, Stream::Orders, &[], &read, &[(0, bad.to_vec())], NOW)
            .await;
        assert!(refused.is_err(), "{bad:?}");
    }
    assert_eq!(
        store.windows(SHOP, Stream::Orders).await.expect("windows"),
        before
    );
    assert_eq!(store.order_rows(SHOP).await.expect("rows").len(), 1);
    let pieces = vec![(0, 100), (90, 200), (190, 300)];
    store
        .commit_window_pages(SHOP, Stream::Orders, &[], &read, &[(0, pieces)], NOW)
        .await
        .expect("split");
    assert_eq!(
        store.windows(SHOP, Stream::Orders).await.expect("windows"),
        vec![row(0, 100), row(90, 200), row(190, 300), row(290, 400)]
    );
    assert_eq!(store.order_rows(SHOP).await.expect("rows").len(), 2);
    // The pieces finish out of order; the checkpoint follows the run from the first.
    for begin in [190, 90, 290] {
        store
            .commit_window_page(SHOP, Stream::Orders, page(begin, None), NOW)
            .await
            .expect("last page");
    }
    assert_eq!(orders_checkpoint(&store).await, None);
    let (_, moved) = store
        .commit_window_page(SHOP, Stream::Orders, page(0, None), NOW)
        .await
        .expect("last page");
    assert_eq!(moved, Some(400));
    assert!(
        store
            .windows(SHOP, Stream::Orders)
            .await
            .expect("windows")
            .is_empty()
    );
    // Nothing left to share out (the writer's page-by-page fallback shares out this way).
    let gone = store
        .split_window(SHOP, Stream::Orders, 0, &[(0, 100), (90, 300)])
        .await;
    assert!(gone.is_err());
}

/// The orders stream's checkpoint of [`SHOP`].
async fn orders_checkpoint(store: &Store) -> Option<i64> {
    store
        .load_state(SHOP, Stream::Orders)
        .await
        .expect("state")
        .and_then(|s| s.checkpoint_ms)
}

async fn windows_move_the_checkpoint_over_the_finished_ones_from_the_first(store: Store) {
    use kwaishop_sync::api::records::Order;
    use kwaishop_sync::store::WindowPage;
    add_shop(&store, SHOP).await;
    let windows = [(0, 100), (90, 200), (190, 300)];
    store
        .plan_windows(SHOP, Stream::Orders, &windows)
        .await
        .expect("plan");
    fn page<'a>(begin_ms: i64, orders: &'a [Order], next: Option<&'a str>) -> WindowPage<'a> {
        WindowPage {
            begin_ms,
            orders,
            refunds: &[],
            rejected: &[],
            next_cursor: next,
        }
    }
    let (first, second, third) = (
        vec![order(1, 50, 0)],
        vec![order(2, 150, 0)],
        vec![order(3, 250, 0)],
    );
    // The second window's first page, then its last: the first is still being read.
    let (_, moved) = store
        .commit_window_page(SHOP, Stream::Orders, page(90, &second, Some("c-2")), NOW)
        .await
        .expect("page");
    assert_eq!(moved, None);
    let rows = store.windows(SHOP, Stream::Orders).await.expect("windows");
    assert_eq!(rows[1].cursor.as_deref(), Some("c-2"));
    let (_, moved) = store
        .commit_window_page(SHOP, Stream::Orders, page(90, &[], None), NOW)
        .await
        .expect("page");
    assert_eq!(moved, None, "the first window is not finished");
    assert_eq!(orders_checkpoint(&store).await, None);
    // The first window's last page: the checkpoint moves over both.
    let (_, moved) = store
        .commit_window_page(SHOP, Stream::Orders, page(0, &first, None), NOW)
        .await
        .expect("page");
    assert_eq!(moved, Some(200));
    assert_eq!(orders_checkpoint(&store).await, Some(200));
    let rows = store.windows(SHOP, Stream::Orders).await.expect("windows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].begin_ms, rows[0].done), (190, false));
    // A page of a window that is not being read is refused, and nothing of it is written.
    assert!(
        store
            .commit_window_page(SHOP, Stream::Orders, page(500, &third, None), NOW)
            .await
            .is_err()
    );
    assert_eq!(store.order_rows(SHOP).await.expect("rows").len(), 2);
    // The last one; an explicit pass finds nothing more to move over.
    store
        .commit_window_page(SHOP, Stream::Orders, page(190, &third, None), NOW)
        .await
        .expect("page");
    assert_eq!(orders_checkpoint(&store).await, Some(300));
    assert_eq!(
        store
            .advance_windows(SHOP, Stream::Orders, NOW)
            .await
            .expect("advance"),
        None
    );
    assert!(
        store
            .windows(SHOP, Stream::Orders)
            .await
            .expect("windows")
            .is_empty()
    );
}
