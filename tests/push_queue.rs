//! Push messages end to end with the simulator's pusher, on SQLite and on Postgres: the receiver
//! stores durably before acknowledging, the worker applies each event once through detail
//! fetches, duplicates and stale versions change nothing, bad bodies store nothing, a dead
//! database gets 503s and recovers, a poison event dies after N attempts.

use crate::common;
use crate::common_db;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mirror::{assert_mirror_equals_truth, diff_mirror};
use common::*;
use common_db::{on_postgres, on_postgres_with_url, on_sqlite, on_sqlite_with_url};
use kwaishop_sim::push::PushConfig;
use kwaishop_sim::{SimConfig, SimHandle};
use kwaishop_sync::app::App;
use kwaishop_sync::clock::DAY_MS;
use kwaishop_sync::commands::demo::{config_for_sim, import_sim_tokens};
use kwaishop_sync::commands::sync::sync_once;
use kwaishop_sync::daemon::{self, DaemonHandle};
use kwaishop_sync::push::MessageKey;
use kwaishop_sync::queue::{BeforeFetch, WorkerSettings};
use kwaishop_sync::store::{EventStatus, Store, Stream};
use kwaishop_sync::sync::NoProgress;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Rig {
    sim: SimHandle,
    app: App,
    daemon: DaemonHandle,
    url: String,
    key: MessageKey,
}

fn worker_settings() -> WorkerSettings {
    WorkerSettings {
        max_attempts: 4,
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        idle_wait: Duration::from_millis(50),
        lease: Duration::from_secs(30),
        ..WorkerSettings::default()
    }
}

/// A simulator pushing to a daemon (receiver + worker, no pollers) that mirrors into `store`.
async fn rig(store: Store, sim_config: SimConfig, push: Option<PushConfig>) -> Rig {
    rig_with(store, sim_config, push, worker_settings()).await
}

/// [`rig`] with the worker's settings given.
async fn rig_with(
    store: Store,
    mut sim_config: SimConfig,
    push: Option<PushConfig>,
    settings: WorkerSettings,
) -> Rig {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/kwaishop/push",
        listener.local_addr().expect("addr")
    );
    sim_config.push = push.map(|p| PushConfig {
        url: url.clone(),
        ..p
    });
    let sim = start_sim(sim_config).await;
    let mut config = config_for_sim(&sim, std::path::Path::new("unused.db")).expect("config");
    config.push.enabled = true;
    config.limits.qps = kwaishop_sync::api::Method::ALL
        .iter()
        .map(|m| (*m, 1_000.0))
        .collect();
    config.retry.transient_delay = Duration::from_millis(20);
    config.retry.throttled_delay = Duration::from_millis(50);
    config.retry.max_delay = Duration::from_millis(300);
    let mut app = App::with_store(config, store, None).await.expect("app");
    app.clock = sim.state.clock.clone();
    let store_arc = Arc::new(app.store.clone());
    app.client = kwaishop_sync::api::ApiClient::new(
        common::app(&sim),
        kwaishop_sync::app::client_options(&app.config),
        app.clock.clone(),
        store_arc.clone(),
        store_arc,
    )
    .expect("client");
    import_sim_tokens(&app.store, &sim).await.expect("tokens");
    sim.state.clock.advance(2 * 60_000);
    let daemon = daemon::start(app.clone(), Some(listener), settings)
        .await
        .expect("daemon");
    let key = MessageKey::from_secret(&sim.credentials().msg_secret).expect("key");
    Rig {
        sim,
        app,
        daemon,
        url,
        key,
    }
}

impl Rig {
    async fn poll_once(&self) {
        let shops = self.app.shops(None).expect("shops");
        let runs = sync_once(
            &self.app,
            &shops,
            &Stream::ALL,
            Arc::new(NoProgress),
            CancellationToken::new(),
        )
        .await;
        assert!(
            runs.iter()
                .all(|r| r.outcome == kwaishop_sync::sync::RunOutcome::CaughtUp),
            "{runs:?}"
        );
    }

