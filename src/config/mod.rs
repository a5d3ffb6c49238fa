//! Configuration: a TOML file, overridden by `KWAISHOP_SYNC__SECTION__KEY` environment variables,
//! validated into [`Config`]. Secrets come from files (paths relative to the config file) or
//! from systemd's `$CREDENTIALS_DIRECTORY`; inline secrets are accepted for quick trials.
//! Every error is reported at once, each with its field; `Debug` never shows a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api::{Method, SignMethod};
use crate::secret::Secret;
use crate::store::Stream;

mod raw;

pub use raw::ENV_PREFIX;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field, e.g. `streams.orders.window_hours` or `shops[2].id`.
    pub field: String,
    pub message: String,
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The file the errors are about.
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{} has {n} error{}:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  - {}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

/// The app on the platform.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub base_url: String,
    pub authorize_url: String,
    pub redirect_uri: Option<String>,
    pub app_key: String,
    pub app_secret: Secret,
    pub sign_secret: Secret,
    /// Needed only to receive push messages.
    pub msg_secret: Option<Secret>,
    pub sign_method: SignMethod,
    pub timeout: Duration,
}

/// Calls per second per method and the daily quota per shop.
#[derive(Debug, Clone, Default)]
pub struct LimitsConfig {
    pub qps: BTreeMap<Method, f64>,
    pub daily_quota: Option<u64>,
}

/// Retries of one call: `[retry]`, with the client's defaults.
pub type RetryConfig = crate::api::RetryPolicy;

/// Settings of one stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub enabled: bool,
    /// Cron expression with seconds (`sec min hour day month weekday`).
    pub schedule: String,
    /// Longest window per call (orders ≤ 7 days, refunds ≤ 1 day).
    pub window: Duration,
    pub page_size: u32,
    /// How far each window reaches back before the checkpoint.
    pub lookback: Duration,
    /// How far behind now a window must end, so late writes settle first.
    pub settle: Duration,
    /// `sort` sent to the list API (1 descending, 2 ascending).
    pub sort: i64,
}

impl StreamConfig {
    /// The longest gap between two runs of the schedule (over its next 64 firings), `None` if
    /// the schedule does not parse.
    pub fn schedule_interval(&self) -> Option<Duration> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build()
            .parse(&self.schedule)
            .ok()?;
        let start = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let times: Vec<_> = cron.iter_after(start).take(65).collect();
        times
            .windows(2)
            .filter_map(|w| (w[1] - w[0]).to_std().ok())
            .max()
    }

    /// How far behind its checkpoint may be when a run ends caught up: a window, one schedule
    /// interval and the settle delay. Further behind, the stream is stalled:
    /// runs end "caught up" while the mirror falls behind.
    pub fn stall_after(&self) -> Duration {
        self.window + self.schedule_interval().unwrap_or_default() + self.settle
    }
}

/// Sync-wide settings.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// First run: how far back to backfill (≤ 90 days, the platform's horizon).
    pub backfill_days: u32,
    /// The deep reconcile re-reads this many days of orders and refunds.
    pub reconcile_days: u32,
    pub reconcile_schedule: String,
    /// Give up on a window after this many pages (a defence against a runaway cursor).
    pub max_pages_per_window: u32,
    /// How many windows of one stream are read at once when it has several to read (a backfill,
    /// a long outage); caught-up polling reads one.
    pub concurrency: u32,
    /// How many runs of each stream (orders, refunds, items) one process has going at once;
    /// the others wait their turn (first come, first served). Scheduled polls of caught-up
    /// streams have as many turns again of their own.
    pub runs_at_once: u32,
}

impl SyncConfig {
    /// Enough windows in flight to keep the order list near its 300 calls a second at 30–50 ms
    /// from the platform (each window has one request out at a time), and the refund list near
    /// its 100 at up to 200 ms; more would only queue at the client's limiter.
    pub const DEFAULT_CONCURRENCY: u32 = 16;
    /// Runs of a stream at once: with many small shops each run has a few requests out at a
    /// time, and this many keep a list near its limit at 200 ms from the platform; more would
    /// only queue at the limiter while holding database connections and memory (an ISV's
    /// thousand shops at start are three thousand runs).
    pub const DEFAULT_RUNS_AT_ONCE: u32 = 16;
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            backfill_days: 90,
            reconcile_days: 7,
            // 03:30 China time, when shops are quiet.
            reconcile_schedule: "0 30 19 * * *".into(),
            max_pages_per_window: 20_000,
            concurrency: Self::DEFAULT_CONCURRENCY,
            runs_at_once: Self::DEFAULT_RUNS_AT_ONCE,
        }
    }
}

/// One shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopConfig {
    /// The shop's key in the database and on the command line.
    pub id: String,
    pub open_id: Option<String>,
    pub seller_id: Option<i64>,
    pub name: Option<String>,
    /// Tokens to import on first start when the database holds none (JSON file).
    pub token_file: Option<PathBuf>,
}

