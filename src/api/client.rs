//! The platform client: one per app, shared by every shop. Each call is paced by the method's
//! rate limiter, counted against the shop's daily quota, signed, sent as a GET with everything in
//! the query, decoded and classified; throttled and transient failures are retried with
//! exponential backoff and jitter; an expired token is refreshed once (one refresh at a time per
//! shop, the rotated pair stored before use) and the call retried once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};

use super::retry::Delays;
pub use super::retry::RetryPolicy;
pub use super::tokens::TOKEN_CACHE_TTL;
use tracing::{debug, warn};

use super::envelope::{self, Success};
use super::error::{ApiError, ErrorClass};
use super::hourly::HourlyCalls;
use super::limits::{RateLimits, UsageStore};
use super::oauth::{TokenSet, TokenStore};
use super::sign::{self, SignInput, SignMethod};
use super::transport::exchange;
use super::{DEFAULT_BASE_URL, Method};
use crate::clock::{SharedClock, beijing_day, hour_start, next_beijing_midnight};
use crate::secret::Secret;

/// The app's identity and secrets (reference §4: three secrets, each for one purpose).
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub app_key: String,
    /// For OAuth only.
    pub app_secret: Secret,
    /// For signing only.
    pub sign_secret: Secret,
}

/// The platform's default QPS per API (reference §12.1): 100, and 300 for the order list.
pub fn platform_default_qps(method: Method) -> f64 {
    match method {
        Method::OrderCursorList => 300.0,
        _ => 100.0,
    }
}

/// How long a call may take (`platform.timeout_secs`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take (at most the call's timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The gateway, e.g. `https://openapi.kwaixiaodian.com` or the simulator's address.
    pub base_url: String,
    pub sign_method: SignMethod,
    /// QPS per method; methods not listed use [`platform_default_qps`].
    pub qps: BTreeMap<Method, f64>,
    /// Calls a shop may make per China-time day; `None` for no local limit.
    pub daily_quota: Option<u64>,
    pub retry: RetryPolicy,
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Answers larger than this are refused (a page of 100 records is far below 1 MiB).
    pub max_body_bytes: usize,
    /// Refresh before a call when the access token expires within this many ms.
    pub refresh_margin_ms: i64,
    /// This process's instance id, sent in the User-Agent (several daemons on one database).
    pub instance: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            sign_method: SignMethod::HmacSha256,
            qps: BTreeMap::new(),
            daily_quota: None,
            retry: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_body_bytes: 8 << 20,
            refresh_margin_ms: 5 * 60_000,
            instance: None,
        }
    }
}

/// A client of the open platform for one app. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub(super) inner: Arc<Inner>,
}

/// What a reload may change: the gateway, the app's credentials and the options.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) base_url: String,
    pub(super) app: AppCredentials,
    pub(super) opts: ClientOptions,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    /// Replaced in place on reload ([`ApiClient::reconfigure`]), so every part of the daemon
    /// keeps using one client: one set of rate limiters and one refresh at a time per shop.
    settings: RwLock<Arc<Settings>>,
    pub(super) clock: SharedClock,
    pub(super) tokens: Arc<dyn TokenStore>,
    usage: Arc<dyn UsageStore>,
    /// Replaced when the number of instances sharing the app's budget changes.
    limits: RwLock<Arc<RateLimits>>,
    /// How many instances share the app's budget (what `limits` was built for).
    share: std::sync::atomic::AtomicU32,
    /// Whether calls may go out: a daemon joining others holds them until every other daemon
    /// has made room for it in the shared budget.
    calls_open: tokio::sync::watch::Sender<bool>,
    /// Whether token refreshes go as a GET query (after the platform refused a POST form).
    pub(super) refresh_by_get: std::sync::atomic::AtomicBool,
    /// Tokens read from the store, with when they were read: re-read after
    /// [`TOKEN_CACHE_TTL`], so tokens another process refreshed or `auth` imported are used
    /// within seconds (I11: the database is the truth for tokens).
    pub(super) cache: RwLock<HashMap<String, (TokenSet, std::time::Instant)>>,
    /// One refresh at a time per shop in this process …
    pub(super) refresh_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// … and across processes: this client's name as the holder of a shop's right to refresh
    /// ([`TokenStore::begin_refresh`]).
    pub(super) refresh_holder: String,
    /// Requests sent, per (shop, method): what a run cost, and what metrics report.
    sent: Mutex<HashMap<(String, Method), u64>>,
    /// Answers, per (shop, method, outcome): `ok` or the failure class.
    outcomes: Mutex<HashMap<(String, Method, &'static str), u64>>,
    /// The same answers per hour, until they are written to the database.
    hourly: HourlyCalls,
    /// How long recent answers took, per method: the quick timeout.
    answer_times: AnswerTimes,
    /// Calls counted in the daily usage ahead of their use, per (shop, method).
    reserved: Mutex<HashMap<(String, Method), ReserveSlot>>,
}

