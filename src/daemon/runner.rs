//! Exclusive runs of one (shop, stream): a job never overlaps itself in this process, and with
//! several daemons on one Postgres a lease makes sure no two of them read the same stream at
//! once. The lease is renewed while the run lasts; if it is lost, or cannot be renewed, the run
//! is cancelled and stops after its page. Every write of the run's progress goes through a store
//! fenced by the lease ([`Store::fenced`]), so a run that outlived its lease (paused, partitioned)
//! has its next page commit rolled back instead of overwriting the new holder's progress.
//! At most `at_once` runs of each stream go at once; the others wait their turn, first come
//! first served, before they take a lease (an ISV's thousand shops are three thousand runs at
//! start). Each stream has its own turns as it has its own rate limit: the refund backfill of
//! many shops (a call per empty day) would otherwise hold every turn while orders waited. And a
//! scheduled poll of a stream that is caught up takes its turn apart from the long runs
//! (backfills, outages, resyncs): a shop that finished its backfill stays fresh while a thousand
//! others still wait for theirs.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::clock::SharedClock;
use crate::store::{Store, Stream};

/// Who runs what.
#[derive(Debug)]
pub struct Runner {
    /// Runs going on or waiting their turn.
    running: Mutex<HashSet<(String, Stream)>>,
    /// One permit per run going on, per stream (in the order of [`Stream::ALL`]) and [`Lane`].
    turns: [[Semaphore; 2]; 3],
    /// Lease holder id; `None` when one daemon owns the database (SQLite).
    holder: Option<String>,
    lease: Duration,
}

impl Runner {
    /// A runner with `at_once` runs of each stream going at once (at least one).
    pub fn new(holder: Option<String>, lease: Duration, at_once: usize) -> Self {
        Self {
            running: Mutex::new(HashSet::new()),
            turns: Stream::ALL.map(|_| [0, 1].map(|_| Semaphore::new(at_once.max(1)))),
            holder,
            lease,
        }
    }

    /// Whether (shop, stream) is running in this process now, or waiting its turn.
    pub fn is_running(&self, shop: &str, stream: Stream) -> bool {
        self.running
            .lock()
            .map(|r| r.contains(&(shop.to_string(), stream)))
            .unwrap_or(false)
    }

    /// Runs `job` for (shop, stream), once its turn comes among the long runs, unless it
    /// already runs (or waits) here, another daemon holds its lease or `cancel` comes first;
    /// returns `None` when skipped. `job` gets a token that is cancelled on `cancel` or when the
    /// lease is lost or cannot be renewed, and the store to write with: fenced by the lease on a
    /// shared database, `store` itself when one daemon owns the database.
    pub async fn exclusive<F, Fut, T>(
        &self,
        store: &Store,
        clock: &SharedClock,
        shop: &str,
        stream: Stream,
        cancel: &CancellationToken,
        job: F,
    ) -> Option<T>
    where
        F: FnOnce(CancellationToken, Store) -> Fut,
        Fut: Future<Output = T>,
    {
        self.in_lane((shop, stream, Some(Lane::Long)), store, clock, cancel, job)
            .await
    }

    /// [`Runner::exclusive`] for a scheduled poll: a stream whose checkpoint is less than
    /// [`SHORT_RUN_BEHIND_MS`] behind now takes its turn among the short runs.
    pub async fn exclusive_poll<F, Fut, T>(
        &self,
        store: &Store,
        clock: &SharedClock,
        shop: &str,
        stream: Stream,
        cancel: &CancellationToken,
        job: F,
    ) -> Option<T>
    where
        F: FnOnce(CancellationToken, Store) -> Fut,
        Fut: Future<Output = T>,
    {
        self.in_lane((shop, stream, None), store, clock, cancel, job)
            .await
    }

