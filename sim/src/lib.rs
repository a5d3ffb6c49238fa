//! The platform simulator: `kwaishop-sync sim` serves the open platform on loopback, as close to
//! the real one as the reference allows, so the daemon can be tried, tested and benchmarked
//! without a developer account. Same paths and parameters, signature check, OAuth lifetimes and
//! rotation, window and page limits, QPS and daily quota, a seeded generator, a mutation clock,
//! faults on demand, a push sender, and `/__sim/` endpoints for the ground truth and call log.

pub mod admin;
pub mod apis;
pub mod auth;
mod catalog;
#[cfg(test)]
mod checks;
pub mod clock;
pub mod codes;
pub mod docs;
mod factory;
pub mod failure;
pub mod faults;
pub mod gateway;
pub mod generate;
mod http;
pub mod ledger;
mod lifecycle;
pub mod messages;
pub mod methods;
pub mod model;
pub mod mutate;
mod oauth;
pub mod push;
pub mod run;
mod seal;
pub mod sign;
pub mod variants;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::DAY_MS;
pub use crate::clock::ScaledClock;
pub use crate::methods::Method;
use auth::{AuthState, Grant, Lifetimes};
use faults::{Fault, FaultConfig};
use generate::GenParams;
use model::ShopData;
use mutate::{MutationParams, Mutator};

/// Everything the simulator can be told at start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub shops: usize,
    /// Days of history to generate.
    pub days: u32,
    /// Orders per shop in the generated history.
    pub orders: usize,
    /// Items per shop (default from the order count).
    pub items: Option<usize>,
    /// Share of paid orders that get a refund (default 0.12).
    pub refund_rate: Option<f64>,
    /// QPS per (app, method); `None` uses the platform's defaults (100; 300 for the order list).
    pub qps: Option<f64>,
    /// Calls per shop per China-time day; `None` for no limit.
    pub daily_quota: Option<u64>,
    /// How many times faster than real time the simulator's clock runs.
    pub speed: f64,
    /// Whether the mutation clock runs (new orders, status changes, refunds, item edits).
    pub mutate: bool,
    /// New orders per shop per simulated day while mutating (default: orders / days).
    pub orders_per_day: Option<f64>,
    pub faults: FaultConfig,
    pub push: Option<push::PushConfig>,
    /// Use the alternative field spellings the reference lists, on some answers.
    pub quirks: bool,
    /// Reject timestamps further than this from the simulator's clock (`None`: any).
    pub timestamp_tolerance_ms: Option<i64>,
    pub lifetimes: Lifetimes,
    /// The refund list's maximum window (1 day; lower it to act out a sales event).
    pub refund_window_ms: i64,
    /// The instant the world is generated at (history ends there and the mutation clock starts
    /// from it); `None`: the clock's now. With an earlier instant, every mutation due between it
    /// and now is applied at start (without pushes), so a world can be rebuilt exactly as an
    /// earlier run left it — same seed, same origin, the clock resumed where it stopped.
    pub origin_ms: Option<i64>,
    /// The answers chosen where the platform's behaviour is not known for sure.
    pub variants: variants::PlatformVariants,
    /// A per-API daily quota per shop (`[1017] exceed quota limit,[apiId:…]`), if any.
    pub api_quota: Option<(Method, u64)>,
    /// The distance to the platform: added to every answer of the platform's routes.
    pub latency: Latency,
}

/// Round-trip time added to every answer of the platform's routes (not to `/__sim/`): half on
/// the way in, before the request is handled (and counted against the QPS limit), half on the
/// way out. Requests wait side by side: a slow answer holds no other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    pub base: std::time::Duration,
    /// Up to this much more, uniformly at random, per request.
    pub jitter: std::time::Duration,
}

impl Latency {
    /// One request's one-way delay.
    pub fn one_way(&self) -> std::time::Duration {
        let jitter = if self.jitter.is_zero() {
            std::time::Duration::ZERO
        } else {
            self.jitter.mul_f64(rand::random::<f64>())
        };
        (self.base + jitter) / 2
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            shops: 1,
            days: 30,
            orders: 2_000,
            items: None,
            refund_rate: None,
            qps: None,
            daily_quota: None,
            speed: 1.0,
            mutate: true,
            orders_per_day: None,
            faults: FaultConfig::default(),
            push: None,
            quirks: true,
            timestamp_tolerance_ms: None,
            lifetimes: Lifetimes::default(),
            refund_window_ms: DAY_MS,
            origin_ms: None,
            variants: variants::PlatformVariants::default(),
            api_quota: None,
            latency: Latency::default(),
        }
    }
}

/// The fake app's identity and secrets, and each shop's first tokens: what `--credentials-out`
/// writes. None of it is real; it works only against this simulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimCredentials {
    pub app_key: String,
    pub app_secret: String,
    pub sign_secret: String,
    pub msg_secret: String,
    pub shops: Vec<ShopCredentials>,
}

