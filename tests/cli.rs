//! The command line as a user runs it: the real binary, a config file, a SQLite file.

use crate::common;

use std::path::Path;
use std::process::Output;

use kwaishop_sync::store::{EventKind, NewEvent, Store};

const BIN: &str = env!("CARGO_BIN_EXE_kwaishop-sync");

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("output");
    common::record_output(&format!("cli-{}", args[0]), &out);
    out
}

/// The made-up secrets these tests give the binary, for the suite's leak check.
fn record_secrets() {
    kwaishop_sim::ledger::record([
        "test-app-secret-value",
        "test-sign-secret-value",
        "pasted-access-token-1234",
        "pasted-refresh-token-5678",
    ]);
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_config(dir: &Path) -> String {
    record_secrets();
    let path = dir.join("k.toml");
    std::fs::write(dir.join("app_secret"), "test-app-secret-value").expect("write");
    std::fs::write(
        &path,
        r#"
[platform]
app_key = "ks000000000000000001"
app_secret_file = "app_secret"
sign_secret = "test-sign-secret-value"
redirect_uri = "https://example.invalid/callback"
# Nothing listens there: asking the platform who a shop is fails at once.
base_url = "http://127.0.0.1:9"
[retry]
transient_delay_ms = 10
max_delay_ms = 20
[database]
url = "sqlite://mirror.db"
[[shops]]
id = "main"
"#,
    )
    .expect("write");
    path.display().to_string()
}

#[test]
fn check_config_lists_every_error_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let good = write_config(dir.path());
    let ok = run(&["check-config", "--config", &good], None);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("is valid"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[platform]\nsign_method = \"SHA1\"\n[streams.orders]\npage_size = 500\n[[shops]]\nid = \"a b\"\n").expect("write");
    let out = run(
        &["check-config", "--config", &bad.display().to_string()],
        None,
    );
    assert!(!out.status.success());
    let t = text(&out);
    for field in [
        "platform.app_key",
        "platform.sign_method",
        "platform.app_secret",
        "streams.orders.page_size",
        "shops[0].id",
    ] {
        assert!(t.contains(field), "{field} missing from:\n{t}");
    }
    let missing = run(&["check-config", "--config", "/nonexistent/k.toml"], None);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("cannot read it"));
}

