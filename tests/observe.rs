//! `/metrics` and `/healthz` over real HTTP on loopback: the metrics parse as Prometheus text and
//! say what the database, the client and the counters say; no secret shows; health follows the
//! loops and the database.

use crate::common;
use crate::common_db;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{app, fast_options, start_sim, wait_until};
use common_db::{add_shop, item, on_postgres, on_sqlite, order, sqlite_store};
use kwaishop_sim::ScaledClock;
use kwaishop_sim::SimConfig;
use kwaishop_sync::api::client::install_crypto_provider;
use kwaishop_sync::api::limits::MemoryUsage;
use kwaishop_sync::api::oauth::{MemoryTokenStore, TokenSet};
use kwaishop_sync::api::{ApiClient, AppCredentials, ClientOptions, Method};
use kwaishop_sync::clock::beijing_day;
use kwaishop_sync::daemon::observe::{Liveness, ObserveSources, render_metrics, routes};
use kwaishop_sync::push::receiver::ReceiverStats;
use kwaishop_sync::queue::WorkerStats;
use kwaishop_sync::store::{EventKind, NewEvent, ShopStatus, Source, Store, Stream, StreamState};
use kwaishop_sync::sync::{NoProgress, RunOutcome, StallLimits};
use kwaishop_sync::{Secret, SharedClock};

// ---------------------------------------------------------------------------------------------
// A small parser of the text format, strict enough to catch what Prometheus would refuse.

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Scrape {
    /// Family name → type.
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|e| format!("value {s:?}: {e}")),
    }
}

/// `{a="x",b="y\"z"}` from its opening brace; returns the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("no {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_metric_name(name) || name.contains(':') {
            return Err(format!("label name {name:?}"));
        }
        let mut chars = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("unquoted value")?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("unknown escape \\{c}")),
                },
                (_, '\n') => return Err("raw line feed in a value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[eq + 1 + 1 + end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the exposition, panicking with the line on anything malformed: a sample before its
/// TYPE, a family split in two, a series twice, a bad name, label or value.
fn parse(text: &str) -> Scrape {
    let mut parser = Parser::default();
    for (n, line) in text.lines().enumerate() {
        if let Err(why) = parser.line(line) {
            panic!("line {}: {why}: {line:?}\n{text}", n + 1);
        }
    }
    parser.scrape
}

#[derive(Default)]
struct Parser {
    scrape: Scrape,
    /// Families whose samples are behind us.
    finished: Vec<String>,
    current: Option<String>,
}

impl Parser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.is_empty() {
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix('#') {
            return self.comment(comment);
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err("bad metric name".into());
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..])?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split(' ').filter(|f| !f.is_empty());
        let value = parse_value(fields.next().ok_or("no value")?)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|e| format!("timestamp: {e}"))?;
        }
        if fields.next().is_some() {
            return Err("trailing text".into());
        }
        if self.current.as_deref() != Some(name) {
            return Err(if self.finished.iter().any(|f| f == name) {
                "family split in two".into()
            } else {
                "sample without its TYPE".into()
            });
        }
        let sample = Sample {
            name: name.into(),
            labels,
            value,
        };
        let samples = &mut self.scrape.samples;
        if samples
            .iter()
            .any(|s| s.name == sample.name && s.labels == sample.labels)
        {
            return Err("series twice".into());
        }
        samples.push(sample);
        Ok(())
    }

    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let mut parts = comment.trim_start().splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("HELP"), Some(name), Some(_)) if is_metric_name(name) => Ok(()),
            (Some("TYPE"), Some(name), Some(kind)) if is_metric_name(name) => {
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err("unknown type".into());
                }
                if self.scrape.types.insert(name.into(), kind.into()).is_some() {
                    return Err("TYPE twice".into());
                }
                if let Some(done) = self.current.replace(name.to_string()) {
                    self.finished.push(done);
                }
                Ok(())
            }
            (Some("HELP" | "TYPE"), _, _) => Err("malformed HELP or TYPE".into()),
            _ => Ok(()), // a comment
        }
    }
}