/// One shop's identity and first tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShopCredentials {
    pub open_id: String,
    pub seller_id: i64,
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: i64,
    pub refresh_expires_at: i64,
}

/// One API request as the simulator saw it (`GET /__sim/calls`). Holds no token or secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRecord {
    pub seq: u64,
    /// Wall-clock arrival (epoch ms), for rate checks.
    pub wall_ms: i64,
    /// Simulator-clock arrival (epoch ms).
    pub sim_ms: i64,
    /// The dotted method (or the OAuth path).
    pub method: String,
    /// The shop index the token belongs to, once known.
    pub shop: Option<usize>,
    /// `ok`, `throttled`, `quota_exhausted`, `token_expired`, `revoked`, `bad_sign`, `invalid`,
    /// `business`, `server_error`, `timeout`, `cut`, `internal_timeout`.
    pub outcome: String,
    pub result: i64,
    pub code: Option<String>,
    pub sub_code: Option<String>,
    /// Which issued token the call used (its issue number), never the token.
    pub token_seq: Option<u64>,
    /// The business parameters, verbatim.
    pub param: Option<String>,
    pub fault: Option<Fault>,
    pub records: usize,
    /// The cursor a successful cursor-list answer handed back (`nomore` at a window's end).
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// The caller's User-Agent (which daemon instance called).
    #[serde(default)]
    pub agent: Option<String>,
}

/// The simulator's whole state, shared by its handlers and background tasks.
#[derive(Debug)]
pub struct SimState {
    pub config: SimConfig,
    pub clock: Arc<ScaledClock>,
    pub credentials: SimCredentials,
    /// Read by every API call and the truth; written by mutations and test scripts.
    pub shops: RwLock<Vec<ShopData>>,
    pub mutator: Mutex<Mutator>,
    pub mutating: std::sync::atomic::AtomicBool,
    pub auth: Mutex<AuthState>,
    pub rng: Mutex<StdRng>,
    pub faults: RwLock<FaultConfig>,
    /// Arrivals that passed the QPS check in the last second, per method.
    pub windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Calls per (shop, China-time day).
    pub usage: Mutex<HashMap<(usize, i64), u64>>,
    /// Calls per (shop, method, China-time day), for the per-API quota.
    pub api_usage: Mutex<HashMap<(usize, &'static str, i64), u64>>,
    pub calls: Mutex<Vec<CallRecord>>,
    pub seq: AtomicU64,
    pub pusher: Option<push::Pusher>,
    /// Older versions of orders that the next list page serves instead of the current ones
    /// (`POST /__sim/stale`), to show that a stale page never overwrites newer rows.
    pub stale_orders: Mutex<HashMap<i64, model::Doc>>,
    /// Versions of an order that the next detail calls serve, in order (`POST /__sim/versions`),
    /// as a lagging replica might.
    pub detail_script: Mutex<HashMap<i64, VecDeque<model::Doc>>>,
}

impl SimState {
    /// QPS allowed for a method.
    pub fn qps(&self, method: Method) -> f64 {
        self.config.qps.unwrap_or_else(|| method.default_qps())
    }

    /// Finds a shop by its open id.
    pub fn shop_by_open_id(&self, open_id: &str) -> Option<usize> {
        self.credentials
            .shops
            .iter()
            .position(|s| s.open_id == open_id)
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fake app's and shops' credentials.
    pub fn credentials(&self) -> &SimCredentials {
        &self.state.credentials
    }

    /// Stops the server and its background tasks.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }

    /// Cancelled when the simulator stops (by [`Self::stop`] or when its handle is dropped):
    /// whoever runs it on a runtime of its own can wind that runtime down then.
    pub fn stopping(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

impl Drop for SimHandle {
    /// A simulator nobody holds stops serving.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn random_digits(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

fn random_hex(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16usize)]))
        .collect()
}

/// Builds the simulator's state: the generated data, the app, each shop's first grant.
pub fn build_state(config: SimConfig, clock: Arc<ScaledClock>) -> Arc<SimState> {
    let now = clock.now_ms();
    let origin = config.origin_ms.map_or(now, |o| o.min(now));
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_0a07);
    let (shops, mutator) = world(&config, origin, now);
    let mut auth = AuthState::new(config.lifetimes.clone());
    let grants: Vec<Grant> = (0..shops.len())
        .map(|i| auth.grant(&mut rng, i, now))
        .collect();
    let credentials = app_credentials(&mut rng, &shops, &grants, now);
    ledger::record([
        credentials.app_secret.as_str(),
        credentials.sign_secret.as_str(),
        credentials.msg_secret.as_str(),
    ]);
    let pusher = config.push.clone().map(|p| {
        push::Pusher::new(
            p,
            &credentials,
            config.seed,
            now.max(1) as u64,
            config.variants.push_open_id,
        )
    });
    Arc::new(SimState {
        faults: RwLock::new(config.faults.clone()),
        mutating: std::sync::atomic::AtomicBool::new(config.mutate),
        config,
        clock,
        credentials,
        shops: RwLock::new(shops),
        mutator: Mutex::new(mutator),
        auth: Mutex::new(auth),
        rng: Mutex::new(rng),
        windows: Mutex::new(HashMap::new()),
        usage: Mutex::new(HashMap::new()),
        api_usage: Mutex::new(HashMap::new()),
        calls: Mutex::new(Vec::new()),
        seq: AtomicU64::new(0),
        pusher,
        stale_orders: Mutex::new(HashMap::new()),
        detail_script: Mutex::new(HashMap::new()),
    })
}

