//! The client against the simulator over loopback: paging, every failure class, pacing, token
//! refresh under concurrency, and garbage answers.

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kwaishop_sim::SimConfig;
use kwaishop_sim::faults::FaultConfig;
use kwaishop_sim::variants::{BadWindowCodes, PlatformVariants, RefreshVerbs};
use kwaishop_sync::Secret;
use kwaishop_sync::api::calls::{OrderQuery, QueryType, RefundQuery};
use kwaishop_sync::api::limits::{QPS_HEADROOM, UsageError, UsageStore};
use kwaishop_sync::api::oauth::{MemoryTokenStore, TokenSet, TokenStore, TokenStoreError};
use kwaishop_sync::api::{ApiClient, ClientOptions, ErrorClass, Method};
use kwaishop_sync::clock::next_beijing_midnight;
use kwaishop_sync::clock::{DAY_MS, wall_ms};
use serde_json::Value;

fn still(orders: usize) -> SimConfig {
    SimConfig {
        seed: 7,
        shops: 2,
        days: 30,
        orders,
        mutate: false,
        ..SimConfig::default()
    }
}

fn order_query(begin: i64, end: i64, cursor: &str, sort: i64) -> OrderQuery {
    OrderQuery {
        begin_ms: begin,
        end_ms: end,
        cursor: cursor.into(),
        page_size: 50,
        query_type: QueryType::UpdateTime,
        sort,
    }
}

fn i64_at(v: &Value, path: &[&str]) -> i64 {
    let mut v = v;
    for p in path {
        v = &v[p];
    }
    v.as_i64().expect("number in truth")
}

#[tokio::test]
async fn order_list_pages_to_nomore_with_each_order_once() {
    let sim = start_sim(still(3_000)).await;
    let client = client(&sim);
    let now = sim.state.clock.now_ms();
    let (begin, end) = (now - 7 * DAY_MS + 60_000, now);
    let truth = truth(&sim).await;
    let want: BTreeSet<i64> = truth["shops"][0]["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| (begin..=end).contains(&i64_at(o, &["orderBaseInfo", "updateTime"])))
        .map(|o| i64_at(o, &["orderBaseInfo", "oid"]))
        .collect();
    assert!(
        want.len() > 200,
        "the window should hold several pages, has {}",
        want.len()
    );
    for sort in [1, 2] {
        let (mut seen, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = client
                .order_page(&shop_id(0), &order_query(begin, end, &cursor, sort))
                .await
                .expect("page");
            pages += 1;
            seen.extend(page.orders.iter().map(|o| o.oid));
            if page.is_last() {
                break;
            }
            cursor = page.cursor.clone();
        }
        let unique: BTreeSet<i64> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "an order came twice (sort {sort})"
        );
        assert_eq!(unique, want, "sort {sort}");
        assert_eq!(
            pages,
            want.len().div_ceil(50),
            "one call per page (sort {sort})"
        );
    }
}

#[tokio::test]
async fn refund_list_pages_to_nomore_with_each_refund_once() {
    let sim = start_sim(still(4_000)).await;
    let client = client(&sim);
    let now = sim.state.clock.now_ms();
    let truth = truth(&sim).await;
    let refunds = truth["shops"][1]["refunds"]
        .as_array()
        .expect("refunds")
        .clone();
    let mut seen = Vec::new();
    let mut want = BTreeSet::new();
    for day in 1..=7 {
        let (begin, end) = (now - day * DAY_MS, now - (day - 1) * DAY_MS - 1);
        want.extend(
            refunds
                .iter()
                .filter(|r| (begin..=end).contains(&i64_at(r, &["updateTime"])))
                .map(|r| i64_at(r, &["refundId"])),
        );
        let mut pcursor = String::new();
        loop {
            let q = RefundQuery {
                begin_ms: begin,
                end_ms: end,
                pcursor: pcursor.clone(),
                page_size: 100,
                query_type: QueryType::UpdateTime,
                sort: 1,
            };
            // Shop 1 answers under the alternative list name `dataList`.
            let page = client.refund_page(&shop_id(1), &q).await.expect("page");
            seen.extend(page.refunds.iter().map(|r| r.refund_id));
            if page.is_last() {
                break;
            }
            pcursor = page.pcursor.clone();
        }
    }
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a refund came twice");
    assert!(!want.is_empty());
    assert_eq!(unique, want);
}

#[tokio::test]
async fn item_list_pages_to_the_last_page_with_each_item_once() {
    let sim = start_sim(SimConfig {
        items: Some(250),
        ..still(1_000)
    })
    .await;
    let client = client(&sim);
    let truth = truth(&sim).await;
    let want: BTreeSet<i64> = truth["shops"][0]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i64_at(i, &["kwaiItemId"]))
        .collect();
    let (mut seen, mut page_number) = (Vec::new(), 1);
    loop {
        let page = client
            .item_page(&shop_id(0), page_number, 100)
            .await
            .expect("page");
        seen.extend(page.items.iter().map(|i| i.kwai_item_id));
        assert!(
            page.items.iter().all(|i| !i.skus.is_empty()),
            "items carry their SKUs"
        );
        if page_number >= page.total_page {
            break;
        }
        page_number += 1;
    }
    assert_eq!(page_number, 3);
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "an item came twice");
    assert_eq!(unique, want);
}

#[tokio::test]
async fn details_parse_both_spellings() {
    let sim = start_sim(still(400)).await;
    let client = client(&sim);
    let truth = truth(&sim).await;
    let orders = truth["shops"][0]["orders"].as_array().expect("orders");
    // The simulator answers odd oids with the Go SDK's spellings (orderDetailRefundList, …).
    for parity in [0, 1] {
        let o = orders
            .iter()
            .find(|o| {
                i64_at(o, &["orderBaseInfo", "oid"]) % 2 == parity
                    && !o["orderRefundList"].as_array().is_some_and(Vec::is_empty)
            })
            .expect("an order with a refund of this parity");
        let oid = i64_at(o, &["orderBaseInfo", "oid"]);
        let order = client.order_detail(&shop_id(0), oid).await.expect("detail");
        assert_eq!(order.oid, oid);
        assert_eq!(
            order.latest_refund_id,
            Some(i64_at(&o["orderRefundList"][0], &["refundId"]))
        );
        assert_eq!(
            order.update_time,
            i64_at(o, &["orderBaseInfo", "updateTime"])
        );
    }
    let r = &truth["shops"][0]["refunds"][0];
    let refund = client
        .refund_detail(&shop_id(0), i64_at(r, &["refundId"]))
        .await
        .expect("refund detail");
    assert_eq!(refund.refund_fee, i64_at(r, &["refundFee"]));
    let missing = client
        .refund_detail(&shop_id(0), 1)
        .await
        .expect_err("no such refund");
    assert_eq!(missing.class, ErrorClass::Business);
}