    /// The run of (shop, stream) in lane `key.2`, or in the lane its state says when `None`.
    async fn in_lane<F, Fut, T>(
        &self,
        key: (&str, Stream, Option<Lane>),
        store: &Store,
        clock: &SharedClock,
        cancel: &CancellationToken,
        job: F,
    ) -> Option<T>
    where
        F: FnOnce(CancellationToken, Store) -> Fut,
        Fut: Future<Output = T>,
    {
        let (shop, stream, lane) = key;
        let key = (shop.to_string(), stream);
        if !self.running.lock().ok()?.insert(key.clone()) {
            debug!(
                shop,
                stream = stream.as_str(),
                "already running here; skipped"
            );
            return None;
        }
        // Released however the run ends: finished, panicked, or its future dropped.
        let _running = Running {
            set: &self.running,
            key,
        };
        let lane = match lane {
            Some(lane) => lane,
            None => lane_of(store, clock, shop, stream).await,
        };
        let _turn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return None,
            turn = self.turns[turn_of(stream)][lane as usize].acquire() => turn.ok()?,
        };
        self.leased(store, clock, shop, stream, cancel, job).await
    }

    async fn leased<F, Fut, T>(
        &self,
        store: &Store,
        clock: &SharedClock,
        shop: &str,
        stream: Stream,
        cancel: &CancellationToken,
        job: F,
    ) -> Option<T>
    where
        F: FnOnce(CancellationToken, Store) -> Fut,
        Fut: Future<Output = T>,
    {
        let child = cancel.child_token();
        let Some(holder) = &self.holder else {
            return Some(job(child, store.clone()).await);
        };
        let ttl = self.lease.as_millis() as i64;
        let fence = match store
            .acquire_lease(shop, stream, holder, clock.now_ms(), ttl)
            .await
        {
            Ok(Some(fence)) => fence,
            Ok(None) => {
                debug!(
                    shop,
                    stream = stream.as_str(),
                    "leased by another daemon; skipped"
                );
                return None;
            }
            Err(e) => {
                warn!(shop, stream = stream.as_str(), error = %e, "cannot take the stream's lease; skipped");
                return None;
            }
        };
        let renew = AbortOnDrop(tokio::spawn(renew_lease(
            Lease {
                store: store.clone(),
                clock: clock.clone(),
                shop: shop.to_string(),
                stream,
                holder: holder.clone(),
                fence,
                ttl,
            },
            self.lease / 3,
            child.clone(),
        )));
        let fenced = store.fenced(crate::store::LeaseFence {
            shop_id: shop.to_string(),
            stream,
            holder: holder.clone(),
            fence,
        });
        let out = job(child.clone(), fenced).await;
        drop(renew);
        if let Err(e) = store.release_lease(shop, stream, holder, fence).await {
            warn!(shop, stream = stream.as_str(), error = %e, "cannot release the stream's lease (it expires by itself)");
        }
        Some(out)
    }
}

/// A lease this process holds on a (shop, stream).
struct Lease {
    store: Store,
    clock: SharedClock,
    shop: String,
    stream: Stream,
    holder: String,
    fence: i64,
    ttl: i64,
}

/// Renews the lease `every` so often until `run` is cancelled; when the lease is lost or cannot
/// be renewed, cancels `run` (it stops after its page).
async fn renew_lease(lease: Lease, every: std::time::Duration, run: CancellationToken) {
    let Lease {
        store,
        clock,
        shop,
        stream,
        holder,
        fence,
        ttl,
    } = lease;
    loop {
        tokio::select! {
            _ = run.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store
            .renew_lease(&shop, stream, &holder, fence, clock.now_ms(), ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                warn!(
                    shop,
                    stream = stream.as_str(),
                    "lost the stream's lease; stopping after this page"
                );
                run.cancel();
                return;
            }
            Err(e) => {
                // Another daemon may take the lease once it lapses: stop rather than read on
                // unsure of holding it.
                warn!(shop, stream = stream.as_str(), error = %e, "cannot renew the stream's lease; stopping after this page");
                run.cancel();
                return;
            }
        }
    }
}

/// A poll of a stream less than this far behind now is a short run: a few windows at most.
pub const SHORT_RUN_BEHIND_MS: i64 = 6 * 3_600_000;

/// Which turns a run waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Scheduled polls of streams that are caught up.
    Short = 0,
    /// Backfills, long outages, resyncs.
    Long = 1,
}

/// A stream with a checkpoint less than [`SHORT_RUN_BEHIND_MS`] behind now polls in the short
/// lane; one without (a backfill) or further behind, or whose state cannot be read, in the long.
async fn lane_of(store: &Store, clock: &SharedClock, shop: &str, stream: Stream) -> Lane {
    match store.load_state(shop, stream).await {
        Ok(Some(state))
            if state
                .checkpoint_ms
                .is_some_and(|c| clock.now_ms() - c < SHORT_RUN_BEHIND_MS) =>
        {
            Lane::Short
        }
        _ => Lane::Long,
    }
}

/// The stream's place in [`Stream::ALL`], which indexes its turns.
fn turn_of(stream: Stream) -> usize {
    match stream {
        Stream::Orders => 0,
        Stream::Refunds => 1,
        Stream::Items => 2,
    }
}

/// Marks (shop, stream) as running here until dropped.
struct Running<'a> {
    set: &'a Mutex<HashSet<(String, Stream)>>,
    key: (String, Stream),
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.key);
    }
}

/// Stops the lease renewal when the run ends, however it ends (a panic, a dropped future).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
