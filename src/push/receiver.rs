//! The push receiver (design.md "Push path"): POST only, a 1 MiB body limit, a body read
//! timeout, a cap on requests in flight (503 beyond it), decryption and validation, then a
//! durable insert — grouped with concurrent requests into one commit — before `{"result":1}`
//! (I6). Anything undecodable gets a 400 with a generic body and nothing is stored; a storage
//! failure gets a 503 so the platform sends again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Limited};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tracing::{debug, error, warn};

use super::crypto::MessageKey;
use super::decode::{Decoded, MessageKind, PushMessage, decode};
use crate::clock::SharedClock;
use crate::store::{EventKind, NewEvent, Store};

/// How the receiver behaves.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    pub path: String,
    pub body_limit: usize,
    pub body_timeout: Duration,
    pub max_in_flight: usize,
    /// How long a request may wait for its commit before it is answered 503 (the platform
    /// gives up after 3 s).
    pub commit_timeout: Duration,
}

impl Default for ReceiverSettings {
    fn default() -> Self {
        Self {
            path: crate::config::PushConfig::default().path,
            body_limit: 1 << 20,
            body_timeout: Duration::from_secs(2),
            max_in_flight: 512,
            commit_timeout: Duration::from_millis(2_500),
        }
    }
}

/// Which shop a message is for: by the token's open id, else by the seller id (`userId`).
#[derive(Debug, Default, Clone)]
pub struct ShopDirectory {
    by_open_id: HashMap<String, String>,
    by_seller_id: HashMap<i64, String>,
}

impl ShopDirectory {
    /// Adds a shop under its identities.
    pub fn add(&mut self, shop_id: &str, open_id: Option<&str>, seller_id: Option<i64>) {
        if let Some(o) = open_id.filter(|o| !o.is_empty()) {
            self.by_open_id.insert(o.to_string(), shop_id.to_string());
        }
        if let Some(s) = seller_id {
            self.by_seller_id.insert(s, shop_id.to_string());
        }
    }

    /// The shop a message belongs to; `openId` first, `userId` when it is empty (reference §2).
    pub fn resolve(&self, open_id: Option<&str>, user_id: Option<i64>) -> Option<String> {
        open_id
            .and_then(|o| self.by_open_id.get(o))
            .or_else(|| user_id.and_then(|u| self.by_seller_id.get(&u)))
            .cloned()
    }
}

/// Counters of the receiver, for metrics and tests.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub heartbeats: AtomicU64,
    pub rejected: AtomicU64,
    pub unavailable: AtomicU64,
    pub unknown_shop: AtomicU64,
}

type Pending = (NewEvent, oneshot::Sender<Result<bool, String>>);

struct ReceiverState {
    key: MessageKey,
    app_key: String,
    shops: Arc<RwLock<ShopDirectory>>,
    settings: ReceiverSettings,
    slots: Arc<Semaphore>,
    queue: mpsc::Sender<Pending>,
    clock: SharedClock,
    stats: Arc<ReceiverStats>,
}

/// The receiver: its routes, and the task that commits what they receive.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<ReceiverState>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("path", &self.state.settings.path)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver storing into `store`; `wake` is notified after each commit (the worker).
    pub fn new(
        store: Store,
        key: MessageKey,
        app_key: String,
        shops: Arc<RwLock<ShopDirectory>>,
        settings: ReceiverSettings,
        clock: SharedClock,
        wake: Arc<Notify>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(settings.max_in_flight.max(1) * 2);
        tokio::spawn(commit_loop(store, rx, wake));
        let slots = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
        Self {
            state: Arc::new(ReceiverState {
                key,
                app_key,
                shops,
                settings,
                slots,
                queue,
                clock,
                stats: Arc::default(),
            }),
        }
    }

    /// The receiver's route: POST on the configured path (other methods get 405).
    pub fn routes(&self) -> Router {
        Router::new()
            .route(&self.state.settings.path, post(receive))
            .with_state(self.state.clone())
    }

    /// The counters.
    pub fn stats(&self) -> Arc<ReceiverStats> {
        self.state.stats.clone()
    }
}

