//! I8, checked by the suite itself: no secret and no token appears in any log or output.
//!
//! `cargo test` runs the test binaries in the order of their names, so this one runs last. With
//! `KWAISHOP_TEST_LOGS` set (`.ci/run` sets it), every test before it logged at trace level into
//! that directory (its own log, and each spawned binary's stderr and stdout, the demo's included)
//! and the simulators wrote every secret and token they made up to `secrets.ledger` there: the
//! first test reads them all. The second needs no variable: it drives the binary's commands at
//! trace level against a simulator (check-config, sync, status, report, the queue, a token
//! import, the daemon with pushes and a token refresh, a resync) and reads all they printed.
//! `.ci/run` checks the directory once more after the suite, when every file is complete.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aho_corasick::AhoCorasick;
use common::*;
use kwaishop_sim::{SimConfig, SimHandle, ledger};
use kwaishop_sync::commands::sim::Limits;
use kwaishop_sync::push::MessageKey;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_kwaishop-sync");

/// The files among `files` that contain any of `secrets`, each with the first one found.
fn leaks(files: &[PathBuf], secrets: &[String]) -> Vec<String> {
    let finder = AhoCorasick::new(secrets).expect("a matcher for the secrets");
    files
        .iter()
        .filter_map(|path| {
            let bytes = std::fs::read(path).ok()?;
            // Named by its place in the list, never by its text.
            finder.find(&bytes).map(|m| {
                let n = m.pattern().as_usize();
                format!(
                    "{} holds secret #{n} ({} characters)",
                    path.display(),
                    secrets[n].len()
                )
            })
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("read the directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_in(&path));
        } else if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
    out
}

#[test]
fn no_secret_in_any_log_or_output_of_the_suite() {
    let Some(dir) = std::env::var_os(ledger::LOGS_VAR) else {
        eprintln!(
            "skipped: {} is not set, so the suite kept no logs to read (.ci/run sets it)",
            ledger::LOGS_VAR
        );
        return;
    };
    let dir = PathBuf::from(dir);
    let ledger = std::fs::read_to_string(dir.join("secrets.ledger")).unwrap_or_default();
    let mut secrets: Vec<String> = ledger
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    secrets.sort_unstable();
    secrets.dedup();
    let files = files_in(&dir);
    assert!(
        !secrets.is_empty() && !files.is_empty(),
        "the suite left {} secrets and {} logs in {}: was it run before this test, with {} set?",
        secrets.len(),
        files.len(),
        dir.display(),
        ledger::LOGS_VAR
    );
    let found = leaks(&files, &secrets);
    assert!(
        found.is_empty(),
        "secrets in the suite's logs:\n{}",
        found.join("\n")
    );
    eprintln!(
        "no leak: {} secrets checked against {} logs and outputs",
        secrets.len(),
        files.len()
    );
}

/// One command of the session: what it printed, kept for the check.
fn run(dir: &Path, outputs: &mut Vec<PathBuf>, name: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args(["--log", "trace"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("output");
    let path = dir.join(format!("{name}.log"));
    let mut text = out.stdout.clone();
    text.extend_from_slice(&out.stderr);
    std::fs::write(&path, text).expect("keep the output");
    record_output(name, &out);
    outputs.push(path);
    out
}

fn every_secret(sim: &SimHandle) -> Vec<String> {
    let c = sim.credentials();
    let mut secrets = vec![
        c.app_secret.clone(),
        c.sign_secret.clone(),
        c.msg_secret.clone(),
    ];
    secrets.extend(sim.state.auth.lock().expect("auth").issued());
    secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_session_prints_no_secret() {
    let sim = start_sim(SimConfig {
        seed: 71,
        shops: 2,
        days: 5,
        orders: 400,
        mutate: false,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("k.toml");
    kwaishop_sync::commands::sim::write_config(&sim, &config, None, Limits::default())
        .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut text = std::fs::read_to_string(&config).expect("read");
    text.push_str(&format!(
        "\n[http]\nlisten = \"127.0.0.1:{port}\"\n[push]\nenabled = true\n[daemon]\ngrace_secs = 5\n"
    ));
    std::fs::write(&config, text).expect("write");
    let cfg = config.display().to_string();
    let d = dir.path();
    let mut outputs = Vec::new();
    let ok = |o: &Output, what: &str| {
        assert!(
            o.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    };
    ok(
        &run(
            d,
            &mut outputs,
            "check",
            &["check-config", "--config", &cfg],
            "",
        ),
        "check-config",
    );
    ok(
        &run(
            d,
            &mut outputs,
            "sync",
            &["sync", "--once", "--config", &cfg],
            "",
        ),
        "sync",
    );
    // A pasted console token, then every token of shop 0 expires: the next calls refresh.
    let grant = sim.credentials().shops[1].clone();
    let pasted = json!({"access_token": grant.access_token, "refresh_token": grant.refresh_token,
        "expires_in": 172_800, "open_id": grant.open_id});
    ok(
        &run(
            d,
            &mut outputs,
            "import",
            &["auth", "import", "--shop", "shop-1", "--config", &cfg],
            &pasted.to_string(),
        ),
        "auth import",
    );
    admin(&sim, "expire?shop=0").await;
    for (name, args) in [
        ("status", vec!["status", "--config", &cfg]),
        ("report", vec!["report", "--config", &cfg]),
        ("queue", vec!["queue", "ls", "--config", &cfg]),
        (
            "resync",
            vec!["resync", "--stream", "orders", "--config", &cfg],
        ),
    ] {
        ok(&run(d, &mut outputs, name, &args, ""), name);
    }
    // The daemon: a resync, pushes (one for an unknown shop), the refresh, then SIGTERM.
    let log = d.join("daemon.log");
    let mut daemon = tokio::process::Command::new(BIN)
        .current_dir(d)
        .args(["run", "--log", "trace", "--config", &cfg])
        .stdout(std::fs::File::create(d.join("daemon-stdout.log")).expect("stdout"))
        .stderr(std::fs::File::create(&log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("the daemon");
    outputs.extend([log.clone(), d.join("daemon-stdout.log")]);
    let c = sim.credentials().clone();
    let key = MessageKey::from_secret(&c.msg_secret).expect("key");
    let oid = truth(&sim).await["shops"][0]["orders"][0]["orderBaseInfo"]["oid"]
        .as_i64()
        .expect("oid");
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/kwaishop/push");
    wait_until(Duration::from_secs(30), "the receiver", || async {
        http.get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
    })
    .await;
    for (i, open_id) in [c.shops[0].open_id.as_str(), "nobody"].iter().enumerate() {
        let body = json!({"eventId": format!("leak-{i}"), "bizId": oid, "openId": open_id,
            "appKey": c.app_key, "event": "kwaishop_order_paySuccess",
            "info": json!({"oid": oid}).to_string()});
        let r = http
            .post(&url)
            .body(key.encrypt(body.to_string().as_bytes()))
            .send()
            .await
            .expect("push");
        assert_eq!(r.status(), 200);
    }
    let status = || async {
        reqwest::get(format!("http://127.0.0.1:{port}/status.json"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    wait_until(
        Duration::from_secs(60),
        "the refresh and the resync",
        || async {
            let refreshed = sim.state.auth.lock().map(|a| a.refreshes).unwrap_or(0) >= 1;
            refreshed && status().await.is_some()
        },
    )
    .await;
    let page = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .expect("page")
        .text()
        .await
        .expect("page");
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics");
    for (name, body) in [
        ("page", page),
        ("metrics", metrics),
        ("status-json", status().await.unwrap_or_default()),
    ] {
        let path = d.join(format!("{name}.log"));
        std::fs::write(&path, body).expect("keep");
        outputs.push(path);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id().expect("running") as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    assert!(daemon.wait().await.expect("wait").success());

    let secrets = every_secret(&sim);
    assert!(
        secrets.len() >= 3 + 4 + 2,
        "the refresh issued new tokens: {}",
        secrets.len()
    );
    let found = leaks(&outputs, &secrets);
    assert!(
        found.is_empty(),
        "secrets in the session's output:\n{}",
        found.join("\n")
    );
    let bytes: u64 = outputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    assert!(
        bytes > 100_000,
        "a trace-level session prints plenty: {bytes} bytes"
    );
    eprintln!(
        "no leak: {} secrets against {} outputs ({bytes} bytes)",
        secrets.len(),
        outputs.len()
    );
}
