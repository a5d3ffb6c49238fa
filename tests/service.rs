//! The real service (`kwaishop-sync run`) against the simulator: systemd readiness, syncing and
//! pushes, a graceful SIGTERM, resync triggers (SIGUSR1, the CLI, a burst, one before a
//! SIGKILL), SIGHUP reloads, a revoked shop, and two daemons sharing one Postgres.

use crate::common;
use crate::common_db;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::mirror::diff_mirror;
use common::*;
use common_db::{on_postgres_with_url, sqlite_store};
use kwaishop_sim::{SimConfig, SimHandle};
use kwaishop_sync::clock::wall_ms;
use kwaishop_sync::commands::sim::Limits;
use kwaishop_sync::daemon::service::{Service, ServiceError, ServiceOptions};
use kwaishop_sync::push::MessageKey;
use kwaishop_sync::store::{RunKind, ShopStatus, Source, Store, Stream};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use tokio::net::UnixDatagram;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_kwaishop-sync");

/// Service settings for tests: fast schedules, a short settle delay, a short grace period.
struct Settings<'a> {
    shops: Option<usize>,
    items_schedule: &'a str,
    lease_secs: u64,
}

impl Default for Settings<'_> {
    fn default() -> Self {
        Self {
            shops: None,
            items_schedule: "*/2 * * * * *",
            lease_secs: 60,
        }
    }
}

/// Writes a service config for `sim` into `dir`; returns its path. The daemon listens on a port
/// it picks (`Daemon::http`).
fn service_config(
    sim: &SimHandle,
    dir: &Path,
    name: &str,
    db_url: &str,
    qps: Option<f64>,
    s: &Settings,
) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    kwaishop_sync::commands::sim::write_config(
        sim,
        &path,
        Some(db_url),
        Limits {
            qps,
            ..Limits::default()
        },
    )
    .expect("config");
    let mut text = std::fs::read_to_string(&path).expect("read");
    if let Some(n) = s.shops {
        // Keep only the first n [[shops]] tables.
        let mut parts: Vec<&str> = text.split("\n[[shops]]").collect();
        parts.truncate(n + 1);
        text = parts.join("\n[[shops]]");
    }
    let now = wall_ms();
    text.push_str(&format!(
        "\n[http]\nlisten = \"127.0.0.1:0\"\n\n[push]\nenabled = true\n\n[daemon]\ngrace_secs = 15\nlease_secs = {}\nstate_dir = \"{name}.state\"\n\n[retry]\ntransient_delay_ms = 50\nthrottled_delay_ms = 100\nmax_delay_ms = 1000\n\n[clock]\nspeed = 1.0\nwall_origin_ms = {now}\norigin_ms = {now}\n",
        s.lease_secs
    ));
    for (stream, schedule) in [
        ("orders", "*/2 * * * * *"),
        ("refunds", "*/2 * * * * *"),
        ("items", s.items_schedule),
    ] {
        text.push_str(&format!(
            "\n[streams.{stream}]\nschedule = \"{schedule}\"\nsettle_secs = 1\n"
        ));
    }
    std::fs::write(&path, text).expect("write");
    path
}

struct Daemon {
    child: tokio::process::Child,
    notify: Option<UnixDatagram>,
    log: PathBuf,
}

impl Daemon {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().expect("running") as i32)
    }

    fn signal(&self, s: Signal) {
        kill(self.pid(), s).expect("signal");
    }

    /// Where its HTTP server listens (on a port of its own choosing, `listen = "…:0"`), as the
    /// last daemon that wrote to its log said once it was ready.
    fn http(&self) -> String {
        let log = std::fs::read_to_string(&self.log).expect("the daemon's log");
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("HTTP server listening"))
            .unwrap_or_else(|| panic!("no listening address in the log:\n{log}"));
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap_or_else(|| panic!("no addr= in {line}"));
        format!("http://{addr}")
    }

    /// Waits for a systemd notification containing `what`.
    async fn notified(&mut self, what: &str, timeout: Duration) {
        let socket = self.notify.as_ref().expect("a notify socket");
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {what} within {timeout:?}"))
                .expect("recv");
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == what)
            {
                return;
            }
        }
    }
}

async fn spawn(config: &Path, log: &Path, args: &[&str], notify_at: Option<&Path>) -> Daemon {
    let beside = log.parent().unwrap_or(Path::new(".")).to_path_buf();
    let log_path = log.to_path_buf();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("run")
        .args(args)
        .args(["--log", binary_log_level(), "--config"])
        .arg(config);
    let stdout = binary_stdout(&beside, "service");
    cmd.stdout(stdout).stderr(log).kill_on_drop(true);
    let notify = notify_at.map(|p| {
        let _ = std::fs::remove_file(p);
        cmd.env("NOTIFY_SOCKET", p);
        UnixDatagram::bind(p).expect("notify socket")
    });
    Daemon {
        child: cmd.spawn().expect("spawn the daemon"),
        notify,
        log: log_path,
    }
}

async fn order_rows(store: &Store, shop: &str) -> usize {
    store.order_rows(shop).await.map(|r| r.len()).unwrap_or(0)
}

