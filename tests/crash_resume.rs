//! The real binary killed with SIGKILL in the middle of a 20,000-order backfill, again and again
//! until 20 kills have landed mid-run, on SQLite and on Postgres. Each kill lands after a random
//! number of answered calls plus a random delay (seeded: the seed is printed, and
//! `KWAISHOP_TEST_SEED` replays it). After every kill, for orders and for refunds:
//! - nothing the truth holds at or below the stored checkpoint is missing (I3; the truth does not
//!   change during the test, so no allowance is needed);
//! - the checkpoint is at least the end of every window the simulator saw the client leave (a
//!   later window begins a lookback before the checkpoint the client had committed), so it is set
//!   as soon as the first window completed and never falls back;
//! - no row is duplicated.
//!
//! Both checkpoints must advance across the kills, and in the end the mirror is the truth.

use crate::common;
use crate::common_db;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::mirror::assert_mirror_equals_truth;
use common::*;
use common_db::{on_postgres_with_url, sqlite_store};
use kwaishop_sim::{SimConfig, SimHandle};
use kwaishop_sync::api::Method;
use kwaishop_sync::clock::wall_ms;
use kwaishop_sync::commands::sim::Limits;
use kwaishop_sync::store::{Store, Stream};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kwaishop-sync");
const KILLS: usize = 20;
const SIM_QPS: f64 = 25.0;

/// Writes the config for the binary: the simulator's, the given database, and a clock two
/// minutes ahead so the history's last minute is past the settle delay from the start.
fn write_config(sim: &SimHandle, dir: &Path, db_url: &str, concurrency: u32) -> std::path::PathBuf {
    let path = dir.join("kill.toml");
    // The client at the simulator's own limit (25 calls a second): the backfill is slow
    // enough for the kills to land in its middle, and never throttled.
    kwaishop_sync::commands::sim::write_config(
        sim,
        &path,
        Some(db_url),
        Limits {
            qps: Some(SIM_QPS),
            ..Limits::default()
        },
    )
    .expect("config written");
    let now = wall_ms();
    let clock = format!(
        "\n[clock]\nspeed = 1.0\nwall_origin_ms = {now}\norigin_ms = {}\n",
        now + 120_000
    );
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str(&clock);
    text.push_str(
        "\n[retry]\nthrottled_delay_ms = 100\ntransient_delay_ms = 20\nmax_delay_ms = 500\n",
    );
    text.push_str(&format!("\n[sync]\nconcurrency = {concurrency}\n"));
    std::fs::write(&path, text).expect("write");
    path
}

fn sync_command(config: &Path, log: &Path, out: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("log file")
    };
    cmd.args(["sync", "--once", "--log", binary_log_level(), "--config"])
        .arg(config)
        .stdout(open(out))
        .stderr(open(log))
        .kill_on_drop(true);
    cmd
}

