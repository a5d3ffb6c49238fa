//! The README's "Setting up a real shop", followed as written, against the simulator: a config
//! whose `[[shops]]` entry has only its `id`, the service started, the token brought in with
//! `auth import`, and a platform whose push envelopes carry an `openId` that is not the token's
//! (a variant: nothing public says they match). Every push is applied, those that came before
//! the shop was known included, on SQLite and on Postgres.

use crate::common;
use crate::common_db;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use common_db::{on_postgres_with_url, sqlite_store};
use kwaishop_sim::push::PushConfig;
use kwaishop_sim::variants::{PlatformVariants, PushOpenId};
use kwaishop_sim::{SimConfig, SimHandle};
use kwaishop_sync::commands::sim::Limits;
use kwaishop_sync::store::{EventStatus, Store};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_kwaishop-sync");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The README's config: the simulator's app and secrets, the database, push on, and one shop
/// known by its `id` alone (no `open_id`, `seller_id` or token file).
fn readme_config(sim: &SimHandle, dir: &Path, db_url: &str, port: u16) -> std::path::PathBuf {
    let path = dir.join("kwaishop-sync.toml");
    kwaishop_sync::commands::sim::write_config(sim, &path, Some(db_url), Limits::default())
        .expect("config");
    let written = std::fs::read_to_string(&path).expect("read");
    let (head, _shops) = written.split_once("\n[[shops]]").expect("a shop");
    let text = format!(
        "{head}\n[push]\nenabled = true\npath = \"/kwaishop/push\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [daemon]\ngrace_secs = 5\nstate_dir = \"state\"\n\n[[shops]]\nid = \"my-shop\"\n"
    );
    std::fs::write(&path, text).expect("write");
    path
}

async fn count(store: &Store, status: EventStatus) -> usize {
    store
        .list_events(Some(status), 100_000)
        .await
        .expect("events")
        .len()
}

async fn readme_steps(store: Store, db_url: String) {
    let port = free_port();
    let sim = start_sim(SimConfig {
        seed: 81,
        days: 10,
        orders: 1_000,
        speed: 600.0,
        push: Some(PushConfig {
            retry_scale: 0.001,
            heartbeat_ms: 0,
            ..PushConfig::new(format!("http://127.0.0.1:{port}/kwaishop/push"))
        }),
        variants: PlatformVariants {
            push_open_id: PushOpenId::Unrelated,
            ..PlatformVariants::default()
        },
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = readme_config(&sim, dir.path(), &db_url, port);
    let log = binary_log(dir.path(), "real-shop");
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log");
    let mut daemon = tokio::process::Command::new(BIN)
        .current_dir(dir.path())
        .args(["run", "--log", binary_log_level(), "--config"])
        .arg(&config)
        .stdout(binary_stdout(dir.path(), "real-shop"))
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("the service");

    // Before the shop is authorized, its pushes wait: nobody knows who it is yet.
    wait_until(
        Duration::from_secs(60),
        "pushes waiting for their shop",
        || async { count(&store, EventStatus::UnknownShop).await >= 5 },
    )
    .await;
    let waited: BTreeSet<String> = store
        .list_events(Some(EventStatus::UnknownShop), 100_000)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event_id)
        .collect();

    // `auth import`, as the README says (the console's token on stdin).
    let grant = sim.credentials().shops[0].clone();
    let token = json!({"access_token": grant.access_token, "refresh_token": grant.refresh_token,
        "expires_in": 172_800, "open_id": grant.open_id});
    let mut import = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args(["auth", "import", "--shop", "my-shop", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("auth import");
    import
        .stdin
        .take()
        .expect("stdin")
        .write_all(token.to_string().as_bytes())
        .expect("token");
    let out = import.wait_with_output().expect("auth import");
    record_output("real-shop-import", &out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("seller {}", grant.seller_id)),
        "the import learns who the shop is: {said}"
    );

    // The platform goes quiet; every push it delivered is applied to the shop.
    tokio::time::sleep(Duration::from_secs(5)).await;
    admin(&sim, "mutation?on=false").await;
    let pusher = sim.state.pusher.as_ref().expect("pushing");
    wait_until(
        Duration::from_secs(120),
        "every push delivered and applied",
        || async {
            pusher.outstanding() == 0
                && count(&store, EventStatus::UnknownShop).await == 0
                && count(&store, EventStatus::Pending).await == 0
                && count(&store, EventStatus::Running).await == 0
        },
    )
    .await;
    let events = store.list_events(None, 100_000).await.expect("events");
    let acked: BTreeSet<String> = pusher.stats().acked_event_ids.into_iter().collect();
    let stored: BTreeSet<String> = events.iter().map(|e| e.event_id.clone()).collect();
    assert!(
        acked.len() > waited.len(),
        "pushes came after the import too"
    );
    assert!(
        acked.is_subset(&stored),
        "{} acknowledged pushes not stored",
        acked.difference(&stored).count()
    );
    for e in &events {
        assert_eq!(
            (e.shop_id.as_deref(), e.status),
            (Some("my-shop"), EventStatus::Done),
            "event {} ({})",
            e.event_id,
            e.event
        );
    }
    assert!(
        waited.is_subset(&stored),
        "the pushes that waited were applied"
    );
    eprintln!(
        "{} pushes acknowledged, {} of them waited for their shop; all applied",
        acked.len(),
        waited.len()
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id().expect("running") as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    assert!(daemon.wait().await.expect("wait").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_steps_apply_every_push_sqlite() {
    let (store, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    readme_steps(store, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_steps_apply_every_push_postgres() {
    on_postgres_with_url(readme_steps).await;
}