/// How long the last answers of each method took. A request waits for its answer ten times
/// as long as nine in ten of them took, at least [`QUICK_TIMEOUT_FLOOR`] and at most the
/// configured timeout: a request that hangs (a lost connection, a gateway that swallowed it)
/// is given up and sent again in seconds, not held for the whole timeout while every other
/// window finishes. Until enough answers are known (of the method, or for a list, of all
/// lists), the configured timeout holds.
#[derive(Debug, Default)]
struct AnswerTimes(Mutex<HashMap<Method, std::collections::VecDeque<Duration>>>);

/// The shortest quick timeout.
const QUICK_TIMEOUT_FLOOR: Duration = Duration::from_secs(2);
/// How many answers per method the quick timeout is computed from (and needs).
const ANSWERS_KEPT: usize = 64;
const ANSWERS_NEEDED: usize = 16;
/// How many answers a second request beside a slow first needs: a few. A backfill's first
/// windows are planned from the first pages of the ones before them, so one held first page
/// in the first second would otherwise hold the stream's whole plan until it is answered (the
/// quick timeout's sixteen answers are not known yet). Sending a read twice costs a call; the
/// floor of half a second keeps it for answers that are really late.
const ANSWERS_TO_HEDGE: usize = 4;

impl AnswerTimes {
    fn add(&self, method: Method, took: Duration) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let times = all.entry(method).or_default();
        if times.len() == ANSWERS_KEPT {
            times.pop_front();
        }
        times.push_back(took);
    }

    /// The ninth decile of the method's recent answer times; `None` until `needed` are known.
    /// A list with fewer stands in the others' answers: the platform is as far away for each
    /// (an item page that hung in a backfill's first second, its list answered three times,
    /// once held its stream for the whole configured timeout while the orders were timed).
    fn p90(&self, method: Method, needed: usize) -> Option<Duration> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut sorted: Vec<Duration> = match all.get(&method).filter(|t| t.len() >= needed) {
            Some(times) => times.iter().copied().collect(),
            None if method.lists() => all
                .iter()
                .filter(|(m, _)| m.lists())
                .flat_map(|(_, times)| times.iter().copied())
                .collect(),
            None => return None,
        };
        if sorted.len() < needed {
            return None;
        }
        sorted.sort_unstable();
        Some(sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)])
    }

    fn quick_timeout(&self, method: Method, configured: Duration) -> Duration {
        self.p90(method, ANSWERS_NEEDED).map_or(configured, |p90| {
            (p90 * 10).clamp(QUICK_TIMEOUT_FLOOR.min(configured), configured)
        })
    }

    /// After how long an unanswered request is sent a second time beside the first: three
    /// times the ninth decile of recent answers, at least [`HEDGE_FLOOR`]; `None` until enough
    /// answers are known ([`ANSWERS_TO_HEDGE`]).
    fn hedge_after(&self, method: Method) -> Option<Duration> {
        self.p90(method, ANSWERS_TO_HEDGE)
            .map(|p90| (p90 * 3).max(HEDGE_FLOOR))
    }
}

/// The shortest wait before a request is sent a second time beside the first.
const HEDGE_FLOOR: Duration = Duration::from_millis(500);