/// Commits what the handlers send, as many at once as are waiting (group commit), and answers
/// each handler only after its own commit.
async fn commit_loop(store: Store, mut rx: mpsc::Receiver<Pending>, wake: Arc<Notify>) {
    const MAX_BATCH: usize = 256;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // A request that already gave up (and answered 503) is not stored behind its back.
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (events, replies): (Vec<NewEvent>, Vec<_>) = batch.into_iter().unzip();
        match store.enqueue_events(&events).await {
            Ok(new) => {
                for (reply, is_new) in replies.into_iter().zip(new) {
                    let _ = reply.send(Ok(is_new));
                }
                wake.notify_waiters();
                wake.notify_one();
            }
            Err(e) => {
                error!(error = %e, events = events.len(), "cannot store push messages; answering 503 so the platform sends them again");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

fn ack() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"result":1}"#,
    )
        .into_response()
}

fn refuse(status: StatusCode) -> Response {
    let body = match status {
        StatusCode::SERVICE_UNAVAILABLE => r#"{"result":0,"error_msg":"temporarily unavailable"}"#,
        StatusCode::PAYLOAD_TOO_LARGE => r#"{"result":0,"error_msg":"too large"}"#,
        _ => r#"{"result":0,"error_msg":"bad request"}"#,
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn kind_of(kind: MessageKind) -> EventKind {
    match kind {
        MessageKind::Order => EventKind::Order,
        MessageKind::Refund => EventKind::Refund,
        MessageKind::Item => EventKind::Item,
        MessageKind::Other => EventKind::Other,
    }
}

async fn read_body(body: Body, settings: &ReceiverSettings) -> Result<Vec<u8>, StatusCode> {
    let limited = Limited::new(body, settings.body_limit);
    match tokio::time::timeout(settings.body_timeout, limited.collect()).await {
        Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        }
        Ok(Err(_)) => Err(StatusCode::BAD_REQUEST),
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
    }
}

async fn receive(State(state): State<Arc<ReceiverState>>, request: Request) -> Response {
    let stats = &state.stats;
    let Ok(_slot) = state.slots.clone().try_acquire_owned() else {
        stats.unavailable.fetch_add(1, Ordering::Relaxed);
        return refuse(StatusCode::SERVICE_UNAVAILABLE);
    };
    let body = match read_body(request.into_body(), &state.settings).await {
        Ok(b) => b,
        Err(status) => {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            return refuse(status);
        }
    };
    let message = match decode(&body, &state.key, &state.app_key) {
        Ok(Decoded::Heartbeat) => {
            stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            return ack();
        }
        Ok(Decoded::Message(m)) => m,
        Err(reason) => {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            warn!(reason = %reason, bytes = body.len(), "refused a push body");
            return refuse(StatusCode::BAD_REQUEST);
        }
    };
    let event = new_event(&state, *message);
    if event.shop_id.is_none() {
        stats.unknown_shop.fetch_add(1, Ordering::Relaxed);
        warn!(event_id = event.event_id, open_id = ?event.open_id, user_id = ?event.user_id, "a push for an unknown shop: stored as unknown_shop");
    }
    let (reply, answer) = oneshot::channel();
    // A full queue means the database is not keeping up: refuse at once rather than queue.
    if state.queue.try_send((event, reply)).is_err() {
        stats.unavailable.fetch_add(1, Ordering::Relaxed);
        return refuse(StatusCode::SERVICE_UNAVAILABLE);
    }
    match tokio::time::timeout(state.settings.commit_timeout, answer).await {
        Ok(Ok(Ok(is_new))) => {
            let counter = if is_new {
                &stats.accepted
            } else {
                &stats.duplicates
            };
            counter.fetch_add(1, Ordering::Relaxed);
            debug!(new = is_new, "push stored");
            ack()
        }
        _ => {
            stats.unavailable.fetch_add(1, Ordering::Relaxed);
            refuse(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

fn new_event(state: &ReceiverState, m: PushMessage) -> NewEvent {
    let shop_id = state
        .shops
        .read()
        .ok()
        .and_then(|d| d.resolve(m.open_id.as_deref(), m.user_id));
    NewEvent {
        event_id: m.event_id,
        msg_id: m.msg_id,
        app_key: m.app_key,
        shop_id,
        open_id: m.open_id,
        user_id: m.user_id,
        event: m.event,
        kind: kind_of(m.kind),
        biz_id: m.biz_id,
        info: m.info,
        raw: m.raw,
        event_update_time: m.update_time,
        received_at_ms: state.clock.now_ms(),
    }
}
