//! The simulator's push sender (reference §11): every change becomes an encrypted message POSTed
//! to the receiver; success only on HTTP 200 with `{"result":1}` within 3 s; failures are retried
//! at +5/+10/+20/+30/+60 minutes (scaled); heartbeats keep coming; and on request messages are
//! duplicated, delivered out of order or dropped, as the platform may do.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::model::Change;
use super::variants::PushOpenId;
use super::{SimCredentials, SimState};
use crate::seal::PushKey;

/// The documented retry schedule after a failed delivery, in minutes.
pub const RETRY_MINUTES: [u64; 5] = [5, 10, 20, 30, 60];

/// How pushes are sent.
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub url: String,
    /// Multiplies the retry schedule (0.001 turns 5 minutes into 0.3 s).
    pub retry_scale: f64,
    /// Share of messages delivered twice (half of the copies at the same moment).
    pub duplicate: f64,
    /// Share of messages held back for a while, so later ones overtake them.
    pub out_of_order: f64,
    /// Share of messages never delivered.
    pub drop: f64,
    /// Heartbeat period in real milliseconds (0: none).
    pub heartbeat_ms: u64,
    /// Send heartbeats as plaintext `{"test":true}` instead of encrypted.
    pub plaintext_heartbeat: bool,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl PushConfig {
    /// Pushes to `url` with the platform's behaviour and no faults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            retry_scale: 1.0,
            duplicate: 0.0,
            out_of_order: 0.0,
            drop: 0.0,
            heartbeat_ms: 10_000,
            plaintext_heartbeat: false,
            concurrency: 16,
        }
    }
}

/// Counters of the push sender (`GET /__sim/push`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushStats {
    pub messages: u64,
    pub deliveries: u64,
    pub acked: u64,
    pub failed_attempts: u64,
    pub given_up: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub delayed: u64,
    pub heartbeats: u64,
    /// Event ids the receiver acknowledged at least once.
    pub acked_event_ids: Vec<String>,
    /// Event ids the sender dropped on purpose.
    pub dropped_event_ids: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    due: Instant,
    seq: u64,
    attempt: usize,
    event_id: String,
    body: String,
}