#[tokio::test]
async fn md5_signing_is_accepted_too() {
    let sim = start_sim(still(100)).await;
    let opts = ClientOptions {
        sign_method: kwaishop_sync::api::SignMethod::Md5,
        ..fast_options(&sim)
    };
    let client = client_with(&sim, opts, token_store(&sim));
    client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect("MD5-signed call succeeds");
}

#[tokio::test]
async fn a_bad_sign_is_an_invalid_request() {
    let sim = start_sim(still(100)).await;
    let mut app = app(&sim);
    app.sign_secret = Secret::new("not-the-sign-secret");
    let client = ApiClient::new(
        app,
        fast_options(&sim),
        sim.state.clock.clone(),
        token_store(&sim),
        Arc::new(kwaishop_sync::api::limits::MemoryUsage::default()),
    )
    .expect("client");
    let err = client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect_err("bad sign");
    assert_eq!(err.class, ErrorClass::InvalidRequest);
    assert_eq!(err.result, Some(27));
    assert_eq!(
        calls(&sim).await.len(),
        1,
        "an invalid request is not retried"
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_call_retried() {
    let sim = start_sim(still(100)).await;
    let client = client(&sim);
    admin(&sim, "expire?shop=0").await;
    client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect("succeeds after a refresh");
    let log = calls(&sim).await;
    let outcomes: Vec<(&str, &str)> = log
        .iter()
        .map(|c| (c.method.as_str(), c.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("open.item.list.get", "token_expired"),
            ("oauth2/refresh_token", "ok"),
            ("open.item.list.get", "ok")
        ]
    );
}

/// The documented refresh is a POST form; the platform's demo and the SDKs send a GET query.
/// Whichever one the platform refuses, the client uses the other, and keeps to it.
#[tokio::test]
async fn a_refresh_refused_by_one_verb_goes_by_the_other_and_keeps_to_it() {
    for verbs in [RefreshVerbs::GetOnly, RefreshVerbs::PostOnly] {
        let sim = start_sim(SimConfig {
            variants: PlatformVariants {
                refresh_verbs: verbs,
                ..PlatformVariants::default()
            },
            ..still(100)
        })
        .await;
        let client = client(&sim);
        for round in 0..2 {
            admin(&sim, "expire?shop=0").await;
            client
                .item_page(&shop_id(0), 1, 20)
                .await
                .unwrap_or_else(|e| panic!("{verbs:?}, round {round}: {e}"));
        }
        let refreshes: Vec<(String, i64)> = calls(&sim)
            .await
            .into_iter()
            .filter(|c| c.method == "oauth2/refresh_token")
            .map(|c| (c.outcome, c.result))
            .collect();
        let ok = ("ok".to_string(), 1);
        let refused = ("refused".to_string(), 100_200_100);
        let want = match verbs {
            // POST first, refused; then GET, and GET again the next time.
            RefreshVerbs::GetOnly => vec![refused, ok.clone(), ok],
            _ => vec![ok.clone(), ok],
        };
        assert_eq!(refreshes, want, "{verbs:?}");
    }
}

/// A per-user, per-API quota answer pauses that API alone for the shop, until Beijing midnight.
#[tokio::test]
async fn a_per_api_quota_pauses_that_api_only() {
    let sim = start_sim(SimConfig {
        api_quota: Some((kwaishop_sim::Method::OrderDetail, 3)),
        ..still(100)
    })
    .await;
    let client = client(&sim);
    let oid = i64_at(
        &truth(&sim).await["shops"][0]["orders"][0],
        &["orderBaseInfo", "oid"],
    );
    for _ in 0..3 {
        client
            .order_detail(&shop_id(0), oid)
            .await
            .expect("within the quota");
    }
    let spent = client
        .order_detail(&shop_id(0), oid)
        .await
        .expect_err("the fourth");
    assert_eq!(spent.class, ErrorClass::QuotaExhausted);
    assert_eq!(spent.quota_api(), Some(Method::OrderDetail), "{spent}");
    let before = calls(&sim).await.len();
    // The shop's other APIs go on; this one is refused here, without a call.
    client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect("another API");
    let now = sim.state.clock.now_ms();
    client
        .order_page(&shop_id(0), &order_query(now - DAY_MS, now, "", 1))
        .await
        .expect("the order list");
    let again = client
        .order_detail(&shop_id(0), oid)
        .await
        .expect_err("paused");
    assert_eq!(again.class, ErrorClass::QuotaExhausted);
    let log = calls(&sim).await;
    assert_eq!(log.len(), before + 2, "no call for the paused API");
    // After Beijing midnight it goes again.
    sim.state
        .clock
        .advance(next_beijing_midnight(now) - now + 60_000);
    client
        .order_detail(&shop_id(0), oid)
        .await
        .expect("a new day");
}

/// The daily counts of a SQLite store, whose quota pauses are written only once the test lets
/// them: a database busy with a backfill's batch.
#[derive(Debug)]
struct SlowPauses {
    store: kwaishop_sync::store::Store,
    writing: tokio::sync::Notify,
    written: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl UsageStore for SlowPauses {
    async fn try_add_call(
        &self,
        shop: &str,
        day: i64,
        method: Method,
        limit: Option<u64>,
    ) -> Result<Option<u64>, UsageError> {
        self.store.try_add_call(shop, day, method, limit).await
    }
    async fn try_add_calls(
        &self,
        shop: &str,
        day: i64,
        method: Method,
        want: u64,
        limit: Option<u64>,
    ) -> Result<u64, UsageError> {
        self.store
            .try_add_calls(shop, day, method, want, limit)
            .await
    }
    async fn give_back(
        &self,
        shop: &str,
        day: i64,
        method: Method,
        n: u64,
    ) -> Result<(), UsageError> {
        UsageStore::give_back(&self.store, shop, day, method, n).await
    }
    async fn calls(&self, shop: &str, day: i64) -> Result<u64, UsageError> {
        UsageStore::calls(&self.store, shop, day).await
    }
    async fn pause_until(&self, shop: &str, until_ms: i64) -> Result<(), UsageError> {
        self.writing.notify_one();
        let _written = self.written.acquire().await;
        self.store.pause_until(shop, until_ms).await
    }
    async fn paused_until(&self, shop: &str) -> Result<Option<i64>, UsageError> {
        self.store.paused_until(shop).await
    }
    async fn pause_api_until(
        &self,
        shop: &str,
        method: Method,
        until_ms: i64,
    ) -> Result<(), UsageError> {
        self.store.pause_api_until(shop, method, until_ms).await
    }
    async fn api_paused_until(
        &self,
        shop: &str,
        method: Method,
    ) -> Result<Option<i64>, UsageError> {
        self.store.api_paused_until(shop, method).await
    }
}

/// A quota answer holds the shop's calls at once, those counted ahead among them, while the
/// pause is being written: a busy stream had a block of calls counted ahead, and they went out
/// to the spent quota until the database took the pause.
#[tokio::test]
async fn a_quota_answer_holds_calls_counted_ahead_at_once() {
    let sim = start_sim(SimConfig {
        daily_quota: Some(10),
        ..still(100)
    })
    .await;
    let (store, _dir) = crate::common_db::sqlite_store().await;
    store.migrate().await.expect("migrate");
    let usage = Arc::new(SlowPauses {
        store,
        writing: tokio::sync::Notify::new(),
        written: tokio::sync::Semaphore::new(0),
    });
    let client = ApiClient::new(
        app(&sim),
        fast_options(&sim),
        sim.state.clock.clone(),
        token_store(&sim),
        usage.clone(),
    )
    .expect("client");
    // Blocks of 1, 2, 4 and 8 calls: the eleventh is refused, four counted are left.
    for _ in 0..10 {
        client
            .item_page(&shop_id(0), 1, 20)
            .await
            .expect("within the quota");
    }
    let refused = tokio::spawn({
        let client = client.clone();
        async move { client.item_page(&shop_id(0), 1, 20).await }
    });
    tokio::time::timeout(Duration::from_secs(10), usage.writing.notified())
        .await
        .expect("the eleventh call is refused for the quota");
    let sent = calls(&sim).await.len();
    let held = tokio::time::timeout(Duration::from_secs(5), client.item_page(&shop_id(0), 1, 20))
        .await
        .expect("refused without a call, so without a pause of its own to write")
        .expect_err("paused");
    assert_eq!(held.class, ErrorClass::QuotaExhausted, "{held}");
    assert_eq!(
        calls(&sim).await.len(),
        sent,
        "a call went out to a spent quota"
    );
    usage.written.add_permits(1);
    let refused = refused.await.expect("joins").expect_err("the quota answer");
    assert_eq!(refused.class, ErrorClass::QuotaExhausted);
}

#[tokio::test]
async fn a_revoked_authorization_is_classified_and_not_retried() {
    let sim = start_sim(still(100)).await;
    let client = client(&sim);
    admin(&sim, "revoke?shop=1").await;
    let err = client
        .item_page(&shop_id(1), 1, 20)
        .await
        .expect_err("revoked");
    assert_eq!(err.class, ErrorClass::AuthorizationRevoked);
    client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect("the other shop still works");
    assert_eq!(calls(&sim).await.len(), 2);
}

#[tokio::test]
async fn a_window_too_wide_is_an_invalid_request() {
    for codes in [BadWindowCodes::RefundCodes, BadWindowCodes::Business2001] {
        a_window_too_wide_is_refused_with(codes).await;
    }
}

/// Whichever codes the order list refuses a bad window with (docs/platform-variants.md).
async fn a_window_too_wide_is_refused_with(codes: BadWindowCodes) {
    let sim = start_sim(SimConfig {
        variants: PlatformVariants {
            bad_window: codes,
            ..PlatformVariants::default()
        },
        ..still(100)
    })
    .await;
    let client = client(&sim);
    let now = sim.state.clock.now_ms();
    let err = client
        .order_page(&shop_id(0), &order_query(now - 8 * DAY_MS, now, "", 1))
        .await
        .expect_err("8 days");
    assert_eq!(err.class, ErrorClass::InvalidRequest);
    let q = RefundQuery {
        begin_ms: now - 2 * DAY_MS,
        end_ms: now,
        pcursor: String::new(),
        page_size: 100,
        query_type: QueryType::UpdateTime,
        sort: 1,
    };
    assert_eq!(
        client
            .refund_page(&shop_id(0), &q)
            .await
            .expect_err("2 days")
            .class,
        ErrorClass::InvalidRequest
    );
    let old = client
        .order_page(
            &shop_id(0),
            &order_query(now - 91 * DAY_MS, now - 90 * DAY_MS + 1000, "", 1),
        )
        .await;
    assert_eq!(
        old.expect_err("older than 90 days").class,
        ErrorClass::InvalidRequest
    );
    assert_eq!(
        calls(&sim).await.len(),
        3,
        "invalid requests are not retried"
    );
}

#[tokio::test]
async fn a_throttled_answer_backs_off_and_succeeds() {
    let sim = start_sim(SimConfig {
        qps: Some(2.0),
        ..still(100)
    })
    .await;
    // The client believes it may send 100 QPS, so the simulator's 2 QPS limit must throttle it.
    let opts = ClientOptions {
        qps: Method::ALL.iter().map(|m| (*m, 100.0)).collect(),
        ..fast_options(&sim)
    };
    let client = client_with(&sim, opts, token_store(&sim));
    let started = Instant::now();
    for _ in 0..4 {
        client
            .item_page(&shop_id(0), 1, 20)
            .await
            .expect("eventually succeeds");
    }
    let log = calls(&sim).await;
    assert!(
        log.iter().any(|c| c.outcome == "throttled"),
        "the limit was hit"
    );
    assert_eq!(log.iter().filter(|c| c.outcome == "ok").count(), 4);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "backed off at least the throttled delay"
    );
}

#[tokio::test]
async fn an_exhausted_quota_stops_without_retry() {
    let sim = start_sim(SimConfig {
        daily_quota: Some(3),
        ..still(100)
    })
    .await;
    let client = client(&sim);
    for _ in 0..3 {
        client
            .item_page(&shop_id(0), 1, 20)
            .await
            .expect("within quota");
    }
    let err = client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect_err("quota");
    assert_eq!(err.class, ErrorClass::QuotaExhausted);
    let reset = err.retry_at_ms.expect("says when the quota resets");
    assert!(reset > sim.state.clock.now_ms() && reset <= sim.state.clock.now_ms() + DAY_MS);
    let again = client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect_err("still paused");
    assert_eq!(again.class, ErrorClass::QuotaExhausted);
    let log = calls(&sim).await;
    assert_eq!(
        log.iter()
            .filter(|c| c.outcome == "quota_exhausted")
            .count(),
        1,
        "no retry, no further call"
    );
    assert_eq!(log.len(), 4);
    client
        .item_page(&shop_id(1), 1, 20)
        .await
        .expect("another shop has its own quota");
}

#[tokio::test]
async fn server_errors_are_retried_until_they_pass() {
    let sim = start_sim(still(100)).await;
    let client = client(&sim);
    admin_faults(
        &sim,
        FaultConfig {
            error_5xx: 1.0,
            ..Default::default()
        },
    )
    .await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.item_page(&shop_id(0), 1, 20).await }
    });
    wait_until(Duration::from_secs(10), "a 5xx answer", || async {
        calls(&sim)
            .await
            .iter()
            .any(|c| c.outcome == "server_error")
    })
    .await;
    admin_faults(&sim, FaultConfig::default()).await;
    call.await
        .expect("task")
        .expect("succeeds once the 5xx stop");
    let log = calls(&sim).await;
    assert!(log.iter().filter(|c| c.outcome == "server_error").count() >= 1);
    assert_eq!(log.last().map(|c| c.outcome.as_str()), Some("ok"));

    // With the 5xx never stopping, the client gives up after max_attempts as a transient failure.
    admin_faults(
        &sim,
        FaultConfig {
            error_5xx: 1.0,
            ..Default::default()
        },
    )
    .await;
    let before = calls(&sim).await.len();
    let err = client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect_err("5xx forever");
    assert_eq!(err.class, ErrorClass::Transient);
    assert_eq!(calls(&sim).await.len() - before, 5, "max_attempts calls");
}

