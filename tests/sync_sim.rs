//! The polling sync against the simulator, on SQLite and on Postgres: backfill, convergence under
//! mutation, ties on a window edge, stale pages, pacing at the limit, the daily quota, failing
//! calls and an unparseable record.

use crate::common;
use crate::common_db;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::mirror::{assert_mirror_equals_truth, diff_mirror};
use common::*;
use common_db::{on_postgres, on_sqlite};
use kwaishop_sim::faults::FaultConfig;
use kwaishop_sim::variants::{EmptyWindow, ExpressCode, Packages, PlatformVariants};
use kwaishop_sim::{SimConfig, SimHandle};
use kwaishop_sync::api::Method;
use kwaishop_sync::app::App;
use kwaishop_sync::clock::{DAY_MS, next_beijing_midnight};
use kwaishop_sync::commands::sync::sync_once;
use kwaishop_sync::store::{RunKind, Source, Store, Stream};
use kwaishop_sync::sync::{NoProgress, RunOutcome, RunSummary, SyncProgress};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

async fn sync_all(app: &App) -> Vec<RunSummary> {
    sync_with(
        app,
        &Stream::ALL,
        Arc::new(NoProgress),
        CancellationToken::new(),
    )
    .await
}

async fn sync_with(
    app: &App,
    streams: &[Stream],
    progress: Arc<dyn SyncProgress>,
    cancel: CancellationToken,
) -> Vec<RunSummary> {
    let shops = app.shops(None).expect("shops");
    sync_once(app, &shops, streams, progress, cancel).await
}

fn assert_caught_up(summaries: &[RunSummary]) {
    for s in summaries {
        assert_eq!(
            s.outcome,
            RunOutcome::CaughtUp,
            "{} {}",
            s.shop_id,
            s.stream.as_str()
        );
    }
}

/// Moves the simulator's (and so the client's) clock past the settle delay.
async fn let_settle(sim: &SimHandle) {
    admin(sim, "mutation?on=false").await;
    sim.state.clock.advance(2 * 60_000);
}

fn big_shop() -> SimConfig {
    SimConfig {
        seed: 11,
        shops: 1,
        days: 60,
        orders: 20_000,
        items: Some(520),
        refund_rate: Some(0.16),
        mutate: false,
        variants: variants(0),
        ..SimConfig::default()
    }
}

// ---------------------------------------------------------------- backfill and convergence

async fn backfill_then_converge(store: Store) {
    let sim = start_sim(big_shop()).await;
    let app = app_for(&sim, store, |_| {}).await;
    assert_caught_up(&sync_all(&app).await);
    let diff = assert_mirror_equals_truth(&app.store, &sim, 0).await;
    assert!(diff.orders_checked >= 20_000, "{diff:?}");
    assert!(diff.refunds_checked >= 2_000, "{diff:?}");
    assert!(
        diff.items_checked >= 500 && diff.skus_checked > diff.items_checked,
        "{diff:?}"
    );

    // The platform keeps changing: three more runs, a simulated day apart, converge again.
    admin(&sim, "mutation?on=true").await;
    for run in 0..3 {
        sim.state.clock.advance(DAY_MS);
        admin(&sim, "mutation?now=true").await;
        if run == 2 {
            let_settle(&sim).await;
        }
        assert_caught_up(&sync_all(&app).await);
        let state = app
            .store
            .load_state("shop-0", Stream::Orders)
            .await
            .expect("state")
            .expect("state");
        eprintln!(
            "run {run}: now {} checkpoint {:?}",
            sim.state.clock.now_ms(),
            state.checkpoint_ms
        );
    }
    let diff = assert_mirror_equals_truth(&app.store, &sim, 0).await;
    let deleted = app
        .store
        .item_rows("shop-0")
        .await
        .expect("items")
        .iter()
        .filter(|r| r.deleted_at.is_some())
        .count();
    assert!(
        deleted >= 1,
        "items taken down upstream are soft-deleted ({diff:?})"
    );
}

#[tokio::test]
async fn backfill_then_converge_sqlite() {
    on_sqlite(backfill_then_converge).await;
}

#[tokio::test]
async fn backfill_then_converge_postgres() {
    on_postgres(backfill_then_converge).await;
}

// ---------------------------------------------------------------- items: delete only after a complete scan

/// Cancels the run when the first page of a stream is committed.
struct CancelOnFirstPage(CancellationToken);

impl SyncProgress for CancelOnFirstPage {
    fn page(&self, _shop: &str, _stream: Stream, _rows: usize, _page: i64, _of: Option<i64>) {
        self.0.cancel();
    }
}

/// Under variant seeds 1, 2 and 3 the platform answers a lookup of a deleted item with a business
/// error, or with the item at `itemStatus` 2 or 3 (docs/platform-variants.md): every way, the
/// item ends soft-deleted and the scan completes.
async fn items_deleted_only_after_a_complete_scan(store: Store, seed: u64) {
    let sim = start_sim(SimConfig {
        seed: 5,
        orders: 300,
        items: Some(350),
        mutate: false,
        variants: variants(seed),
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |_| {}).await;
    assert_caught_up(
        &sync_with(
            &app,
            &[Stream::Items],
            Arc::new(NoProgress),
            CancellationToken::new(),
        )
        .await,
    );
    // Take items down upstream: jump a few days with only the mutation clock's takedowns.
    admin(&sim, "mutation?on=true").await;
    sim.state.clock.advance(3 * DAY_MS);
    admin(&sim, "mutation?now=true").await;
    admin(&sim, "mutation?on=false").await;
    let live_upstream: BTreeSet<i64> = truth(&sim).await["shops"][0]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["kwaiItemId"].as_i64().expect("id"))
        .collect();
    let mirrored = app.store.item_rows("shop-0").await.expect("rows");
    let gone: Vec<i64> = mirrored
        .iter()
        .map(|r| r.kwai_item_id)
        .filter(|id| !live_upstream.contains(id))
        .collect();
    assert!(!gone.is_empty(), "the mutation clock took items down");

    // A scan stopped after its first page deletes nothing.
    let cancel = CancellationToken::new();
    let stopped = sync_with(
        &app,
        &[Stream::Items],
        Arc::new(CancelOnFirstPage(cancel.clone())),
        cancel,
    )
    .await;
    assert_eq!(stopped[0].outcome, RunOutcome::Stopped);
    let rows = app.store.item_rows("shop-0").await.expect("rows");
    assert!(
        rows.iter().all(|r| r.deleted_at.is_none()),
        "nothing is deleted before a scan completes"
    );

    // The next run resumes the scan, completes it, and only then marks them.
    assert_caught_up(
        &sync_with(
            &app,
            &[Stream::Items],
            Arc::new(NoProgress),
            CancellationToken::new(),
        )
        .await,
    );
    let rows = app.store.item_rows("shop-0").await.expect("rows");
    let deleted: BTreeSet<i64> = rows
        .iter()
        .filter(|r| r.deleted_at.is_some())
        .map(|r| r.kwai_item_id)
        .collect();
    assert_eq!(deleted, gone.iter().copied().collect());
    // The lookups were answered the variant's way, and a status, when given, is kept.
    let lookups: Vec<_> = calls(&sim)
        .await
        .into_iter()
        .filter(|c| c.method == Method::ItemList.name())
        .filter(|c| {
            param_of(c)["kwaiItemId"]
                .as_i64()
                .is_some_and(|id| gone.contains(&id))
        })
        .collect();
    assert!(!lookups.is_empty(), "the vanished items were looked up");
    let statuses: BTreeSet<Option<i64>> = rows
        .iter()
        .filter(|r| gone.contains(&r.kwai_item_id))
        .map(|r| r.item_status)
        .collect();
    use kwaishop_sim::variants::DeletedItemLookup as Lookup;
    match sim.state.config.variants.deleted_item {
        Lookup::BusinessError => {
            assert!(
                lookups.iter().all(|c| c.outcome == "business"),
                "{lookups:?}"
            )
        }
        Lookup::DeletedBySeller => assert_eq!(statuses, [Some(2)].into()),
        Lookup::DeletedByPlatform => assert_eq!(statuses, [Some(3)].into()),
        Lookup::Absent => assert!(lookups.iter().all(|c| c.records == 0)),
    }
}