/// One (shop, method)'s calls counted ahead, locked while a block is counted.
type ReserveSlot = Arc<tokio::sync::Mutex<Reserve>>;

/// Calls of one (shop, method) counted ahead: a busy stream counts its calls in blocks, one
/// database write per block instead of one per call; an idle one, one at a time.
#[derive(Debug, Default)]
struct Reserve {
    /// The China-time day they were counted on.
    day: i64,
    /// Counted and not yet made.
    left: u64,
    /// The size of the last block.
    block: u64,
    /// When the last block was counted (clock ms).
    at_ms: i64,
}

/// The size of the next block of calls counted ahead, the last one of `block` calls having been
/// counted `lasted` ms ago (`None`: not today): twice the last when it lasted under a second,
/// the same under ten seconds, one call otherwise. A block that lasted a second and a half must
/// not start the doubling over: every block counted makes the stream's calls wait for a write,
/// which waits for the transaction being committed.
fn block_after(lasted: Option<i64>, block: u64, most: u64) -> u64 {
    match lasted {
        Some(ms) if ms < 1_000 => (block * 2).clamp(1, most),
        Some(ms) if ms < 10_000 => block.clamp(1, most),
        _ => 1,
    }
}

/// The largest block of calls counted ahead. A process that dies holding a block leaves up to
/// this many calls counted and not made (never more made than counted: I7); a stop gives the
/// unused ones back.
const MAX_CALL_BLOCK: u64 = 256;