#[tokio::test]
async fn timeouts_and_cut_answers_are_transient_and_retried() {
    let sim = start_sim(still(100)).await;
    let opts = ClientOptions {
        timeout: Duration::from_millis(300),
        ..fast_options(&sim)
    };
    let client = client_with(&sim, opts, token_store(&sim));
    for faults in [
        FaultConfig {
            timeout: 1.0,
            timeout_ms: 2_000,
            ..Default::default()
        },
        FaultConfig {
            cut: 1.0,
            ..Default::default()
        },
        FaultConfig {
            internal_timeout: 1.0,
            ..Default::default()
        },
    ] {
        admin_faults(&sim, faults.clone()).await;
        let err = client
            .item_page(&shop_id(0), 1, 20)
            .await
            .expect_err("fault");
        assert_eq!(err.class, ErrorClass::Transient, "{faults:?}: {err}");
    }
}

/// A request that hangs (and the same request sent beside it) is given up after ten times what
/// nine in ten recent answers took (at least 2 s), not after the configured timeout (here two
/// minutes), and sent again, waiting the configured timeout this time. Before the quick timeout, the hung request held the call for
/// the whole configured timeout.
#[tokio::test]
async fn a_hung_request_is_given_up_in_seconds_and_sent_again() {
    let sim = start_sim(still(100)).await;
    let client = taught_client(&sim).await;
    hang_then_recover(&sim, &client, 1, 20).await;
}