/// The rows the shop's truth makes: orders with their gift sub-orders, and refunds, counted in
/// the simulator's documents without parsing them (a full comparison is heavy; it runs once the
/// counts agree).
fn truth_counts(sim: &SimHandle, shop: usize) -> (i64, i64) {
    let shops = sim.state.shops.read().expect("the simulator's shops");
    let data = &shops[shop];
    let orders: usize = data
        .orders
        .iter()
        .map(|d| 1 + d.json.get().matches("\"subOrderBaseInfo\"").count())
        .sum();
    (orders as i64, data.refunds.iter().count() as i64)
}

async fn wait_for_truth(store: &Store, sim: &SimHandle, shop: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let id = shop_id(shop);
    loop {
        let mirrored = (
            store.count_rows("orders", &id).await.unwrap_or(-1),
            store.count_rows("refunds", &id).await.unwrap_or(-1),
        );
        if mirrored != truth_counts(sim, shop) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let diff = diff_mirror(store, sim, shop).await;
        if diff.problems.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "shop {shop} did not reach the truth: {:?}",
            &diff.problems[..diff.problems.len().min(3)]
        );
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
}

fn push_body(sim: &SimHandle, id: &str, oid: i64) -> String {
    let c = sim.credentials();
    let key = MessageKey::from_secret(&c.msg_secret).expect("key");
    let plain = json!({"eventId": id, "bizId": oid, "userId": c.shops[0].seller_id, "openId": c.shops[0].open_id,
        "appKey": c.app_key, "event": "kwaishop_order_paySuccess", "info": json!({"oid": oid}).to_string()});
    key.encrypt(plain.to_string().as_bytes())
}

// ---------------------------------------------------------------- lifecycle

