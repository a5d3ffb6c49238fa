//! Shared test harness: a simulator on a loopback port, clients for its shops, its truth and call
//! log read over real HTTP.
#![allow(dead_code)]

pub mod mirror;

use std::sync::Arc;
use std::time::Duration;

use kwaishop_sim::ScaledClock;
use kwaishop_sim::{self as sim, CallRecord, SimConfig, SimHandle};
use kwaishop_sync::api::limits::MemoryUsage;
use kwaishop_sync::api::oauth::{MemoryTokenStore, TokenSet, TokenStore};
use kwaishop_sync::api::{ApiClient, AppCredentials, ClientOptions, RetryPolicy};
use kwaishop_sync::{Secret, SharedClock};
use serde_json::Value;

/// With `KWAISHOP_TEST_LOGS` set (CI does), this test binary logs everything at trace level to
/// a file there, and spawned binaries do too ([`binary_log`]); a check after the suite proves
/// that no secret the simulator made up appears in any of them (I8).
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(dir) = std::env::var_os(kwaishop_sim::ledger::LOGS_VAR) else {
            return;
        };
        let _ = std::fs::create_dir_all(&dir);
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "test".into());
        let path = std::path::Path::new(&dir).join(format!("{name}-{}.log", std::process::id()));
        let Ok(file) = std::fs::File::create(path) else {
            return;
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .try_init();
    });
}

/// Where a spawned binary's stderr goes: the test-log directory when set, else `fallback`.
pub fn binary_log(fallback: &std::path::Path, name: &str) -> std::path::PathBuf {
    match std::env::var_os(kwaishop_sim::ledger::LOGS_VAR) {
        Some(dir) => std::path::Path::new(&dir).join(format!(
            "{name}-{}-{}.log",
            std::process::id(),
            kwaishop_sync::clock::wall_ms()
        )),
        None => fallback.join(format!("{name}.log")),
    }
}

/// Where a spawned binary's stdout goes: a file in the test-log directory when set (so the
/// secrets check reads it too), else one in `fallback`.
pub fn binary_stdout(fallback: &std::path::Path, name: &str) -> std::fs::File {
    let path = binary_log(fallback, &format!("{name}-stdout"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// Keeps what a finished command printed in the test-log directory, when set, for the secrets
/// check (the test reads the output itself too).
pub fn record_output(name: &str, output: &std::process::Output) {
    if let Some(dir) = std::env::var_os(kwaishop_sim::ledger::LOGS_VAR) {
        let _ = std::fs::create_dir_all(&dir);
        let path = binary_log(std::path::Path::new(&dir), &format!("{name}-output"));
        let mut text = output.stdout.clone();
        text.extend_from_slice(&output.stderr);
        let _ = std::fs::write(path, text);
    }
}

/// The log level for spawned binaries: trace when the suite's logs are checked.
pub fn binary_log_level() -> &'static str {
    if std::env::var_os(kwaishop_sim::ledger::LOGS_VAR).is_some() {
        "trace"
    } else {
        "info"
    }
}

/// Starts a simulator on 127.0.0.1:0 with its own clock.
pub async fn start_sim(config: SimConfig) -> SimHandle {
    let clock = Arc::new(ScaledClock::starting_now(config.speed));
    start_sim_on(config, clock).await
}

/// Starts a simulator whose clock stands still at the wall time now, moving only when a test
/// advances it: each run then plans its windows from an instant the test knows.
pub async fn start_sim_stopped(config: SimConfig) -> SimHandle {
    let clock = Arc::new(ScaledClock::stopped_at(kwaishop_sync::clock::wall_ms()));
    start_sim_on(config, clock).await
}

/// Starts a simulator on a runtime of its own (two threads), as the platform runs elsewhere: a
/// test that parses a large truth on its own runtime must not stall the simulator's handlers,
/// which would bunch the arrivals the simulator's QPS window counts. The runtime winds down when
/// the handle is stopped or dropped.
async fn start_sim_on(config: SimConfig, clock: Arc<ScaledClock>) -> SimHandle {
    init_logs();
    let (started, handle) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("simulator".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("simulator")
                .enable_all()
                .build()
                .expect("the simulator's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind loopback");
                let sim = sim::start(config, listener, clock)
                    .await
                    .expect("simulator starts");
                let stopping = sim.stopping();
                if started.send(sim).is_ok() {
                    stopping.cancelled().await;
                }
            });
        })
        .expect("the simulator's thread");
    handle.await.expect("the simulator started")
}

/// The answers to the platform's open points that variant seed `seed` picks
/// (docs/platform-variants.md). The suites spread their tests over seeds 0–3, which together
/// give every answer of every point.
pub fn variants(seed: u64) -> kwaishop_sim::variants::PlatformVariants {
    kwaishop_sim::variants::PlatformVariants::from_seed(seed)
}

/// The shop id used for the simulator's shop `i`.
pub fn shop_id(i: usize) -> String {
    format!("shop-{i}")
}