/// The platform holds every request until two are held (the item page `page` and the one sent
/// beside it); then it recovers. The call is given up within a minute (the configured timeout
/// is two minutes) and answered by its next attempt, after the `before` calls made earlier.
async fn hang_then_recover(
    sim: &kwaishop_sim::SimHandle,
    client: &ApiClient,
    page: i64,
    before: usize,
) {
    let hang = FaultConfig {
        timeout: 1.0,
        timeout_ms: 600_000,
        ..Default::default()
    };
    admin_faults(sim, hang).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.item_page(&shop_id(0), page, 20).await }
    });
    while calls(sim)
        .await
        .iter()
        .filter(|c| c.outcome == "timeout")
        .count()
        < 2
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin_faults(sim, FaultConfig::default()).await;
    let answer = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("given up long before the configured two minutes")
        .expect("joined");
    answer.expect("the next attempt is answered");
    let outcomes: Vec<String> = calls(sim).await.into_iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes[before..], ["timeout", "timeout", "ok"]);
}

/// A list whose answers are not timed yet is timed by the other lists': an item page that
/// hangs after twenty order pages (and one item page) were answered is given up in seconds
/// and sent again, not held for the configured two minutes. In a backfill's first second, an
/// item page that hung held the items stream for the whole configured timeout while the
/// orders were already timed.
#[tokio::test]
async fn a_list_not_yet_timed_is_timed_by_the_others() {
    let sim = start_sim(still(100)).await;
    let opts = ClientOptions {
        timeout: Duration::from_secs(120),
        ..fast_options(&sim)
    };
    let client = client_with(&sim, opts, token_store(&sim));
    let now = sim.state.clock.now_ms();
    for _ in 0..20 {
        let q = order_query(now - 86_400_000, now, "", 1);
        client
            .order_page(&shop_id(0), &q)
            .await
            .expect("an order page");
    }
    client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect("an item page");
    hang_then_recover(&sim, &client, 2, 21).await;
}

