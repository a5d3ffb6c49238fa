//! What a client is built from: the app's credentials and the client's settings, and the rate
//! limiters the settings give.

use std::collections::BTreeMap;
use std::time::Duration;

use super::RetryPolicy;
use crate::api::limits::RateLimits;
use crate::api::sign::SignMethod;
use crate::api::{DEFAULT_BASE_URL, Method};
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
pub(super) fn limits_for(opts: &ClientOptions, share: u32) -> RateLimits {
    RateLimits::new(share_of(opts, share))
}

/// [`limits_for`], taking over from the limiters in use ([`RateLimits::replacing`]).
pub(super) fn replacing_limits(opts: &ClientOptions, share: u32) -> RateLimits {
    RateLimits::replacing(share_of(opts, share))
}