/// The simulator's first tokens for every shop, in a memory store.
pub fn token_store(handle: &SimHandle) -> Arc<MemoryTokenStore> {
    let store = MemoryTokenStore::default();
    for (i, shop) in handle.credentials().shops.iter().enumerate() {
        let tokens = TokenSet {
            access_token: Secret::new(shop.access_token.clone()),
            access_expires_at: shop.access_expires_at,
            refresh_token: Secret::new(shop.refresh_token.clone()),
            refresh_expires_at: shop.refresh_expires_at,
            open_id: shop.open_id.clone(),
            scopes: vec![],
        };
        futures_block(store.save(&shop_id(i), &tokens)).expect("memory store saves");
    }
    Arc::new(store)
}

fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    // MemoryTokenStore never awaits anything, so one poll completes it.
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("memory store future did not complete at once"),
    }
}

/// Options for tests: short retry delays and timeouts.
pub fn fast_options(handle: &SimHandle) -> ClientOptions {
    ClientOptions {
        base_url: handle.base_url(),
        retry: RetryPolicy {
            throttled_delay: Duration::from_millis(200),
            transient_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            max_attempts: 5,
        },
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

/// The app's credentials as the simulator issued them.
pub fn app(handle: &SimHandle) -> AppCredentials {
    let c = handle.credentials();
    AppCredentials {
        app_key: c.app_key.clone(),
        app_secret: Secret::new(c.app_secret.clone()),
        sign_secret: Secret::new(c.sign_secret.clone()),
    }
}

/// A client of the simulator with the given options and a token store.
pub fn client_with(
    handle: &SimHandle,
    opts: ClientOptions,
    tokens: Arc<dyn TokenStore>,
) -> ApiClient {
    let clock: SharedClock = handle.state.clock.clone();
    ApiClient::new(
        app(handle),
        opts,
        clock,
        tokens,
        Arc::new(MemoryUsage::default()),
    )
    .expect("client builds")
}

/// A client with fast options and the simulator's first tokens.
pub fn client(handle: &SimHandle) -> ApiClient {
    client_with(handle, fast_options(handle), token_store(handle))
}

/// `GET /__sim/truth` over HTTP.
pub async fn truth(handle: &SimHandle) -> Value {
    reqwest::get(format!("{}/__sim/truth", handle.base_url()))
        .await
        .expect("truth answers")
        .json()
        .await
        .expect("truth is JSON")
}

/// `GET /__sim/truth?shop=N` over HTTP: the truth of one shop.
pub async fn shop_truth(handle: &SimHandle, index: usize) -> Value {
    let mut v: Value = reqwest::get(format!("{}/__sim/truth?shop={index}", handle.base_url()))
        .await
        .expect("truth answers")
        .json()
        .await
        .expect("truth is JSON");
    v["shops"][0].take()
}

/// `GET /__sim/calls` over HTTP.
pub async fn calls(handle: &SimHandle) -> Vec<CallRecord> {
    let v: Value = reqwest::get(format!("{}/__sim/calls", handle.base_url()))
        .await
        .expect("calls answers")
        .json()
        .await
        .expect("calls is JSON");
    serde_json::from_value(v["calls"].clone()).expect("call records")
}

/// `POST /__sim/<path>` over HTTP.
pub async fn admin(handle: &SimHandle, path_and_query: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/__sim/{path_and_query}", handle.base_url()))
        .send()
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("admin answers JSON")
}

/// Waits until `check` holds, polling every 20 ms, or panics after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The app of a kwaishop-sync syncing `sim` into `store`, with test-speed retries.
pub async fn app_for(
    sim: &SimHandle,
    store: kwaishop_sync::store::Store,
    tweak: impl FnOnce(&mut kwaishop_sync::config::Config),
) -> kwaishop_sync::app::App {
    let mut config =
        kwaishop_sync::commands::demo::config_for_sim(sim, std::path::Path::new("unused.db"))
            .expect("config");
    config.retry.throttled_delay = Duration::from_millis(100);
    config.retry.transient_delay = Duration::from_millis(20);
    config.retry.max_delay = Duration::from_millis(500);
    tweak(&mut config);
    let mut app = kwaishop_sync::app::App::with_store(config, store, None)
        .await
        .expect("app");
    // The simulator's clock is this process's: share it, so fast-forwards reach the client.
    app.clock = sim.state.clock.clone();
    app = rebuild_client(app);
    kwaishop_sync::commands::demo::import_sim_tokens(&app.store, sim)
        .await
        .expect("tokens");
    // The generated history reaches up to the simulator's start; windows end a settle delay
    // behind now, so let that delay pass as it would in real time.
    sim.state.clock.advance(2 * 60_000);
    app
}

/// Rebuilds the client on the app's (possibly replaced) clock.
pub fn rebuild_client(mut app: kwaishop_sync::app::App) -> kwaishop_sync::app::App {
    let store = Arc::new(app.store.clone());
    let creds = kwaishop_sync::api::AppCredentials {
        app_key: app.config.platform.app_key.clone(),
        app_secret: app.config.platform.app_secret.clone(),
        sign_secret: app.config.platform.sign_secret.clone(),
    };
    app.client = kwaishop_sync::api::ApiClient::new(
        creds,
        kwaishop_sync::app::client_options(&app.config),
        app.clock.clone(),
        store.clone(),
        store,
    )
    .expect("client");
    app
}