impl Scrape {
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    fn count(&self, name: &str) -> usize {
        self.samples.iter().filter(|s| s.name == name).count()
    }
}

// ---------------------------------------------------------------------------------------------
// Serving.

/// Serves the routes on a loopback port; returns the base URL.
async fn serve(sources: ObserveSources) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, routes(sources)).await });
    format!("http://{addr}")
}

/// `GET base + path`: status, content type and body.
async fn get(base: &str, path: &str) -> (u16, String, String) {
    install_crypto_provider();
    let response = reqwest::get(format!("{base}{path}"))
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, content_type, response.text().await.expect("a body"))
}

/// `GET /metrics`, checked to be 200 Prometheus text, parsed.
async fn scrape(base: &str) -> (Scrape, String) {
    let (status, content_type, body) = get(base, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    (parse(&body), body)
}

/// A client that never calls anyone (for tests that need no platform).
fn offline_client(clock: SharedClock) -> ApiClient {
    ApiClient::new(
        AppCredentials {
            app_key: "ks-app".into(),
            app_secret: Secret::new("offline-app-secret"),
            sign_secret: Secret::new("offline-sign-secret"),
        },
        ClientOptions {
            base_url: "http://127.0.0.1:9".into(),
            ..ClientOptions::default()
        },
        clock,
        Arc::new(MemoryTokenStore::default()),
        Arc::new(MemoryUsage::default()),
    )
    .expect("client builds")
}

fn sources(store: Store, client: ApiClient, clock: SharedClock) -> ObserveSources {
    ObserveSources {
        store,
        client: Some(client),
        clock,
        daily_quota: None,
        worker: None,
        receiver: None,
        liveness: Arc::new(Liveness::new()),
        stalls: StallLimits::default(),
        row_counts: Default::default(),
    }
}

fn push_event(event_id: &str, shop: Option<&str>, received_at_ms: i64) -> NewEvent {
    NewEvent {
        event_id: event_id.into(),
        msg_id: None,
        app_key: "ks-app".into(),
        shop_id: shop.map(Into::into),
        open_id: Some("open-x".into()),
        user_id: None,
        event: "kwaishop_order_paySuccess".into(),
        kind: EventKind::Order,
        biz_id: Some(1),
        info: "{}".into(),
        raw: "{}".into(),
        event_update_time: None,
        received_at_ms,
    }
}

/// Within a millisecond (values are printed as seconds with millisecond parts).
fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 0.001, "{what}: got {got}, want {want}");
}

// ---------------------------------------------------------------------------------------------
// Tests.

const SHOP: &str = "shop-0";

#[tokio::test]
async fn metrics_match_the_database_on_sqlite() {
    on_sqlite(metrics_match_the_database).await;
}

#[tokio::test]
async fn metrics_match_the_database_on_postgres() {
    on_postgres(metrics_match_the_database).await;
}