#[tokio::test]
async fn items_deleted_only_after_a_complete_scan_sqlite() {
    for seed in 1..=3 {
        on_sqlite(|store| items_deleted_only_after_a_complete_scan(store, seed)).await;
    }
}

#[tokio::test]
async fn items_deleted_only_after_a_complete_scan_postgres() {
    for seed in 1..=3 {
        on_postgres(move |store| items_deleted_only_after_a_complete_scan(store, seed)).await;
    }
}

// ---------------------------------------------------------------- ties on a window edge

/// Creates `count` orders upstream that all carry `update_time`; returns their oids.
async fn tie_group(sim: &SimHandle, count: usize, update_time: i64) -> Vec<i64> {
    let answer = admin(
        sim,
        &format!("ties?shop=0&count={count}&update_time={update_time}"),
    )
    .await;
    let oids: Vec<i64> = answer["oids"]
        .as_array()
        .expect("oids")
        .iter()
        .map(|v| v.as_i64().expect("oid"))
        .collect();
    assert_eq!(oids.len(), count);
    oids
}

/// The (beginTime, endTime) of every order-list call the simulator answered.
async fn order_windows_read(sim: &SimHandle) -> BTreeSet<(i64, i64)> {
    order_pages_read(sim).await.into_keys().collect()
}

/// How many order-list pages the simulator answered for each (beginTime, endTime).
async fn order_pages_read(sim: &SimHandle) -> BTreeMap<(i64, i64), usize> {
    let mut pages = BTreeMap::new();
    for c in calls(sim)
        .await
        .iter()
        .filter(|c| c.method == Method::OrderCursorList.name() && c.outcome == "ok")
    {
        let p = param_of(c);
        let window = (
            p["beginTime"].as_i64().expect("b"),
            p["endTime"].as_i64().expect("e"),
        );
        *pages.entry(window).or_default() += 1;
    }
    pages
}

async fn assert_all_mirrored(app: &App, groups: &[(&str, &[i64])]) {
    let mirrored: BTreeSet<i64> = app
        .store
        .order_rows("shop-0")
        .await
        .expect("rows")
        .iter()
        .map(|r| r.oid)
        .collect();
    for (edge, oids) in groups {
        let missing = oids.iter().filter(|o| !mirrored.contains(o)).count();
        assert_eq!(
            missing,
            0,
            "{missing} of {} orders tied on {edge} were not mirrored",
            oids.len()
        );
    }
}