/// The simulator's fast clock, when kwaishop-sync runs against one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockConfig {
    pub speed: f64,
    pub wall_origin_ms: i64,
    pub origin_ms: i64,
}

/// The push receiver.
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub enabled: bool,
    pub path: String,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            path: "/kwaishop/push".into(),
        }
    }
}

/// The daemon's HTTP server (push path, /healthz, /metrics, the status page).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8610".into(),
        }
    }
}

/// The service's own settings.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// How long a stop may take (finish the open page, drain the worker) before exiting anyway.
    pub grace: Duration,
    /// Where the pid file and the SQLite instance lock live.
    pub state_dir: PathBuf,
    /// How long a (shop, stream) lease lasts without renewal (several instances on Postgres).
    pub lease: Duration,
}

impl Default for DaemonConfig {
    /// `state_dir` is where the process runs; a config file puts it under systemd's
    /// `STATE_DIRECTORY`, else beside itself.
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(20),
            state_dir: PathBuf::from("."),
            lease: Duration::from_secs(60),
        }
    }
}

/// The queue worker that applies push messages.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Attempts before an event is dead.
    pub max_attempts: i64,
    /// Done events are kept this long.
    pub retention: Duration,
    /// Records fetched at once.
    pub concurrency: usize,
    /// How long a claim holds before another worker may take the event over.
    pub lease: Duration,
    /// First retry delay (doubled per attempt, with jitter).
    pub retry_base: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retention: Duration::from_secs(7 * 86_400),
            concurrency: 8,
            lease: Duration::from_secs(300),
            retry_base: Duration::from_secs(5),
        }
    }
}

/// The whole validated configuration. Its `Debug` shows the database URL with its password
/// redacted (secrets elsewhere are [`Secret`]s, which redact themselves).
#[derive(Clone)]
pub struct Config {
    /// The file it came from (`None` when built in code).
    pub path: Option<PathBuf>,
    pub platform: PlatformConfig,
    pub database_url: crate::store::DatabaseUrl,
    pub limits: LimitsConfig,
    pub retry: RetryConfig,
    pub sync: SyncConfig,
    pub orders: StreamConfig,
    pub refunds: StreamConfig,
    pub items: StreamConfig,
    pub push: PushConfig,
    pub http: HttpConfig,
    pub daemon: DaemonConfig,
    pub queue: QueueConfig,
    pub shops: Vec<ShopConfig>,
    pub clock: Option<ClockConfig>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("platform", &self.platform)
            .field("database_url", &self.database_url)
            .field("limits", &self.limits)
            .field("retry", &self.retry)
            .field("sync", &self.sync)
            .field("orders", &self.orders)
            .field("refunds", &self.refunds)
            .field("items", &self.items)
            .field("push", &self.push)
            .field("http", &self.http)
            .field("daemon", &self.daemon)
            .field("queue", &self.queue)
            .field("shops", &self.shops)
            .field("clock", &self.clock)
            .finish()
    }
}

impl Config {
    /// Reads, overrides from the process environment, and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &vars)
    }

    /// [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: file.clone(),
            errors: vec![ConfigError {
                field: "(file)".into(),
                message: format!("cannot read it: {e}"),
            }],
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut config =
            raw::parse(&text, &base, env).map_err(|errors| ConfigErrors { file, errors })?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// A stream's settings.
    pub fn stream(&self, stream: Stream) -> &StreamConfig {
        match stream {
            Stream::Orders => &self.orders,
            Stream::Refunds => &self.refunds,
            Stream::Items => &self.items,
        }
    }

    /// A shop by id.
    pub fn shop(&self, id: &str) -> Option<&ShopConfig> {
        self.shops.iter().find(|s| s.id == id)
    }

    /// The configured shop `id`, or an error that says which shops the config has.
    pub fn configured_shop(&self, id: &str) -> Result<&ShopConfig, UnknownShop> {
        self.shop(id).ok_or_else(|| UnknownShop {
            id: id.to_string(),
            known: if self.shops.is_empty() {
                "none".into()
            } else {
                self.shops
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }
}

/// A shop named on the command line that the config does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no shop {id:?} in the config (its shops: {known})")]
pub struct UnknownShop {
    pub id: String,
    known: String,
}

/// Deserializes one section, recording its errors under `field` instead of stopping.
fn section<T: DeserializeOwned + Default>(
    value: Option<&toml::Value>,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> T {
    let Some(value) = value else {
        return T::default();
    };
    match T::deserialize(value.clone()) {
        Ok(v) => v,
        Err(e) => {
            errors.push(ConfigError {
                field: field.to_string(),
                message: e.to_string().trim().to_string(),
            });
            T::default()
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
enum QpsSetting {
    #[default]
    Unset,
    All(f64),
    PerMethod(BTreeMap<String, f64>),
}
