//! The status page in a real browser: a simulator synced into a real database (SQLite, and
//! Postgres when `KWAISHOP_TEST_PG_URL` is set), a daemon serving the page on loopback, headless
//! Chromium reading it. Every figure the page shows is compared with plain SQL over the same
//! database, `/status.json` is compared with the page, no secret shows on either, and a
//! screenshot is saved under `target/`.
//!
//! Chromium comes from Debian's `chromium` package (`scripts/install-chromium.sh`, which CI
//! runs). Without it the test says it was skipped, except under CI, where it fails.

use crate::common;
use crate::common_db;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{start_sim, wait_until};
use common_db::{on_postgres_with_url, on_sqlite_with_url};
use kwaishop_sim::faults::FaultConfig;
use kwaishop_sim::{SimConfig, SimHandle};
use kwaishop_sync::api::Method;
use kwaishop_sync::app::App;
use kwaishop_sync::clock::{HOUR_MS, beijing_day, hour_start};
use kwaishop_sync::commands::sync::sync_once;
use kwaishop_sync::daemon::{self, DaemonHandle};
use kwaishop_sync::queue::WorkerSettings;
use kwaishop_sync::store::{EventKind, NewEvent, Store, Stream};
use kwaishop_sync::sync::{NoProgress, RunOutcome};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, FromRow, PgPool, SqlitePool};
use tokio_util::sync::CancellationToken;

const DAILY_QUOTA: u64 = 5_000;
const TABLES: [&str; 4] = ["orders", "refunds", "items", "skus"];
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The browser.

/// Debian's Chromium, or `None` (the caller skips, or fails under CI).
fn chromium() -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.exists() {
        return Some(fixed.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// Whether the test can run; panics under CI when Chromium is missing.
fn browser_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed: CI must run scripts/install-chromium.sh before the tests"
        );
        eprintln!("skipped: chromium not installed (scripts/install-chromium.sh installs it)");
    }
    found
}

/// Runs headless Chromium with a fresh profile on `url` with `args`; returns its stdout.
async fn run_chromium(browser: &Path, url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut command = tokio::process::Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Chromium talks a lot on stderr (D-Bus, GPU); only its answer matters.
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, command.output())
        .await
        .expect("chromium finishes within 60 s")
        .expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the DOM is UTF-8")
}

/// The page as Chromium built it.
async fn dump_dom(browser: &Path, url: &str) -> Dom {
    Dom(run_chromium(browser, url, &["--dump-dom"]).await)
}