/// The seed of this run's kill moments: `KWAISHOP_TEST_SEED`, or a fresh one.
fn seed() -> u64 {
    std::env::var("KWAISHOP_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random())
}

/// One windowed stream as the truth and the call log see it.
struct Watched {
    stream: Stream,
    method: Method,
    lookback_ms: i64,
    /// (key, the update time that places it in a window) of every record upstream.
    truth: Keyed,
    last_checkpoint: Option<i64>,
    advances: usize,
}

impl Watched {
    fn new(stream: Stream, method: Method, truth: Keyed) -> Self {
        Self {
            stream,
            method,
            lookback_ms: 600_000,
            truth,
            last_checkpoint: None,
            advances: 0,
        }
    }

    /// The least checkpoint the client must have committed: every list call for a window after
    /// the first began a lookback before a committed checkpoint.
    fn committed_at_least(&self, sim: &SimHandle) -> Option<i64> {
        let calls = sim.state.calls.lock().expect("call log");
        let begins: Vec<i64> = calls
            .iter()
            .filter(|c| c.method == self.method.name())
            .filter_map(|c| c.param.as_deref())
            .filter_map(|p| serde_json::from_str::<Value>(p).ok())
            .filter_map(|p| p["beginTime"].as_i64())
            .collect();
        let first = *begins.iter().min()?;
        begins
            .iter()
            .filter(|b| **b > first)
            .map(|b| b + self.lookback_ms)
            .max()
    }

    async fn check(&mut self, store: &Store, sim: &SimHandle, cycle: usize, side_by_side: bool) {
        let name = self.stream.as_str();
        let checkpoint = store
            .load_state("shop-0", self.stream)
            .await
            .expect("state")
            .and_then(|s| s.checkpoint_ms);
        // Windows read side by side: each stored window's cursor is one the simulator served
        // for that window, and a window stored as done was answered its last page.
        for w in store.windows("shop-0", self.stream).await.expect("windows") {
            let calls = sim.state.calls.lock().expect("call log");
            let served: Vec<(String, usize)> = calls
                .iter()
                .filter(|c| c.method == self.method.name() && c.outcome == "ok")
                .filter(|c| {
                    let p: Value = c
                        .param
                        .as_deref()
                        .and_then(|p| serde_json::from_str(p).ok())
                        .unwrap_or_default();
                    p["beginTime"].as_i64() == Some(w.begin_ms)
                        && p["endTime"].as_i64() == Some(w.end_ms)
                })
                .map(|c| (c.next_cursor.clone().unwrap_or_default(), c.records))
                .collect();
            if w.done {
                assert!(
                    served
                        .iter()
                        .any(|(c, n)| c == "nomore" || (c.trim().is_empty() && *n == 0)),
                    "restart {cycle}: {name} window {}..{} is stored done, never answered its last page",
                    w.begin_ms,
                    w.end_ms
                );
            } else if let Some(cursor) = &w.cursor {
                assert!(
                    served.iter().any(|(c, _)| c == cursor),
                    "restart {cycle}: {name} window {}..{} stores a cursor never served for it",
                    w.begin_ms,
                    w.end_ms
                );
            }
        }
        // Read one after the other, a window's calls show the checkpoint committed before it.
        if let Some(least) = self.committed_at_least(sim).filter(|_| !side_by_side) {
            assert!(
                checkpoint.is_some_and(|c| c >= least),
                "restart {cycle}: the {name} checkpoint {checkpoint:?} is behind {least}, where \
                 the client's own later windows show it had committed"
            );
        }
        assert!(
            checkpoint >= self.last_checkpoint,
            "restart {cycle}: the {name} checkpoint went back from {:?} to {checkpoint:?}",
            self.last_checkpoint
        );
        if checkpoint > self.last_checkpoint {
            self.advances += 1;
        }
        self.last_checkpoint = checkpoint;
        let keys: Vec<i64> = match self.stream {
            Stream::Orders => store
                .order_rows("shop-0")
                .await
                .expect("rows")
                .iter()
                .map(|r| r.oid)
                .collect(),
            _ => store
                .refund_rows("shop-0")
                .await
                .expect("rows")
                .iter()
                .map(|r| r.refund_id)
                .collect(),
        };
        let mirrored: BTreeSet<i64> = keys.iter().copied().collect();
        assert_eq!(
            mirrored.len(),
            keys.len(),
            "restart {cycle}: duplicate {name} rows"
        );
        let Some(checkpoint) = checkpoint else {
            return;
        };
        let missing: Vec<i64> = self
            .truth
            .iter()
            .filter(|(key, t)| *t <= checkpoint && !mirrored.contains(key))
            .map(|(key, _)| *key)
            .collect();
        assert!(
            missing.is_empty(),
            "restart {cycle}: {} {name} at or below the checkpoint {checkpoint} are missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
}

/// (key, update time) of each record upstream.
type Keyed = Vec<(i64, i64)>;

/// Every order and gift sub-order with its main order's update time (the list places a gift
/// in its main order's window), and every refund with its own.
fn truth_keys(truth: &Value) -> (Keyed, Keyed) {
    let shop = &truth["shops"][0];
    let mut orders = Vec::new();
    for o in shop["orders"].as_array().expect("orders") {
        let t = o["orderBaseInfo"]["updateTime"]
            .as_i64()
            .expect("updateTime");
        orders.push((o["orderBaseInfo"]["oid"].as_i64().expect("oid"), t));
        for g in o["subOrderInfo"].as_array().into_iter().flatten() {
            orders.push((g["subOrderBaseInfo"]["oid"].as_i64().expect("oid"), t));
        }
    }
    let refunds = shop["refunds"]
        .as_array()
        .expect("refunds")
        .iter()
        .map(|r| {
            (
                r["refundId"].as_i64().expect("refundId"),
                r["updateTime"].as_i64().expect("updateTime"),
            )
        })
        .collect();
    (orders, refunds)
}

fn answered(sim: &SimHandle) -> usize {
    sim.state.calls.lock().expect("call log").len()
}

/// `concurrency` windows of a stream read side by side (1: one after the other), the simulator
/// `latency_ms` away.
async fn kill_and_restart(store: Store, db_url: String, concurrency: u32, latency_ms: u64) {
    let seed = seed();
    eprintln!("crash_resume seed {seed} (KWAISHOP_TEST_SEED={seed} replays the kill moments)");
    let mut rng = StdRng::seed_from_u64(seed);
    let sim = start_sim(SimConfig {
        seed: 31,
        days: 60,
        orders: 20_000,
        qps: Some(SIM_QPS),
        mutate: false,
        latency: kwaishop_sim::Latency {
            base: Duration::from_millis(latency_ms),
            jitter: Duration::ZERO,
        },
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(&sim, dir.path(), &db_url, concurrency);
    let side_by_side = concurrency > 1;
    let log = binary_log(dir.path(), "sync-kill");
    let out = binary_log(dir.path(), "sync-kill-stdout");
    let (orders, refunds) = truth_keys(&truth(&sim).await);
    let mut watched = [
        Watched::new(Stream::Orders, Method::OrderCursorList, orders),
        Watched::new(Stream::Refunds, Method::RefundList, refunds),
    ];
    let mut kills = 0;
    let mut cycle = 0;
    while kills < KILLS {
        cycle += 1;
        let mut child = sync_command(&config, &log, &out)
            .spawn()
            .expect("spawn the binary");
        // Kill after 1 to 20 more answers and up to 40 ms more: before, during or after the
        // commit of the page just answered.
        let after = answered(&sim) + rng.random_range(1..=20);
        let extra = Duration::from_millis(rng.random_range(0..40));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let exited = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if answered(&sim) >= after {
                tokio::time::sleep(extra).await;
                break child.try_wait().expect("try_wait");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "cycle {cycle}: no progress in 60 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        match exited {
            Some(status) => {
                assert!(
                    status.success(),
                    "a run ended with an error; see {}",
                    log.display()
                );
                panic!(
                    "the backfill completed after only {kills} kills (seed {seed}): the kills \
                     must land in its middle"
                );
            }
            None => {
                child.start_kill().expect("SIGKILL");
                child.wait().await.expect("reaped");
                kills += 1;
            }
        }
        for w in &mut watched {
            w.check(&store, &sim, cycle, side_by_side).await;
        }
    }
    let status = tokio::time::timeout(
        Duration::from_secs(300),
        sync_command(&config, &log, &out).status(),
    )
    .await
    .expect("the final run ends within 5 minutes")
    .expect("final run");
    assert!(
        status.success(),
        "the final run failed; see {}",
        log.display()
    );
    for w in &mut watched {
        w.check(&store, &sim, cycle + 1, side_by_side).await;
        assert!(
            store
                .windows("shop-0", w.stream)
                .await
                .expect("windows")
                .is_empty(),
            "every window finished"
        );
        eprintln!(
            "{}: the checkpoint advanced at {} of {} restarts",
            w.stream.as_str(),
            w.advances,
            cycle + 1
        );
        assert!(
            w.advances >= 2,
            "the {} checkpoint advanced only {} times over {} restarts",
            w.stream.as_str(),
            w.advances,
            cycle + 1
        );
    }
    assert_mirror_equals_truth(&store, &sim, 0).await;
}

/// SQLite, windows one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_backfill_sqlite() {
    let (store, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    kill_and_restart(store, url, 1, 0).await;
}

/// SQLite, eight windows side by side, 50 ms from the simulator: pages queued for the writer
/// when the kill comes are lost with the process and read again from the committed cursors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_backfill_side_by_side_sqlite() {
    let (store, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    kill_and_restart(store, url, 8, 50).await;
}

/// Postgres, eight windows side by side, 50 ms from the simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_backfill_postgres() {
    on_postgres_with_url(|store, url| kill_and_restart(store, url, 8, 50)).await;
}
