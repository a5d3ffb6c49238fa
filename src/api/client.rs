//! The platform client: one per app, shared by every shop. Each call is paced by the method's
//! rate limiter, counted against the shop's daily quota, signed, sent as a GET with everything in
//! the query, decoded and classified; throttled and transient failures are retried with
//! exponential backoff and jitter; an expired token is refreshed once (one refresh at a time per
//! shop, the rotated pair stored before use) and the call retried once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

mod answers;
mod options;
mod quota;
mod request;

pub use super::retry::RetryPolicy;
pub use super::tokens::TOKEN_CACHE_TTL;
use answers::{ANSWERS_TO_HEDGE, AnswerTimes};
pub use options::{
    AppCredentials, ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, platform_default_qps,
};
use options::{limits_for, replacing_limits};
use quota::ReserveSlot;

use super::Method;
use super::error::{ApiError, ErrorClass};
use super::hourly::HourlyCalls;
use super::limits::{RateLimits, UsageStore};
use super::oauth::{TokenSet, TokenStore};
use crate::clock::SharedClock;

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
    /// Quota pauses this process met, per (shop, the one API paused or every one), until when:
    /// in force from the answer on, before they are written to the database.
    paused: Mutex<HashMap<(String, Option<Method>), i64>>,
}

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
                paused: Mutex::new(HashMap::new()),
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
}