/// Groups of 300 orders sharing one `updateTime` (six pages of ties) sit exactly on the edges of
/// windows the client reads: the boundary between two backfill windows (one window's end, the
/// next one's begin), and, once caught up, the next poll's begin (checkpoint − lookback) and end
/// (now − settle). The simulator's clock stands still, so the instant each run plans from is
/// known; the windows are those of the design, and the call log proves they were the ones read.
/// `concurrency` windows side by side (1: one after the other).
async fn ties_on_window_edges(store: Store, concurrency: u32) {
    let sim = start_sim_stopped(SimConfig {
        seed: 9,
        orders: 2_000,
        days: 30,
        mutate: false,
        variants: variants(2),
        latency: if concurrency > 1 {
            fifty_ms()
        } else {
            Default::default()
        },
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |c| {
        c.sync.backfill_days = 30;
        c.sync.concurrency = concurrency;
    })
    .await;
    let cfg = &app.config.orders;
    let (mut width, lookback, settle) = (
        cfg.window.as_millis() as i64,
        cfg.lookback.as_millis() as i64,
        cfg.settle.as_millis() as i64,
    );
    // The backfill's windows: from 30 days back, each `width` wide and starting a lookback
    // before the previous one's end, up to now − settle. Side by side, they are planned as
    // readers free up, each sized from the density the windows before it found; the first
    // `concurrency / 4` are planned at once, before any is read, each a quarter of the range's
    // share per reader (not narrower than four lookbacks and a minute).
    let now = sim.state.clock.now_ms();
    if concurrency > 1 {
        let span = now - settle - (now - 30 * DAY_MS);
        let blind = span / (4 * i64::from(concurrency));
        width = blind.clamp(4 * lookback + 60_000, width.max(4 * lookback + 60_000));
    }
    let mut windows = vec![];
    let mut begin = now - 30 * DAY_MS;
    loop {
        let end = (begin + width).min(now - settle);
        windows.push((begin, end));
        if end >= now - settle || (concurrency > 1 && windows.len() == concurrency as usize / 4) {
            break;
        }
        begin = end - lookback;
    }
    // One after the other every window is known; side by side the blind ones (two of eight).
    assert!(windows.len() >= 2, "{windows:?}");
    // A boundary inside the 30 days of history.
    let k = windows.len() / 2;
    let (left, right) = (windows[k - 1], windows[k]);
    assert!(left.1 > now - 30 * DAY_MS && right.0 > now - 30 * DAY_MS);
    let left_end = tie_group(&sim, 300, left.1).await;
    let right_begin = tie_group(&sim, 300, right.0).await;
    assert_caught_up(&sync_all(&app).await);
    assert_all_mirrored(
        &app,
        &[
            ("a backfill window's end", &left_end),
            ("the next backfill window's begin", &right_begin),
        ],
    )
    .await;
    let read = order_windows_read(&sim).await;
    for w in &windows {
        assert!(read.contains(w), "the backfill read {read:?}, not {w:?}");
    }

    // Caught up; an hour later the next poll reads [checkpoint − lookback, now − settle].
    let checkpoint = app
        .store
        .load_state("shop-0", Stream::Orders)
        .await
        .expect("state")
        .expect("state")
        .checkpoint_ms
        .expect("checkpoint");
    assert_eq!(checkpoint, now - settle);
    sim.state.clock.advance(3_600_000);
    let later = sim.state.clock.now_ms();
    let next = (checkpoint - lookback, later - settle);
    let at_begin = tie_group(&sim, 300, next.0).await;
    let at_end = tie_group(&sim, 300, next.1).await;
    assert_caught_up(&sync_all(&app).await);
    // Checked right after the run that read them: no later window's lookback hides a miss.
    assert_all_mirrored(
        &app,
        &[
            ("the poll's begin (checkpoint − lookback)", &at_begin),
            ("the poll's end (now − settle)", &at_end),
        ],
    )
    .await;
    assert!(
        order_windows_read(&sim).await.contains(&next),
        "the poll read the window {next:?}"
    );
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
}

#[tokio::test]
async fn ties_on_window_edges_sqlite() {
    on_sqlite(|store| ties_on_window_edges(store, 1)).await;
}

#[tokio::test]
async fn ties_on_window_edges_side_by_side_sqlite() {
    on_sqlite(|store| ties_on_window_edges(store, 8)).await;
}

#[tokio::test]
async fn ties_on_window_edges_postgres() {
    on_postgres(|store| ties_on_window_edges(store, 1)).await;
}

#[tokio::test]
async fn ties_on_window_edges_side_by_side_postgres() {
    on_postgres(|store| ties_on_window_edges(store, 8)).await;
}

// ---------------------------------------------------------------- stale pages

async fn a_stale_page_never_replaces_newer_rows(store: Store) {
    let sim = start_sim(SimConfig {
        seed: 4,
        orders: 1_000,
        days: 10,
        mutate: false,
        variants: variants(3),
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |_| {}).await;
    assert_caught_up(&sync_all(&app).await);
    // Five orders change again; the next list pages will serve their previous versions.
    let stale: Value = admin(&sim, "stale?shop=0&count=5").await;
    let oids: Vec<i64> = stale["oids"]
        .as_array()
        .expect("oids")
        .iter()
        .map(|v| v.as_i64().expect("oid"))
        .collect();
    assert_eq!(oids.len(), 5);
    // The newer versions arrive first, by detail (as a push would fetch them).
    for oid in &oids {
        let order = app
            .client
            .order_detail("shop-0", *oid)
            .await
            .expect("detail");
        app.store
            .upsert_orders("shop-0", &[order], Source::Detail, app.clock.now_ms())
            .await
            .expect("upsert");
    }
    let newer: BTreeMap<i64, i64> = app
        .store
        .order_rows("shop-0")
        .await
        .expect("rows")
        .iter()
        .filter(|r| oids.contains(&r.oid))
        .map(|r| (r.oid, r.update_time))
        .collect();
    sim.state.clock.advance(2 * 60_000);
    assert_caught_up(&sync_all(&app).await);
    assert!(
        sim.state.stale_orders.lock().expect("lock").is_empty(),
        "the stale versions were served"
    );
    let after: BTreeMap<i64, i64> = app
        .store
        .order_rows("shop-0")
        .await
        .expect("rows")
        .iter()
        .filter(|r| oids.contains(&r.oid))
        .map(|r| (r.oid, r.update_time))
        .collect();
    assert_eq!(after, newer, "a stale page replaced newer rows");
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
}

#[tokio::test]
async fn a_stale_page_never_replaces_newer_rows_sqlite() {
    on_sqlite(a_stale_page_never_replaces_newer_rows).await;
}

#[tokio::test]
async fn a_stale_page_never_replaces_newer_rows_postgres() {
    on_postgres(a_stale_page_never_replaces_newer_rows).await;
}

// ---------------------------------------------------------------- pacing at the limit

fn param_of(call: &kwaishop_sim::CallRecord) -> Value {
    serde_json::from_str(call.param.as_deref().unwrap_or("{}")).expect("param JSON")
}

/// The fewest calls a stream can make over `[start, stop]`: the platform's widest windows
/// (`width`), each starting a lookback before the previous one's end as the design requires, one
/// call per page of the records the truth holds in it and one per empty window.
fn fewest_calls(
    times: &[i64],
    (start, stop): (i64, i64),
    width: i64,
    lookback: i64,
    page: usize,
) -> usize {
    let mut calls = 0;
    let mut begin = start;
    loop {
        let end = (begin + width).min(stop);
        let n = times.iter().filter(|t| (begin..=end).contains(*t)).count();
        calls += n.div_ceil(page).max(1);
        if end >= stop {
            return calls;
        }
        begin = end - lookback;
    }
}

/// The calls over wall time of one method, from its first call to its last.
fn rate_of(log: &[kwaishop_sim::CallRecord], method: Method) -> f64 {
    let times: Vec<i64> = log
        .iter()
        .filter(|c| c.method == method.name())
        .map(|c| c.wall_ms)
        .collect();
    let span = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
    (times.len().saturating_sub(1)) as f64 / (span.max(1) as f64 / 1_000.0)
}

/// At 20 QPS on both sides the backfill gets no throttled answer and makes at most 5 % more calls
/// than the fewest possible, computed from the truth and the platform's widest windows (not from
/// the windows the client chose). The rate each list reached is printed, not asserted: a floor on
/// it would be a timed assertion; the backfill benchmark measures it against the limit.
async fn pacing_at_the_limit(store: Store) {
    let sim = start_sim_stopped(SimConfig {
        seed: 21,
        orders: 5_000,
        days: 60,
        qps: Some(20.0),
        mutate: false,
        variants: variants(1),
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |c| {
        c.limits.qps = Method::ALL.iter().map(|m| (*m, 20.0)).collect();
        c.sync.backfill_days = 60;
    })
    .await;
    // The clock stands still: the run's start instant is this one.
    let now = sim.state.clock.now_ms();
    assert_caught_up(&sync_all(&app).await);
    let log = calls(&sim).await;
    assert_eq!(
        log.iter().filter(|c| c.outcome == "throttled").count(),
        0,
        "throttled at the limit"
    );
    let truth = truth(&sim).await;
    let shop = &truth["shops"][0];
    let times = |list: &str, path: &[&str]| -> Vec<i64> {
        shop[list]
            .as_array()
            .expect("list")
            .iter()
            .map(|d| path.iter().fold(d, |v, p| &v[p]).as_i64().expect("a time"))
            .collect()
    };
    let (orders, refunds) = (&app.config.orders, &app.config.refunds);
    let ms = |d: Duration| d.as_millis() as i64;
    let start = now - 60 * DAY_MS;
    let minimum = fewest_calls(
        &times("orders", &["orderBaseInfo", "updateTime"]),
        (start, now - ms(orders.settle)),
        7 * DAY_MS,
        ms(orders.lookback),
        50,
    ) + fewest_calls(
        &times("refunds", &["updateTime"]),
        (start, now - ms(refunds.settle)),
        sim.state.config.refund_window_ms,
        ms(refunds.lookback),
        100,
    ) + shop["items"]
        .as_array()
        .expect("items")
        .len()
        .div_ceil(100)
        .max(1);
    let made = log
        .iter()
        .filter(|c| Method::from_name(&c.method).is_some())
        .count();
    eprintln!("{made} calls, minimum {minimum}");
    assert!(
        made as f64 <= minimum as f64 * 1.05,
        "{made} calls for a minimum of {minimum}"
    );
    for method in [Method::OrderCursorList, Method::RefundList] {
        eprintln!("{}: {:.1} calls/s", method.name(), rate_of(&log, method));
    }
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
}

#[tokio::test]
async fn pacing_at_the_limit_sqlite() {
    on_sqlite(pacing_at_the_limit).await;
}

#[tokio::test]
async fn pacing_at_the_limit_postgres() {
    on_postgres(pacing_at_the_limit).await;
}

/// The distance a real shop is from the platform, as the issue on side-by-side windows asks its
/// correctness tests to run at (with 8 windows at once): the window-edge ties, the quota pause
/// and the deep reconcile.
fn fifty_ms() -> kwaishop_sim::Latency {
    kwaishop_sim::Latency {
        base: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
    }
}

// ---------------------------------------------------------------- the daily quota

async fn quota_pauses_and_resumes_from_the_cursor(store: Store) {
    let sim = start_sim(SimConfig {
        seed: 13,
        orders: 20_000,
        days: 60,
        daily_quota: Some(300),
        mutate: false,
        variants: variants(2),
        latency: fifty_ms(),
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |c| c.sync.concurrency = 8).await;
    let first = sync_all(&app).await;
    let until = next_beijing_midnight(sim.state.clock.now_ms());
    assert!(
        first
            .iter()
            .any(|s| s.outcome == RunOutcome::Paused { until_ms: until }),
        "{first:?}"
    );
    let log = calls(&sim).await;
    let first_quota = log
        .iter()
        .position(|c| c.outcome == "quota_exhausted")
        .expect("a quota answer");
    let after = log[first_quota + 1..]
        .iter()
        .filter(|c| Method::from_name(&c.method).is_some())
        .count();
    // Calls already on their way when the first quota answer came back (one per window read
    // side by side), and no more.
    let at_once = app.config.sync.concurrency as usize;
    assert!(
        after <= at_once + 3,
        "{after} calls after the first quota answer"
    );
    // `status` says until when.
    let report = kwaishop_sync::commands::status::report_of(&app).await;
    let streams: Vec<_> = report.shops.iter().flat_map(|s| &s.streams).collect();
    assert!(
        streams.iter().any(|l| l.paused_until_ms == Some(until)),
        "{streams:?}"
    );
    let text = kwaishop_sync::commands::status::render(&report);
    assert!(text.contains("paused: daily quota spent until"), "{text}");
    // The same day, nothing is sent.
    let before = calls(&sim).await.len();
    sync_all(&app).await;
    assert_eq!(calls(&sim).await.len(), before, "no calls while paused");

    // After Beijing midnight, every window that was being read resumes exactly where the
    // simulator's last answer for it before the pause left it: the cursor it served. A window
    // whose last page was answered is not read again. Pages are not read twice. (Several windows
    // of a stream are read side by side during a backfill: each has its own cursor.)
    let before_pause = calls(&sim).await;
    sim.state
        .clock
        .advance(until - sim.state.clock.now_ms() + 60_000);
    let resumed_from = before_pause.len();
    assert_caught_up(&sync_all(&app).await);
    let log = calls(&sim).await;
    for method in [Method::OrderCursorList, Method::RefundList] {
        let is_orders = method == Method::OrderCursorList;
        let cursor_key = if is_orders { "cursor" } else { "pcursor" };
        let window_of = |c: &kwaishop_sim::CallRecord| {
            let p = param_of(c);
            (
                p["beginTime"].as_i64().expect("b"),
                p["endTime"].as_i64().expect("e"),
            )
        };
        // The cursor each window was last served before the pause; an empty window may end
        // with an empty cursor (a platform variant) instead of "nomore".
        let mut served: BTreeMap<(i64, i64), String> = BTreeMap::new();
        for c in before_pause
            .iter()
            .filter(|c| c.method == method.name() && c.outcome == "ok")
        {
            let cursor = c.next_cursor.clone().expect("a served cursor");
            let ended = cursor == "nomore" || (cursor.trim().is_empty() && c.records == 0);
            served.insert(
                window_of(c),
                if ended { "nomore".to_string() } else { cursor },
            );
        }
        assert!(
            !served.is_empty(),
            "{} answered before the pause",
            method.name()
        );
        // A window shared out by its first page (see the next test) is read as pieces from
        // its start instead, each with a cursor of its own.
        let shared_out = |w: &(i64, i64)| {
            log.iter()
                .filter(|c| c.method == method.name())
                .map(window_of)
                .any(|(begin, end)| begin == w.0 && end < w.1)
        };
        let mut resumed = 0;
        for (window, cursor) in &served {
            let first_after = log[resumed_from..]
                .iter()
                .find(|c| c.method == method.name() && window_of(c) == *window);
            match first_after {
                None if shared_out(window) => {}
                None => assert_eq!(
                    cursor,
                    "nomore",
                    "{} window {window:?} was left unfinished",
                    method.name()
                ),
                Some(c) => {
                    assert_ne!(
                        cursor,
                        "nomore",
                        "{} window {window:?} was read again after its last page",
                        method.name()
                    );
                    assert_eq!(
                        param_of(c)[cursor_key].as_str(),
                        Some(cursor.as_str()),
                        "{} window {window:?} resumed from the cursor the simulator served last",
                        method.name()
                    );
                    resumed += 1;
                }
            }
        }
        eprintln!(
            "{}: {resumed} window(s) resumed from their cursor",
            method.name()
        );
    }
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
}

#[tokio::test]
async fn quota_pauses_and_resumes_from_the_cursor_sqlite() {
    on_sqlite(quota_pauses_and_resumes_from_the_cursor).await;
}

#[tokio::test]
async fn quota_pauses_and_resumes_from_the_cursor_postgres() {
    on_postgres(quota_pauses_and_resumes_from_the_cursor).await;
}

// ---------------------------------------------------------------- a window denser than planned

/// The backfill's first windows are planned before anything is known: the empty months before
/// the shop opened (eight days ago) widen each next one four times, up to a week, and a week
/// reaches into its busy days, where one holds hundreds of pages. Read one after the other they
/// kept a 50 ms backfill going alone for most of its time. Each such window is shared out after
/// its first page: the call log shows a window read for one page and then, from the same
/// start, as pieces within it, none of which holds more than the planner's largest windows;
/// the mirror equals the truth.
async fn a_window_denser_than_planned_is_shared_out(store: Store) {
    let sim = start_sim(SimConfig {
        seed: 19,
        orders: 20_000,
        days: 8,
        mutate: false,
        variants: variants(0),
        latency: fifty_ms(),
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |c| c.sync.concurrency = 8).await;
    assert_caught_up(&sync_all(&app).await);
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
    let pages = order_pages_read(&sim).await;
    let shared: Vec<_> = pages
        .iter()
        .filter(|((begin, end), n)| **n == 1 && pages.keys().any(|(b, e)| b == begin && e < end))
        .collect();
    assert!(!shared.is_empty(), "no window was shared out: {pages:?}");
    for ((begin, end), _) in &shared {
        let pieces: Vec<_> = pages
            .iter()
            .filter(|((b, e), _)| b >= begin && e <= end && (b, e) != (begin, end))
            .collect();
        assert!(pieces.len() >= 2, "{pieces:?}");
        assert!(pieces.iter().any(|((_, e), _)| e == end), "{pieces:?}");
    }
    let most = pages.values().max().copied().unwrap_or(0);
    assert!(most <= 120, "a window was read for {most} pages: {pages:?}");
}

#[tokio::test]
async fn a_window_denser_than_planned_is_shared_out_sqlite() {
    on_sqlite(a_window_denser_than_planned_is_shared_out).await;
}

#[tokio::test]
async fn a_window_denser_than_planned_is_shared_out_postgres() {
    on_postgres(a_window_denser_than_planned_is_shared_out).await;
}

// ---------------------------------------------------------------- one call in five fails

async fn twenty_percent_failures(store: Store) {
    let faults = FaultConfig {
        error_5xx: 0.05,
        timeout: 0.04,
        throttle: 0.05,
        cut: 0.03,
        slow: 0.03,
        timeout_ms: 2_000,
        slow_ms: 100,
        ..Default::default()
    };
    let sim = start_sim(SimConfig {
        seed: 17,
        orders: 5_000,
        days: 60,
        faults,
        mutate: false,
        variants: variants(0),
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |c| {
        c.retry.max_attempts = 10;
        c.platform.timeout = Duration::from_millis(800);
    })
    .await;
    assert_caught_up(&sync_all(&app).await);
    let log = calls(&sim).await;
    let failed = log.iter().filter(|c| c.outcome != "ok").count();
    assert!(
        failed as f64 >= log.len() as f64 * 0.12,
        "{failed} of {} calls failed",
        log.len()
    );
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
}

#[tokio::test]
async fn twenty_percent_failures_sqlite() {
    on_sqlite(twenty_percent_failures).await;
}

#[tokio::test]
async fn twenty_percent_failures_postgres() {
    on_postgres(twenty_percent_failures).await;
}

/// With 5 % faults, the last windows of a backfill waited out throttled answers and timeouts
/// one after the other while every other reader had nothing left to read: the run took 2.3
/// times as long as without faults. A window whose reader waits at the end of the range longer
/// than reading it again takes is read again in pieces. Throttled answers here wait ten minutes
/// before their retry: the backfill finishes all the same, long before any of those waits would
/// have ended, and the mirror equals the truth.
async fn a_window_waiting_out_a_throttle_at_the_end_is_read_again(store: Store) {
    let sim = start_sim(SimConfig {
        seed: 23,
        orders: 3_000,
        days: 60,
        mutate: false,
        variants: variants(0),
        latency: fifty_ms(),
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |c| {
        c.sync.concurrency = 8;
        c.retry.throttled_delay = Duration::from_secs(600);
        c.retry.max_delay = Duration::from_secs(1_200);
    })
    .await;
    let items = sync_with(
        &app,
        &[Stream::Items],
        Arc::new(NoProgress),
        CancellationToken::new(),
    );
    assert_caught_up(&items.await);
    let throttled = FaultConfig {
        throttle: 0.05,
        ..Default::default()
    };
    *sim.state.faults.write().expect("faults") = throttled;
    let streams = [Stream::Orders, Stream::Refunds];
    let run = sync_with(
        &app,
        &streams,
        Arc::new(NoProgress),
        CancellationToken::new(),
    );
    let summaries = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the backfill waited out a throttled answer");
    assert_caught_up(&summaries);
    let log = calls(&sim).await;
    let answered = log.iter().filter(|c| c.outcome == "throttled").count();
    assert!(answered >= 2, "{answered} throttled answers");
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
}

#[tokio::test]
async fn a_window_waiting_out_a_throttle_at_the_end_is_read_again_sqlite() {
    on_sqlite(a_window_waiting_out_a_throttle_at_the_end_is_read_again).await;
}

#[tokio::test]
async fn a_window_waiting_out_a_throttle_at_the_end_is_read_again_postgres() {
    on_postgres(a_window_waiting_out_a_throttle_at_the_end_is_read_again).await;
}

// ---------------------------------------------------------------- poison records

/// The main orders of shop 0 in the simulator's truth, by oid.
async fn truth_oids(sim: &SimHandle) -> Vec<(i64, i64)> {
    let truth = truth(sim).await;
    let mut oids: Vec<(i64, i64)> = truth["shops"][0]["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            let base = &o["orderBaseInfo"];
            let t = base["updateTime"].as_i64().unwrap_or(i64::MAX);
            (t, base["oid"].as_i64().expect("oid"))
        })
        .collect();
    oids.sort_unstable();
    oids
}

/// What two backends must agree on, per stored order row.
type Agreed = Vec<(i64, Option<String>, Option<String>, i64, String)>;

/// 20 orders carry a U+0000 in their remark and item title, and one order in the middle of the
/// history cannot be read. Each store mirrors the other 1,999 orders (the 20 with the character
/// dropped from their text, as on every backend), quarantines the one with its JSON and error,
/// and its checkpoint moves past it; `status` counts it. Repaired upstream, a retry stores it.
/// With two stores (SQLite and Postgres) the two mirrors agree row for row.
async fn poison_records_fail_alone(stores: Vec<Store>) {
    let sim = start_sim(SimConfig {
        seed: 23,
        orders: 2_000,
        days: 30,
        mutate: false,
        variants: variants(3),
        ..SimConfig::default()
    })
    .await;
    let nul = admin(&sim, "nul?shop=0&count=20").await;
    let nul_oids: Vec<i64> = nul["oids"]
        .as_array()
        .expect("oids")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert_eq!(nul_oids.len(), 20);
    let by_time = truth_oids(&sim).await;
    let (victim_time, victim) = by_time[by_time.len() / 2];
    assert!(!nul_oids.contains(&victim));
    admin(&sim, &format!("corrupt?shop=0&oid={victim}&in_place=true")).await;
    sim.state.clock.advance(2 * 60_000);
    let truth_set: BTreeSet<i64> = by_time.iter().map(|(_, oid)| *oid).collect();

    let mut agreed: Vec<Agreed> = Vec::new();
    let mut apps = Vec::new();
    for store in stores {
        let backend = format!("{:?}", store.backend());
        let app = app_for(&sim, store, |_| {}).await;
        assert_caught_up(&sync_all(&app).await);
        // The one unreadable order is quarantined, with its JSON and why.
        let quarantined = app.store.quarantined(None).await.expect("quarantine");
        assert_eq!(quarantined.len(), 1, "{backend}: {quarantined:?}");
        let q = &quarantined[0];
        assert_eq!(
            (q.shop_id.as_str(), q.stream, q.record_key.clone(), q.has_id),
            ("shop-0", Stream::Orders, victim.to_string(), true)
        );
        assert!(q.error.contains("updateTime"), "{}", q.error);
        assert!(q.raw.contains(&format!("not-a-time-{victim_time}")));
        // Every other order is mirrored: the rest of its page and every later page.
        let rows = app.store.order_rows("shop-0").await.expect("rows");
        let mirrored: BTreeSet<i64> = rows
            .iter()
            .filter(|r| r.parent_oid.is_none())
            .map(|r| r.oid)
            .collect();
        let mut want = truth_set.clone();
        want.remove(&victim);
        assert_eq!(mirrored, want, "{backend}: the mirrored orders");
        let state = app
            .store
            .load_state("shop-0", Stream::Orders)
            .await
            .expect("state")
            .expect("state");
        assert!(
            state.checkpoint_ms.is_some_and(|c| c > victim_time),
            "{backend}: the checkpoint moved past the quarantined order"
        );
        // The text with U+0000 is stored without it; the raw JSON keeps the escape.
        for oid in &nul_oids {
            let row = rows.iter().find(|r| r.oid == *oid).expect("a NUL order");
            let remark = row.remark.as_deref().unwrap_or("");
            assert_eq!(remark, format!("gift wrapplease {oid}"), "{backend}");
            assert!(!row.item_title.as_deref().unwrap_or("").contains('\0'));
            assert!(
                row.raw.contains("\\u0000"),
                "{backend}: raw keeps the escape"
            );
        }
        let report = kwaishop_sync::commands::status::report_of(&app).await;
        let orders_line = report
            .shops
            .iter()
            .filter(|s| s.shop_id == "shop-0")
            .flat_map(|s| &s.streams)
            .find(|l| l.stream == "orders")
            .expect("orders line");
        assert_eq!(orders_line.quarantined, 1);
        assert!(
            kwaishop_sync::commands::status::render(&report).contains("1 record(s) in quarantine")
        );
        // … and so do /metrics and the status page, over HTTP.
        let sources = kwaishop_sync::daemon::observe::ObserveSources {
            store: app.store.clone(),
            client: Some(app.client.clone()),
            clock: app.clock.clone(),
            daily_quota: None,
            worker: None,
            receiver: None,
            liveness: Arc::new(kwaishop_sync::daemon::observe::Liveness::new()),
            stalls: kwaishop_sync::sync::StallLimits::from_config(&app.config),
            row_counts: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let routes = kwaishop_sync::daemon::observe::routes(sources);
        tokio::spawn(async move { axum::serve(listener, routes).await });
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(
            metrics.contains(r#"kwaishop_sync_quarantined{shop="shop-0",stream="orders"} 1"#),
            "{backend}: {metrics}"
        );
        let page = reqwest::get(format!("{base}/"))
            .await
            .expect("page")
            .text()
            .await
            .expect("text");
        assert!(page.contains("1 quarantined"), "{backend}: the status page");
        agreed.push(
            rows.iter()
                .map(|r| {
                    (
                        r.oid,
                        r.remark.clone(),
                        r.item_title.clone(),
                        r.update_time,
                        r.raw.clone(),
                    )
                })
                .collect(),
        );
        apps.push(app);
    }
    if let [a, b] = agreed.as_slice() {
        assert_eq!(a.len(), b.len(), "SQLite and Postgres hold as many rows");
        assert!(a == b, "SQLite and Postgres agree row for row");
    }

    // Still broken upstream, a retry keeps it, with the new error; repaired, it is stored.
    for app in &apps {
        let row = app.store.quarantined(None).await.expect("q").remove(0);
        let again = kwaishop_sync::commands::quarantine::retry_one(app, &row)
            .await
            .expect("retry");
        assert!(
            matches!(
                again,
                kwaishop_sync::commands::quarantine::RetryOutcome::Kept(_)
            ),
            "{again:?}"
        );
        let row = app.store.quarantined(None).await.expect("q").remove(0);
        assert_eq!(row.times_seen, 2);
    }
    admin(
        &sim,
        &format!("corrupt?shop=0&oid={victim}&undo=true&in_place=true"),
    )
    .await;
    for app in &apps {
        let row = app.store.quarantined(None).await.expect("q").remove(0);
        let outcome = kwaishop_sync::commands::quarantine::retry_one(app, &row)
            .await
            .expect("retry");
        assert_eq!(
            outcome,
            kwaishop_sync::commands::quarantine::RetryOutcome::Stored
        );
        assert!(app.store.quarantined(None).await.expect("q").is_empty());
        assert_mirror_equals_truth(&app.store, &sim, 0).await;
    }
}

#[tokio::test]
async fn poison_records_fail_alone_sqlite() {
    on_sqlite(|store| poison_records_fail_alone(vec![store])).await;
}

/// Postgres alone, then beside a SQLite file fed by the same simulator: the two agree.
#[tokio::test]
async fn poison_records_fail_alone_postgres_and_sqlite_agree() {
    on_postgres(|pg| async move {
        let (lite, _dir) = crate::common_db::sqlite_store().await;
        poison_records_fail_alone(vec![pg, lite.clone()]).await;
        lite.close().await;
    })
    .await;
}

/// The database refuses one order (a trigger stands in for a value it cannot hold): that order
/// is quarantined with the database's error, the rest of its page and every later page are
/// mirrored, and once the database takes it, a retry stores it. On Postgres the refusal carries
/// SQLSTATE 22021, the code of a U+0000 in text, which is all digits and must not be mistaken
/// for a passing SQLite "busy" (that would retry the page for ever).
async fn a_record_the_database_refuses_fails_alone(store: Store, url: String) {
    let sim = start_sim(SimConfig {
        seed: 31,
        orders: 600,
        days: 20,
        mutate: false,
        variants: variants(1),
        ..SimConfig::default()
    })
    .await;
    let by_time = truth_oids(&sim).await;
    let (_, victim) = by_time[by_time.len() / 2];
    let sqlite = url.starts_with("sqlite:");
    if sqlite {
        common_db::execute(
            &url,
            &format!(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON orders WHEN NEW.oid = {victim} \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            ),
        )
        .await;
    } else {
        common_db::execute(
            &url,
            &format!(
                "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN \
                 IF NEW.oid = {victim} THEN RAISE EXCEPTION 'refused by the test' \
                 USING ERRCODE = '22021'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            ),
        )
        .await;
        common_db::execute(
            &url,
            "CREATE TRIGGER refuse_one BEFORE INSERT ON orders \
             FOR EACH ROW EXECUTE FUNCTION refuse_one()",
        )
        .await;
    }
    let app = app_for(&sim, store, |_| {}).await;
    assert_caught_up(&sync_all(&app).await);
    let quarantined = app.store.quarantined(None).await.expect("quarantine");
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].record_key, victim.to_string());
    assert!(
        quarantined[0].error.contains("the database refused it")
            && quarantined[0].error.contains("refused by the test"),
        "{}",
        quarantined[0].error
    );
    let mirrored: BTreeSet<i64> = app
        .store
        .order_rows("shop-0")
        .await
        .expect("rows")
        .iter()
        .filter(|r| r.parent_oid.is_none())
        .map(|r| r.oid)
        .collect();
    let mut want: BTreeSet<i64> = by_time.iter().map(|(_, oid)| *oid).collect();
    want.remove(&victim);
    assert_eq!(mirrored, want);
    // Postgres names the trigger's table; SQLite does not.
    let drop = if sqlite {
        "DROP TRIGGER refuse_one"
    } else {
        "DROP TRIGGER refuse_one ON orders"
    };
    common_db::execute(&url, drop).await;
    let row = app.store.quarantined(None).await.expect("q").remove(0);
    let outcome = kwaishop_sync::commands::quarantine::retry_one(&app, &row)
        .await
        .expect("retry");
    assert_eq!(
        outcome,
        kwaishop_sync::commands::quarantine::RetryOutcome::Stored
    );
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
}

#[tokio::test]
async fn a_record_the_database_refuses_fails_alone_sqlite() {
    common_db::on_sqlite_with_url(a_record_the_database_refuses_fails_alone).await;
}

#[tokio::test]
async fn a_record_the_database_refuses_fails_alone_postgres() {
    common_db::on_postgres_with_url(a_record_the_database_refuses_fails_alone).await;
}

#[allow(dead_code)]
async fn debug_diff(store: &Store, sim: &SimHandle) {
    let d = diff_mirror(store, sim, 0).await;
    eprintln!("{:?}", d.problems);
}

// ---------------------------------------------------------------- the deep reconcile

async fn the_deep_reconcile_heals_a_gap_without_moving_the_checkpoint(store: Store) {
    let sim = start_sim(SimConfig {
        seed: 29,
        orders: 4_000,
        days: 30,
        mutate: false,
        variants: variants(1),
        latency: fifty_ms(),
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |c| c.sync.concurrency = 8).await;
    assert_caught_up(&sync_all(&app).await);
    // A day of changes happens upstream, then the live checkpoints jump past it, as if those
    // updates had been lost (a missed push, a platform hiccup).
    admin(&sim, "mutation?on=true").await;
    sim.state.clock.advance(DAY_MS);
    admin(&sim, "mutation?now=true").await;
    let_settle(&sim).await;
    let now = sim.state.clock.now_ms();
    for stream in [Stream::Orders, Stream::Refunds] {
        let mut state = app
            .store
            .load_state("shop-0", stream)
            .await
            .expect("state")
            .expect("state");
        state.checkpoint_ms = Some(now - 60_000);
        app.store.save_state(&state).await.expect("save");
    }
    assert_caught_up(&sync_all(&app).await);
    let gap = diff_mirror(&app.store, &sim, 0).await;
    assert!(
        !gap.problems.is_empty(),
        "the skipped day left the mirror behind"
    );
    let checkpoints = |store: Store| async move {
        let mut out = Vec::new();
        for stream in [Stream::Orders, Stream::Refunds] {
            out.push(
                store
                    .load_state("shop-0", stream)
                    .await
                    .expect("state")
                    .and_then(|s| s.checkpoint_ms),
            );
        }
        out
    };
    let before = checkpoints(app.store.clone()).await;
    let cx = app.sync_context();
    cx.request_reconcile("shop-0", 7).await.expect("request");
    // Asking twice merges into the waiting request.
    cx.request_reconcile("shop-0", 7).await.expect("request");
    assert_eq!(
        app.store.open_resyncs().await.expect("open").len(),
        2,
        "one request per stream"
    );
    // Some answers are internal timeouts, read again: a run makes more calls than it commits
    // pages.
    let calls_before = calls(&sim).await.len();
    if let Ok(mut faults) = sim.state.faults.write() {
        faults.internal_timeout = 0.2;
    }
    let done = cx
        .run_open_resyncs(None, &NoProgress, &CancellationToken::new())
        .await
        .expect("resyncs");
    assert!(
        done.iter().all(|(_, o)| *o == RunOutcome::CaughtUp),
        "{done:?}"
    );
    assert!(app.store.open_resyncs().await.expect("open").is_empty());
    if let Ok(mut faults) = sim.state.faults.write() {
        faults.internal_timeout = 0.0;
    }
    // The run log records the list calls the reconcile made, as the platform counted them.
    let lists = [
        "open.order.cursor.list",
        "open.seller.order.refund.pcursor.list",
    ];
    let made = calls(&sim).await[calls_before..]
        .iter()
        .filter(|c| lists.contains(&c.method.as_str()))
        .count() as i64;
    let runs = app
        .store
        .recent_runs(Some("shop-0"), 10)
        .await
        .expect("runs");
    let logged: Vec<(i64, i64)> = runs
        .iter()
        .filter(|r| r.kind == RunKind::Reconcile)
        .map(|r| (r.pages, r.calls))
        .collect();
    assert_eq!(logged.len(), 2, "{runs:?}");
    assert_eq!(logged.iter().map(|l| l.1).sum::<i64>(), made, "{logged:?}");
    assert_eq!(
        checkpoints(app.store.clone()).await,
        before,
        "the reconcile does not move the live checkpoints"
    );
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
}

#[tokio::test]
async fn the_deep_reconcile_heals_a_gap_sqlite() {
    on_sqlite(the_deep_reconcile_heals_a_gap_without_moving_the_checkpoint).await;
}

#[tokio::test]
async fn the_deep_reconcile_heals_a_gap_postgres() {
    on_postgres(the_deep_reconcile_heals_a_gap_without_moving_the_checkpoint).await;
}

// ---------------------------------------------------------------- empty windows, packages, pages

/// The platform may answer a window with no record by an empty cursor or `data: null` instead of
/// `nomore` (docs/platform-variants.md): either way the window ends and the checkpoint moves.
async fn empty_windows_end_however_answered(store: Store, empty: EmptyWindow) {
    let sim = start_sim(SimConfig {
        seed: 41,
        orders: 400,
        days: 4,
        mutate: false,
        variants: PlatformVariants {
            empty_window: empty,
            ..PlatformVariants::default()
        },
        ..SimConfig::default()
    })
    .await;
    // 30 days of backfill over 4 days of history: the first windows hold nothing.
    let app = app_for(&sim, store, |c| c.sync.backfill_days = 30).await;
    let now = sim.state.clock.now_ms();
    assert_caught_up(&sync_all(&app).await);
    for (stream, method) in [
        (Stream::Orders, Method::OrderCursorList),
        (Stream::Refunds, Method::RefundList),
    ] {
        let checkpoint = app
            .store
            .load_state("shop-0", stream)
            .await
            .expect("state")
            .and_then(|s| s.checkpoint_ms)
            .expect("a checkpoint");
        assert!(
            checkpoint > now - 10 * 60_000,
            "{stream:?} caught up to {checkpoint}"
        );
        let empty_answers = calls(&sim)
            .await
            .into_iter()
            .filter(|c| c.method == method.name() && c.outcome == "ok" && c.records == 0)
            .filter(|c| c.next_cursor.as_deref() == Some(""))
            .count();
        assert!(
            empty_answers >= 3,
            "{} empty windows answered {empty:?}",
            method.name()
        );
    }
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
}

#[tokio::test]
async fn empty_windows_answered_with_an_empty_cursor_or_null_sqlite() {
    for empty in [EmptyWindow::EmptyCursor, EmptyWindow::NullData] {
        on_sqlite(|store| empty_windows_end_however_answered(store, empty)).await;
    }
}

#[tokio::test]
async fn empty_windows_answered_with_an_empty_cursor_or_null_postgres() {
    for empty in [EmptyWindow::EmptyCursor, EmptyWindow::NullData] {
        on_postgres(move |store| empty_windows_end_however_answered(store, empty)).await;
    }
}

/// An order shipped in several packages keeps every one of them, queryable in SQL.
async fn every_package_is_kept(store: Store, url: String) {
    let sim = start_sim(SimConfig {
        seed: 43,
        orders: 600,
        days: 10,
        mutate: false,
        variants: PlatformVariants {
            packages: Packages::Several,
            express_code: ExpressCode::Text,
            ..PlatformVariants::default()
        },
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |_| {}).await;
    assert_caught_up(&sync_all(&app).await);
    // The comparison covers the package list of every order and gift.
    assert_mirror_equals_truth(&app.store, &sim, 0).await;
    let truth = shop_truth(&sim, 0).await;
    let several: BTreeMap<i64, usize> = truth["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter_map(|o| {
            let n = o["orderLogisticsInfo"].as_array().map_or(0, Vec::len);
            (n >= 2).then(|| (o["orderBaseInfo"]["oid"].as_i64().expect("oid"), n))
        })
        .collect();
    assert!(
        several.len() >= 10,
        "{} orders with several packages",
        several.len()
    );
    let rows: BTreeMap<i64, usize> = app
        .store
        .order_rows("shop-0")
        .await
        .expect("rows")
        .iter()
        .filter(|r| several.contains_key(&r.oid))
        .map(|r| {
            let packages: Value = serde_json::from_str(&r.packages).expect("a JSON array");
            (r.oid, packages.as_array().map_or(0, Vec::len))
        })
        .collect();
    assert_eq!(rows, several, "every package of every order");
    // Queryable: one row per package, in SQL.
    let sql = if url.starts_with("sqlite:") {
        "SELECT COUNT(*) FROM orders o, json_each(o.packages) p WHERE o.shop_id = 'shop-0'"
    } else {
        "SELECT COUNT(*) FROM orders o, jsonb_array_elements(o.packages::jsonb) p \
         WHERE o.shop_id = 'shop-0'"
    };
    let counted = common_db::fetch_i64(&url, sql).await;
    let expected: i64 = truth["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            let own = o["orderLogisticsInfo"].as_array().map_or(0, Vec::len);
            let gifts: usize = o["subOrderInfo"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| g["subOrderLogisticsInfo"].as_array().map_or(0, Vec::len))
                .sum();
            (own + gifts) as i64
        })
        .sum();
    assert_eq!(counted, expected, "packages counted in SQL");
}

#[tokio::test]
async fn a_multi_package_order_keeps_every_package_sqlite() {
    common_db::on_sqlite_with_url(every_package_is_kept).await;
}

#[tokio::test]
async fn a_multi_package_order_keeps_every_package_postgres() {
    common_db::on_postgres_with_url(every_package_is_kept).await;
}

/// Items whose pages are too large for the client to read (long descriptions) are read again in
/// smaller pages, and the scan completes.
async fn an_item_page_too_large_is_read_in_smaller_pages(store: Store) {
    let sim = start_sim(SimConfig {
        seed: 47,
        orders: 200,
        items: Some(250),
        mutate: false,
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |_| {}).await;
    // A page of 100 items is larger than this, a page of 50 is not.
    let opts = kwaishop_sync::api::ClientOptions {
        max_body_bytes: 100 * 1024,
        ..kwaishop_sync::app::client_options(&app.config)
    };
    let cx = kwaishop_sync::sync::SyncContext {
        client: kwaishop_sync::api::ApiClient::new(
            common::app(&sim),
            opts,
            sim.state.clock.clone(),
            Arc::new(app.store.clone()),
            Arc::new(app.store.clone()),
        )
        .expect("client"),
        ..app.sync_context()
    };
    let run = cx
        .sync_stream(
            "shop-0",
            Stream::Items,
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(run.outcome, RunOutcome::CaughtUp, "{run:?}");
    let sizes: BTreeSet<i64> = calls(&sim)
        .await
        .iter()
        .filter(|c| c.method == Method::ItemList.name())
        .map(|c| param_of(c)["pageSize"].as_i64().expect("pageSize"))
        .collect();
    assert!(
        sizes.len() >= 2 && sizes.iter().any(|s| *s < 100),
        "page sizes {sizes:?}"
    );
    let mirrored: BTreeSet<i64> = app
        .store
        .item_rows("shop-0")
        .await
        .expect("rows")
        .iter()
        .map(|r| r.kwai_item_id)
        .collect();
    let upstream: BTreeSet<i64> = shop_truth(&sim, 0).await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["kwaiItemId"].as_i64().expect("id"))
        .collect();
    assert_eq!(upstream.len(), 250);
    assert_eq!(mirrored, upstream, "every item, read in smaller pages");
}

#[tokio::test]
async fn an_item_page_too_large_is_read_in_smaller_pages_sqlite() {
    on_sqlite(an_item_page_too_large_is_read_in_smaller_pages).await;
}

#[tokio::test]
async fn an_item_page_too_large_is_read_in_smaller_pages_postgres() {
    on_postgres(an_item_page_too_large_is_read_in_smaller_pages).await;
}

// ---------------------------------------------------------------- a stored window too wide

/// A window stored in progress under a wider setting (the platform answered 300019, the user
/// lowered `window_minutes`) is planned again at the new width, not sent again as it was.
async fn a_stored_window_wider_than_the_config_is_planned_again(store: Store) {
    let sim = start_sim_stopped(SimConfig {
        seed: 44,
        orders: 2_000,
        days: 6,
        mutate: false,
        variants: variants(2),
        ..SimConfig::default()
    })
    .await;
    let width_ms = 60 * 60_000;
    let app = app_for(&sim, store, |c| {
        c.sync.backfill_days = 7;
        c.refunds.window = Duration::from_millis(width_ms as u64);
    })
    .await;
    let now = sim.state.clock.now_ms();
    // The state a one-day window left behind, half read, three days ago.
    let begin = now - 3 * DAY_MS;
    let mut state = app
        .store
        .load_state("shop-0", Stream::Refunds)
        .await
        .expect("state")
        .unwrap_or_else(|| kwaishop_sync::store::StreamState::new("shop-0", Stream::Refunds));
    state.checkpoint_ms = Some(begin + 600_000);
    state.window_begin_ms = Some(begin);
    state.window_end_ms = Some(begin + DAY_MS);
    state.cursor = None;
    state.updated_at_ms = now;
    app.store.save_state(&state).await.expect("saved");
    sim.state.clock.advance(2 * 60_000);
    let summaries = sync_with(
        &app,
        &[Stream::Refunds],
        Arc::new(NoProgress),
        CancellationToken::new(),
    )
    .await;
    assert_caught_up(&summaries);
    let widths: Vec<i64> = calls(&sim)
        .await
        .iter()
        .filter(|c| c.method == Method::RefundList.name())
        .map(|c| {
            let p = param_of(c);
            p["endTime"].as_i64().expect("end") - p["beginTime"].as_i64().expect("begin")
        })
        .collect();
    assert!(!widths.is_empty(), "the refunds were read");
    assert!(
        widths.iter().all(|w| *w <= width_ms),
        "a window wider than the configured {width_ms} ms was sent: {:?}",
        widths.iter().filter(|w| **w > width_ms).collect::<Vec<_>>()
    );
    let state = app
        .store
        .load_state("shop-0", Stream::Refunds)
        .await
        .expect("state")
        .expect("a state");
    assert!(
        state.checkpoint_ms.is_some_and(|c| c > now - 10 * 60_000),
        "the stream caught up: {state:?}"
    );
}

#[tokio::test]
async fn a_stored_window_wider_than_the_config_is_planned_again_sqlite() {
    on_sqlite(a_stored_window_wider_than_the_config_is_planned_again).await;
}

#[tokio::test]
async fn a_stored_window_wider_than_the_config_is_planned_again_postgres() {
    on_postgres(a_stored_window_wider_than_the_config_is_planned_again).await;
}

// ---------------------------------------------------------------- a resync that cannot succeed

/// A resync whose window trips a defence (here: more pages than `max_pages_per_window`) would
/// trip it again on every run: it ends `failed` with the message, and is not re-run.
async fn a_resync_that_trips_a_defence_ends_failed(store: Store) {
    let sim = start_sim_stopped(SimConfig {
        seed: 46,
        orders: 600,
        days: 3,
        mutate: false,
        variants: variants(1),
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store, |c| {
        c.sync.backfill_days = 4;
        c.sync.max_pages_per_window = 1;
    })
    .await;
    sim.state.clock.advance(2 * 60_000);
    let cx = app.sync_context();
    cx.request_reconcile("shop-0", 3).await.expect("request");
    let first = cx
        .run_open_resyncs(None, &NoProgress, &CancellationToken::new())
        .await
        .expect("resyncs");
    assert!(
        first
            .iter()
            .any(|(_, o)| matches!(o, RunOutcome::Failed { .. })),
        "{first:?}"
    );
    assert!(
        app.store.open_resyncs().await.expect("open").is_empty(),
        "no request is left to run again"
    );
    let calls_before = calls(&sim).await.len();
    let again = cx
        .run_open_resyncs(None, &NoProgress, &CancellationToken::new())
        .await
        .expect("resyncs");
    assert!(again.is_empty(), "nothing ran again: {again:?}");
    assert_eq!(calls(&sim).await.len(), calls_before, "no call was made");
}

#[tokio::test]
async fn a_resync_that_trips_a_defence_ends_failed_sqlite() {
    on_sqlite(a_resync_that_trips_a_defence_ends_failed).await;
}

#[tokio::test]
async fn a_resync_that_trips_a_defence_ends_failed_postgres() {
    on_postgres(a_resync_that_trips_a_defence_ends_failed).await;
}

// ---------------------------------------------------------------- the same failure, run after run

/// A window the platform refuses the same way at every run (here a refund window wider than
/// the platform's day, set past the config check): `status` shows the platform's code and
/// message with how many runs in a row ended so; a success clears the count.
async fn a_window_failing_the_same_way_shows_the_code_and_the_count(store: Store) {
    let sim = start_sim_stopped(SimConfig {
        seed: 47,
        orders: 300,
        days: 3,
        mutate: false,
        variants: variants(0),
        ..SimConfig::default()
    })
    .await;
    // One window at a time: side by side the range would be shared out into windows narrow
    // enough for the platform, and no window would fail.
    let mut app = app_for(&sim, store, |c| {
        c.sync.backfill_days = 4;
        c.sync.concurrency = 1;
        c.refunds.window = Duration::from_secs(2 * 86_400);
    })
    .await;
    sim.state.clock.advance(2 * 60_000);
    for _ in 0..3 {
        let runs = sync_with(
            &app,
            &[Stream::Refunds],
            Arc::new(NoProgress),
            CancellationToken::new(),
        )
        .await;
        assert!(
            matches!(runs[0].outcome, RunOutcome::Failed { .. }),
            "{runs:?}"
        );
    }
    let refused = calls(&sim)
        .await
        .into_iter()
        .rfind(|c| c.method == Method::RefundList.name())
        .expect("a refund call");
    let code = refused
        .sub_code
        .clone()
        .or(refused.code.clone())
        .expect("a code");
    let report = kwaishop_sync::commands::status::report_of(&app).await;
    let line = report.shops[0]
        .streams
        .iter()
        .find(|l| l.stream == "refunds")
        .expect("refunds");
    assert_eq!(line.failures_in_row, 3, "{line:?}");
    let text = kwaishop_sync::commands::status::render(&report);
    assert!(
        text.contains("last error, 3 runs in a row:") && text.contains(&code),
        "status names the platform's code {code}:\n{text}"
    );
    // A workable window: caught up, the count is gone.
    let mut config = (*app.config).clone();
    config.refunds.window = Duration::from_secs(86_400);
    app.config = Arc::new(config);
    assert_caught_up(
        &sync_with(
            &app,
            &[Stream::Refunds],
            Arc::new(NoProgress),
            CancellationToken::new(),
        )
        .await,
    );
    let state = app
        .store
        .load_state("shop-0", Stream::Refunds)
        .await
        .expect("state")
        .expect("a state");
    assert_eq!((state.failures_in_row, state.last_error), (0, None));
}

#[tokio::test]
async fn a_window_failing_the_same_way_shows_the_code_and_the_count_sqlite() {
    on_sqlite(a_window_failing_the_same_way_shows_the_code_and_the_count).await;
}

#[tokio::test]
async fn a_window_failing_the_same_way_shows_the_code_and_the_count_postgres() {
    on_postgres(a_window_failing_the_same_way_shows_the_code_and_the_count).await;
}