/// A client with a two-minute timeout that has seen 20 answers in milliseconds: enough to know
/// what to expect (the quick timeout and the second request beside a slow one need 16).
async fn taught_client(sim: &kwaishop_sim::SimHandle) -> ApiClient {
    let opts = ClientOptions {
        timeout: Duration::from_secs(120),
        ..fast_options(sim)
    };
    let client = client_with(sim, opts, token_store(sim));
    for _ in 0..20 {
        client
            .item_page(&shop_id(0), 1, 20)
            .await
            .expect("an item page");
    }
    client
}

/// An answer the platform delays by a minute is not waited for: once the usual answer time is
/// known, the request is sent a second time beside the first after half a second (three times
/// the ninth decile, at least 500 ms), long before the quick timeout (2 s at least) would give
/// up on the first, and the first answer wins.
#[tokio::test]
async fn a_delayed_answer_is_overtaken_by_the_same_request_sent_again() {
    let sim = start_sim(still(100)).await;
    let client = taught_client(&sim).await;
    admin_faults(
        &sim,
        FaultConfig {
            slow: 1.0,
            slow_ms: 60_000,
            ..Default::default()
        },
    )
    .await;
    let started = kwaishop_sync::clock::wall_ms();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.item_page(&shop_id(0), 1, 20).await }
    });
    // The first request is on its way (and held); the platform answers the next ones at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    admin_faults(&sim, FaultConfig::default()).await;
    let page = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("answered long before the delayed answer's minute")
        .expect("joined");
    page.expect("the second request is answered");
    let log = calls(&sim).await;
    let answered = &log[20..];
    assert_eq!(
        answered.len(),
        1,
        "the held request never answered: {answered:?}"
    );
    assert_eq!(answered[0].outcome, "ok");
    // Sent beside the first, not after the quick timeout gave it up.
    let sent_after = answered[0].wall_ms - started;
    assert!(
        (400..1_900).contains(&sent_after),
        "the second request arrived {sent_after} ms after the call began"
    );
}

/// A detail is sent once however slow its answer: only list pages, which hold a window up, are
/// sent a second time beside a slow first (after half a second). A push's detail that the
/// platform holds is given up after the quick timeout (two seconds at least) and sent again
/// then, so one held detail costs two calls of the shop's quota, never a copy every half
/// second beside it.
#[tokio::test]
async fn a_held_detail_is_not_sent_again_beside_itself() {
    let sim = start_sim(still(100)).await;
    let client = taught_client(&sim).await;
    let oid = i64_at(
        &truth(&sim).await["shops"][0]["orders"][0],
        &["orderBaseInfo", "oid"],
    );
    for _ in 0..20 {
        client.order_detail(&shop_id(0), oid).await.expect("detail");
    }
    admin_faults(
        &sim,
        FaultConfig {
            timeout: 1.0,
            timeout_ms: 60_000,
            ..Default::default()
        },
    )
    .await;
    let before = calls(&sim).await.len();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.order_detail(&shop_id(0), oid).await }
    });
    // The first request is on its way (and held); the platform answers the next ones at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    admin_faults(&sim, FaultConfig::default()).await;
    let order = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("answered after the quick timeout")
        .expect("joined")
        .expect("the detail");
    assert_eq!(order.oid, oid);
    let sent = calls(&sim).await.split_off(before);
    let outcomes: Vec<&str> = sent.iter().map(|c| c.outcome.as_str()).collect();
    assert_eq!(outcomes, ["timeout", "ok"]);
    let apart = sent[1].wall_ms - sent[0].wall_ms;
    assert!(
        apart >= 1_900,
        "the second request came {apart} ms after the first: sent beside it, not after it was given up"
    );
}

async fn admin_faults(sim: &kwaishop_sim::SimHandle, faults: FaultConfig) {
    reqwest::Client::new()
        .post(format!("{}/__sim/faults", sim.base_url()))
        .json(&faults)
        .send()
        .await
        .expect("faults set");
}

/// I7: with 50 QPS on both sides, 2,000 calls draw no throttled answer and no second holds
/// more than 50 arrivals.
#[tokio::test]
async fn fifty_qps_on_both_sides_is_used_without_throttling() {
    let sim = start_sim(SimConfig {
        qps: Some(50.0),
        ..still(100)
    })
    .await;
    let opts = ClientOptions {
        qps: Method::ALL.iter().map(|m| (*m, 50.0)).collect(),
        ..fast_options(&sim)
    };
    let client = client_with(&sim, opts, token_store(&sim));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..250 {
                client
                    .item_page(&shop_id(worker % 2), 1, 10)
                    .await
                    .expect("call");
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let log: Vec<_> = calls(&sim)
        .await
        .into_iter()
        .filter(|c| c.method == "open.item.list.get")
        .collect();
    // 2,000 calls; a list request left without an answer for a while is sent a second time (a
    // hedge, under a loaded machine's stalls), through the same limiter as any other.
    assert!(
        (2_000..=2_040).contains(&log.len()),
        "{} requests for 2,000 calls",
        log.len()
    );
    assert_eq!(log.iter().filter(|c| c.outcome == "throttled").count(), 0);
    let first = log.iter().map(|c| c.wall_ms).min().expect("calls");
    let last = log.iter().map(|c| c.wall_ms).max().expect("calls");
    let rate = (log.len() - 1) as f64 / ((last - first) as f64 / 1000.0);
    // The rate is reported, not asserted (a timed assertion); BENCHMARKS.md records it.
    eprintln!("achieved {rate:.1} calls/s against a limit of 50");
    // And no 1-second window held more than 50 arrivals.
    let times: Vec<i64> = {
        let mut t: Vec<i64> = log.iter().map(|c| c.wall_ms).collect();
        t.sort_unstable();
        t
    };
    let max_in_window = times
        .iter()
        .enumerate()
        .map(|(i, t)| times[i..].iter().take_while(|u| **u < t + 1000).count())
        .max();
    assert!(
        max_in_window <= Some(50),
        "{max_in_window:?} calls in one second"
    );
}

/// A token store that records when each save finished, and is slow to save.
#[derive(Debug, Default)]
struct RecordingStore {
    inner: MemoryTokenStore,
    saves: Mutex<Vec<(i64, String)>>,
}

#[async_trait::async_trait]
impl TokenStore for RecordingStore {
    async fn load(&self, shop: &str) -> Result<Option<TokenSet>, TokenStoreError> {
        self.inner.load(shop).await
    }
    async fn save(&self, shop: &str, tokens: &TokenSet) -> Result<(), TokenStoreError> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.inner.save(shop, tokens).await?;
        self.saves
            .lock()
            .expect("lock")
            .push((wall_ms(), tokens.refresh_token.expose().to_string()));
        Ok(())
    }
}