    /// Waits until the pusher has delivered (or dropped) every message and the queue is empty.
    async fn drained(&self, timeout: Duration) {
        let sim = &self.sim;
        let store = &self.app.store;
        wait_until(timeout, "pushes delivered and applied", || async {
            let stats: Value = reqwest::get(format!("{}/__sim/push", sim.base_url()))
                .await
                .expect("stats")
                .json()
                .await
                .expect("json");
            let sent = stats["acked_event_ids"].as_array().map_or(0, Vec::len) as u64
                + stats["dropped"].as_u64().unwrap_or(0);
            let q = store.queue_stats().await.expect("stats");
            sent >= stats["messages"].as_u64().unwrap_or(0) && q.pending == 0 && q.running == 0
        })
        .await;
    }

    fn envelope(&self, event_id: &str, event: &str, biz_id: i64, info: Value) -> String {
        let creds = self.sim.credentials();
        let plain = json!({
            "eventId": event_id, "msgId": format!("m-{event_id}"), "bizId": biz_id,
            "userId": creds.shops[0].seller_id, "openId": creds.shops[0].open_id,
            "appKey": creds.app_key, "event": event, "info": info.to_string(),
            "status": 2, "createTime": 1, "updateTime": 1,
        });
        self.key.encrypt(plain.to_string().as_bytes())
    }

    async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(&self.url)
            .body(body)
            .send()
            .await
            .expect("answer");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }
}

fn pushing() -> PushConfig {
    PushConfig {
        retry_scale: 0.0001,
        heartbeat_ms: 500,
        concurrency: 32,
        ..PushConfig::new("set by the rig")
    }
}

fn busy_shop() -> SimConfig {
    SimConfig {
        seed: 41,
        days: 30,
        orders: 20_000,
        qps: Some(1_000.0),
        mutate: false,
        ..SimConfig::default()
    }
}

// ---------------------------------------------------------------- convergence by push alone