async fn metrics_match_the_database(store: Store) {
    // A platform that allows 2 QPS, a client that believes in 100: some answers are throttled.
    let sim = start_sim(SimConfig {
        seed: 11,
        shops: 1,
        orders: 100,
        mutate: false,
        qps: Some(2.0),
        ..SimConfig::default()
    })
    .await;
    let creds = sim.credentials().clone();
    let shop_creds = &creds.shops[0];
    let tokens = TokenSet {
        access_token: Secret::new(shop_creds.access_token.clone()),
        access_expires_at: shop_creds.access_expires_at,
        refresh_token: Secret::new(shop_creds.refresh_token.clone()),
        refresh_expires_at: shop_creds.refresh_expires_at,
        open_id: shop_creds.open_id.clone(),
        scopes: vec![],
    };
    store.save_tokens(SHOP, &tokens).await.expect("save tokens");
    add_shop(&store, "shop-1").await;
    store
        .set_shop_status("shop-1", ShopStatus::NeedsReauth, Some("revoked"))
        .await
        .expect("mark shop-1");
    store
        .set_quota_pause("shop-1", sim.state.clock.now_ms() + 3_600_000)
        .await
        .expect("pause shop-1");

    // The client counts its quota in the store, as the daemon's does.
    let clock: SharedClock = sim.state.clock.clone();
    let opts = ClientOptions {
        qps: Method::ALL.iter().map(|m| (*m, 100.0)).collect(),
        daily_quota: Some(2_000),
        ..fast_options(&sim)
    };
    let client = ApiClient::new(
        app(&sim),
        opts,
        clock.clone(),
        Arc::new(store.clone()),
        Arc::new(store.clone()),
    )
    .expect("client builds");
    for _ in 0..4 {
        client.item_page(SHOP, 1, 20).await.expect("an item page");
    }
    // A busy stream counts its calls in blocks ahead of use; a stop gives back the ones not made.
    client.give_back_unused(None).await;

    let now = clock.now_ms();
    let checkpoint = now - 90_000;
    let mut orders_state = StreamState::new(SHOP, Stream::Orders);
    orders_state.checkpoint_ms = Some(checkpoint);
    orders_state.last_success_ms = Some(now - 30_000);
    orders_state.rows_total = 7;
    orders_state.updated_at_ms = now;
    store.save_state(&orders_state).await.expect("orders state");
    let mut refunds_state = StreamState::new(SHOP, Stream::Refunds);
    refunds_state.checkpoint_ms = Some(now - 3_600_000);
    refunds_state.last_error = Some("boom: the window failed".into());
    refunds_state.last_error_at_ms = Some(now);
    refunds_state.paused_until_ms = Some(now + 3_600_000);
    refunds_state.updated_at_ms = now;
    store
        .save_state(&refunds_state)
        .await
        .expect("refunds state");

    let orders = [
        order(1, now - 5_000, 0),
        order(2, now - 4_000, 0),
        order(3, now, 0),
    ];
    store
        .upsert_orders(SHOP, &orders, Source::Poll, now)
        .await
        .expect("orders");
    store
        .upsert_items(SHOP, &[item(10, now, &[100, 101])], Source::Poll, now)
        .await
        .expect("an item");

    let oldest = now - 42_000;
    let events = [
        push_event("e1", Some(SHOP), oldest),
        push_event("e2", Some(SHOP), now - 1_000),
        push_event("e3", Some(SHOP), now - 500),
        push_event("e4", None, now - 100),
    ];
    store.enqueue_events(&events).await.expect("enqueue");

    let worker = Arc::new(WorkerStats::default());
    worker.done.store(5, Ordering::Relaxed);
    worker.retried.store(2, Ordering::Relaxed);
    worker.dead.store(1, Ordering::Relaxed);
    worker.fetches.store(9, Ordering::Relaxed);
    let receiver = Arc::new(ReceiverStats::default());
    receiver.accepted.store(3, Ordering::Relaxed);
    receiver.duplicates.store(1, Ordering::Relaxed);
    receiver.rejected.store(2, Ordering::Relaxed);
    receiver.heartbeats.store(4, Ordering::Relaxed);
    receiver.unknown_shop.store(1, Ordering::Relaxed);
    let liveness = Arc::new(Liveness::new());
    liveness.register("worker", Duration::from_secs(3_600));

    let base = serve(ObserveSources {
        store: store.clone(),
        client: Some(client.clone()),
        clock: clock.clone(),
        daily_quota: Some(2_000),
        worker: Some(worker),
        receiver: Some(receiver),
        liveness,
        stalls: StallLimits::default(),
        row_counts: Default::default(),
    })
    .await;
    let before = clock.now_ms();
    let (m, body) = scrape(&base).await;
    let after = clock.now_ms();

    // Every family the brief names is declared, with its type.
    for (name, kind) in [
        ("kwaishop_sync_lag_seconds", "gauge"),
        ("kwaishop_sync_checkpoint_timestamp_seconds", "gauge"),
        ("kwaishop_sync_rows_total", "counter"),
        ("kwaishop_mirror_rows", "gauge"),
        ("kwaishop_sync_last_success_timestamp_seconds", "gauge"),
        ("kwaishop_sync_paused", "gauge"),
        ("kwaishop_sync_last_error", "gauge"),
        ("kwaishop_shop_needs_reauth", "gauge"),
        ("kwaishop_quota_used_today", "gauge"),
        ("kwaishop_quota_limit", "gauge"),
        ("kwaishop_token_access_expiry_timestamp_seconds", "gauge"),
        ("kwaishop_token_refresh_expiry_timestamp_seconds", "gauge"),
        ("kwaishop_api_calls_total", "counter"),
        ("kwaishop_api_throttled_total", "counter"),
        ("kwaishop_queue_events", "gauge"),
        ("kwaishop_queue_oldest_pending_age_seconds", "gauge"),
        ("kwaishop_worker_events_done_total", "counter"),
        ("kwaishop_worker_events_retried_total", "counter"),
        ("kwaishop_worker_events_dead_total", "counter"),
        ("kwaishop_worker_fetches_total", "counter"),
        ("kwaishop_push_accepted_total", "counter"),
        ("kwaishop_push_duplicates_total", "counter"),
        ("kwaishop_push_rejected_total", "counter"),
        ("kwaishop_push_unavailable_total", "counter"),
        ("kwaishop_push_heartbeats_total", "counter"),
        ("kwaishop_push_unknown_shop_total", "counter"),
        ("kwaishop_metrics_database_up", "gauge"),
    ] {
        assert_eq!(m.types.get(name).map(String::as_str), Some(kind), "{name}");
    }

    // Stream states.
    let orders_labels = [("shop", SHOP), ("stream", "orders")];
    let refunds_labels = [("shop", SHOP), ("stream", "refunds")];
    let lag = m.value("kwaishop_sync_lag_seconds", &orders_labels);
    assert!(
        lag >= (before - checkpoint) as f64 / 1000.0 - 0.001
            && lag <= (after - checkpoint) as f64 / 1000.0 + 0.001,
        "lag {lag} outside [{before}, {after}] − {checkpoint}"
    );
    assert!((89.0..120.0).contains(&lag), "lag {lag}");
    let cp = m.value("kwaishop_sync_checkpoint_timestamp_seconds", &orders_labels);
    assert_close(cp, checkpoint as f64 / 1000.0, "checkpoint");
    let success = m.value(
        "kwaishop_sync_last_success_timestamp_seconds",
        &orders_labels,
    );
    assert_close(success, (now - 30_000) as f64 / 1000.0, "last success");
    assert_eq!(m.value("kwaishop_sync_rows_total", &orders_labels), 7.0);
    assert_eq!(m.value("kwaishop_sync_rows_total", &refunds_labels), 0.0);
    assert_eq!(m.value("kwaishop_sync_paused", &orders_labels), 0.0);
    assert_eq!(m.value("kwaishop_sync_paused", &refunds_labels), 1.0);
    assert_eq!(m.value("kwaishop_sync_last_error", &orders_labels), 0.0);
    assert_eq!(m.value("kwaishop_sync_last_error", &refunds_labels), 1.0);
    let items_labels = [("shop", SHOP), ("stream", "items")];
    assert_eq!(m.value("kwaishop_sync_last_error", &items_labels), 0.0);
    assert_eq!(
        m.find("kwaishop_sync_lag_seconds", &items_labels),
        None,
        "no checkpoint, no lag"
    );
    // shop-1's quota pause (the client's, on the shop) pauses each of its streams.
    for stream in ["orders", "refunds", "items"] {
        let labels = [("shop", "shop-1"), ("stream", stream)];
        assert_eq!(m.value("kwaishop_sync_paused", &labels), 1.0, "{stream}");
    }

    // The mirror's rows.
    for (table, want) in [
        ("orders", 3.0),
        ("refunds", 0.0),
        ("items", 1.0),
        ("skus", 2.0),
    ] {
        let got = m.value("kwaishop_mirror_rows", &[("shop", SHOP), ("table", table)]);
        assert_eq!(got, want, "{table}");
    }

    // Shops, quota and tokens.
    assert_eq!(
        m.value("kwaishop_shop_needs_reauth", &[("shop", SHOP)]),
        0.0
    );
    assert_eq!(
        m.value("kwaishop_shop_needs_reauth", &[("shop", "shop-1")]),
        1.0
    );
    assert_eq!(m.value("kwaishop_quota_limit", &[]), 2_000.0);
    let used = store
        .calls_on(SHOP, beijing_day(after))
        .await
        .expect("calls today");
    assert!(used >= 4, "{used} calls counted");
    assert_eq!(
        m.value("kwaishop_quota_used_today", &[("shop", SHOP)]),
        used as f64
    );
    assert_eq!(
        m.value("kwaishop_quota_used_today", &[("shop", "shop-1")]),
        0.0
    );
    assert_eq!(
        m.value(
            "kwaishop_token_access_expiry_timestamp_seconds",
            &[("shop", SHOP)]
        ),
        shop_creds.access_expires_at as f64 / 1000.0
    );
    assert_eq!(
        m.value(
            "kwaishop_token_refresh_expiry_timestamp_seconds",
            &[("shop", SHOP)]
        ),
        shop_creds.refresh_expires_at as f64 / 1000.0
    );
    assert_eq!(
        m.find(
            "kwaishop_token_access_expiry_timestamp_seconds",
            &[("shop", "shop-1")]
        ),
        None,
        "shop-1 has no token"
    );

    // API answers: exactly the client's counts, every one of them a sent (and counted) call.
    let counts = client.call_counts();
    assert_eq!(m.count("kwaishop_api_calls_total"), counts.len());
    let mut throttled = 0;
    for (shop, method, outcome, n) in &counts {
        let labels = [
            ("shop", shop.as_str()),
            ("method", method.name()),
            ("outcome", outcome),
        ];
        assert_eq!(m.value("kwaishop_api_calls_total", &labels), *n as f64);
        if *outcome == "throttled" {
            throttled += n;
        }
    }
    let item_list = Method::ItemList.name();
    let ok = [("shop", SHOP), ("method", item_list), ("outcome", "ok")];
    assert_eq!(m.value("kwaishop_api_calls_total", &ok), 4.0);
    assert!(throttled > 0, "the 2 QPS platform throttled: {counts:?}");
    let answers: u64 = counts.iter().map(|c| c.3).sum();
    assert_eq!(answers, used, "each sent call is counted once in the quota");
    assert_eq!(
        m.value("kwaishop_api_throttled_total", &[("method", item_list)]),
        throttled as f64
    );
    let detail = [("method", Method::OrderDetail.name())];
    assert_eq!(m.value("kwaishop_api_throttled_total", &detail), 0.0);

    // The queue and the counters.
    for (status, want) in [
        ("pending", 3.0),
        ("running", 0.0),
        ("dead", 0.0),
        ("unknown_shop", 1.0),
        ("done", 0.0),
    ] {
        assert_eq!(
            m.value("kwaishop_queue_events", &[("status", status)]),
            want,
            "{status}"
        );
    }
    let age = m.value("kwaishop_queue_oldest_pending_age_seconds", &[]);
    assert!(
        age >= (before - oldest) as f64 / 1000.0 - 0.001
            && age <= (after - oldest) as f64 / 1000.0 + 0.001,
        "oldest pending age {age}"
    );
    for (name, want) in [
        ("kwaishop_worker_events_done_total", 5.0),
        ("kwaishop_worker_events_retried_total", 2.0),
        ("kwaishop_worker_events_dead_total", 1.0),
        ("kwaishop_worker_fetches_total", 9.0),
        ("kwaishop_push_accepted_total", 3.0),
        ("kwaishop_push_duplicates_total", 1.0),
        ("kwaishop_push_rejected_total", 2.0),
        ("kwaishop_push_unavailable_total", 0.0),
        ("kwaishop_push_heartbeats_total", 4.0),
        ("kwaishop_push_unknown_shop_total", 1.0),
        ("kwaishop_metrics_database_up", 1.0),
    ] {
        assert_eq!(m.value(name, &[]), want, "{name}");
    }
    assert_eq!(m.value("kwaishop_loop_stalled", &[("loop", "worker")]), 0.0);

    // I8: no token or secret anywhere, nor the free text of an error.
    for secret in [
        &shop_creds.access_token,
        &shop_creds.refresh_token,
        &creds.app_secret,
        &creds.sign_secret,
        &creds.msg_secret,
    ] {
        assert!(!secret.is_empty());
        assert!(
            !body.contains(secret.as_str()),
            "a secret leaked into /metrics"
        );
    }
    assert!(!body.contains("boom"), "error text leaked into /metrics");
    sim.stop().await;
}