/// Saves a screenshot at `path` and checks it is a PNG of some substance.
async fn screenshot(browser: &Path, url: &str, path: &Path) {
    let _ = std::fs::remove_file(path);
    let arg = format!("--screenshot={}", path.display());
    run_chromium(browser, url, &[&arg, "--window-size=1280,1600"]).await;
    let png = std::fs::read(path).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
    println!("status page screenshot: {}", path.display());
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

// ---------------------------------------------------------------------------------------------
// Reading the page's hooks.

struct Dom(String);

impl Dom {
    /// The opening tag carrying `data-k="key"` and the text right after it.
    fn hook(&self, key: &str) -> (&str, &str) {
        let needle = format!("data-k=\"{key}\"");
        let mut found = self.0.match_indices(&needle);
        let (at, _) = found
            .next()
            .unwrap_or_else(|| panic!("no {needle} on the page"));
        assert!(found.next().is_none(), "{needle} twice on the page");
        let open = self.0[..at].rfind('<').expect("a tag");
        let close = at + self.0[at..].find('>').expect("the tag ends");
        let text_end = close + self.0[close..].find('<').unwrap_or(self.0.len() - close);
        (&self.0[open..=close], self.0[close + 1..text_end].trim())
    }

    fn text(&self, key: &str) -> &str {
        self.hook(key).1
    }

    /// The number shown (`1,234` reads 1234).
    fn number(&self, key: &str) -> i64 {
        let text = self.text(key).replace(',', "");
        text.parse()
            .unwrap_or_else(|_| panic!("{key}: {text:?} is not a number"))
    }

    /// The hook's `data-ms`.
    fn ms(&self, key: &str) -> i64 {
        let (tag, _) = self.hook(key);
        let value = tag
            .split("data-ms=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("{key}: no data-ms in {tag}"));
        value.parse().expect("data-ms is a number")
    }

    /// How many hooks start with `prefix`.
    fn count(&self, prefix: &str) -> usize {
        self.0.matches(&format!("data-k=\"{prefix}")).count()
    }
}

/// `2024-05-01 08:30:00` in China time, computed here independently of the page's code.
fn china(ms: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("an instant")
        .with_timezone(&offset)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Plain SQL over the same database, without the store.

enum Sql {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Sql {
    async fn connect(url: &str) -> Sql {
        if url.starts_with("sqlite:") {
            Sql::Sqlite(SqlitePool::connect(url).await.expect("open SQLite"))
        } else {
            Sql::Postgres(PgPool::connect(url).await.expect("connect Postgres"))
        }
    }

    /// Every row of `sql` (test values are written into the text: they are ours).
    async fn rows<T>(&self, sql: String) -> Vec<T>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let rows = match self {
            Sql::Sqlite(pool) => {
                sqlx::query_as(AssertSqlSafe(sql.clone()))
                    .fetch_all(pool)
                    .await
            }
            Sql::Postgres(pool) => {
                sqlx::query_as(AssertSqlSafe(sql.clone()))
                    .fetch_all(pool)
                    .await
            }
        };
        rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The one integer `sql` answers (`None` for NULL or no row).
    async fn int(&self, sql: String) -> Option<i64> {
        let rows: Vec<(Option<i64>,)> = self.rows(sql).await;
        rows.first().and_then(|r| r.0)
    }

    async fn close(self) {
        match self {
            Sql::Sqlite(pool) => pool.close().await,
            Sql::Postgres(pool) => pool.close().await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The system under test.

fn sim_config() -> SimConfig {
    SimConfig {
        seed: 21,
        shops: 2,
        days: 10,
        orders: 400,
        mutate: false,
        // Some answers fail (and are retried), so the page has failures to show.
        faults: FaultConfig {
            error_5xx: 0.04,
            throttle: 0.04,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    }
}

/// The app of a kwaishop-sync syncing `sim` into `store` on the simulator's clock, with a
/// daily quota and test-speed retries.
fn event(id: &str, shop: Option<&str>, oid: i64, received_at_ms: i64) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        msg_id: None,
        app_key: "app".into(),
        shop_id: shop.map(Into::into),
        open_id: None,
        user_id: None,
        event: "kwaishop_order_statusChange".into(),
        kind: EventKind::Order,
        biz_id: Some(oid),
        info: "{}".into(),
        raw: "{}".into(),
        event_update_time: None,
        received_at_ms,
    }
}

/// Push events for the worker: three real orders (done), two unknown to the platform (dead
/// after one attempt), one due tomorrow (pending), one for an unknown shop.
async fn enqueue_events(app: &App, sql: &Sql) {
    let now = app.clock.now_ms();
    let oids: Vec<(i64,)> = sql
        .rows("SELECT oid FROM orders WHERE shop_id = 'shop-0' ORDER BY oid LIMIT 3".into())
        .await;
    let mut events: Vec<NewEvent> = oids
        .iter()
        .map(|(oid,)| event(&format!("real-{oid}"), Some("shop-0"), *oid, now))
        .collect();
    events.push(event("gone-1", Some("shop-1"), 1, now));
    events.push(event("gone-2", Some("shop-1"), 2, now));
    events.push(event("later", Some("shop-0"), 4, now + 86_400_000));
    events.push(event("stranger", None, 3, now));
    app.store.enqueue_events(&events).await.expect("enqueue");
}

/// Answers the client has counted since it started, all shops and methods together.
fn answers(app: &App) -> i64 {
    app.client.call_counts().iter().map(|c| c.3 as i64).sum()
}

async fn stored_answers(sql: &Sql) -> i64 {
    sql.int("SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM api_calls".into())
        .await
        .unwrap_or(0)
}

async fn start_daemon(app: &App) -> DaemonHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let settings = WorkerSettings {
        max_attempts: 1,
        retry_base: Duration::from_millis(10),
        idle_wait: Duration::from_millis(50),
        ..WorkerSettings::default()
    };
    daemon::start(app.clone(), Some(listener), settings)
        .await
        .expect("the daemon starts")
}

// ---------------------------------------------------------------------------------------------
// The test.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_shows_the_database_on_sqlite() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    on_sqlite_with_url(|store, url| async move {
        let png = target_dir().join("status-page.png");
        status_page_shows_the_database(store, url, browser, png).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_shows_the_database_on_postgres() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    on_postgres_with_url(|store, url| async move {
        let png = target_dir().join("status-page-postgres.png");
        status_page_shows_the_database(store, url, browser, png).await;
    })
    .await;
}

async fn status_page_shows_the_database(store: Store, url: String, browser: PathBuf, png: PathBuf) {
    let sim = start_sim(sim_config()).await;
    let app = common::app_for(&sim, store, |c| c.limits.daily_quota = Some(DAILY_QUOTA)).await;
    let sql = Sql::connect(&url).await;
    let shops = app.shops(None).expect("shops");
    let summaries = sync_once(
        &app,
        &shops,
        &Stream::ALL,
        Arc::new(NoProgress),
        CancellationToken::new(),
    )
    .await;
    for s in &summaries {
        assert_eq!(
            s.outcome,
            RunOutcome::CaughtUp,
            "{} {}",
            s.shop_id,
            s.stream
        );
    }
    assert_eq!(
        stored_answers(&sql).await,
        answers(&app),
        "sync_once wrote every answer it counted"
    );

    let daemon = start_daemon(&app).await;
    enqueue_events(&app, &sql).await;
    wait_until(Duration::from_secs(30), "the worker to finish", || async {
        let open = "SELECT COUNT(*) FROM events WHERE status = 'running' \
             OR (status = 'pending' AND event_id <> 'later')";
        sql.int(open.into()).await == Some(0)
    })
    .await;
    // The flush loop writes the worker's answers within 10 s; after that nothing calls.
    wait_until(
        Duration::from_secs(30),
        "the worker's calls in api_calls",
        || async { stored_answers(&sql).await == answers(&app) },
    )
    .await;

    let addr = daemon.http_addr.expect("the daemon listens");
    let page_url = format!("http://{addr}/");
    let dom = dump_dom(&browser, &page_url).await;
    check_page(&dom, &sql, &app).await;
    let json = status_json(&format!("http://{addr}/status.json")).await;
    check_json(&json, &dom);
    for secret in secrets(&sim) {
        assert!(!dom.0.contains(&secret), "a secret on the page");
        assert!(
            !json.to_string().contains(&secret),
            "a secret in status.json"
        );
    }
    screenshot(&browser, &page_url, &png).await;

    // The last answers are written when the daemon stops.
    app.client
        .item_page("shop-0", 1, 10)
        .await
        .expect("an item page");
    daemon.stop().await;
    assert_eq!(
        stored_answers(&sql).await,
        answers(&app),
        "the daemon's stop wrote the last counts"
    );
    sql.close().await;
    sim.stop().await;
}

async fn status_json(url: &str) -> serde_json::Value {
    let answer = reqwest::get(url).await.expect("status.json answers");
    assert_eq!(answer.status(), 200);
    answer.json().await.expect("status.json is JSON")
}

/// `/status.json` says what the page says.
fn check_json(json: &serde_json::Value, dom: &Dom) {
    let int = |v: &serde_json::Value| v.as_i64().expect("a number");
    // A later request: only the time moved on.
    assert!(int(&json["generated_at_ms"]) >= dom.ms("generated-at"));
    assert_eq!(int(&json["queue"]["dead"]), dom.number("queue.dead"));
    let total = &json["api_calls"]["total"];
    assert_eq!(int(&total["calls"]), dom.number("api.total.calls"));
    assert_eq!(int(&total["ok"]), dom.number("api.total.ok"));
    let shops = json["shops"].as_array().expect("shops");
    assert_eq!(shops.len(), 2);
    for shop in shops {
        let id = shop["shop_id"].as_str().expect("an id");
        for table in TABLES {
            let rows = int(&shop["rows"][table]);
            assert_eq!(
                rows,
                dom.number(&format!("rows.{id}.{table}")),
                "{id} {table}"
            );
        }
        assert_eq!(
            int(&shop["calls_today"]),
            dom.number(&format!("quota.{id}"))
        );
    }
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(6));
}

/// Everything secret the simulator handed out.
fn secrets(sim: &SimHandle) -> Vec<String> {
    let c = sim.credentials();
    let mut out = vec![
        c.app_secret.clone(),
        c.sign_secret.clone(),
        c.msg_secret.clone(),
    ];
    for shop in &c.shops {
        out.push(shop.access_token.clone());
        out.push(shop.refresh_token.clone());
    }
    out
}

/// Every figure on the page against the database.
async fn check_page(dom: &Dom, sql: &Sql, app: &App) {
    let html = &dom.0;
    assert!(
        html.contains("<meta http-equiv=\"refresh\" content=\"15\">"),
        "the page refreshes itself"
    );
    for external in ["://", "src=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(external), "the page holds {external:?}");
    }
    let now = dom.ms("generated-at");
    assert_eq!(dom.text("generated-at"), china(now));
    let app_now = app.clock.now_ms();
    assert!(
        (app_now - 60_000..=app_now).contains(&now),
        "the app clock's now"
    );

    let shops: Vec<(String,)> = sql
        .rows("SELECT shop_id FROM shops ORDER BY shop_id".into())
        .await;
    assert_eq!(shops.len(), 2);
    for (shop,) in &shops {
        check_shop(dom, sql, shop, now).await;
    }
    check_queue(dom, sql).await;
    check_api_calls(dom, sql, now).await;
    check_runs(dom, sql).await;
}

async fn check_shop(dom: &Dom, sql: &Sql, shop: &str, now: i64) {
    for table in TABLES {
        let count = format!("SELECT COUNT(*) FROM {table} WHERE shop_id = '{shop}'");
        let rows = sql.int(count).await.expect("a count");
        assert!(rows > 0, "{shop} has {table}");
        assert_eq!(
            dom.number(&format!("rows.{shop}.{table}")),
            rows,
            "{shop} {table}"
        );
    }
    for stream in Stream::ALL {
        let checkpoint = format!(
            "SELECT checkpoint_ms FROM sync_state WHERE shop_id = '{shop}' AND stream = '{stream}'"
        );
        let checkpoint = sql.int(checkpoint).await.expect("a checkpoint");
        let key = format!("checkpoint.{shop}.{stream}");
        assert_eq!(dom.ms(&key), checkpoint, "{key}");
        assert_eq!(dom.text(&key), china(checkpoint), "{key}");
        let lag = format!("lag.{shop}.{stream}");
        assert_eq!(dom.ms(&lag), now - checkpoint, "{lag}");
    }
    let used = format!(
        "SELECT CAST(SUM(calls) AS BIGINT) FROM api_usage WHERE shop_id = '{shop}' AND day = {}",
        beijing_day(now)
    );
    let used = sql.int(used).await.expect("calls today");
    assert_eq!(dom.number(&format!("quota.{shop}")), used, "{shop} quota");
    let limit = dom.number(&format!("quota-limit.{shop}"));
    assert_eq!(limit, DAILY_QUOTA as i64, "the configured quota");
    let expiry =
        |column: &str| format!("SELECT {column} FROM oauth_tokens WHERE shop_id = '{shop}'");
    let access = sql.int(expiry("access_expires_at")).await.expect("a token");
    assert_eq!(dom.ms(&format!("access-expiry.{shop}")), access);
    let refresh = sql
        .int(expiry("refresh_expires_at"))
        .await
        .expect("a token");
    assert_eq!(dom.ms(&format!("refresh-expiry.{shop}")), refresh);
}

async fn check_queue(dom: &Dom, sql: &Sql) {
    let count = |status: &str| format!("SELECT COUNT(*) FROM events WHERE status = '{status}'");
    let mut depth = 0;
    for (status, want) in [
        ("pending", 1),
        ("running", 0),
        ("dead", 2),
        ("unknown_shop", 1),
        ("done", 3),
    ] {
        let n = sql.int(count(status)).await.expect("a count");
        assert_eq!(n, want, "{status} events in the database");
        assert_eq!(dom.number(&format!("queue.{status}")), n, "queue.{status}");
        if status == "pending" || status == "running" {
            depth += n;
        }
    }
    assert_eq!(dom.number("queue.depth"), depth);
}

async fn check_api_calls(dom: &Dom, sql: &Sql, now: i64) {
    let since = dom.ms("api.since");
    assert_eq!(since, hour_start(now) - 23 * HOUR_MS, "the last 24 hours");
    let rows: Vec<(String, String, i64)> = sql
        .rows(format!(
            "SELECT method, outcome, CAST(SUM(calls) AS BIGINT) FROM api_calls \
             WHERE hour_ms >= {since} GROUP BY method, outcome"
        ))
        .await;
    let sum = |method: Option<&str>, ok: Option<bool>| -> i64 {
        rows.iter()
            .filter(|r| method.is_none_or(|m| r.0 == m))
            .filter(|r| ok.is_none_or(|ok| (r.1 == "ok") == ok))
            .map(|r| r.2)
            .sum()
    };
    assert!(
        sum(None, Some(false)) > 0,
        "the faults made some calls fail: {rows:?}"
    );
    for method in Method::ALL {
        let name = method.name();
        let key = |what: &str| format!("api.{name}.{what}");
        assert_eq!(dom.number(&key("calls")), sum(Some(name), None), "{name}");
        assert_eq!(
            dom.number(&key("ok")),
            sum(Some(name), Some(true)),
            "{name}"
        );
        assert_eq!(
            dom.number(&key("failed")),
            sum(Some(name), Some(false)),
            "{name}"
        );
    }
    assert_eq!(dom.number("api.total.calls"), sum(None, None));
    assert_eq!(dom.number("api.total.ok"), sum(None, Some(true)));
    assert_eq!(dom.number("api.total.failed"), sum(None, Some(false)));
    let rate = 100.0 * sum(None, Some(true)) as f64 / sum(None, None) as f64;
    let shown: f64 = dom
        .text("api.total.rate")
        .trim_end_matches('%')
        .parse()
        .expect("a percentage");
    assert!(
        (shown - rate).abs() <= 0.05,
        "success rate {shown}% vs {rate}%"
    );
}

async fn check_runs(dom: &Dom, sql: &Sql) {
    let runs: Vec<(i64, i64, i64, Option<String>)> = sql
        .rows("SELECT id, rows, calls, outcome FROM sync_runs ORDER BY id DESC LIMIT 10".into())
        .await;
    assert_eq!(runs.len(), 6, "three streams of two shops ran");
    assert_eq!(
        dom.count("run."),
        3 * runs.len(),
        "one line per run, three hooks each"
    );
    for (id, rows, calls, outcome) in runs {
        assert_eq!(dom.number(&format!("run.{id}.rows")), rows, "run {id}");
        assert_eq!(dom.number(&format!("run.{id}.calls")), calls, "run {id}");
        assert_eq!(outcome.as_deref(), Some("caught_up"));
        assert_eq!(dom.text(&format!("run.{id}.outcome")), "caught up");
    }
}