async fn pushes_alone_converge(store: Store) {
    // Variant seed 1: the envelopes' openId is none the client knows; the seller id routes them.
    let config = SimConfig {
        variants: variants(1),
        ..busy_shop()
    };
    let rig = rig(store, config, Some(pushing())).await;
    rig.poll_once().await;
    // Polling stops here. The platform changes thousands of orders; only pushes tell us.
    admin(&rig.sim, "mutation?on=true").await;
    rig.sim.state.clock.advance(3 * DAY_MS);
    admin(&rig.sim, "mutation?now=true").await;
    admin(&rig.sim, "mutation?on=false").await;
    rig.drained(Duration::from_secs(240)).await;
    let stats: Value = reqwest::get(format!("{}/__sim/push", rig.sim.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let orders: BTreeSet<i64> = rig
        .app
        .store
        .order_rows("shop-0")
        .await
        .expect("rows")
        .iter()
        .filter(|r| r.source == kwaishop_sync::store::Source::Push)
        .map(|r| r.oid)
        .collect();
    eprintln!(
        "{} messages, {} orders refreshed by push",
        stats["messages"],
        orders.len()
    );
    assert!(
        orders.len() >= 5_000,
        "only {} orders changed by push",
        orders.len()
    );
    assert_mirror_equals_truth(&rig.app.store, &rig.sim, 0).await;
    rig.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_alone_converge_sqlite() {
    on_sqlite(pushes_alone_converge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_alone_converge_postgres() {
    on_postgres(pushes_alone_converge).await;
}

async fn dropped_pushes_are_healed_by_one_poll(store: Store) {
    let rig = rig(
        store,
        SimConfig {
            orders: 5_000,
            variants: variants(3),
            ..busy_shop()
        },
        Some(PushConfig {
            drop: 0.1,
            ..pushing()
        }),
    )
    .await;
    rig.poll_once().await;
    admin(&rig.sim, "mutation?on=true").await;
    rig.sim.state.clock.advance(2 * DAY_MS);
    admin(&rig.sim, "mutation?now=true").await;
    admin(&rig.sim, "mutation?on=false").await;
    rig.drained(Duration::from_secs(120)).await;
    let gap = diff_mirror(&rig.app.store, &rig.sim, 0).await;
    assert!(
        !gap.problems.is_empty(),
        "with a tenth of the pushes dropped the mirror lags"
    );
    rig.sim.state.clock.advance(2 * 60_000);
    rig.poll_once().await;
    assert_mirror_equals_truth(&rig.app.store, &rig.sim, 0).await;
    rig.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_pushes_are_healed_by_one_poll_sqlite() {
    on_sqlite(dropped_pushes_are_healed_by_one_poll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_pushes_are_healed_by_one_poll_postgres() {
    on_postgres(dropped_pushes_are_healed_by_one_poll).await;
}

// ---------------------------------------------------------------- one effect per event

async fn thrice_delivered_events_have_one_row_and_one_effect(store: Store) {
    let rig = rig(
        store,
        SimConfig {
            orders: 2_000,
            variants: variants(0),
            ..busy_shop()
        },
        None,
    )
    .await;
    let truth = truth(&rig.sim).await;
    let oids: Vec<i64> = truth["shops"][0]["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .take(1_000)
        .map(|o| o["orderBaseInfo"]["oid"].as_i64().expect("oid"))
        .collect();
    let before = calls(&rig.sim).await.len();
    let mut tasks = tokio::task::JoinSet::new();
    // Many at once, but within the receiver's cap on requests in flight (beyond it: 503).
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    for (i, oid) in oids.iter().enumerate() {
        let body = rig.envelope(
            &format!("e-{i}"),
            "kwaishop_order_paySuccess",
            *oid,
            json!({"oid": oid}),
        );
        let url = rig.url.clone();
        let slot = slots.clone().acquire_owned().await.expect("slot");
        tasks.spawn(async move {
            let _slot = slot;
            let client = reqwest::Client::new();
            let send = || client.post(&url).body(body.clone()).send();
            let (a, b) = tokio::join!(send(), send());
            let c = send().await;
            [a, b, c]
                .into_iter()
                .map(|r| r.map(|r| r.status().as_u16()).unwrap_or(0))
                .collect::<Vec<_>>()
        });
    }
    while let Some(done) = tasks.join_next().await {
        assert_eq!(
            done.expect("task"),
            vec![200, 200, 200],
            "every delivery is acknowledged"
        );
    }
    let stats = rig.app.store.queue_stats().await.expect("stats");
    assert_eq!(
        stats.pending + stats.running + stats.done,
        1_000,
        "one queue row per event"
    );
    wait_until(Duration::from_secs(60), "all applied", || async {
        rig.app.store.queue_stats().await.expect("stats").done == 1_000
    })
    .await;
    let details = calls(&rig.sim).await[before..]
        .iter()
        .filter(|c| c.method == "open.order.detail")
        .count();
    assert_eq!(details, 1_000, "one fetch (one effect) per event");
    rig.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrice_delivered_events_have_one_row_and_one_effect_sqlite() {
    on_sqlite(thrice_delivered_events_have_one_row_and_one_effect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrice_delivered_events_have_one_row_and_one_effect_postgres() {
    on_postgres(thrice_delivered_events_have_one_row_and_one_effect).await;
}

// ---------------------------------------------------------------- versions out of order

async fn versions_out_of_order_leave_the_newest(store: Store) {
    let rig = rig(
        store,
        SimConfig {
            orders: 500,
            variants: variants(2),
            ..busy_shop()
        },
        None,
    )
    .await;
    rig.poll_once().await;
    let oid = truth(&rig.sim).await["shops"][0]["orders"][7]["orderBaseInfo"]["oid"]
        .as_i64()
        .expect("oid");
    let v: Value = admin(&rig.sim, &format!("versions?shop=0&oid={oid}&serve=3,1,2")).await;
    let versions: Vec<i64> = v["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|t| t.as_i64().expect("t"))
        .collect();
    // A reader watches the row the whole time: its version must never go back, and the stale
    // versions must never be visible, not even for a moment.
    let reader_store = rig.app.store.clone();
    let stop = CancellationToken::new();
    let reader_stop = stop.clone();
    let reads = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = tokio::spawn({
        let (reads, seen) = (reads.clone(), seen.clone());
        async move {
            while !reader_stop.is_cancelled() {
                let rows = reader_store.order_rows("shop-0").await.expect("rows");
                let row = rows.iter().find(|r| r.oid == oid).expect("the row exists");
                seen.lock().expect("seen").push(row.update_time);
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    for (i, label) in ["v3", "v1", "v2"].iter().enumerate() {
        let (status, _) = rig
            .post(rig.envelope(
                &format!("ver-{label}"),
                "kwaishop_order_deliverySuccess",
                oid,
                json!({"oid": oid}),
            ))
            .await;
        assert_eq!(status, 200);
        let store = rig.app.store.clone();
        wait_until(Duration::from_secs(20), "the event applied", || async {
            store.queue_stats().await.expect("stats").done == i as i64 + 1
        })
        .await;
        // A whole read that began after this event was applied.
        let after = reads.load(Ordering::SeqCst) + 2;
        wait_until(Duration::from_secs(20), "a read after the event", || {
            let reads = reads.clone();
            async move { reads.load(Ordering::SeqCst) >= after }
        })
        .await;
        let last = *seen.lock().expect("seen").last().expect("a read");
        assert_eq!(
            last, versions[2],
            "after {label} was applied a reader saw {last}"
        );
    }
    stop.cancel();
    reader.await.expect("reader");
    let seen = seen.lock().expect("seen").clone();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "a reader saw the row go back: {seen:?}"
    );
    assert!(
        !seen.contains(&versions[0]) && !seen.contains(&versions[1]),
        "a stale version was visible: {seen:?}"
    );
    let row = rig
        .app
        .store
        .order_rows("shop-0")
        .await
        .expect("rows")
        .into_iter()
        .find(|r| r.oid == oid)
        .expect("row");
    assert_eq!(row.update_time, versions[2], "v3 stays");
    rig.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_out_of_order_leave_the_newest_sqlite() {
    on_sqlite(versions_out_of_order_leave_the_newest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_out_of_order_leave_the_newest_postgres() {
    on_postgres(versions_out_of_order_leave_the_newest).await;
}

// ---------------------------------------------------------------- bad bodies

async fn bad_bodies_are_refused_and_store_nothing(store: Store) {
    let rig = rig(
        store,
        SimConfig {
            orders: 200,
            variants: variants(0),
            ..busy_shop()
        },
        None,
    )
    .await;
    let other = MessageKey::from_secret("ZmVkY2JhOTg3NjU0MzIxMA==").expect("key");
    let creds = rig.sim.credentials().clone();
    let good = |i: usize| {
        json!({"eventId": format!("bad-{i}"), "bizId": 1, "appKey": creds.app_key, "event": "kwaishop_order_addOrder", "info": "{}", "openId": creds.shops[0].open_id}).to_string()
    };
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..125 {
        bodies.push((
            "wrong key".into(),
            other.encrypt(good(i).as_bytes()).into_bytes(),
        ));
        let mut flipped = rig.key.encrypt(good(i).as_bytes()).into_bytes();
        let at = i % flipped.len().saturating_sub(2).max(1);
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        bodies.push(("flipped byte".into(), flipped));
        let whole = rig.key.encrypt(good(i).as_bytes());
        bodies.push((
            "truncated".into(),
            whole.as_bytes()[..whole.len() / 2 + i % 7].to_vec(),
        ));
        bodies.push((
            "not base64".into(),
            format!("§§ not base64 {i} ¿").into_bytes(),
        ));
        bodies.push((
            "plain text".into(),
            rig.key
                .encrypt(format!("hello {i}").as_bytes())
                .into_bytes(),
        ));
        let foreign = good(i).replace(&creds.app_key, "ks999999999999999999");
        bodies.push((
            "another app".into(),
            rig.key.encrypt(foreign.as_bytes()).into_bytes(),
        ));
        bodies.push(("empty".into(), Vec::new()));
        bodies.push(("over 1 MiB".into(), vec![b'A'; (1 << 20) + 16 + i]));
    }
    // Each flipped body is checked: a flip can leave valid padding and still decode to garbage.
    // Every body must be refused with a 4xx; only an oversized one may instead be cut off by the
    // server before it is all sent (no answer is not an acknowledgement either).
    let client = reqwest::Client::new();
    let mut refused = 0;
    for (what, body) in &bodies {
        let r = match client.post(&rig.url).body(body.clone()).send().await {
            Ok(r) => r,
            Err(_) if what == "over 1 MiB" => {
                refused += 1;
                continue;
            }
            Err(e) => panic!("{what}: no answer from the receiver: {e}"),
        };
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        assert!(!text.contains("\"result\":1"), "{what} was acknowledged");
        assert!((400..500).contains(&status), "{what} was answered {status}");
        refused += 1;
    }
    assert_eq!(refused, bodies.len(), "every bad body was refused");
    for _ in 0..10 {
        let r = client.get(&rig.url).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 405, "wrong method");
    }
    let stats = rig.app.store.queue_stats().await.expect("stats");
    assert_eq!(
        stats.pending + stats.running + stats.done + stats.dead + stats.unknown_shop,
        0,
        "nothing stored"
    );
    // And the receiver is still fine.
    let oid = truth(&rig.sim).await["shops"][0]["orders"][0]["orderBaseInfo"]["oid"]
        .as_i64()
        .expect("oid");
    let (status, body) = rig
        .post(rig.envelope(
            "after-garbage",
            "kwaishop_order_addOrder",
            oid,
            json!({"oid": oid}),
        ))
        .await;
    assert_eq!((status, body.as_str()), (200, r#"{"result":1}"#));
    rig.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_and_store_nothing_sqlite() {
    on_sqlite(bad_bodies_are_refused_and_store_nothing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_and_store_nothing_postgres() {
    on_postgres(bad_bodies_are_refused_and_store_nothing).await;
}

// ---------------------------------------------------------------- a poison event

async fn a_poison_event_dies_after_n_attempts(store: Store) {
    let rig = rig(
        store,
        SimConfig {
            orders: 300,
            variants: variants(2),
            ..busy_shop()
        },
        None,
    )
    .await;
    // A refund that does not exist: every fetch fails (300011), no retry can fix it.
    let (status, _) = rig
        .post(rig.envelope(
            "poison",
            "kwaishop_aftersales_updateRefund",
            42,
            json!({"refundId": 42, "orderId": 1}),
        ))
        .await;
    assert_eq!(status, 200);
    let orders = truth(&rig.sim).await["shops"][0]["orders"]
        .as_array()
        .expect("orders")
        .clone();
    for (i, o) in orders.iter().take(50).enumerate() {
        let oid = o["orderBaseInfo"]["oid"].as_i64().expect("oid");
        let (status, _) = rig
            .post(rig.envelope(
                &format!("healthy-{i}"),
                "kwaishop_order_paySuccess",
                oid,
                json!({"oid": oid}),
            ))
            .await;
        assert_eq!(status, 200);
    }
    let store = rig.app.store.clone();
    wait_until(
        Duration::from_secs(30),
        "the poison event dead and the rest done",
        || async {
            let s = store.queue_stats().await.expect("stats");
            s.dead == 1 && s.done == 50
        },
    )
    .await;
    let dead = rig
        .app
        .store
        .list_events(Some(EventStatus::Dead), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, "poison");
    assert_eq!(
        dead[0].attempts,
        worker_settings().max_attempts,
        "tried exactly N times"
    );
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("300011")),
        "{:?}",
        dead[0].last_error
    );
    let refund_details = calls(&rig.sim)
        .await
        .iter()
        .filter(|c| c.method == "open.seller.order.refund.detail")
        .count();
    assert_eq!(refund_details as i64, worker_settings().max_attempts);
    // The CLI's retry puts it back.
    assert!(
        rig.app
            .store
            .retry_event(dead[0].id, None, rig.app.clock.now_ms())
            .await
            .expect("retry")
    );
    rig.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_dies_after_n_attempts_sqlite() {
    on_sqlite(a_poison_event_dies_after_n_attempts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_dies_after_n_attempts_postgres() {
    on_postgres(a_poison_event_dies_after_n_attempts).await;
}

// ---------------------------------------------------------------- failures that are not the platform's

/// Events whose processing fails for reasons of our own never retry forever: one whose commit
/// the database always refuses, and one whose processing panics, are each tried
/// `max_attempts` times and then dead, while the worker goes on applying the others.
async fn a_refused_commit_and_a_panic_die_after_n_attempts(store: Store, url: String) {
    // The order whose processing panics is chosen once the simulator's truth is known.
    let panics = Arc::new(std::sync::OnceLock::<i64>::new());
    let hook_target = panics.clone();
    let settings = WorkerSettings {
        before_fetch: Some(BeforeFetch(Arc::new(move |_shop, biz_id| {
            if hook_target.get() == Some(&biz_id) {
                panic!("the test's fault on {biz_id}");
            }
        }))),
        ..worker_settings()
    };
    let rig = rig_with(
        store,
        SimConfig {
            orders: 300,
            variants: variants(3),
            ..busy_shop()
        },
        None,
        settings,
    )
    .await;
    let oids: Vec<i64> = truth(&rig.sim).await["shops"][0]["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["orderBaseInfo"]["oid"].as_i64().expect("oid"))
        .take(32)
        .collect();
    panics.set(oids[1]).expect("once");
    let refused = oids[0];
    // The database refuses that one order, as a constraint or a trigger of the DBA's would.
    if url.starts_with("sqlite:") {
        common_db::execute(
            &url,
            &format!(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON orders WHEN NEW.oid = {refused} \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            ),
        )
        .await;
    } else {
        common_db::execute(
            &url,
            &format!(
                "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.oid = {refused} THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                 RETURN NEW; END $$"
            ),
        )
        .await;
        common_db::execute(
            &url,
            "CREATE TRIGGER refuse_one BEFORE INSERT ON orders FOR EACH ROW \
             EXECUTE FUNCTION refuse_one()",
        )
        .await;
    }
    for (i, oid) in oids.iter().enumerate() {
        let (status, _) = rig
            .post(rig.envelope(
                &format!("e-{i}"),
                "kwaishop_order_paySuccess",
                *oid,
                json!({"oid": oid}),
            ))
            .await;
        assert_eq!(status, 200);
    }
    let store = rig.app.store.clone();
    wait_until(
        Duration::from_secs(60),
        "the two failing events dead and the rest done",
        || async {
            let s = store.queue_stats().await.expect("stats");
            s.dead == 2 && s.done == oids.len() as i64 - 2
        },
    )
    .await;
    let dead = store
        .list_events(Some(EventStatus::Dead), 10)
        .await
        .expect("dead");
    let max = worker_settings().max_attempts;
    for (event_id, why) in [("e-0", "refused by the test"), ("e-1", "panicked")] {
        let e = dead
            .iter()
            .find(|e| e.event_id == event_id)
            .unwrap_or_else(|| panic!("{event_id} is dead: {dead:?}"));
        assert_eq!(e.attempts, max, "{event_id} tried exactly N times");
        assert!(
            e.last_error.as_deref().is_some_and(|m| m.contains(why)),
            "{event_id}: {:?}",
            e.last_error
        );
    }
    let details = calls(&rig.sim)
        .await
        .iter()
        .filter(|c| c.method == "open.order.detail")
        .filter(|c| {
            c.param
                .as_deref()
                .is_some_and(|p| p.contains(&refused.to_string()))
        })
        .count() as i64;
    assert_eq!(
        details, max,
        "the refused order was fetched once per attempt"
    );
    rig.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_and_a_panic_die_after_n_attempts_sqlite() {
    on_sqlite_with_url(a_refused_commit_and_a_panic_die_after_n_attempts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_and_a_panic_die_after_n_attempts_postgres() {
    on_postgres_with_url(a_refused_commit_and_a_panic_die_after_n_attempts).await;
}