#[tokio::test]
async fn label_values_are_escaped() {
    let (store, _dir) = sqlite_store().await;
    let odd = "quote\" back\\slash\nnewline 店铺";
    add_shop(&store, odd).await;
    let clock: SharedClock = Arc::new(ScaledClock::starting_now(1.0));
    let mut state = StreamState::new(odd, Stream::Orders);
    state.checkpoint_ms = Some(clock.now_ms() - 1_000);
    store.save_state(&state).await.expect("a state");
    let text = render_metrics(&sources(
        store.clone(),
        offline_client(clock.clone()),
        clock,
    ))
    .await;
    let m = parse(&text);
    assert_eq!(
        m.value(
            "kwaishop_sync_paused",
            &[("shop", odd), ("stream", "orders")]
        ),
        0.0
    );
    assert!(
        m.find(
            "kwaishop_sync_lag_seconds",
            &[("shop", odd), ("stream", "orders")]
        )
        .is_some()
    );
    assert!(
        text.contains(r#"shop="quote\" back\\slash\nnewline 店铺""#),
        "{text}"
    );
    store.close().await;
}

#[tokio::test]
async fn healthz_follows_the_loops_and_the_database() {
    let (store, _dir) = sqlite_store().await;
    let clock: SharedClock = Arc::new(ScaledClock::starting_now(1.0));
    let liveness = Arc::new(Liveness::new());
    liveness.register("worker", Duration::from_secs(1));
    liveness.register("scheduler", Duration::from_secs(3_600));
    let worker = Arc::new(WorkerStats::default());
    worker.done.store(12, Ordering::Relaxed);
    let base = serve(ObserveSources {
        worker: Some(worker),
        liveness: liveness.clone(),
        ..sources(store.clone(), offline_client(clock.clone()), clock)
    })
    .await;

    let (status, content_type, body) = get(&base, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert!(content_type.starts_with("text/plain"), "{content_type}");

    // The worker stops beating: past its second of silence, health fails and names it.
    wait_until(
        Duration::from_secs(10),
        "the worker to count as stalled",
        || async { get(&base, "/healthz").await.0 == 503 },
    )
    .await;
    let (status, _, body) = get(&base, "/healthz").await;
    assert_eq!((status, body.as_str()), (503, "stalled: worker"));
    let (m, _) = scrape(&base).await;
    assert_eq!(m.value("kwaishop_loop_stalled", &[("loop", "worker")]), 1.0);
    assert_eq!(
        m.value("kwaishop_loop_stalled", &[("loop", "scheduler")]),
        0.0
    );

    // It beats again: healthy.
    liveness.beat("worker");
    let (status, _, body) = get(&base, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    // The database goes away: health fails with the reason on one line…
    store.close().await;
    let (status, _, body) = get(&base, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("database: "), "{body}");
    assert!(!body.contains('\n'), "one line: {body:?}");

    // …and the scrape still answers, with what it has and the failure counted.
    let (m, _) = scrape(&base).await;
    assert_eq!(m.value("kwaishop_metrics_database_up", &[]), 0.0);
    assert!(m.value("kwaishop_metrics_read_errors", &[]) >= 1.0);
    assert_eq!(m.value("kwaishop_worker_events_done_total", &[]), 12.0);
    assert_eq!(
        m.count("kwaishop_queue_events"),
        0,
        "no queue numbers without a database"
    );
    assert_eq!(m.count("kwaishop_api_throttled_total"), Method::ALL.len());
}

// ---------------------------------------------------------------------------------------------
// A stream whose runs end caught up while the mirror does not move.

/// Runs one `sync --once` of the refunds and says how it ended.
async fn sync_refunds(app: &kwaishop_sync::app::App) -> RunOutcome {
    let shops = app.shops(None).expect("shops");
    let summaries = kwaishop_sync::commands::sync::sync_once(
        app,
        &shops,
        &[Stream::Refunds],
        Arc::new(NoProgress),
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    summaries[0].outcome.clone()
}

/// A refund window no wider than its lookback (what `check-config` now refuses; set here past
/// the check, as an older release or a hand-made config would): every run ends "caught up", the
/// checkpoint stays days behind, and `status`, `/metrics`, the status page and `/healthz` say
/// that the stream is stalled. A workable window heals it and the flag clears.
async fn a_stream_that_does_not_move_is_stalled(store: Store) {
    let sim = common::start_sim_stopped(SimConfig {
        seed: 45,
        orders: 300,
        days: 3,
        mutate: false,
        ..SimConfig::default()
    })
    .await;
    let mut app = common::app_for(&sim, store, |c| {
        c.sync.backfill_days = 4;
        c.refunds.window = c.refunds.lookback;
    })
    .await;
    sim.state.clock.advance(2 * 60_000);
    for _ in 0..2 {
        assert_eq!(sync_refunds(&app).await, RunOutcome::CaughtUp);
        sim.state.clock.advance(3_600_000);
    }
    let stalls = StallLimits::from_config(&app.config);
    let clock = app.clock.clone();
    let base = serve(ObserveSources {
        stalls: stalls.clone(),
        row_counts: Default::default(),
        ..sources(app.store.clone(), app.client.clone(), clock.clone())
    })
    .await;
    let (status, _, body) = get(&base, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("stalled streams: shop-0/refunds ("),
        "names the stream: {body}"
    );
    let (m, _) = scrape(&base).await;
    let flag = |m: &Scrape, stream: &str| {
        m.value(
            "kwaishop_sync_stalled",
            &[("shop", "shop-0"), ("stream", stream)],
        )
    };
    assert_eq!(flag(&m, "refunds"), 1.0);
    assert_eq!(flag(&m, "orders"), 0.0);
    let (_, _, page) = get(&base, "/").await;
    assert!(page.contains(">stalled</span>"), "the page shows it");
    let (_, _, json) = get(&base, "/status.json").await;
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    let refunds = &json["shops"][0]["streams"][1];
    assert_eq!(refunds["stream"], "refunds");
    assert!(refunds["stalled_behind_ms"].as_i64().unwrap_or(0) > 2 * 86_400_000);
    let report = kwaishop_sync::commands::status::report_of(&app).await;
    let line = report.shops[0]
        .streams
        .iter()
        .find(|l| l.stream == "refunds")
        .expect("refunds");
    assert!(line.stalled_behind_ms.is_some(), "{line:?}");
    assert!(
        kwaishop_sync::commands::status::render(&report).contains("STALLED"),
        "status prints it"
    );

    // A window wider than the lookback moves the stream: no longer stalled.
    let mut config = (*app.config).clone();
    config.refunds.window = std::time::Duration::from_secs(3_600);
    app.config = Arc::new(config);
    assert_eq!(sync_refunds(&app).await, RunOutcome::CaughtUp);
    let (status, _, body) = get(&base, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (m, _) = scrape(&base).await;
    assert_eq!(flag(&m, "refunds"), 0.0);
}

#[tokio::test]
async fn a_stream_that_does_not_move_is_stalled_sqlite() {
    on_sqlite(a_stream_that_does_not_move_is_stalled).await;
}

#[tokio::test]
async fn a_stream_that_does_not_move_is_stalled_postgres() {
    on_postgres(a_stream_that_does_not_move_is_stalled).await;
}