/// Installs rustls' ring provider once per process. reqwest is built without a default
/// provider (the default one needs a C toolchain for aws-lc), so anything that builds an HTTP
/// client calls this first; a second call does nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ApiClient {
    /// A client for `app` with its stores for tokens and daily usage.
    pub fn new(
        app: AppCredentials,
        opts: ClientOptions,
        clock: SharedClock,
        tokens: Arc<dyn TokenStore>,
        usage: Arc<dyn UsageStore>,
    ) -> Result<Self, ApiError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.connect_timeout)
            .user_agent(match &opts.instance {
                Some(id) => format!("kwaishop-sync/{} ({id})", env!("CARGO_PKG_VERSION")),
                None => format!("kwaishop-sync/{}", env!("CARGO_PKG_VERSION")),
            })
            .build()
            .map_err(|e| {
                ApiError::local(
                    ErrorClass::InvalidRequest,
                    "client",
                    e.without_url().to_string(),
                )
            })?;
        let limits = RwLock::new(Arc::new(limits_for(&opts, 1)));
        let refresh_holder = format!(
            "{}-{:08x}",
            opts.instance.as_deref().unwrap_or("client"),
            rand::random::<u32>()
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                settings: RwLock::new(Arc::new(Settings {
                    base_url: opts.base_url.trim_end_matches('/').to_string(),
                    app,
                    opts,
                })),
                clock,
                tokens,
                usage,
                limits,
                share: std::sync::atomic::AtomicU32::new(1),
                calls_open: tokio::sync::watch::Sender::new(true),
                refresh_by_get: std::sync::atomic::AtomicBool::new(false),
                cache: RwLock::new(HashMap::new()),
                refresh_locks: Mutex::new(HashMap::new()),
                refresh_holder,
                sent: Mutex::new(HashMap::new()),
                outcomes: Mutex::new(HashMap::new()),
                hourly: HourlyCalls::default(),
                reserved: Mutex::new(HashMap::new()),
                answer_times: AnswerTimes::default(),
            }),
        })
    }

    /// The app key this client signs as.
    pub fn app_key(&self) -> String {
        self.settings().app.app_key.clone()
    }

    /// The current settings (a reload may replace them at any time).
    pub(super) fn settings(&self) -> Arc<Settings> {
        self.inner
            .settings
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The instance id the client names in its User-Agent, if any.
    pub fn instance(&self) -> Option<String> {
        self.settings().opts.instance.clone()
    }

    /// Applies a reloaded config in place: the gateway, the credentials, QPS (divided by the
    /// current share), quota, retries and timeouts. Token caches, refresh locks, counters and
    /// the instance name stay, so every holder of this client sees the change at once. (The
    /// connect timeout is the one setting that keeps its first value.)
    pub fn reconfigure(&self, app: AppCredentials, opts: ClientOptions) {
        let limits = Arc::new(replacing_limits(&opts, self.share()));
        let settings = Arc::new(Settings {
            base_url: opts.base_url.trim_end_matches('/').to_string(),
            app,
            opts,
        });
        if let Ok(mut current) = self.inner.settings.write() {
            *current = settings;
        }
        if let Ok(mut current) = self.inner.limits.write() {
            *current = limits;
        }
    }

    /// Requests sent so far for `shop` with `method` (retries included).
    pub fn sent(&self, shop: &str, method: Method) -> u64 {
        let sent = self.inner.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.get(&(shop.to_string(), method)).copied().unwrap_or(0)
    }

    /// Answers so far, per (shop, method, outcome), where the outcome is `ok` or the failure
    /// class (`throttled`, `transient`, …), sorted.
    pub fn call_counts(&self) -> Vec<(String, Method, &'static str, u64)> {
        let outcomes = self
            .inner
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = outcomes
            .iter()
            .map(|((s, m, o), n)| (s.clone(), *m, *o, *n))
            .collect();
        out.sort();
        out
    }

    /// The answers counted per (shop, hour, method, outcome) and not yet written to the
    /// database: drain them into `api_calls` ([`crate::app::flush_api_calls`]).
    pub fn hourly_calls(&self) -> &HourlyCalls {
        &self.inner.hourly
    }

    /// The rate limiters (for reporting the effective pace).
    pub fn limits(&self) -> Arc<RateLimits> {
        self.inner
            .limits
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Shares the app's QPS budget among `instances` processes (each takes 1/n of every
    /// method's limit, so their sum never exceeds it). The new pace starts a whole period from
    /// now, and calls waiting on the old limiters wait again on the new ones.
    pub fn set_share(&self, instances: u32) {
        let instances = instances.max(1);
        let limits = Arc::new(replacing_limits(&self.settings().opts, instances));
        if let Ok(mut current) = self.inner.limits.write() {
            *current = limits;
            self.inner
                .share
                .store(instances, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Holds every call (they wait, they do not fail) until [`Self::open_calls`].
    pub fn hold_calls(&self) {
        self.inner.calls_open.send_replace(false);
    }

    /// Lets calls go out again.
    pub fn open_calls(&self) {
        self.inner.calls_open.send_replace(true);
    }

    /// How long `method`'s answers took lately (nine in ten took no longer), once a few are
    /// known.
    pub fn answer_time(&self, method: Method) -> Option<Duration> {
        self.inner.answer_times.p90(method, ANSWERS_TO_HEDGE)
    }

    /// How many instances this client shares the app's budget with (itself included).
    pub fn share(&self) -> u32 {
        self.inner.share.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Calls `method` for `shop` with the business parameters `param` (one JSON object, sent and
    /// signed byte for byte), with pacing, quota, token refresh and retries.
    pub async fn call(&self, shop: &str, method: Method, param: &str) -> Result<Success, ApiError> {
        let settings = self.settings();
        let policy = &settings.opts.retry;
        // The builder only counts the attempts; each delay is the failure's own (see `Delays`).
        let attempts =
            ConstantBuilder::default().with_max_times(policy.max_attempts.saturating_sub(1));
        let mut delays = Delays::new(policy);
        // After an attempt timed out under the quick timeout, the next ones wait the
        // configured timeout: a platform slower than it was is not failed for that.
        let patient = std::sync::atomic::AtomicBool::new(false);
        (|| {
            let patient = patient.load(std::sync::atomic::Ordering::Relaxed);
            self.hedged(shop, method, param, patient)
        })
        .retry(attempts)
            .sleep(super::retry::wait)
            .when(|e: &ApiError| e.class.is_retryable())
            .adjust(|e: &ApiError, delay| delay.map(|_| delays.after(e.class)))
            .notify(|e: &ApiError, delay| {
                if e.timed_out {
                    patient.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                warn!(shop, method = method.name(), class = %e.class, delay_ms = delay.as_millis() as u64, error = %e, "retrying");
            })
            .await
    }

    /// One attempt, and for a list page a second one beside it when the first is not answered
    /// in a few times the usual answer time after it left (its turn at the limiter does not
    /// count). Every method is a read: sending it twice changes nothing but the quota, so
    /// details, which hold up no window, are sent once; while both are out, the call is known
    /// to be stalled (see `retry::Waiting`). A request the platform holds (a hung connection,
    /// an answer delayed by seconds) then costs its window half a second, not the quick
    /// timeout and a retry. The first answer that is
    /// not a failure wins; the other request is dropped. When the first fails, the second is
    /// waited for; when the second fails, the attempt has failed (the first is overdue). A
    /// patient attempt (after a timeout) is not hedged: the platform may simply be slower now.
    async fn hedged(
        &self,
        shop: &str,
        method: Method,
        param: &str,
        patient: bool,
    ) -> Result<Success, ApiError> {
        let hedge_after =
            (!patient && method.lists()).then(|| self.inner.answer_times.hedge_after(method));
        let Some(after) = hedge_after.flatten() else {
            return self.attempt(shop, method, param, patient, None).await;
        };
        // Counted from when the first request leaves: at the limit, calls wait their turn at
        // the limiter far longer than the platform takes to answer.
        let sent = tokio::sync::Notify::new();
        let first = self.attempt(shop, method, param, patient, Some(&sent));
        tokio::pin!(first);
        let overdue = async {
            sent.notified().await;
            tokio::time::sleep(after).await;
        };
        tokio::select! {
            answer = &mut first => return answer,
            () = overdue => {}
        }
        debug!(
            shop,
            method = method.name(),
            after_ms = after.as_millis() as u64,
            "no answer yet; sending the request a second time"
        );
        let second = self.attempt(shop, method, param, patient, None);
        tokio::pin!(second);
        // Both held, the call may well wait for the second one's timeout: a window read side
        // by side can be read again meanwhile (see `retry::Waiting`).
        let timeout = self.settings().opts.timeout;
        let timeout = self.inner.answer_times.quick_timeout(method, timeout);
        let _stalled = super::retry::stalled_until(tokio::time::Instant::now() + timeout);
        tokio::select! {
            answer = &mut first => match answer {
                Ok(ok) => Ok(ok),
                Err(_) => second.await,
            },
            // The first is long overdue: waiting for it could take its whole timeout, and a
            // retry costs a short delay and one call.
            answer = &mut second => answer,
        }
    }

    /// One attempt: a token, a send, and on an expired token one refresh and one more send.
    async fn attempt(
        &self,
        shop: &str,
        method: Method,
        param: &str,
        patient: bool,
        sent: Option<&tokio::sync::Notify>,
    ) -> Result<Success, ApiError> {
        let token = self.token_for_call(shop, method).await?;
        match self.send(shop, method, param, &token, patient, sent).await {
            Err(e) if e.class == ErrorClass::TokenExpired => {
                let fresh = self.refresh_replacing(shop, &token).await?;
                self.send(shop, method, param, &fresh, patient, sent)
                    .await
                    .map_err(|e| {
                        if e.class == ErrorClass::TokenExpired {
                            ApiError {
                                class: ErrorClass::AuthorizationRevoked,
                                message: format!(
                                    "still rejected after a token refresh: {}",
                                    e.message
                                ),
                                ..e
                            }
                        } else {
                            e
                        }
                    })
            }
            // `auth` may have stored a new authorization since this token was read.
            Err(e) if e.class == ErrorClass::AuthorizationRevoked => {
                match self.read_token(shop, method.name()).await {
                    Ok(stored) if stored.access_token != token.access_token => {
                        self.send(shop, method, param, &stored, patient, sent).await
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Waits for this call's turn under the current limiters. A call that was waiting when they
    /// were replaced (a new share, a reload) waits again under the new ones: the old pace no
    /// longer holds for anyone else.
    async fn pace(&self, method: Method) {
        let mut open = self.inner.calls_open.subscribe();
        // The sender lives as long as this client, so the wait cannot fail.
        let _ = open.wait_for(|open| *open).await;
        loop {
            let limits = self.limits();
            limits.acquire(method).await;
            if Arc::ptr_eq(&limits, &self.limits()) {
                return;
            }
        }
    }

    /// One signed request, paced and counted; `sent` is told when it leaves.
    async fn send(
        &self,
        shop: &str,
        method: Method,
        param: &str,
        token: &TokenSet,
        patient: bool,
        sent: Option<&tokio::sync::Notify>,
    ) -> Result<Success, ApiError> {
        let inner = &self.inner;
        // The quota is counted (a database write) before pacing, so its latency cannot bunch
        // paced requests together on their way to the platform.
        self.count_call(shop, method).await?;
        self.pace(method).await;
        if let Some(sent) = sent {
            sent.notify_one();
        }
        let result = self.wire(shop, method, param, token, patient).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.class.as_str(),
        };
        if let Ok(mut outcomes) = inner.outcomes.lock() {
            *outcomes
                .entry((shop.to_string(), method, outcome))
                .or_insert(0) += 1;
        }
        let hour = hour_start(inner.clock.now_ms());
        inner.hourly.add(shop, hour, method, outcome, 1);
        result
    }

    /// Signs, sends and decodes one request.
    async fn wire(
        &self,
        shop: &str,
        method: Method,
        param: &str,
        token: &TokenSet,
        patient: bool,
    ) -> Result<Success, ApiError> {
        let inner = &self.inner;
        let settings = self.settings();
        let timestamp = inner.clock.now_ms().to_string();
        let input = SignInput {
            access_token: token.access_token.expose(),
            appkey: &settings.app.app_key,
            method: method.name(),
            param: Some(param),
            sign_method: settings.opts.sign_method,
            timestamp: Some(&timestamp),
            version: Some("1"),
        };
        let signature = sign::sign(&input, settings.app.sign_secret.expose());
        let query = serde_urlencoded::to_string([
            ("appkey", input.appkey),
            ("method", input.method),
            ("version", "1"),
            ("param", param),
            ("access_token", input.access_token),
            ("timestamp", &timestamp),
            ("signMethod", settings.opts.sign_method.as_str()),
            ("sign", &signature),
        ])
        .map_err(|e| ApiError::local(ErrorClass::InvalidRequest, method.name(), e.to_string()))?;
        // The URL carries the access token: it is never logged, and errors drop it (without_url).
        let url = format!("{}{}?{}", settings.base_url, method.path(), query);
        debug!(shop, method = method.name(), "calling");
        if let Ok(mut sent) = inner.sent.lock() {
            *sent.entry((shop.to_string(), method)).or_insert(0) += 1;
        }
        let timeout = match patient {
            true => settings.opts.timeout,
            false => inner
                .answer_times
                .quick_timeout(method, settings.opts.timeout),
        };
        let started = std::time::Instant::now();
        let request = inner.http.get(url);
        let max = settings.opts.max_body_bytes;
        let (status, body) = exchange(method.name(), request, timeout, max).await?;
        inner.answer_times.add(method, started.elapsed());
        let outcome = envelope::decode(method.name(), status, &body);
        match outcome {
            Err(mut e) if e.class == ErrorClass::QuotaExhausted => {
                let until = next_beijing_midnight(inner.clock.now_ms());
                match e.quota_api() {
                    // A quota of one API pauses that API only; the shop's others go on.
                    Some(api) => self.pause_api(shop, api, until).await,
                    None => self.pause(shop, until).await,
                }
                e.retry_at_ms = Some(until);
                Err(e)
            }
            other => other,
        }
    }

    /// Checks the shop's quota pause and daily limit, and counts the call: from a block counted
    /// ahead when there is one left; otherwise the pauses are read and a new block is counted
    /// ([`block_after`], up to [`MAX_CALL_BLOCK`]). A pause recorded by another process is
    /// seen at the next block.
    async fn count_call(&self, shop: &str, method: Method) -> Result<(), ApiError> {
        let inner = &self.inner;
        let settings = self.settings();
        let slot = self.reserve_slot(shop, method);
        let mut reserve = slot.lock().await;
        let now = inner.clock.now_ms();
        let day = beijing_day(now);
        if reserve.day == day && reserve.left > 0 {
            reserve.left -= 1;
            return Ok(());
        }
        self.give_back_in(shop, method, &mut reserve).await;
        let storage = |e: super::limits::UsageError| {
            ApiError::local(ErrorClass::Transient, method.name(), e.to_string())
        };
        if let Some(until) = inner.usage.paused_until(shop).await.map_err(storage)?
            && until > now
        {
            return Err(quota_error(
                method,
                until,
                "the daily quota is spent (paused by an earlier answer)",
            ));
        }
        if let Some(until) = inner
            .usage
            .api_paused_until(shop, method)
            .await
            .map_err(storage)?
            && until > now
        {
            return Err(quota_error(
                method,
                until,
                "this API's daily quota for the shop is spent (paused by an earlier answer)",
            ));
        }
        // Never more than a hundredth of a configured daily quota ahead: what a pause leaves
        // counted and unmade in the shop's other methods stays small.
        let most = settings
            .opts
            .daily_quota
            .map_or(MAX_CALL_BLOCK, |q| (q / 100).clamp(1, MAX_CALL_BLOCK));
        let want = block_after(
            (reserve.day == day).then_some(now - reserve.at_ms),
            reserve.block,
            most,
        );
        let counted = inner
            .usage
            .try_add_calls(shop, day, method, want, settings.opts.daily_quota)
            .await
            .map_err(storage)?;
        if counted == 0 {
            drop(reserve);
            let until = next_beijing_midnight(now);
            self.pause(shop, until).await;
            return Err(quota_error(
                method,
                until,
                "the configured daily quota is used up",
            ));
        }
        *reserve = Reserve {
            day,
            left: counted - 1,
            block: want,
            at_ms: now,
        };
        Ok(())
    }

    /// The counted-ahead calls of (shop, method).
    fn reserve_slot(&self, shop: &str, method: Method) -> ReserveSlot {
        let mut reserved = self
            .inner
            .reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        reserved
            .entry((shop.to_string(), method))
            .or_default()
            .clone()
    }

    /// Uncounts the calls left in `reserve`.
    async fn give_back_in(&self, shop: &str, method: Method, reserve: &mut Reserve) {
        if reserve.left == 0 {
            return;
        }
        let n = std::mem::take(&mut reserve.left);
        if let Err(e) = self
            .inner
            .usage
            .give_back(shop, reserve.day, method, n)
            .await
        {
            warn!(shop, method = method.name(), calls = n, error = %e, "could not give back calls counted ahead; the day's count stays that much high");
        }
    }

    /// Uncounts every call counted ahead and not made, of `shop` (a pause) or of every shop (a
    /// stop), so the daily counts say what was called.
    pub async fn give_back_unused(&self, shop: Option<&str>) {
        self.give_back_of(shop, None).await;
    }

    /// [`ApiClient::give_back_unused`], of one method only when `method` is given.
    async fn give_back_of(&self, shop: Option<&str>, method: Option<Method>) {
        let slots: Vec<_> = {
            let reserved = self
                .inner
                .reserved
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            reserved
                .iter()
                .filter(|((s, m), _)| {
                    shop.is_none_or(|shop| shop == s) && method.is_none_or(|method| method == *m)
                })
                .map(|((s, m), slot)| (s.clone(), *m, slot.clone()))
                .collect()
        };
        for (shop, method, slot) in slots {
            let mut reserve = slot.lock().await;
            self.give_back_in(&shop, method, &mut reserve).await;
        }
    }

    async fn pause(&self, shop: &str, until: i64) {
        if let Err(e) = self.inner.usage.pause_until(shop, until).await {
            warn!(shop, error = %e, "could not record the quota pause");
        }
        self.give_back_unused(Some(shop)).await;
    }

    async fn pause_api(&self, shop: &str, method: Method, until: i64) {
        warn!(
            shop,
            method = method.name(),
            "this API's daily quota for the shop is spent; pausing it alone"
        );
        if let Err(e) = self.inner.usage.pause_api_until(shop, method, until).await {
            warn!(shop, error = %e, "could not record the quota pause");
        }
        // Calls counted ahead would go out without looking at the pause.
        self.give_back_of(Some(shop), Some(method)).await;
    }
}

/// The configured QPS of a method divided among `share` instances.
fn share_of(opts: &ClientOptions, share: u32) -> impl Fn(Method) -> f64 + '_ {
    move |m| {
        let qps = opts
            .qps
            .get(&m)
            .copied()
            .unwrap_or_else(|| platform_default_qps(m));
        qps / f64::from(share)
    }
}

/// Rate limiters for the configured QPS divided among `share` instances.
fn limits_for(opts: &ClientOptions, share: u32) -> RateLimits {
    RateLimits::new(share_of(opts, share))
}

/// [`limits_for`], taking over from the limiters in use ([`RateLimits::replacing`]).
fn replacing_limits(opts: &ClientOptions, share: u32) -> RateLimits {
    RateLimits::replacing(share_of(opts, share))
}

fn quota_error(method: Method, until: i64, why: &str) -> ApiError {
    ApiError {
        retry_at_ms: Some(until),
        ..ApiError::local(ErrorClass::QuotaExhausted, method.name(), why)
    }
}

#[cfg(test)]
mod answer_time_tests {
    use super::*;

    #[test]
    fn the_quick_timeout_is_ten_times_the_ninth_decile_within_bounds() {
        let times = AnswerTimes::default();
        let configured = Duration::from_secs(30);
        let m = Method::ItemList;
        for _ in 0..15 {
            times.add(m, Duration::from_millis(50));
        }
        assert_eq!(
            times.quick_timeout(m, configured),
            configured,
            "too few answers"
        );
        times.add(m, Duration::from_millis(50));
        assert_eq!(times.quick_timeout(m, configured), QUICK_TIMEOUT_FLOOR);
        for _ in 0..64 {
            times.add(m, Duration::from_millis(700));
        }
        assert_eq!(times.quick_timeout(m, configured), Duration::from_secs(7));
        assert_eq!(
            times.quick_timeout(m, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(
            times.quick_timeout(Method::OrderCursorList, configured),
            Duration::from_secs(7),
            "a list not timed yet: the other lists' answers"
        );
        assert_eq!(
            times.quick_timeout(Method::OrderDetail, configured),
            configured,
            "a detail: its own answers only"
        );
    }

    /// A request is sent again beside a slow first after four answers, not the quick
    /// timeout's sixteen: three times the ninth decile, at least half a second.
    #[test]
    fn a_second_request_needs_only_a_few_answers() {
        let times = AnswerTimes::default();
        let m = Method::OrderCursorList;
        for _ in 0..3 {
            times.add(m, Duration::from_millis(60));
        }
        assert_eq!(times.hedge_after(m), None, "three answers");
        times.add(m, Duration::from_millis(60));
        assert_eq!(times.hedge_after(m), Some(HEDGE_FLOOR));
        assert_eq!(
            times.quick_timeout(m, Duration::from_secs(30)),
            Duration::from_secs(30),
            "the quick timeout still waits for sixteen"
        );
        times.add(m, Duration::from_millis(400));
        assert_eq!(times.hedge_after(m), Some(Duration::from_millis(1_200)));
    }
}

#[cfg(test)]
mod block_tests {
    use super::*;

    #[test]
    fn a_busy_stream_keeps_its_blocks() {
        // Doubling while each lasts under a second, up to the most.
        assert_eq!(block_after(Some(300), 32, 256), 64);
        assert_eq!(block_after(Some(300), 256, 256), 256);
        // A block of 256 lasting two seconds (128 calls a second) is counted again whole: it
        // used to fall back to one call, then double eight times, a write every few calls.
        assert_eq!(block_after(Some(2_000), 256, 256), 256);
        // Idle, or a new day: one call.
        assert_eq!(block_after(Some(60_000), 256, 256), 1);
        assert_eq!(block_after(None, 256, 256), 1);
        // A configured quota's hundredth bounds it.
        assert_eq!(block_after(Some(2_000), 256, 20), 20);
    }
}