#[tokio::test]
async fn eight_concurrent_expired_calls_cause_one_refresh_stored_before_use() {
    let sim = start_sim(still(100)).await;
    let memory = token_store(&sim);
    let store = Arc::new(RecordingStore::default());
    for i in 0..2 {
        let t = memory
            .load(&shop_id(i))
            .await
            .expect("load")
            .expect("tokens");
        store.inner.save(&shop_id(i), &t).await.expect("seed");
    }
    let client = client_with(&sim, fast_options(&sim), store.clone());
    admin(&sim, "expire?shop=0").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.item_page(&shop_id(0), 1, 10).await
        }));
    }
    for t in tasks {
        t.await
            .expect("task")
            .expect("call succeeds after the refresh");
    }
    let log = calls(&sim).await;
    let refreshes: Vec<_> = log
        .iter()
        .filter(|c| c.method == "oauth2/refresh_token")
        .collect();
    assert_eq!(refreshes.len(), 1, "exactly one refresh");
    let saves = store.saves.lock().expect("lock").clone();
    assert_eq!(saves.len(), 1, "one rotation stored");
    let stored_at = saves[0].0;
    let new_seq = refreshes[0].token_seq.expect("the refresh issued a token");
    let uses: Vec<i64> = log
        .iter()
        .filter(|c| c.token_seq == Some(new_seq) && c.method != "oauth2/refresh_token")
        .map(|c| c.wall_ms)
        .collect();
    assert_eq!(uses.len(), 8, "every call retried with the new token");
    assert!(
        uses.iter().all(|t| *t >= stored_at),
        "a call used the new token before it was stored"
    );
    let stored = store
        .load(&shop_id(0))
        .await
        .expect("load")
        .expect("tokens");
    assert_eq!(stored.refresh_token.expose(), saves[0].1);
}

/// A simulator that refuses a rotated refresh token at once, and shop 0's tokens as it issued
/// them.
async fn sim_without_grace() -> (kwaishop_sim::SimHandle, TokenSet) {
    let sim = start_sim(SimConfig {
        lifetimes: kwaishop_sim::auth::Lifetimes {
            rotation_grace_ms: 0,
            ..Default::default()
        },
        ..still(100)
    })
    .await;
    let seeded = token_store(&sim)
        .load(&shop_id(0))
        .await
        .expect("load")
        .expect("tokens");
    (sim, seeded)
}

/// A token store that takes half a second to store a token.
#[derive(Debug, Default)]
struct SlowStore {
    inner: MemoryTokenStore,
}

#[async_trait::async_trait]
impl TokenStore for SlowStore {
    async fn load(&self, shop: &str) -> Result<Option<TokenSet>, TokenStoreError> {
        self.inner.load(shop).await
    }
    async fn save(&self, shop: &str, tokens: &TokenSet) -> Result<(), TokenStoreError> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.inner.save(shop, tokens).await
    }
}

/// A caller that gives up on a refresh (a hedged call whose other request answered first, a
/// timeout) after the platform rotated the pair and before it was stored: the pair is stored all
/// the same, and the next refresh uses it. Abandoned with it, the stored refresh token would be
/// the discarded one, refused at once (no grace here): the shop lost.
#[tokio::test]
async fn a_refresh_abandoned_by_its_caller_still_stores_the_rotated_pair() {
    let (sim, seeded) = sim_without_grace().await;
    let store = Arc::new(SlowStore::default());
    store.inner.save(&shop_id(0), &seeded).await.expect("seed");
    let client = client_with(&sim, fast_options(&sim), store.clone());
    let abandoned =
        tokio::time::timeout(Duration::from_millis(250), client.refresh_now(&shop_id(0))).await;
    assert!(
        abandoned.is_err(),
        "the caller gave up while the pair was being stored"
    );
    wait_until(
        Duration::from_secs(5),
        "the rotated pair stored",
        || async {
            let stored = store
                .load(&shop_id(0))
                .await
                .expect("load")
                .expect("tokens");
            stored.refresh_token != seeded.refresh_token
        },
    )
    .await;
    client
        .refresh_now(&shop_id(0))
        .await
        .expect("the next refresh uses the stored pair");
    let refused: Vec<_> = calls(&sim)
        .await
        .into_iter()
        .filter(|c| c.method == "oauth2/refresh_token" && c.outcome != "ok")
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}

/// A token store whose first `failures` attempts to store a refreshed token fail, as a database
/// briefly unreachable (a restart, a full pool) would make them.
#[derive(Debug, Default)]
struct BrieflyFailingStore {
    inner: MemoryTokenStore,
    failures: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl TokenStore for BrieflyFailingStore {
    async fn load(&self, shop: &str) -> Result<Option<TokenSet>, TokenStoreError> {
        self.inner.load(shop).await
    }
    async fn save(&self, shop: &str, tokens: &TokenSet) -> Result<(), TokenStoreError> {
        self.inner.save(shop, tokens).await
    }
    async fn end_refresh(
        &self,
        shop: &str,
        holder: &str,
        replaced: &TokenSet,
        fresh: Option<&TokenSet>,
    ) -> Result<bool, TokenStoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let failing = || {
            self.failures
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
        };
        if fresh.is_some() && failing() {
            return Err(TokenStoreError("the database is unreachable".into()));
        }
        self.inner.end_refresh(shop, holder, replaced, fresh).await
    }
}

