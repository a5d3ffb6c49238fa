//! How the worker behaves: `[queue]`'s settings and what only tests set.

use std::sync::Arc;
use std::time::Duration;

use crate::config::QueueConfig;

/// How the worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Events claimed per round.
    pub batch: i64,
    /// How long a claim holds before another worker may take the event over.
    pub lease: Duration,
    /// Attempts before an event is dead.
    pub max_attempts: i64,
    /// First retry delay; doubled per attempt, with jitter, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Record groups fetched at once.
    pub concurrency: usize,
    /// How long to wait for new events when the queue is empty (a commit wakes it sooner).
    pub idle_wait: Duration,
    /// Done events are kept this long, then removed.
    pub retention: Duration,
    /// Called with the shop and the record id before each fetch: a seam for tests that make
    /// processing fail in ways the platform and the database cannot (a panic). `None` in the
    /// service.
    pub before_fetch: Option<BeforeFetch>,
}

/// What [`BeforeFetch`] calls: the shop and the record id.
pub type BeforeFetchFn = dyn Fn(&str, i64) + Send + Sync;

/// See [`WorkerSettings::before_fetch`].
#[derive(Clone)]
pub struct BeforeFetch(pub Arc<BeforeFetchFn>);

impl std::fmt::Debug for BeforeFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforeFetch(..)")
    }
}

impl Default for WorkerSettings {
    /// `[queue]`'s defaults.
    fn default() -> Self {
        Self::from(&QueueConfig::default())
    }
}

impl From<&QueueConfig> for WorkerSettings {
    fn from(queue: &QueueConfig) -> Self {
        Self {
            batch: 64,
            lease: queue.lease,
            max_attempts: queue.max_attempts,
            retry_base: queue.retry_base,
            retry_max: Duration::from_secs(1_800),
            concurrency: queue.concurrency,
            idle_wait: Duration::from_secs(1),
            retention: queue.retention,
            before_fetch: None,
        }
    }
}