/// The push sender's queue and counters.
#[derive(Debug)]
pub struct Pusher {
    config: PushConfig,
    key: PushKey,
    app_key: String,
    shops: Vec<(String, i64)>,
    queue: Mutex<BinaryHeap<Reverse<Delivery>>>,
    wake: Notify,
    rng: Mutex<StdRng>,
    stats: Mutex<PushStats>,
    seq: std::sync::atomic::AtomicU64,
    /// Deliveries taken off the queue whose answer has not been recorded yet.
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Pusher {
    /// A sender whose message numbers start at `first_seq`: the simulator passes its clock's
    /// now, so event ids stay unique across simulator runs over one world (as the platform's
    /// are) and a receiver's duplicate check is not fooled by a restart.
    pub fn new(
        config: PushConfig,
        credentials: &SimCredentials,
        seed: u64,
        first_seq: u64,
        open_ids: PushOpenId,
    ) -> Self {
        Self {
            key: PushKey::from_secret(&credentials.msg_secret)
                .expect("the simulator generates a 16-byte key"),
            app_key: credentials.app_key.clone(),
            shops: credentials
                .shops
                .iter()
                .map(|s| {
                    let open_id = match open_ids {
                        PushOpenId::TokenOpenId => s.open_id.clone(),
                        // 32 hex digits, like the real sample's envelope id, known nowhere else.
                        PushOpenId::Unrelated => {
                            format!("{:016x}{:016x}", s.seller_id, s.seller_id.rotate_left(17))
                        }
                    };
                    (open_id, s.seller_id)
                })
                .collect(),
            config,
            queue: Mutex::new(BinaryHeap::new()),
            wake: Notify::new(),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x9054)),
            stats: Mutex::new(PushStats::default()),
            seq: std::sync::atomic::AtomicU64::new(first_seq.max(1)),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> PushStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Deliveries still to make: queued (retries and delayed copies included) or in flight.
    /// Zero once every message was acknowledged, dropped on purpose or given up.
    pub fn outstanding(&self) -> usize {
        let queued = self.queue.lock().map(|q| q.len()).unwrap_or(0);
        queued + self.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The message envelope of one change (reference §11.3).
    pub fn envelope(&self, change: &Change, seq: u64, now_ms: i64) -> serde_json::Value {
        let (open_id, seller_id) = self.shops.get(change.shop).cloned().unwrap_or_default();
        json!({
            "eventId": format!("{}_{}_{}", 243, change.shop, seq),
            "msgId": format!("84_{seq}"),
            "bizId": change.biz_id,
            "userId": seller_id,
            "openId": open_id,
            "appKey": self.app_key,
            "event": change.event,
            "info": change.info.to_string(),
            "status": 2,
            "createTime": now_ms,
            "updateTime": change.update_time,
        })
    }

    /// Turns changes into scheduled deliveries, applying the drop, duplicate and delay modes.
    pub fn enqueue(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let now = Instant::now();
        let (Ok(mut queue), Ok(mut rng), Ok(mut stats)) =
            (self.queue.lock(), self.rng.lock(), self.stats.lock())
        else {
            return;
        };
        for change in changes {
            let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let envelope = self.envelope(&change, seq, crate::clock::wall_ms());
            let event_id = envelope["eventId"].as_str().unwrap_or_default().to_string();
            stats.messages += 1;
            if rng.random::<f64>() < self.config.drop {
                stats.dropped += 1;
                stats.dropped_event_ids.push(event_id);
                continue;
            }
            let body = self.key.seal(envelope.to_string().as_bytes());
            let mut due = now;
            if rng.random::<f64>() < self.config.out_of_order {
                stats.delayed += 1;
                due += Duration::from_millis(rng.random_range(200..2_000));
            }
            if rng.random::<f64>() < self.config.duplicate {
                stats.duplicated += 1;
                let copy_due = if rng.random::<bool>() {
                    due
                } else {
                    due + Duration::from_millis(rng.random_range(10..500))
                };
                queue.push(Reverse(Delivery {
                    due: copy_due,
                    seq: seq * 2 + 1,
                    attempt: 0,
                    event_id: event_id.clone(),
                    body: body.clone(),
                }));
            }
            queue.push(Reverse(Delivery {
                due,
                seq: seq * 2,
                attempt: 0,
                event_id,
                body,
            }));
        }
        drop((queue, rng, stats));
        self.wake.notify_one();
    }

    /// Starts the delivery loop and the heartbeat loop.
    pub fn spawn(
        &self,
        state: Arc<SimState>,
        shutdown: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("a plain HTTP client builds");
        let mut tasks = vec![tokio::spawn(delivery_loop(
            state.clone(),
            http.clone(),
            shutdown.clone(),
        ))];
        if self.config.heartbeat_ms > 0 {
            tasks.push(tokio::spawn(heartbeat_loop(state, http, shutdown)));
        }
        tasks
    }

    fn next_due(&self) -> Option<Instant> {
        self.queue.lock().ok()?.peek().map(|d| d.0.due)
    }

    fn pop_due(&self, now: Instant) -> Option<Delivery> {
        let mut queue = self.queue.lock().ok()?;
        if queue.peek().is_some_and(|d| d.0.due <= now) {
            self.in_flight
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            queue.pop().map(|d| d.0)
        } else {
            None
        }
    }

    fn record(&self, delivery: Delivery, acked: bool) {
        // A retry is queued below before this count drops: `outstanding` never reads zero early.
        let _in_flight = InFlight(&self.in_flight);
        let Ok(mut stats) = self.stats.lock() else {
            return;
        };
        stats.deliveries += 1;
        if acked {
            stats.acked += 1;
            stats.acked_event_ids.push(delivery.event_id);
            return;
        }
        stats.failed_attempts += 1;
        let Some(minutes) = RETRY_MINUTES.get(delivery.attempt) else {
            stats.given_up += 1;
            return;
        };
        drop(stats);
        let delay =
            Duration::from_secs_f64(*minutes as f64 * 60.0 * self.config.retry_scale.max(0.0));
        if let Ok(mut queue) = self.queue.lock() {
            queue.push(Reverse(Delivery {
                due: Instant::now() + delay,
                attempt: delivery.attempt + 1,
                ..delivery
            }));
        }
        self.wake.notify_one();
    }
}

/// Counts a delivery's answer as recorded when dropped (after any retry is queued).
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Success is HTTP 200 with a JSON body whose `result` is 1 (reference §11.4).
async fn post(http: &reqwest::Client, url: &str, body: String) -> bool {
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "text/plain;charset=utf-8")
        .body(body)
        .send()
        .await;
    let Ok(response) = response else { return false };
    if response.status() != reqwest::StatusCode::OK {
        return false;
    }
    let Ok(bytes) = response.bytes().await else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .is_some_and(|v| acknowledged(&v))
}

/// Whether a receiver's answer acknowledges the message (reference §11.4): `result` 1, which a
/// receiver may write as a number or a string.
fn acknowledged(answer: &serde_json::Value) -> bool {
    match answer.get("result") {
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(crate::codes::RESULT_OK),
        Some(serde_json::Value::String(s)) => s.trim() == "1",
        _ => false,
    }
}

async fn delivery_loop(state: Arc<SimState>, http: reqwest::Client, shutdown: CancellationToken) {
    let Some(pusher) = state.pusher.as_ref() else {
        return;
    };
    let slots = Arc::new(Semaphore::new(pusher.config.concurrency.max(1)));
    loop {
        let wait = pusher
            .next_due()
            .map(|due| due.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = pusher.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        while let Some(delivery) = pusher.pop_due(Instant::now()) {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (state, http) = (state.clone(), http.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let Some(pusher) = state.pusher.as_ref() else {
                    return;
                };
                let acked = post(&http, &pusher.config.url, delivery.body.clone()).await;
                pusher.record(delivery, acked);
            });
        }
    }
}

async fn heartbeat_loop(state: Arc<SimState>, http: reqwest::Client, shutdown: CancellationToken) {
    let Some(pusher) = state.pusher.as_ref() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(pusher.config.heartbeat_ms));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let plain = r#"{"test":true}"#;
        let body = if pusher.config.plaintext_heartbeat {
            plain.to_string()
        } else {
            pusher.key.seal(plain.as_bytes())
        };
        post(&http, &pusher.config.url, body).await;
        if let Ok(mut stats) = pusher.stats.lock() {
            stats.heartbeats += 1;
        }
    }
}