/// The platform rotated the refresh token, then storing the new pair failed twice: the pair is
/// stored on a later attempt and used, not lost. Losing it would leave only the discarded
/// refresh token, refused once the platform's grace is over (none here): the shop would need
/// its merchant to authorize again.
#[tokio::test]
async fn a_rotated_token_is_stored_even_when_the_first_attempts_to_store_it_fail() {
    let (sim, seeded) = sim_without_grace().await;
    let store = Arc::new(BrieflyFailingStore {
        failures: std::sync::atomic::AtomicU32::new(2),
        ..BrieflyFailingStore::default()
    });
    store.inner.save(&shop_id(0), &seeded).await.expect("seed");
    let client = client_with(&sim, fast_options(&sim), store.clone());
    admin(&sim, "expire?shop=0").await;
    client
        .item_page(&shop_id(0), 1, 10)
        .await
        .expect("the call succeeds with the rotated token");
    let log = calls(&sim).await;
    let refreshes: Vec<_> = log
        .iter()
        .filter(|c| c.method == "oauth2/refresh_token")
        .collect();
    assert_eq!(refreshes.len(), 1, "one refresh: {refreshes:?}");
    assert_eq!(refreshes[0].outcome, "ok");
    let stored = store
        .load(&shop_id(0))
        .await
        .expect("load")
        .expect("tokens");
    assert_ne!(
        stored.refresh_token, seeded.refresh_token,
        "the rotated pair is stored"
    );
    // The stored refresh token is the live one: refreshing with it now works.
    let again = client
        .refresh_now(&shop_id(0))
        .await
        .expect("a refresh with the stored token");
    assert_ne!(again.refresh_token, stored.refresh_token);
}

/// Two processes' clients over one database (a second daemon, or `sync --once` beside the
/// daemon): A refreshes the shop's token; B, whose cache still holds the first token, does not
/// send its discarded refresh token when it wants a fresh one: it takes A's from the database,
/// and its next call uses it (I11).
#[tokio::test]
async fn a_second_client_takes_the_token_the_first_refreshed() {
    let sim = start_sim(still(100)).await;
    let (store, _dir) = crate::common_db::sqlite_store().await;
    let shop = shop_id(0);
    crate::common_db::add_shop(&store, &shop).await;
    let first = token_store(&sim)
        .load(&shop)
        .await
        .expect("load")
        .expect("tokens");
    store.save(&shop, &first).await.expect("seed");
    let tokens: Arc<dyn TokenStore> = Arc::new(store.clone());
    let a = client_with(&sim, fast_options(&sim), tokens.clone());
    let b = client_with(&sim, fast_options(&sim), tokens);
    b.item_page(&shop, 1, 10)
        .await
        .expect("B calls with the first token");
    a.refresh_now(&shop).await.expect("A refreshes");
    b.refresh_now(&shop).await.expect("B takes A's token");
    b.item_page(&shop, 1, 10).await.expect("B calls again");
    let log = calls(&sim).await;
    let refreshes: Vec<_> = log
        .iter()
        .filter(|c| c.method == "oauth2/refresh_token")
        .collect();
    assert_eq!(refreshes.len(), 1, "only A refreshed: {refreshes:?}");
    let new_seq = refreshes[0].token_seq.expect("the refresh issued a token");
    let last = log
        .iter()
        .rfind(|c| c.method != "oauth2/refresh_token")
        .expect("B's last call");
    assert_eq!(
        last.token_seq,
        Some(new_seq),
        "B's next call used A's token"
    );
    store.close().await;
}

/// The garbage answer for an item page, chosen by the page number in `param`.
fn garbage_for(param: &str) -> String {
    let body = if param.contains("\"pageNumber\":1,") {
        "<html><body>502 Bad Gateway</body></html>"
    } else if param.contains("\"pageNumber\":2,") {
        r#"{"result":1,"data":{"items":[{"kwaiItemId":1"#
    } else if param.contains("\"pageNumber\":3,") {
        r#"{"result":1,"data":{"totalPage":"many","items":{"oops":true}}}"#
    } else if param.contains("\"pageNumber\":4,") {
        r#"{"result":1,"data":{"totalPage":1,"items":[{"kwaiItemId":{"x":1},"title":"t"}]}}"#
    } else {
        r#"{"result":[1],"data":null}"#
    };
    body.to_string()
}

/// A server that answers garbage, to show the client classifies it and never panics.
async fn garbage_server() -> String {
    use axum::extract::Query;
    use axum::routing::get;
    let big = Arc::new(format!(
        "{{\"result\":1,\"data\":\"{}\"}}",
        "x".repeat(10 << 20)
    ));
    let items = |Query(q): Query<HashMap<String, String>>| async move {
        garbage_for(&q.get("param").cloned().unwrap_or_default())
    };
    let detail = move || {
        let big = big.clone();
        async move { big.as_str().to_string() }
    };
    let app = axum::Router::new()
        .route("/open/item/list/get", get(items))
        .route("/open/order/detail", get(detail));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

#[tokio::test]
async fn garbage_answers_give_classified_errors() {
    let sim = start_sim(still(10)).await;
    let base = garbage_server().await;
    let opts = ClientOptions {
        base_url: base,
        retry: kwaishop_sync::api::RetryPolicy {
            max_attempts: 2,
            ..fast_options(&sim).retry
        },
        ..fast_options(&sim)
    };
    let client = client_with(&sim, opts, token_store(&sim));
    let cases = [
        (1, ErrorClass::Transient),
        (2, ErrorClass::Transient),
        (3, ErrorClass::Malformed),
        (5, ErrorClass::Malformed),
    ];
    for (page, want) in cases {
        let err = client
            .item_page(&shop_id(0), page, 10)
            .await
            .expect_err("garbage");
        assert_eq!(err.class, want, "page {page}: {err}");
    }
    // An item that cannot be read fails alone: the page is read, the item set aside.
    let page = client
        .item_page(&shop_id(0), 4, 10)
        .await
        .expect("a page with one unreadable item");
    assert!(page.items.is_empty());
    assert!(
        page.rejected[0].error.contains("kwaiItemId"),
        "{:?}",
        page.rejected
    );
    let err = client
        .order_detail(&shop_id(0), 1)
        .await
        .expect_err("10 MiB");
    assert_eq!(err.class, ErrorClass::Malformed, "{err}");
    assert!(err.message.contains("larger than"), "{err}");
}

/// A server whose item list answers well four times, then holds one request without answering, then
/// fails one with a 502, then answers well again; it notes when each request came.
async fn holding_server() -> (String, Arc<Mutex<Vec<Instant>>>) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    let items = move || {
        let seen = seen.clone();
        async move {
            let n = {
                let mut seen = seen.lock().expect("arrivals");
                seen.push(Instant::now());
                seen.len()
            };
            let page = r#"{"result":1,"data":{"totalPage":1,"items":[]}}"#;
            match n {
                5 => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    (StatusCode::OK, page)
                }
                6 => (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>"),
                _ => (StatusCode::OK, page),
            }
        }
    };
    let app = axum::Router::new().route("/open/item/list/get", get(items));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (format!("http://{addr}"), arrivals)
}

