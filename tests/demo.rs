//! `kwaishop-sync demo` and `kwaishop-sync report` as a newcomer runs them: the real binary, a
//! real SQLite file, and the figures they print checked against SQL over that file.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sqlx::{Row, SqlitePool};

const BIN: &str = env!("CARGO_BIN_EXE_kwaishop-sync");

/// Runs the binary in `dir`; stderr (logs) goes to the test-log file, stdout is returned.
fn run(dir: &Path, log_name: &str, args: &[&str]) -> Output {
    let log = common::binary_log(dir, log_name);
    let stderr = std::fs::File::create(&log).expect("log file");
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(["--log", common::binary_log_level()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .output()
        .expect("run the binary");
    common::record_output(log_name, &out);
    if !out.status.success() {
        eprintln!(
            "{} {args:?} failed; its log:\n{}",
            BIN,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn demo(dir: &Path, db: &str, extra: &[&str]) -> (Output, String) {
    let mut args = vec![
        "demo",
        "--db",
        db,
        "--orders",
        "2000",
        "--days",
        "10",
        "--push-secs",
        "2",
    ];
    args.extend_from_slice(extra);
    let out = run(dir, "demo", &args);
    let text = stdout(&out);
    (out, text)
}

/// The totals table the demo prints: label → (mirror, simulator).
fn printed_totals(text: &str) -> BTreeMap<String, (String, String)> {
    let start = text.find("Totals for").expect("a totals block");
    text[start..]
        .lines()
        .skip(2) // the title and the header
        .take_while(|l| !l.trim_start().starts_with("The mirror") && !l.contains("MISMATCH"))
        .map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(cells.len(), 3, "a totals line: {l:?}");
            (
                cells[0].to_string(),
                (cells[1].to_string(), cells[2].to_string()),
            )
        })
        .collect()
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

async fn scalar(pool: &SqlitePool, sql: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .expect(sql)
        .get::<Option<i64>, _>(0)
        .unwrap_or(0)
}

/// The same totals, straight from the tables (not through the views).
async fn sql_totals(db: &Path) -> BTreeMap<String, String> {
    let pool = SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the demo database");
    let orders = "FROM orders WHERE shop_id = 'shop-0' AND parent_oid IS NULL";
    let paid = format!("{orders} AND pay_time IS NOT NULL");
    let out = BTreeMap::from([
        (
            "orders".to_string(),
            scalar(&pool, &format!("SELECT COUNT(*) {orders}"))
                .await
                .to_string(),
        ),
        (
            "paid orders".to_string(),
            scalar(&pool, &format!("SELECT COUNT(*) {paid}"))
                .await
                .to_string(),
        ),
        (
            "GMV (yuan)".to_string(),
            yuan(scalar(&pool, &format!("SELECT SUM(total_fee) {paid}")).await),
        ),
        (
            "refunds".to_string(),
            scalar(
                &pool,
                "SELECT COUNT(*) FROM refunds WHERE shop_id = 'shop-0'",
            )
            .await
            .to_string(),
        ),
        (
            "refunded (yuan)".to_string(),
            yuan(
                scalar(
                    &pool,
                    "SELECT SUM(refund_fee) FROM refunds WHERE shop_id = 'shop-0'",
                )
                .await,
            ),
        ),
        (
            "items".to_string(),
            scalar(
                &pool,
                "SELECT COUNT(*) FROM items WHERE shop_id = 'shop-0' AND deleted_at IS NULL",
            )
            .await
            .to_string(),
        ),
        (
            "SKUs".to_string(),
            scalar(
                &pool,
                "SELECT COUNT(*) FROM skus WHERE shop_id = 'shop-0' AND deleted_at IS NULL",
            )
            .await
            .to_string(),
        ),
    ]);
    pool.close().await;
    out
}

/// Printed totals equal SQL over the file, and the simulator's column equals the mirror's.
async fn assert_totals(text: &str, db: &Path) {
    let printed = printed_totals(text);
    let sql = sql_totals(db).await;
    assert_eq!(printed.len(), sql.len(), "{text}");
    for (label, (mirror, simulator)) in &printed {
        assert_eq!(
            Some(mirror),
            sql.get(label),
            "{label}: printed vs SQL\n{text}"
        );
        assert_eq!(mirror, simulator, "{label}: mirror vs simulator\n{text}");
    }
    assert!(
        text.contains("The mirror matches the simulator's truth."),
        "{text}"
    );
    assert_ne!(printed["orders"].0, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_totals_that_match_sql_and_the_simulator_and_reuses_its_file() {
    common::init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("demo.db");

    // First run: a new file.
    let (out, text) = demo(dir.path(), "demo.db", &[]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("(created)"), "{text}");
    assert!(text.contains("pushes received"), "{text}");
    assert!(text.contains("sqlite3 demo.db"), "{text}");
    assert_totals(&text, &db).await;

    // Second run: the same world resumed, the file reused, still equal.
    let (out, text) = demo(dir.path(), "demo.db", &[]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("(reused"), "{text}");
    assert_totals(&text, &db).await;

    // Another world: recreated, and says why.
    let (out, text) = demo(dir.path(), "demo.db", &["--seed", "7"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("(recreated: it held another world"), "{text}");
    assert_totals(&text, &db).await;

    // A file the demo did not make is left alone.
    let foreign = dir.path().join("mine.db");
    std::fs::write(&foreign, b"not a demo database").expect("write");
    let out = run(dir.path(), "demo-foreign", &["demo", "--db", "mine.db"]);
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read(&foreign).expect("read"),
        b"not a demo database"
    );

    report_matches_the_views(dir.path(), &db).await;
}

/// Rows of a SQL query as strings, the way the report prints them.
async fn sql_rows(pool: &SqlitePool, sql: &str, money: &[usize]) -> Vec<Vec<String>> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(pool)
        .await
        .expect(sql)
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                        match v {
                            Some(v) if money.contains(&i) => yuan(v),
                            Some(v) => v.to_string(),
                            None => String::new(),
                        }
                    } else {
                        row.try_get::<Option<String>, _>(i)
                            .expect("text")
                            .unwrap_or_default()
                    }
                })
                .collect()
        })
        .collect()
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            r.expect("a CSV record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    (header, rows)
}

async fn report_matches_the_views(dir: &Path, db: &Path) {
    let pool = SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open");
    let report = |args: &[&str]| {
        let mut all = vec!["report", "--db", "demo.db"];
        all.extend_from_slice(args);
        let out = run(dir, "report", &all);
        assert!(out.status.success(), "report {args:?}");
        stdout(&out)
    };

    // CSV, one view: parses, and equals the view row for row.
    let (header, rows) = csv_rows(&report(&["--format", "csv", "--view", "daily_sales"]));
    assert_eq!(
        header,
        [
            "shop_id",
            "day",
            "orders",
            "paid_orders",
            "gmv_yuan",
            "refunds",
            "refund_yuan"
        ]
    );
    let want = sql_rows(
        &pool,
        "SELECT shop_id, day, orders, paid_orders, gmv_fen, refunds, refund_fen \
         FROM daily_sales ORDER BY shop_id, day",
        &[4, 6],
    )
    .await;
    assert!(want.len() >= 10);
    assert_eq!(rows, want);

    // CSV, every view: three blocks, each a CSV document of its own.
    let text = report(&["--format", "csv"]);
    let blocks: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(blocks.len(), 3, "{text}");
    for (block, view) in blocks
        .iter()
        .zip(["daily_sales", "refund_summary", "item_sales"])
    {
        let (first, body) = block.split_once('\n').expect("a block");
        assert_eq!(first, format!("# {view}"));
        let (_, rows) = csv_rows(body);
        let count = scalar(&pool, &format!("SELECT COUNT(*) FROM {view}")).await;
        assert_eq!(rows.len() as i64, count, "{view}");
    }
    let (_, items) = csv_rows(blocks[2].split_once('\n').expect("block").1);
    let want = sql_rows(
        &pool,
        "SELECT shop_id, item_id, sku_id, item_title, sku_desc, units, revenue_fen \
         FROM item_sales ORDER BY shop_id, revenue_fen DESC, item_id, sku_id",
        &[6],
    )
    .await;
    let titles_cut = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rows.into_iter()
            .map(|mut r| {
                r.remove(3); // titles: MAX() over the same title, compared below by id
                r
            })
            .collect()
    };
    assert_eq!(titles_cut(items), titles_cut(want));

    // JSON: parses, and each view's numbers equal the view's.
    let json: Value = serde_json::from_str(&report(&["--format", "json"])).expect("JSON");
    let daily = json["daily_sales"].as_array().expect("daily_sales");
    let want = sql_rows(
        &pool,
        "SELECT shop_id, day, orders, paid_orders, gmv_fen, refunds, refund_fen \
         FROM daily_sales ORDER BY shop_id, day",
        &[],
    )
    .await;
    let got: Vec<Vec<String>> = daily
        .iter()
        .map(|d| {
            [
                "shop_id",
                "day",
                "orders",
                "paid_orders",
                "gmv_fen",
                "refunds",
                "refund_fen",
            ]
            .iter()
            .map(|k| match &d[*k] {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            })
            .collect()
        })
        .collect();
    assert_eq!(got, want);
    let refunds = json["refund_summary"].as_array().expect("refund_summary");
    let want: Vec<(i64, Option<i64>, i64, i64, f64)> = sqlx::query(
        "SELECT status, handling_way, refunds, amount_fen, rate FROM refund_summary \
         ORDER BY shop_id, status, handling_way",
    )
    .fetch_all(&pool)
    .await
    .expect("refund_summary")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect();
    assert_eq!(refunds.len(), want.len());
    assert!(!want.is_empty());
    for (got, want) in refunds.iter().zip(&want) {
        assert_eq!(got["status"].as_i64(), Some(want.0));
        assert_eq!(got["handling_way"].as_i64(), want.1);
        assert_eq!(got["refunds"].as_i64(), Some(want.2));
        assert_eq!(got["amount_fen"].as_i64(), Some(want.3));
        let rate = got["rate"].as_f64().expect("a rate");
        assert!((rate - want.4).abs() < 1e-12, "{rate} vs {}", want.4);
    }
    let items = json["item_sales"].as_array().expect("item_sales");
    let units: i64 = items
        .iter()
        .map(|i| i["units"].as_i64().expect("units"))
        .sum();
    assert_eq!(
        units,
        scalar(&pool, "SELECT SUM(units) FROM item_sales").await
    );

    // A range of days: exactly the view's rows in it.
    let days = sql_rows(&pool, "SELECT day FROM daily_sales ORDER BY day", &[]).await;
    let (from, to) = (days[2][0].clone(), days[5][0].clone());
    let json: Value = serde_json::from_str(&report(&[
        "--format",
        "json",
        "--view",
        "daily_sales",
        "--from",
        &from,
        "--to",
        &to,
    ]))
    .expect("JSON");
    assert!(json.get("item_sales").is_none());
    let got: Vec<&str> = json["daily_sales"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|d| d["day"].as_str().expect("day"))
        .collect();
    let want: Vec<String> = days[2..=5].iter().map(|d| d[0].clone()).collect();
    assert_eq!(got, want);

    // The table for people names each view.
    let table = report(&["--shop", "shop-0"]);
    for view in ["daily_sales (", "refund_summary (", "item_sales ("] {
        assert!(table.contains(view), "{table}");
    }

    // Bad input: a clear error, nothing printed as data.
    let out = run(
        dir,
        "report-bad",
        &["report", "--db", "demo.db", "--from", "2026-13-01"],
    );
    assert!(!out.status.success());
    let out = run(dir, "report-missing", &["report", "--db", "nowhere.db"]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());

    // After the demo, in a folder with no config, a plain `report` reads the demo's database
    // (`kwaishop-demo.db`) and says so; it once failed on the missing config.
    let copy = dir.join("kwaishop-demo.db");
    let vacuum = format!("VACUUM INTO '{}'", copy.display());
    sqlx::query(sqlx::AssertSqlSafe(vacuum))
        .execute(&pool)
        .await
        .expect("a copy under the demo's default name");
    let plain = Command::new(BIN)
        .current_dir(dir)
        .env_remove("KWAISHOP_SYNC_CONFIG")
        .args(["report", "--shop", "shop-0"])
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(plain.status.success(), "{said}");
    assert_eq!(stdout(&plain), table);
    assert!(said.contains("reading the demo's database"), "{said}");
    // So does `status`, at the instant the demo stopped its world (its clock ran fast): every
    // stream of the shop was read, and its lag is the settle delay, not the days since.
    std::fs::copy(
        dir.join("demo.db.demo.json"),
        dir.join("kwaishop-demo.db.demo.json"),
    )
    .expect("the demo's notes beside the copy");
    let status = Command::new(BIN)
        .current_dir(dir)
        .env_remove("KWAISHOP_SYNC_CONFIG")
        .arg("status")
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    let said = String::from_utf8_lossy(&status.stderr);
    let shown = stdout(&status);
    assert!(status.status.success(), "{said}{shown}");
    assert!(said.contains("reading the demo's database"), "{said}");
    let lines: Vec<&str> = shown.lines().filter(|l| l.starts_with("shop-0")).collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("never") && !l.contains(" d ")),
        "{shown}"
    );
    // Off a terminal, with no log filter asked for, the demo says a line per stage on stderr,
    // not log lines per window (it once printed hundreds).
    let quiet = Command::new(BIN)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("KWAISHOP_SYNC_LOG")
        .args([
            "demo", "--db", "demo.db", "--orders", "2000", "--days", "10",
        ])
        .args(["--push-secs", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    common::record_output("demo-quiet", &quiet);
    let stages = String::from_utf8_lossy(&quiet.stderr);
    assert!(quiet.status.success(), "{stages}");
    assert!(stages.lines().count() <= 4, "{stages}");
    pool.close().await;
}