/// The shops generated up to `origin`, and the mutation clock that keeps them changing, run on
/// to `now`.
fn world(config: &SimConfig, origin: i64, now: i64) -> (Vec<ShopData>, Mutator) {
    let mut params = GenParams::new(
        config.seed,
        config.shops,
        config.days,
        config.orders,
        origin,
    );
    if let Some(items) = config.items {
        params.items = items;
    }
    if let Some(rate) = config.refund_rate {
        params.refund_rate = rate.clamp(0.0, 1.0);
    }
    params.oids = config.variants.order_ids;
    let mut shops = generate::generate(&params);
    let mutation = MutationParams {
        orders_per_day: config
            .orders_per_day
            .unwrap_or(config.orders as f64 / f64::from(config.days.max(1))),
        refund_rate: params.refund_rate,
        gift_rate: params.gift_rate,
        item_changes_per_day: 20.0,
        item_takedowns_per_day: 2.0,
        oids: params.oids,
    };
    let mut mutator = Mutator::new(config.seed.wrapping_add(1), mutation, &shops, origin);
    if origin < now {
        mutator.advance(&mut shops, now);
    }
    (shops, mutator)
}

/// The fake app's key and secrets, and each shop's identity with its first tokens.
fn app_credentials(
    rng: &mut StdRng,
    shops: &[ShopData],
    grants: &[Grant],
    now: i64,
) -> SimCredentials {
    use base64::Engine;
    let mut key = [0u8; 16];
    rng.fill(&mut key);
    SimCredentials {
        app_key: format!("ks{}", random_digits(rng, 18)),
        app_secret: random_hex(rng, 32),
        sign_secret: random_hex(rng, 32),
        msg_secret: base64::engine::general_purpose::STANDARD.encode(key),
        shops: shops
            .iter()
            .zip(grants)
            .map(|(shop, g)| ShopCredentials {
                open_id: shop.identity.open_id.clone(),
                seller_id: shop.identity.seller_id,
                access_token: g.access_token.clone(),
                refresh_token: g.refresh_token.clone(),
                access_expires_at: now + g.access_expires_in_s * 1000,
                refresh_expires_at: now + g.refresh_expires_in_s * 1000,
            })
            .collect(),
    }
}

/// The platform's routes (OAuth and the APIs, at the configured distance) plus the simulator's
/// own under `/__sim/`.
fn router(state: Arc<SimState>) -> axum::Router {
    axum::Router::new()
        .merge(oauth::routes())
        .merge(admin::routes())
        .fallback(gateway::api)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::distance,
        ))
        .with_state(state)
}

/// Starts the simulator on `listener` with its own clock.
pub async fn start(
    config: SimConfig,
    listener: TcpListener,
    clock: Arc<ScaledClock>,
) -> std::io::Result<SimHandle> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let addr = listener.local_addr()?;
    let state = build_state(config, clock);
    let shutdown = CancellationToken::new();
    let app = router(state.clone());
    let stop = shutdown.clone();
    let mut tasks = vec![tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "simulator server stopped");
        }
    })];
    tasks.push(tokio::spawn(mutation_loop(state.clone(), shutdown.clone())));
    if let Some(pusher) = &state.pusher {
        tasks.extend(pusher.spawn(state.clone(), shutdown.clone()));
    }
    Ok(SimHandle {
        addr,
        state,
        shutdown,
        tasks,
    })
}

/// Advances the mutation clock about ten times a second and hands changes to the pusher.
async fn mutation_loop(state: Arc<SimState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !state.mutating.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let changes = advance(&state);
        if let Some(pusher) = &state.pusher {
            pusher.enqueue(changes);
        }
    }
}

/// Applies every mutation due up to the simulator's now; returns the changes.
pub fn advance(state: &SimState) -> Vec<model::Change> {
    let now = state.clock.now_ms();
    let (Ok(mut shops), Ok(mut mutator)) = (state.shops.write(), state.mutator.lock()) else {
        return Vec::new();
    };
    mutator.advance(&mut shops, now)
}