async fn lifecycle(store: Store, db_url: String) {
    let sim = start_sim(SimConfig {
        seed: 61,
        days: 30,
        orders: 20_000,
        // Slow enough that the backfill is still under way when the SIGTERM comes, however
        // loaded the machine (at 40 calls a second a loaded CI finished it first).
        qps: Some(10.0),
        mutate: false,
        variants: variants(2),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = service_config(
        &sim,
        dir.path(),
        "life",
        &db_url,
        Some(10.0),
        &Settings::default(),
    );
    let log = binary_log(dir.path(), "service-life");
    let mut daemon = spawn(&config, &log, &[], Some(&dir.path().join("notify.sock"))).await;
    daemon.notified("READY=1", Duration::from_secs(30)).await;
    let http = daemon.http();
    // It syncs …
    wait_until(
        Duration::from_secs(60),
        "the backfill under way",
        || async { order_rows(&store, "shop-0").await >= 2_000 },
    )
    .await;
    // … and takes pushes.
    let oids: Vec<i64> = truth(&sim).await["shops"][0]["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .take(3)
        .map(|o| o["orderBaseInfo"]["oid"].as_i64().expect("oid"))
        .collect();
    for (i, oid) in oids.iter().enumerate() {
        let r = reqwest::Client::new()
            .post(format!("{http}/kwaishop/push"))
            .body(push_body(&sim, &format!("life-{i}"), *oid))
            .send()
            .await
            .expect("push");
        assert_eq!(r.text().await.expect("body"), r#"{"result":1}"#);
    }
    let health = reqwest::get(format!("{http}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    // SIGTERM in the middle of the backfill: exit 0 within the grace period.
    assert!(
        order_rows(&store, "shop-0").await < 20_000,
        "still backfilling"
    );
    let asked = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(20), daemon.child.wait())
        .await
        .expect("stopped in time")
        .expect("wait");
    assert!(
        status.success(),
        "exit status {status:?}; see {}",
        log.display()
    );
    assert!(
        asked.elapsed() <= Duration::from_secs(15),
        "took {:?}",
        asked.elapsed()
    );
    let events = store.list_events(None, 100).await.expect("events");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_id.starts_with("life-"))
            .count(),
        3,
        "the acknowledged pushes are kept"
    );
    // After a restart the mirror reaches the truth, without duplicates.
    let mut again = spawn(&config, &log, &[], Some(&dir.path().join("notify2.sock"))).await;
    again.notified("READY=1", Duration::from_secs(30)).await;
    // A one-off sync beside the daemon (here, not before the SIGTERM above, which wants the
    // backfill still under way): on SQLite it is refused and says why; on Postgres it takes
    // part (`a_one_off_sync_shares_the_budget_and_the_leases`).
    if db_url.starts_with("sqlite:") {
        let once = cli(&config, &["sync", "--once"]);
        let err = String::from_utf8_lossy(&once.stderr);
        assert!(
            !once.status.success(),
            "sync --once beside a daemon on SQLite"
        );
        assert!(
            err.contains("already running on") && err.contains("stop it before `sync --once`"),
            "{err}"
        );
    }
    wait_for_truth(&store, &sim, 0, Duration::from_secs(180)).await;
    again.signal(Signal::SIGTERM);
    assert!(again.child.wait().await.expect("wait").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_sqlite() {
    let (store, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    lifecycle(store, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_postgres() {
    on_postgres_with_url(lifecycle).await;
}

// ---------------------------------------------------------------- resync triggers

async fn resync_runs(store: &Store, stream: Stream) -> usize {
    store
        .recent_runs(Some("shop-0"), 10_000)
        .await
        .expect("runs")
        .iter()
        .filter(|r| r.kind == RunKind::Resync && r.stream == stream)
        .count()
}

async fn all_resyncs_done(store: &Store) -> bool {
    store.open_resyncs().await.expect("open").is_empty()
}

fn cli(config: &Path, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("cli");
    record_output("service-cli", &out);
    out
}

/// Orders and refunds the mirror has lost: deleted behind the store's back, as a lost write or
/// a restored backup would leave them.
struct Gap {
    oids: Vec<i64>,
    refund_ids: Vec<i64>,
}

/// Deletes every `step`-th main order (with its gifts) and refund of shop 0 last updated more than
/// an hour ago, starting at `offset`. Polling re-reads only a lookback (10 minutes) behind its
/// checkpoint, so it never brings them back; only a resync does.
async fn make_gap(store: &Store, db_url: &str, step: usize, offset: usize) -> Gap {
    let old = wall_ms() - 3_600_000;
    let oids: Vec<i64> = store
        .order_rows("shop-0")
        .await
        .expect("rows")
        .iter()
        .filter(|r| r.parent_oid.is_none() && r.update_time < old)
        .skip(offset)
        .step_by(step)
        .map(|r| r.oid)
        .collect();
    let refund_ids: Vec<i64> = store
        .refund_rows("shop-0")
        .await
        .expect("rows")
        .iter()
        .filter(|r| r.update_time < old)
        .skip(offset)
        .step_by(step)
        .map(|r| r.refund_id)
        .collect();
    assert!(
        oids.len() >= 10 && refund_ids.len() >= 3,
        "a gap worth healing"
    );
    let list = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    common_db::execute(
        db_url,
        &format!(
            "DELETE FROM orders WHERE shop_id = 'shop-0' AND (oid IN ({0}) OR parent_oid IN ({0}))",
            list(&oids)
        ),
    )
    .await;
    common_db::execute(
        db_url,
        &format!(
            "DELETE FROM refunds WHERE shop_id = 'shop-0' AND refund_id IN ({})",
            list(&refund_ids)
        ),
    )
    .await;
    Gap { oids, refund_ids }
}

/// How many of the gap's orders and refunds are back, and whether each came back by a resync.
async fn healed(store: &Store, gap: &Gap) -> (usize, usize, bool) {
    let orders = store.order_rows("shop-0").await.expect("rows");
    let refunds = store.refund_rows("shop-0").await.expect("rows");
    let back_orders: Vec<_> = orders
        .iter()
        .filter(|r| gap.oids.contains(&r.oid))
        .collect();
    let back_refunds: Vec<_> = refunds
        .iter()
        .filter(|r| gap.refund_ids.contains(&r.refund_id))
        .collect();
    let by_resync = back_orders.iter().all(|r| r.source == Source::Resync)
        && back_refunds.iter().all(|r| r.source == Source::Resync);
    (back_orders.len(), back_refunds.len(), by_resync)
}

async fn poll_runs(store: &Store, stream: Stream) -> usize {
    store
        .recent_runs(Some("shop-0"), 10_000)
        .await
        .expect("runs")
        .iter()
        .filter(|r| r.kind == RunKind::Poll && r.stream == stream)
        .count()
}

/// Waits for two more completed polls of orders and refunds, then checks that the gap is still
/// open: polling does not heal it, so whatever heals it next is the resync.
async fn polls_leave_the_gap(store: &Store, gap: &Gap) {
    let (orders, refunds) = (
        poll_runs(store, Stream::Orders).await,
        poll_runs(store, Stream::Refunds).await,
    );
    wait_until(Duration::from_secs(30), "two more polls", || async {
        poll_runs(store, Stream::Orders).await >= orders + 2
            && poll_runs(store, Stream::Refunds).await >= refunds + 2
    })
    .await;
    let (o, r, _) = healed(store, gap).await;
    assert_eq!((o, r), (0, 0), "polling alone healed part of the gap");
}

async fn wait_healed(store: &Store, gap: &Gap, orders: bool, refunds: bool, what: &str) {
    let want = (
        if orders { gap.oids.len() } else { 0 },
        if refunds { gap.refund_ids.len() } else { 0 },
    );
    wait_until(Duration::from_secs(90), what, || async {
        let (o, r, _) = healed(store, gap).await;
        (o, r) == want && all_resyncs_done(store).await
    })
    .await;
    let (_, _, by_resync) = healed(store, gap).await;
    assert!(by_resync, "{what}: the rows came back from a resync");
}

async fn resync_by_signal_by_cli_in_a_burst_and_across_a_kill(store: Store, db_url: String) {
    let sim = start_sim(SimConfig {
        seed: 63,
        days: 20,
        orders: 1_500,
        mutate: false,
        variants: variants(3),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = service_config(
        &sim,
        dir.path(),
        "resync",
        &db_url,
        None,
        &Settings::default(),
    );
    let log = binary_log(dir.path(), "service-resync");
    let mut daemon = spawn(&config, &log, &[], Some(&dir.path().join("n.sock"))).await;
    daemon.notified("READY=1", Duration::from_secs(30)).await;
    wait_for_truth(&store, &sim, 0, Duration::from_secs(60)).await;

    // SIGUSR1 with nothing waiting: one resync of every stream, which heals a gap polling leaves.
    let gap = make_gap(&store, &db_url, 7, 0).await;
    polls_leave_the_gap(&store, &gap).await;
    daemon.signal(Signal::SIGUSR1);
    wait_healed(&store, &gap, true, true, "the signalled resync").await;
    assert_eq!(
        (
            resync_runs(&store, Stream::Orders).await,
            resync_runs(&store, Stream::Refunds).await,
            resync_runs(&store, Stream::Items).await
        ),
        (1, 1, 1)
    );
    assert_eq!(
        store.recent_resyncs(100).await.expect("resyncs").len(),
        3,
        "one request per stream"
    );
    wait_for_truth(&store, &sim, 0, Duration::from_secs(30)).await;

    // The CLI: one request, one run, and it heals the orders it was asked for.
    let gap = make_gap(&store, &db_url, 7, 3).await;
    polls_leave_the_gap(&store, &gap).await;
    let out = cli(&config, &["resync", "--stream", "orders"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("woke the running daemon"));
    wait_healed(&store, &gap, true, false, "the CLI's resync").await;
    assert_eq!(resync_runs(&store, Stream::Orders).await, 2);
    let (_, refunds_back, _) = healed(&store, &gap).await;
    assert_eq!(refunds_back, 0, "an orders resync leaves refunds alone");
    let out = cli(&config, &["resync", "--stream", "refunds"]);
    assert!(out.status.success());
    wait_healed(&store, &gap, true, true, "the refunds resync").await;

    // Ten triggers within a second: one run and at most one queued.
    let before = store.recent_resyncs(1_000).await.expect("resyncs").len();
    let started = Instant::now();
    let burst: Vec<_> = (0..10)
        .map(|_| {
            std::process::Command::new(BIN)
                .args(["resync", "--stream", "orders", "--config"])
                .arg(&config)
                .stdout(binary_stdout(dir.path(), "service-burst"))
                .stderr(binary_stdout(dir.path(), "service-burst-stderr"))
                .spawn()
                .expect("cli")
        })
        .collect();
    for mut c in burst {
        assert!(c.wait().expect("wait").success());
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the burst took {:?}",
        started.elapsed()
    );
    let created = store.recent_resyncs(1_000).await.expect("resyncs").len() - before;
    assert!(
        (1..=2).contains(&created),
        "{created} requests from ten triggers"
    );
    wait_until(Duration::from_secs(60), "the burst's resyncs", || async {
        all_resyncs_done(&store).await
    })
    .await;
    let runs = resync_runs(&store, Stream::Orders).await - 2;
    assert!((1..=2).contains(&runs), "{runs} runs from ten triggers");

    // A resync requested just before a SIGKILL runs after the restart, and heals its gap.
    let gap = make_gap(&store, &db_url, 5, 1).await;
    let out = cli(&config, &["resync", "--stream", "refunds"]);
    assert!(out.status.success());
    daemon.signal(Signal::SIGKILL);
    daemon.child.wait().await.expect("reaped");
    let (_, refunds_back, _) = healed(&store, &gap).await;
    assert_eq!(refunds_back, 0, "killed before the resync ran");
    let refunds_before = resync_runs(&store, Stream::Refunds).await;
    let mut again = spawn(&config, &log, &[], Some(&dir.path().join("n2.sock"))).await;
    again.notified("READY=1", Duration::from_secs(30)).await;
    wait_until(
        Duration::from_secs(60),
        "the resync after the restart",
        || async {
            all_resyncs_done(&store).await
                && resync_runs(&store, Stream::Refunds).await > refunds_before
        },
    )
    .await;
    let (_, refunds_back, by_resync) = healed(&store, &gap).await;
    assert_eq!(refunds_back, gap.refund_ids.len(), "the refunds came back");
    assert!(by_resync);
    again.signal(Signal::SIGTERM);
    assert!(again.child.wait().await.expect("wait").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_by_signal_and_cli_heals_a_gap_sqlite() {
    let (store, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    resync_by_signal_by_cli_in_a_burst_and_across_a_kill(store, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_by_signal_and_cli_heals_a_gap_postgres() {
    on_postgres_with_url(resync_by_signal_by_cli_in_a_burst_and_across_a_kill).await;
}

// ---------------------------------------------------------------- SIGHUP, a revoked shop

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_schedule_and_shop_and_refuses_a_broken_config() {
    let sim = start_sim(SimConfig {
        seed: 65,
        shops: 3,
        days: 20,
        orders: 1_000,
        mutate: false,
        variants: variants(0),
        ..SimConfig::default()
    })
    .await;
    admin(&sim, "revoke?shop=2").await;
    let (store, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    let yearly = Settings {
        shops: Some(1),
        items_schedule: "0 0 0 1 1 *",
        ..Settings::default()
    };
    let config = service_config(&sim, dir.path(), "hup", &url, None, &yearly);
    let log = binary_log(dir.path(), "service-hup");
    let mut daemon = spawn(&config, &log, &[], Some(&dir.path().join("n.sock"))).await;
    daemon.notified("READY=1", Duration::from_secs(30)).await;
    let http = daemon.http();
    wait_for_truth(&store, &sim, 0, Duration::from_secs(60)).await;
    let item_runs = || async {
        store
            .recent_runs(Some("shop-0"), 10_000)
            .await
            .expect("runs")
            .iter()
            .filter(|r| r.stream == Stream::Items)
            .count()
    };
    let runs_before = item_runs().await;
    assert_eq!(order_rows(&store, "shop-1").await, 0);

    // The new config: every shop, and items every two seconds.
    let all = Settings::default();
    let new_config = service_config(&sim, dir.path(), "hup-new", &url, None, &all);
    let text = std::fs::read_to_string(&new_config)
        .expect("read")
        .replace(&new_config_listen(&new_config), &new_config_listen(&config))
        .replace("hup-new.state", "hup.state");
    std::fs::write(&config, text).expect("write");
    daemon.signal(Signal::SIGHUP);
    wait_until(Duration::from_secs(30), "the schedule change", || async {
        item_runs().await >= runs_before + 2
    })
    .await;
    wait_for_truth(&store, &sim, 1, Duration::from_secs(60)).await;
    // The revoked shop is marked and the others are fine.
    wait_until(
        Duration::from_secs(30),
        "shop-2 marked needs_reauth",
        || async {
            store
                .shops()
                .await
                .expect("shops")
                .iter()
                .any(|s| s.shop_id == "shop-2" && s.status == ShopStatus::NeedsReauth)
        },
    )
    .await;
    wait_for_truth(&store, &sim, 0, Duration::from_secs(30)).await;

    // The merchant authorizes again, the token is fetched by hand (the console's way) and
    // given to `auth import` while the daemon runs: the shop is active and polled at the next
    // tick (every 2 s), without a restart.
    let code = admin(&sim, "code?shop=2").await["code"]
        .as_str()
        .expect("a code")
        .to_string();
    let creds = sim.credentials();
    let token_json = reqwest::Client::new()
        .get(format!("{}/oauth2/access_token", sim.base_url()))
        .query(&[
            ("grant_type", "code"),
            ("app_id", creds.app_key.as_str()),
            ("app_secret", creds.app_secret.as_str()),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .expect("the token")
        .text()
        .await
        .expect("its JSON");
    let token_file = dir.path().join("shop-2-token.json");
    std::fs::write(&token_file, token_json).expect("write");
    let imported_at = wall_ms();
    let out = cli(
        &config,
        &[
            "auth",
            "import",
            "--shop",
            "shop-2",
            "--file",
            token_file.to_str().expect("path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(Duration::from_secs(5), "shop-2 polled again", || async {
        calls(&sim).await.iter().any(|c| {
            c.shop == Some(2)
                && c.wall_ms > imported_at
                && c.method.contains("list")
                && c.outcome == "ok"
        })
    })
    .await;
    let status = store.shop_status("shop-2").await.expect("status");
    assert_eq!(status, Some(ShopStatus::Active));
    wait_for_truth(&store, &sim, 2, Duration::from_secs(60)).await;

    // A broken config is refused; the old one keeps running.
    std::fs::write(&config, "[platform\nthis is not TOML").expect("write");
    let runs = item_runs().await;
    daemon.signal(Signal::SIGHUP);
    wait_until(
        Duration::from_secs(30),
        "runs continuing after the refused reload",
        || async { item_runs().await >= runs + 2 },
    )
    .await;
    assert!(
        daemon.child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    assert_eq!(
        reqwest::get(format!("{http}/healthz"))
            .await
            .expect("healthz")
            .status(),
        200
    );
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("the new config is refused"),
        "the refusal is logged"
    );
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.child.wait().await.expect("wait").success());
}

fn new_config_listen(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read");
    text.lines()
        .find(|l| l.starts_with("listen = "))
        .expect("listen")
        .to_string()
}

// ---------------------------------------------------------------- two daemons on one Postgres

/// The app's QPS for every method, on the simulator and in both daemons' configs: low enough that
/// the backfill is paced by the limit (not by commits), so two daemons that did not share it
/// would be throttled.
const QPS: f64 = 20.0;

/// Ok refreshes per shop in the simulator's log.
fn refreshes(log: &[kwaishop_sim::CallRecord]) -> BTreeMap<usize, usize> {
    let mut per_shop = BTreeMap::new();
    for c in log.iter().filter(|c| c.method == "oauth2/refresh_token") {
        // The one refusal allowed is of the verb (this simulator variant takes the refresh as a
        // GET only), never of the refresh token.
        if c.outcome != "ok" {
            assert_eq!(c.result, 100_200_100, "a refused refresh: {c:?}");
            continue;
        }
        *per_shop.entry(c.shop.unwrap_or(usize::MAX)).or_default() += 1;
    }
    per_shop
}

async fn two_daemons(store: Store, db_url: String) {
    let sim = start_sim(SimConfig {
        seed: 67,
        shops: 4,
        days: 30,
        orders: 4_000,
        qps: Some(QPS),
        mutate: false,
        variants: variants(1),
        // Access tokens due for refresh 10 s after they are issued (the client refreshes 5
        // minutes ahead), and a rotated refresh token refused at once: every shop's token
        // rotates several times while both daemons call for it, and a refresh with a
        // discarded token would put the shop in needs_reauth.
        lifetimes: kwaishop_sim::auth::Lifetimes {
            access_ms: 310_000,
            rotation_grace_ms: 0,
            ..Default::default()
        },
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let settings = Settings {
        lease_secs: 5,
        ..Settings::default()
    };
    // A serves shops 0 and 1; B all four, so it backfills 2 and 3 beside A (0 and 1 stay
    // leased by A) and takes 0 and 1 over when A dies.
    let half = Settings {
        shops: Some(2),
        lease_secs: 5,
        ..Settings::default()
    };
    let config_a = service_config(&sim, dir.path(), "a", &db_url, Some(QPS), &half);
    let config_b = service_config(&sim, dir.path(), "b", &db_url, Some(QPS), &settings);
    let log_a = binary_log(dir.path(), "service-a");
    let log_b = binary_log(dir.path(), "service-b");
    let mut a = spawn(&config_a, &log_a, &[], Some(&dir.path().join("a.sock"))).await;
    a.notified("READY=1", Duration::from_secs(30)).await;
    wait_until(Duration::from_secs(30), "A polling", || async {
        calls(&sim).await.iter().any(|c| c.shop == Some(1))
    })
    .await;
    let mut b = spawn(&config_b, &log_b, &[], Some(&dir.path().join("b.sock"))).await;
    b.notified("READY=1", Duration::from_secs(30)).await;
    // Side by side for a while: each has made 100 list calls.
    wait_until(Duration::from_secs(60), "both daemons polling", || async {
        let mut per_agent: BTreeMap<String, usize> = BTreeMap::new();
        for c in calls(&sim).await {
            if let (Some(agent), true) = (c.agent, c.method.contains("list")) {
                *per_agent.entry(agent).or_default() += 1;
            }
        }
        per_agent.len() >= 2 && per_agent.values().all(|n| *n >= 100)
    })
    .await;
    // Side by side while the tokens of the shops both serve rotate three times.
    wait_until(
        Duration::from_secs(90),
        "three rotations of shops 0 and 1",
        || async {
            let per_shop = refreshes(&calls(&sim).await);
            (0..2).all(|shop| per_shop.get(&shop).copied().unwrap_or(0) >= 3)
        },
    )
    .await;
    // Kill one in the middle; the other takes over its streams.
    let killed_agent = format!("-{}-", a.child.id().expect("pid"));
    a.signal(Signal::SIGKILL);
    a.child.wait().await.expect("reaped");
    let killed_at = wall_ms();
    for shop in 0..4 {
        wait_for_truth(&store, &sim, shop, Duration::from_secs(240)).await;
    }
    wait_until(
        Duration::from_secs(60),
        "three rotations of every shop",
        || async {
            let per_shop = refreshes(&calls(&sim).await);
            (0..4).all(|shop| per_shop.get(&shop).copied().unwrap_or(0) >= 3)
        },
    )
    .await;
    // No refresh was refused (`refreshes` checks each) and no shop needs authorizing again.
    let shops = store.shops().await.expect("shops");
    assert!(
        shops.iter().all(|s| s.status == ShopStatus::Active),
        "{shops:?}"
    );
    let log = calls(&sim).await;
    eprintln!("refreshes per shop: {:?}", refreshes(&log));
    // Every (shop, stream) was served.
    for shop in 0..4 {
        for method in [
            "open.order.cursor.list",
            "open.seller.order.refund.pcursor.list",
            "open.item.list.get",
        ] {
            assert!(
                log.iter()
                    .any(|c| c.shop == Some(shop) && c.method == method),
                "shop {shop} {method} never polled"
            );
        }
    }
    // The app's QPS budget is shared: the simulator throttled nothing, and no method got more
    // than its limit in any sliding second, the seconds around the join included.
    let throttled: Vec<String> = log
        .iter()
        .filter(|c| c.outcome == "throttled")
        .map(|c| {
            let agent = c.agent.as_deref().unwrap_or("");
            let who = if agent.contains(&killed_agent) {
                "A"
            } else {
                "B"
            };
            format!(
                "{} by {who} at {:+} ms from the kill",
                c.method,
                c.wall_ms - killed_at
            )
        })
        .collect();
    assert!(throttled.is_empty(), "throttled answers: {throttled:#?}");
    within_qps(&log);
    no_stream_polled_twice_at_once(&log);
    // The streams the killed daemon was reading when it died are taken over within the lease
    // (5 s) plus a tick (2 s), with a little slack.
    let from_killed = |c: &&kwaishop_sim::CallRecord| {
        c.agent
            .as_deref()
            .is_some_and(|a| a.contains(&killed_agent))
    };
    let held: BTreeSet<(usize, String)> = log
        .iter()
        .filter(from_killed)
        .filter(|c| c.wall_ms > killed_at - 2_000 && c.method.contains("list"))
        .filter_map(|c| c.shop.map(|s| (s, c.method.clone())))
        .collect();
    assert!(
        !held.is_empty(),
        "the killed daemon was reading something when it died"
    );
    for (shop, method) in &held {
        let next = log
            .iter()
            .filter(|c| {
                c.wall_ms > killed_at
                    && c.shop == Some(*shop)
                    && &c.method == method
                    && !from_killed(c)
            })
            .map(|c| c.wall_ms)
            .min()
            .unwrap_or_else(|| panic!("shop {shop} {method} was never taken over"));
        assert!(
            next - killed_at <= 10_000,
            "shop {shop} {method} taken over after {} ms",
            next - killed_at
        );
    }
    b.signal(Signal::SIGTERM);
    assert!(b.child.wait().await.expect("wait").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_one_postgres() {
    on_postgres_with_url(two_daemons).await;
}

/// No method got more than the app's limit in any sliding second of the simulator's call log.
fn within_qps(log: &[kwaishop_sim::CallRecord]) {
    let mut by_method: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for c in log.iter().filter(|c| c.method.starts_with("open.")) {
        by_method
            .entry(c.method.as_str())
            .or_default()
            .push(c.wall_ms);
    }
    for (method, mut times) in by_method {
        times.sort_unstable();
        let busiest = (0..times.len())
            .map(|i| times[i..].partition_point(|t| *t < times[i] + 1_000))
            .max()
            .unwrap_or(0);
        eprintln!("{method}: at most {busiest} calls in one second");
        assert!(
            busiest as f64 <= QPS,
            "{method}: {busiest} calls in one second"
        );
    }
}

/// No (shop, stream) was polled by two instances at once: between two calls of one instance's
/// run (less than a second apart: a run calls every ~100 ms at its share) no other instance
/// called for the same shop and list. Handing a stream over between runs is fine.
fn no_stream_polled_twice_at_once(log: &[kwaishop_sim::CallRecord]) {
    let mut by_stream: BTreeMap<(usize, &str), Vec<(i64, &str)>> = BTreeMap::new();
    for c in log.iter().filter(|c| c.method.contains("list")) {
        if let (Some(shop), Some(agent)) = (c.shop, c.agent.as_deref()) {
            by_stream
                .entry((shop, c.method.as_str()))
                .or_default()
                .push((c.wall_ms, agent));
        }
    }
    for (key, mut polled) in by_stream {
        polled.sort_unstable();
        for (i, (t, agent)) in polled.iter().enumerate() {
            let Some(next_own) = polled[i + 1..].iter().position(|(_, a)| a == agent) else {
                continue;
            };
            let (t_next, _) = polled[i + 1 + next_own];
            if let Some((t_other, other)) = polled[i + 1..i + 1 + next_own].first() {
                assert!(
                    t_next - t >= 1_000,
                    "{key:?} polled by two instances at once: {agent} at {t} and {t_next}, \
                     {other} at {t_other} between"
                );
            }
        }
    }
}

/// `sync --once` started one second after a daemon on the same Postgres: it joins the QPS
/// budget (the two never exceed the app's limit in any second, the seconds around the join
/// included), serves the shops the daemon does not, leaves the streams the daemon holds to it,
/// and the mirror reaches the truth.
async fn one_off_beside_a_daemon(store: Store, db_url: String) {
    let sim = start_sim(SimConfig {
        seed: 71,
        shops: 4,
        days: 20,
        orders: 2_000,
        qps: Some(QPS),
        mutate: false,
        variants: variants(1),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let half = Settings {
        shops: Some(2),
        lease_secs: 5,
        ..Settings::default()
    };
    let all = Settings {
        lease_secs: 5,
        ..Settings::default()
    };
    let config_a = service_config(&sim, dir.path(), "a", &db_url, Some(QPS), &half);
    let config_once = service_config(&sim, dir.path(), "once", &db_url, Some(QPS), &all);
    // The daemon in this process, stopped by the test; the one-off a process of its own.
    let a = in_process(config_a).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let once = tokio::task::spawn_blocking(move || cli(&config_once, &["sync", "--once"]))
        .await
        .expect("sync --once");
    let out = String::from_utf8_lossy(&once.stdout);
    assert!(
        once.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&once.stderr)
    );
    // Shops 2 and 3 are the one-off's alone; 0 and 1 are served by whoever holds them.
    for line in out.lines().filter(|l| l.starts_with("shop-")) {
        let theirs = line.starts_with("shop-0") || line.starts_with("shop-1");
        assert!(
            line.contains("caught up") || (theirs && line.contains("skipped")),
            "{line}"
        );
    }
    let log = calls(&sim).await;
    let agents: BTreeSet<&str> = log.iter().filter_map(|c| c.agent.as_deref()).collect();
    assert!(agents.len() >= 2, "both instances called: {agents:?}");
    for shop in 0..4 {
        wait_for_truth(&store, &sim, shop, Duration::from_secs(120)).await;
    }
    let log = calls(&sim).await;
    assert!(
        log.iter().all(|c| c.outcome != "throttled"),
        "the simulator throttled a call"
    );
    within_qps(&log);
    no_stream_polled_twice_at_once(&log);
    // It left the budget when it finished: the daemon is the only instance again.
    let instances = store.instances().await.expect("instances");
    assert_eq!(instances.len(), 1, "{instances:?}");
    a.stop().await;
}

/// A service built in this process, listening on a port it picked.
struct InProcess {
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<Result<(), ServiceError>>,
}

/// Builds the service of `config` here and runs it until [`InProcess::stop`].
async fn in_process(config: PathBuf) -> InProcess {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let service = Service::build(ServiceOptions {
        config_path: config,
        resync_at_start: false,
        listener: Some(listener),
    })
    .await
    .expect("the service builds");
    let shutdown = CancellationToken::new();
    // No controls (the sender is dropped): signals are `main`'s, tested with a process.
    let (_, controls) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(service.run_until(shutdown.clone(), controls));
    InProcess { shutdown, running }
}

impl InProcess {
    /// Stops it as SIGTERM would, and checks that it stopped cleanly.
    async fn stop(self) {
        self.shutdown.cancel();
        self.running
            .await
            .expect("the service's task")
            .expect("the service stops cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_sync_shares_the_budget_and_the_leases() {
    on_postgres_with_url(one_off_beside_a_daemon).await;
}

/// `resync` with no daemon running leaves the request to the next `sync --once`, which runs it
/// after its catch-up; `--reconcile` adds the deep reconcile of orders and refunds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_runs_the_waiting_resyncs_and_the_reconcile() {
    let sim = start_sim(SimConfig {
        seed: 73,
        days: 10,
        orders: 300,
        mutate: false,
        variants: variants(1),
        ..SimConfig::default()
    })
    .await;
    let (store, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    let config = service_config(&sim, dir.path(), "once", &url, None, &Settings::default());
    let first = cli(&config, &["sync", "--once"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let asked = cli(&config, &["resync", "--stream", "refunds"]);
    let text = String::from_utf8_lossy(&asked.stdout).to_string();
    assert!(
        text.contains("the next `kwaishop-sync run` or `sync --once` does it"),
        "{text}"
    );
    assert_eq!(store.open_resyncs().await.expect("open").len(), 1);

    let second = cli(&config, &["sync", "--once", "--stream", "orders"]);
    let text = String::from_utf8_lossy(&second.stdout).to_string();
    assert!(second.status.success(), "{text}");
    assert!(
        !text.contains("resync #"),
        "a refunds resync is not an orders one: {text}"
    );

    let third = cli(&config, &["sync", "--once", "--reconcile"]);
    let text = String::from_utf8_lossy(&third.stdout).to_string();
    assert!(third.status.success(), "{text}");
    let done: Vec<&str> = text.lines().filter(|l| l.contains(": resync #")).collect();
    assert_eq!(
        done.len(),
        2,
        "the waiting refunds resync merged into the reconcile's, and the orders one: {text}"
    );
    assert!(done.iter().all(|l| l.ends_with("caught up")), "{text}");
    assert!(store.open_resyncs().await.expect("open").is_empty());
    let runs = store.recent_runs(None, 1_000).await.expect("runs");
    assert!(
        runs.iter().any(|r| r.kind == RunKind::Reconcile),
        "{runs:?}"
    );
    wait_for_truth(&store, &sim, 0, Duration::from_secs(10)).await;
}

/// The quarantine from the command line: `sync --once` succeeds with one unreadable order set
/// aside, `status` and `quarantine ls` show it, `quarantine retry` keeps it while it is broken
/// upstream (and says so, exiting non-zero) and stores it once repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_ls_and_retry_from_the_command_line() {
    let sim = start_sim(SimConfig {
        seed: 79,
        days: 10,
        orders: 300,
        mutate: false,
        variants: variants(1),
        ..SimConfig::default()
    })
    .await;
    let truth = truth(&sim).await;
    let oid = truth["shops"][0]["orders"][150]["orderBaseInfo"]["oid"]
        .as_i64()
        .expect("oid");
    admin(&sim, &format!("corrupt?shop=0&oid={oid}&in_place=true")).await;
    let (store, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    let config = service_config(&sim, dir.path(), "q", &url, None, &Settings::default());
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let sync = cli(&config, &["sync", "--once"]);
    assert!(sync.status.success(), "{}", text(&sync));
    let status = cli(&config, &["status"]);
    assert!(
        text(&status).contains("1 record(s) in quarantine"),
        "{}",
        text(&status)
    );
    let ls = cli(&config, &["quarantine", "ls"]);
    assert!(ls.status.success());
    assert!(
        text(&ls).contains(&oid.to_string()) && text(&ls).contains("updateTime"),
        "{}",
        text(&ls)
    );
    let json = cli(&config, &["quarantine", "ls", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert!(
        listed[0]["raw"]
            .as_str()
            .is_some_and(|r| r.contains("not-a-time"))
    );
    let broken = cli(&config, &["quarantine", "retry"]);
    assert!(!broken.status.success());
    assert!(
        text(&broken).contains("still in quarantine"),
        "{}",
        text(&broken)
    );
    admin(
        &sim,
        &format!("corrupt?shop=0&oid={oid}&undo=true&in_place=true"),
    )
    .await;
    let fixed = cli(&config, &["quarantine", "retry", &oid.to_string()]);
    assert!(fixed.status.success(), "{}", text(&fixed));
    assert!(text(&fixed).contains("stored"), "{}", text(&fixed));
    assert!(text(&cli(&config, &["quarantine", "ls"])).contains("the quarantine is empty"));
    wait_for_truth(&store, &sim, 0, Duration::from_secs(10)).await;
}
