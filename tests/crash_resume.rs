//! The real binary killed with SIGKILL at 20 random moments of a 20,000-order backfill and
//! restarted each time, on SQLite and on Postgres: at every restart nothing below the stored
//! checkpoint is missing, and in the end the mirror is the truth, without duplicates.

mod common;
mod common_db;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::mirror::assert_mirror_equals_truth;
use common::*;
use common_db::{on_postgres_with_url, sqlite_store};
use kwaishop_sync::clock::wall_ms;
use kwaishop_sync::sim::SimConfig;
use kwaishop_sync::store::{Store, Stream};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_kwaishop-sync");
const LOOKBACK_MS: i64 = 600_000;

/// Writes the config for the binary: the simulator's, the given database, and a clock two
/// minutes ahead so the history's last minute is past the settle delay from the start.
fn write_config(
    sim: &kwaishop_sync::sim::SimHandle,
    dir: &Path,
    db_url: &str,
) -> std::path::PathBuf {
    let path = dir.join("kill.toml");
    kwaishop_sync::sim::run::write_config(sim, &path, Some(db_url), Some(40.0), None)
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
    std::fs::write(&path, text).expect("write");
    path
}

fn sync_command(config: &Path, log: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    cmd.args(["sync", "--once", "--log", binary_log_level(), "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    cmd
}

/// Every order the truth holds with an update time below the checkpoint (less the lookback)
/// must already be mirrored.
async fn check_invariant(store: &Store, truth_orders: &[(i64, i64)], cycle: usize) -> Option<i64> {
    let state = store
        .load_state("shop-0", Stream::Orders)
        .await
        .expect("state");
    let checkpoint = state.and_then(|s| s.checkpoint_ms)?;
    let rows = store.order_rows("shop-0").await.expect("rows");
    let mirrored: BTreeSet<i64> = rows.iter().map(|r| r.oid).collect();
    assert_eq!(
        mirrored.len(),
        rows.len(),
        "duplicate rows after restart {cycle}"
    );
    let missing: Vec<i64> = truth_orders
        .iter()
        .filter(|(_, t)| *t < checkpoint - LOOKBACK_MS)
        .map(|(oid, _)| *oid)
        .filter(|oid| !mirrored.contains(oid))
        .collect();
    assert!(
        missing.is_empty(),
        "restart {cycle}: {} orders below the checkpoint are missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    Some(checkpoint)
}

async fn kill_and_restart(store: Store, db_url: String) {
    let sim = start_sim(SimConfig {
        seed: 31,
        days: 60,
        orders: 20_000,
        qps: Some(25.0),
        mutate: false,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(&sim, dir.path(), &db_url);
    let log = binary_log(dir.path(), "sync-kill");
    let truth = truth(&sim).await;
    let mut truth_orders = Vec::new();
    for o in truth["shops"][0]["orders"].as_array().expect("orders") {
        truth_orders.push((
            o["orderBaseInfo"]["oid"].as_i64().expect("oid"),
            o["orderBaseInfo"]["updateTime"].as_i64().expect("t"),
        ));
        for g in o["subOrderInfo"].as_array().into_iter().flatten() {
            truth_orders.push((
                g["subOrderBaseInfo"]["oid"].as_i64().expect("oid"),
                g["subOrderBaseInfo"]["updateTime"].as_i64().expect("t"),
            ));
        }
    }
    let mut rng = StdRng::from_os_rng();
    let mut killed_mid_run = 0;
    let mut checkpoints = Vec::new();
    for cycle in 0..20 {
        let mut child = sync_command(&config, &log)
            .spawn()
            .expect("spawn the binary");
        let moment = Duration::from_millis(rng.random_range(200..1_200));
        match tokio::time::timeout(moment, child.wait()).await {
            Ok(status) => assert!(
                status.expect("wait").success(),
                "a run ended with an error; see {}",
                log.display()
            ),
            Err(_) => {
                child.start_kill().expect("SIGKILL");
                child.wait().await.expect("reaped");
                killed_mid_run += 1;
            }
        }
        checkpoints.push(check_invariant(&store, &truth_orders, cycle).await);
    }
    assert!(
        killed_mid_run >= 15,
        "only {killed_mid_run} of 20 kills landed in the middle of a run"
    );
    let status = sync_command(&config, &log)
        .status()
        .await
        .expect("final run");
    assert!(
        status.success(),
        "the final run failed; see {}",
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    check_invariant(&store, &truth_orders, 20).await;
    eprintln!("checkpoints after each kill: {checkpoints:?}");
    assert_mirror_equals_truth(&store, &sim, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_backfill_sqlite() {
    let (store, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    kill_and_restart(store, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_backfill_postgres() {
    on_postgres_with_url(kill_and_restart).await;
}
