//! Health, metrics and status over HTTP: `GET /healthz` for load balancers and the systemd
//! watchdog's view of the loops, `GET /metrics` in the Prometheus text format (0.0.4), and the
//! status page for people at `GET /` (with its figures as JSON at `GET /status.json`).
//!
//! Files: `liveness` (which loops must keep beating), `metrics` (what a scrape reads and
//! writes), `snapshot` (what it reads from the database), `exposition` (the text format),
//! `status` (the status page's figures), `page`, `charts` and `format` (its HTML).

mod charts;
mod exposition;
mod format;
mod liveness;
mod metrics;
mod page;
mod snapshot;
pub mod status;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::ApiClient;
use crate::clock::SharedClock;
use crate::push::receiver::ReceiverStats;
use crate::queue::WorkerStats;
use crate::store::Store;
use crate::sync::StallLimits;

pub use exposition::CONTENT_TYPE as METRICS_CONTENT_TYPE;
pub use liveness::{Liveness, LoopSilence};
pub use metrics::render_metrics;
use page::render_page;
pub use snapshot::RowCounts;
use status::read_status;

/// How long `/healthz` waits for the database to answer.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What the endpoints read.
#[derive(Clone)]
pub struct ObserveSources {
    pub store: Store,
    /// The client whose answers `/metrics` counts (none for a `status` read of the database).
    pub client: Option<ApiClient>,
    pub clock: SharedClock,
    pub daily_quota: Option<u64>,
    pub worker: Option<Arc<WorkerStats>>,
    pub receiver: Option<Arc<ReceiverStats>>,
    pub liveness: Arc<Liveness>,
    /// When a stream that says "caught up" is stalled (from the config at start).
    pub stalls: StallLimits,
    /// The mirror's rows per shop, counted between scrapes when counting is costly.
    pub row_counts: Arc<RowCounts>,
}

impl ObserveSources {
    /// What the database alone tells, as `kwaishop-sync status` reads it: no client, worker or
    /// receiver of this process.
    pub fn database(
        store: Store,
        clock: SharedClock,
        daily_quota: Option<u64>,
        stalls: StallLimits,
    ) -> Self {
        Self {
            store,
            client: None,
            clock,
            daily_quota,
            worker: None,
            receiver: None,
            liveness: Arc::new(Liveness::new()),
            stalls,
            row_counts: Default::default(),
        }
    }
}

// Hand-written: the client's Debug is long, and nothing here needs more than its shape.
impl fmt::Debug for ObserveSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveSources")
            .field("store", &self.store)
            .field("daily_quota", &self.daily_quota)
            .field("worker", &self.worker.is_some())
            .field("receiver", &self.receiver.is_some())
            .field("liveness", &self.liveness)
            .finish_non_exhaustive()
    }
}

/// `GET /healthz`: 200 `ok` while the database answers (ping, with a 2 s timeout) and no loop is
/// stalled; otherwise 503 with a one-line reason (`database: …` / `stalled: worker, scheduler`).
/// `GET /metrics`: Prometheus text. `GET /`: the status page (HTML that reloads itself);
/// `GET /status.json`: its figures.
pub fn routes(sources: ObserveSources) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/status.json", get(status_json))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(sources))
}

/// Why the service is unhealthy, on one line; `None` when it is healthy.
pub async fn health_problem(sources: &ObserveSources) -> Option<String> {
    let mut problems = Vec::new();
    match tokio::time::timeout(PING_TIMEOUT, sources.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("database: {e}")),
        Err(_) => problems.push(format!(
            "database: no answer within {} s",
            PING_TIMEOUT.as_secs()
        )),
    }
    let stalled = sources.liveness.stalled();
    if !stalled.is_empty() {
        problems.push(format!("stalled: {}", stalled.join(", ")));
    }
    // A stream whose runs end caught up while its checkpoint stays behind: the service runs but
    // the mirror does not move.
    if let Ok(Ok(states)) = tokio::time::timeout(PING_TIMEOUT, sources.store.all_states()).await {
        let streams: Vec<String> = states
            .iter()
            .filter_map(|st| {
                let behind = sources.stalls.stalled_by(st)?;
                Some(format!(
                    "{}/{} ({} behind when it last caught up)",
                    st.shop_id,
                    st.stream.as_str(),
                    crate::clock::human_span(behind)
                ))
            })
            .collect();
        if !streams.is_empty() {
            problems.push(format!("stalled streams: {}", streams.join(", ")));
        }
    }
    if problems.is_empty() {
        return None;
    }
    // One line: a driver's message may span several.
    Some(problems.join("; ").replace(['\r', '\n'], " "))
}

async fn healthz(State(sources): State<Arc<ObserveSources>>) -> Response {
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match health_problem(&sources).await {
        None => (StatusCode::OK, text, "ok").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, text, reason).into_response(),
    }
}

async fn metrics(State(sources): State<Arc<ObserveSources>>) -> Response {
    let body = render_metrics(&sources).await;
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response()
}

/// The page may load nothing from anywhere and run no script: its CSS and SVG are inline.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn status_page(State(sources): State<Arc<ObserveSources>>) -> Response {
    let body = render_page(&read_status(&sources).await);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn status_json(State(sources): State<Arc<ObserveSources>>) -> Response {
    let report = read_status(&sources).await;
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(report)).into_response()
}