/// A window no wider than its lookback would end before the checkpoint every time: the stream
/// would report "caught up" forever without reading anything. The config refuses it.
#[test]
fn check_config_refuses_a_window_no_wider_than_its_lookback() {
    let dir = tempfile::tempdir().expect("dir");
    let good = write_config(dir.path());
    let base = std::fs::read_to_string(&good).expect("read");
    for (section, extra) in [
        ("refunds", "window_minutes = 10\n"),
        ("orders", "window_minutes = 30\nlookback_secs = 1800\n"),
    ] {
        let bad = dir.path().join(format!("{section}.toml"));
        std::fs::write(&bad, format!("{base}[streams.{section}]\n{extra}")).expect("write");
        let out = run(
            &["check-config", "--config", &bad.display().to_string()],
            None,
        );
        let t = text(&out);
        assert!(!out.status.success(), "accepted:\n{t}");
        assert!(
            t.contains(&format!("streams.{section}.window_minutes")) && t.contains("lookback"),
            "the error names the window and the lookback:\n{t}"
        );
    }
    // One minute wider than the lookback is fine.
    let ok = dir.path().join("ok.toml");
    std::fs::write(
        &ok,
        format!("{base}[streams.refunds]\nwindow_minutes = 11\n"),
    )
    .expect("write");
    let out = run(
        &["check-config", "--config", &ok.display().to_string()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn migrate_status_auth_and_queue_commands() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path());
    let out = run(&["migrate", "--config", &config], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        dir.path().join("mirror.db").exists(),
        "the database file is created beside the config"
    );

    let token = r#"{"access_token":"pasted-access-token-1234","refresh_token":"pasted-refresh-token-5678","expires_in":172800}"#;
    let out = run(
        &["auth", "import", "--config", &config, "--shop", "main"],
        Some(token),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("pasted-access-token"),
        "the token is never printed"
    );
    assert!(
        text(&out).contains("cannot learn who shop main is yet"),
        "an unreachable platform is only a warning: {}",
        text(&out)
    );
    let unknown = run(
        &["auth", "import", "--config", &config, "--shop", "nope"],
        Some(token),
    );
    assert!(!unknown.status.success());

    let out = run(
        &["auth", "url", "--config", &config, "--shop", "main"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("app_id=ks000000000000000001"));
    assert!(text(&out).contains("scope=merchant_order%2Cmerchant_refund%2Cmerchant_item"));

    let out = run(&["status", "--config", &config], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("main"), "{}", text(&out));
    let out = run(&["status", "--config", &config, "--json"], None);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(
        report["shops"][0]["streams"].as_array().map(Vec::len),
        Some(3),
        "the status page's report: a view per stream"
    );

    // Two events in the queue: one dead, one done long ago.
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("mirror.db").display()
    ))
    .await
    .expect("open");
    let event = |id: &str| NewEvent {
        event_id: id.into(),
        msg_id: None,
        app_key: "ks000000000000000001".into(),
        shop_id: Some("main".into()),
        open_id: None,
        user_id: None,
        event: "kwaishop_order_paySuccess".into(),
        kind: EventKind::Order,
        biz_id: Some(7),
        info: "{}".into(),
        raw: "{}".into(),
        event_update_time: None,
        received_at_ms: 1_000,
    };
    store
        .enqueue_events(&[event("will-die"), event("will-finish")])
        .await
        .expect("enqueue");
    let claimed = store.claim_events(2_000, 60_000, 10).await.expect("claim");
    let die = claimed
        .iter()
        .find(|c| c.event_id == "will-die")
        .expect("claimed");
    let finish = claimed
        .iter()
        .find(|c| c.event_id == "will-finish")
        .expect("claimed");
    store
        .fail_event(die.id, die.fence, "300011 refund not found", None, true)
        .await
        .expect("dead");
    store
        .complete_events(
            "main",
            &[(finish.id, finish.fence)],
            kwaishop_sync::store::EventOutcome::Nothing,
            3_000,
        )
        .await
        .expect("done");
    store.close().await;

    let out = run(&["queue", "dead", "--config", &config], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("300011 refund not found"),
        "{}",
        text(&out)
    );
    let out = run(&["queue", "ls", "--config", &config], None);
    assert!(text(&out).contains("dead 1"), "{}", text(&out));
    let out = run(
        &["queue", "retry", "--config", &config, &die.id.to_string()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(
        &["queue", "ls", "--config", &config, "--status", "pending"],
        None,
    );
    let listed = text(&out);
    // Event lines start with the event's numeric id (after a summary line and the header).
    let pending: Vec<&str> = listed
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|id| id.parse::<i64>().is_ok())
        })
        .collect();
    assert_eq!(
        pending.len(),
        1,
        "only the retried event is pending:\n{listed}"
    );
    let cells: Vec<&str> = pending[0].split_whitespace().collect();
    assert_eq!(
        (cells[0], cells[1]),
        (die.id.to_string().as_str(), "pending"),
        "{listed}"
    );
    let out = run(
        &[
            "queue",
            "purge",
            "--config",
            &config,
            "--done-older-than",
            "1h",
        ],
        None,
    );
    assert!(
        text(&out).contains("removed 1 done event"),
        "{}",
        text(&out)
    );
    let bad = run(
        &[
            "queue",
            "purge",
            "--config",
            &config,
            "--done-older-than",
            "a while",
        ],
        None,
    );
    assert!(!bad.status.success());
}

/// A database that cannot answer every read: `status` prints what it could read, says which
/// part is missing, and exits non-zero — never a table of zeros that looks fine.
#[tokio::test]
async fn status_fails_when_a_read_of_the_database_fails() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path());
    let out = run(&["migrate", "--config", &config], None);
    assert!(out.status.success(), "{}", text(&out));
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("pool");
    sqlx::query("DROP TABLE api_usage")
        .execute(&pool)
        .await
        .expect("drop");
    pool.close().await;
    let out = run(&["status", "--config", &config], None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("read(s) of the database failed"),
        "{}",
        text(&out)
    );
}