/// A list page held by the platform is sent again beside it; when that second request fails,
/// the call is tried again after its short delay, not after waiting out the held one's timeout
/// (a held request followed by a cut one once held a backfill's last window for two seconds).
#[tokio::test]
async fn a_held_request_is_not_waited_for_once_the_one_beside_it_failed() {
    let sim = start_sim(still(10)).await;
    let (base, arrivals) = holding_server().await;
    let opts = ClientOptions {
        base_url: base,
        timeout: Duration::from_secs(20),
        ..fast_options(&sim)
    };
    let client = client_with(&sim, opts, token_store(&sim));
    // Four answers: enough to know when to send a request a second time.
    for _ in 0..4 {
        client
            .item_page(&shop_id(0), 1, 10)
            .await
            .expect("a good page");
    }
    client
        .item_page(&shop_id(0), 1, 10)
        .await
        .expect("answered by the third request");
    let arrivals = arrivals.lock().expect("arrivals").clone();
    assert_eq!(
        arrivals.len(),
        7,
        "held, sent again and failed, tried again"
    );
    let waited = arrivals[6] - arrivals[4];
    assert!(
        waited < Duration::from_secs(10),
        "tried again {waited:?} after the held request, not after its 20 s timeout"
    );
}

/// A reload reconfigures the client in place: every clone (the worker's, the pollers') signs
/// with the new secret and paces at the new QPS at once, and keeps the instance's share.
#[tokio::test]
async fn reconfigure_applies_to_every_clone_at_once() {
    let sim = start_sim(still(100)).await;
    let client = client(&sim);
    let worker_copy = client.clone();
    client.set_share(2);
    client
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect("a good call");

    let mut wrong = app(&sim);
    wrong.sign_secret = Secret::new("not-the-sign-secret");
    let mut opts = fast_options(&sim);
    opts.qps.insert(Method::ItemList, 40.0);
    client.reconfigure(wrong, opts.clone());
    let err = worker_copy
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect_err("the clone signs with the new (wrong) secret");
    assert_eq!(err.class, ErrorClass::InvalidRequest);
    assert_eq!(worker_copy.share(), 2, "the share survives a reload");
    let paced = worker_copy.limits().effective_qps(Method::ItemList);
    assert!(
        (paced - 40.0 * QPS_HEADROOM / 2.0).abs() < 1e-9,
        "the new QPS, halved for the share, with the headroom: {paced}"
    );

    client.reconfigure(app(&sim), opts);
    worker_copy
        .item_page(&shop_id(0), 1, 20)
        .await
        .expect("the right secret again");
}

/// Two processes' clients over one database refresh the same shop's token at the same moment,
/// round after round: one refresh goes to the platform per round, the other client waits for it
/// and takes the stored token; no refresh token is ever sent after it was discarded, and both end
/// with the same token (I11).
async fn concurrent_refreshes_send_one(store: kwaishop_sync::store::Store) {
    let sim = start_sim(still(10)).await;
    let shop = shop_id(0);
    crate::common_db::add_shop(&store, &shop).await;
    let first = token_store(&sim)
        .load(&shop)
        .await
        .expect("load")
        .expect("tokens");
    store.save(&shop, &first).await.expect("seed");
    let tokens: Arc<dyn TokenStore> = Arc::new(store.clone());
    let a = client_with(&sim, fast_options(&sim), tokens.clone());
    let b = client_with(&sim, fast_options(&sim), tokens);
    const ROUNDS: usize = 5;
    for round in 0..ROUNDS {
        // Both hold the stored token and find it stale at the same moment (as when the
        // platform answers both that it expired).
        let stale = store.load(&shop).await.expect("load").expect("tokens");
        let (ta, tb) = tokio::join!(
            a.refresh_replacing(&shop, &stale),
            b.refresh_replacing(&shop, &stale)
        );
        let (ta, tb) = (ta.expect("A's refresh"), tb.expect("B's refresh"));
        assert_eq!(ta.access_token, tb.access_token, "round {round}: one token");
        let stored = store.load(&shop).await.expect("load").expect("tokens");
        assert_eq!(
            stored.access_token, ta.access_token,
            "round {round}: it is stored"
        );
    }
    let refreshes: Vec<_> = calls(&sim)
        .await
        .into_iter()
        .filter(|c| c.method == "oauth2/refresh_token")
        .collect();
    assert!(
        refreshes.iter().all(|c| c.outcome == "ok"),
        "a discarded refresh token was sent: {refreshes:?}"
    );
    assert_eq!(
        refreshes.len(),
        ROUNDS,
        "one refresh per round: {refreshes:?}"
    );
    a.item_page(&shop, 1, 10).await.expect("A calls");
    b.item_page(&shop, 1, 10).await.expect("B calls");
}

#[tokio::test]
async fn concurrent_refreshes_send_one_sqlite() {
    crate::common_db::on_sqlite(concurrent_refreshes_send_one).await;
}

#[tokio::test]
async fn concurrent_refreshes_send_one_postgres() {
    crate::common_db::on_postgres(concurrent_refreshes_send_one).await;
}
