//! The worker loop: claim, group, fetch, complete or fail; purge done events past retention.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::api::{ApiClient, ApiError, ErrorClass};
use crate::clock::SharedClock;
use crate::store::{ClaimedEvent, EventKind, EventOutcome, ShopStatus, Store, StoreError};

use super::WorkerSettings;

/// Counters of the worker, for metrics and tests.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub claimed: AtomicU64,
    pub done: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
    pub fetches: AtomicU64,
    /// Rounds completed (and every 10 s spent waiting for a fetch slot); the watchdog reads this
    /// as "the loop makes progress".
    pub rounds: AtomicU64,
}

/// The queue worker.
#[derive(Debug, Clone)]
pub struct Worker {
    client: ApiClient,
    store: Store,
    clock: SharedClock,
    settings: WorkerSettings,
    wake: Arc<Notify>,
    stats: Arc<WorkerStats>,
}

/// The events about one record, fetched once.
#[derive(Clone)]
struct Group {
    shop_id: String,
    kind: EventKind,
    biz_id: Option<i64>,
    events: Vec<ClaimedEvent>,
}

impl Worker {
    pub fn new(
        client: ApiClient,
        store: Store,
        clock: SharedClock,
        settings: WorkerSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            client,
            store,
            clock,
            settings,
            wake,
            stats: Arc::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs until `cancel`; then finishes the groups in flight (their commits included) and
    /// returns. Events it had claimed but not started are released by their lease.
    pub async fn run(self, cancel: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut in_flight = JoinSet::new();
        let mut last_purge = 0i64;
        while !cancel.is_cancelled() {
            self.stats.rounds.fetch_add(1, Ordering::Relaxed);
            let now = self.clock.now_ms();
            if now - last_purge > 3_600_000 {
                last_purge = now;
                self.purge(now).await;
            }
            // Events whose last allowed attempt never finished (a crash, a hang, a kill) are
            // buried as dead in the claim's transaction, not claimed again forever.
            let claimed = match self
                .store
                .bury_and_claim_events(
                    now,
                    self.settings.lease.as_millis() as i64,
                    self.settings.batch,
                    self.settings.max_attempts,
                )
                .await
            {
                Ok((buried, claimed)) => {
                    if buried > 0 {
                        self.stats.dead.fetch_add(buried, Ordering::Relaxed);
                        warn!(
                            events = buried,
                            "push events are dead: their last attempt never finished"
                        );
                    }
                    claimed
                }
                Err(e) => {
                    warn!(error = %e, "cannot claim push events; retrying");
                    self.idle(&cancel, Duration::from_secs(1)).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                while in_flight.try_join_next().is_some() {}
                self.idle(&cancel, self.settings.idle_wait).await;
                continue;
            }
            self.stats
                .claimed
                .fetch_add(claimed.len() as u64, Ordering::Relaxed);
            for group in group_by_record(claimed) {
                let Some(permit) = self.slot(&slots).await else {
                    break;
                };
                let worker = self.clone();
                in_flight.spawn(async move {
                    let _permit = permit;
                    let claimed = group.clone();
                    // A panic fails the group's events like any other failure (retried, then
                    // dead) and this task ends; the loop and the other groups go on.
                    let processed = std::panic::AssertUnwindSafe(worker.process(group))
                        .catch_unwind()
                        .await;
                    if let Err(panic) = processed {
                        let what = panic_message(panic.as_ref());
                        error!(shop = claimed.shop_id, biz_id = ?claimed.biz_id, panic = what, "processing push events panicked");
                        worker
                            .fail_attempts(&claimed, &format!("processing panicked: {what}"))
                            .await;
                    }
                });
            }
            while in_flight.try_join_next().is_some() {}
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// A free fetch slot. During a platform outage every slot can sit in retries for minutes:
    /// the wait counts as a round every 10 s, because the loop is alive, only slowed down (the
    /// watchdog must not restart the daemon for the platform's trouble).
    async fn slot(&self, slots: &Arc<Semaphore>) -> Option<tokio::sync::OwnedSemaphorePermit> {
        loop {
            tokio::select! {
                permit = slots.clone().acquire_owned() => return permit.ok(),
                _ = tokio::time::sleep(Duration::from_secs(10)) => {
                    self.stats.rounds.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    async fn idle(&self, cancel: &CancellationToken, wait: Duration) {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    async fn purge(&self, now: i64) {
        match self
            .store
            .purge_done_events(now - self.settings.retention.as_millis() as i64)
            .await
        {
            Ok(0) => {}
            Ok(n) => info!(removed = n, "removed done push events past their retention"),
            Err(e) => warn!(error = %e, "cannot purge done push events"),
        }
    }

    /// Fetches the record once for all its events and commits it with their done marks.
    async fn process(&self, mut group: Group) {
        self.claim_related(&mut group).await;
        let claimed: Vec<(i64, i64)> = group.events.iter().map(|e| (e.id, e.fence)).collect();
        if group.kind == EventKind::Other {
            // A message about nothing kwaishop-sync mirrors: stored for the record, done.
            let outcome = self
                .store
                .complete_events(
                    &group.shop_id,
                    &claimed,
                    EventOutcome::Nothing,
                    self.clock.now_ms(),
                )
                .await;
            self.after_commit(&group, outcome.map(|_| ())).await;
            return;
        }
        let Some(biz_id) = group.biz_id else {
            self.bury(&group, "the message names no record to fetch")
                .await;
            return;
        };
        if let Some(hook) = &self.settings.before_fetch {
            (hook.0)(&group.shop_id, biz_id);
        }
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch(&group.shop_id, group.kind, biz_id).await {
            Ok(fetched) => {
                let committed = self
                    .commit(&group.shop_id, &claimed, &fetched, biz_id)
                    .await;
                self.after_commit(&group, committed).await;
            }
            Err(e) => self.fail(&group, &e).await,
        }
    }

    /// Later events about the same record are settled by the same fetch: claims them too.
    async fn claim_related(&self, group: &mut Group) {
        let (Some(biz_id), true) = (group.biz_id, group.kind != EventKind::Other) else {
            return;
        };
        let lease = self.settings.lease.as_millis() as i64;
        let now = self.clock.now_ms();
        match self
            .store
            .claim_related_events(&group.shop_id, group.kind, biz_id, now, lease, 100)
            .await
        {
            Ok(more) => {
                self.stats
                    .claimed
                    .fetch_add(more.len() as u64, Ordering::Relaxed);
                group.events.extend(more);
            }
            Err(e) => {
                debug!(error = %e, "could not claim related events; they will come on their own")
            }
        }
    }

    /// The record the events are about, from its detail API.
    async fn fetch(&self, shop: &str, kind: EventKind, biz_id: i64) -> Result<Fetched, ApiError> {
        match kind {
            EventKind::Order => self
                .client
                .order_detail(shop, biz_id)
                .await
                .map(|o| Fetched::Order(Box::new(o))),
            EventKind::Refund => self.refund_and_order(shop, biz_id).await,
            _ => self
                .client
                .item(shop, biz_id)
                .await
                .map(|i| Fetched::Item(i.map(Box::new))),
        }
    }

    /// Writes the fetched record and marks the claimed events done, in one transaction.
    async fn commit(
        &self,
        shop: &str,
        claimed: &[(i64, i64)],
        fetched: &Fetched,
        biz_id: i64,
    ) -> Result<(), StoreError> {
        let outcome = match fetched {
            Fetched::Order(o) => EventOutcome::Orders(std::slice::from_ref(o.as_ref())),
            Fetched::Refund(pair) => {
                let (r, o) = pair.as_ref();
                EventOutcome::RefundWithOrder(std::slice::from_ref(r), std::slice::from_ref(o))
            }
            Fetched::Item(Some(i)) => EventOutcome::Items(std::slice::from_ref(i.as_ref())),
            Fetched::Item(None) => EventOutcome::ItemGone(biz_id),
        };
        let now = self.clock.now_ms();
        self.store
            .complete_events(shop, claimed, outcome, now)
            .await
            .map(|_| ())
    }

    async fn after_commit(&self, group: &Group, committed: Result<(), StoreError>) {
        match committed {
            Ok(()) => {
                self.stats
                    .done
                    .fetch_add(group.events.len() as u64, Ordering::Relaxed);
                debug!(shop = group.shop_id, biz_id = ?group.biz_id, events = group.events.len(), "push events applied");
            }
            Err(StoreError::LeaseLost) => warn!(
                shop = group.shop_id,
                "a lease expired during a fetch; another claim owns the events now"
            ),
            // The database refused the commit (a constraint, a full disk, a broken
            // connection): an attempt like any other, retried with backoff, then dead. If the
            // failure cannot be recorded either, the lease ends and the next claim counts it.
            Err(e) => {
                warn!(shop = group.shop_id, error = %e, "cannot commit push events; they are tried again later");
                self.fail_attempts(group, &format!("database: {e}")).await;
            }
        }
    }

    /// Ends the group's attempts as failed: retried with backoff, dead after `max_attempts`.
    async fn fail_attempts(&self, group: &Group, message: &str) {
        let now = self.clock.now_ms();
        self.record_failures(group, message, |event| {
            if event.attempts >= self.settings.max_attempts {
                (None, true)
            } else {
                (Some(now + self.backoff(event.attempts)), true)
            }
        })
        .await;
    }

    /// Puts the group's events back for a later attempt, or marks them dead.
    async fn fail(&self, group: &Group, e: &ApiError) {
        let now = self.clock.now_ms();
        let message = e.to_string();
        if e.class == ErrorClass::AuthorizationRevoked {
            if let Err(se) = self
                .store
                .set_shop_status(&group.shop_id, ShopStatus::NeedsReauth, Some(&e.message))
                .await
            {
                warn!(shop = group.shop_id, error = %se, "cannot mark the shop needs_reauth");
            }
        }
        self.record_failures(group, &message, |event| match e.class {
            // Not the event's fault: wait for the quota without spending an attempt.
            ErrorClass::QuotaExhausted => (Some(e.retry_at_ms.unwrap_or(now + 3_600_000)), false),
            // Not the event's fault either: the shop is now `needs_reauth`, and its events are
            // parked (never claimed) until it is authorized again, then due at once.
            ErrorClass::AuthorizationRevoked => (Some(now), false),
            _ if event.attempts >= self.settings.max_attempts => (None, true),
            _ => (Some(now + self.backoff(event.attempts)), true),
        })
        .await;
    }

    /// Records a failed attempt of each event of the group: `decide` gives when to try it again
    /// (`None`: dead) and whether the attempt counts.
    async fn record_failures(
        &self,
        group: &Group,
        message: &str,
        decide: impl Fn(&ClaimedEvent) -> (Option<i64>, bool),
    ) {
        for event in &group.events {
            let (retry_at, count_attempt) = decide(event);
            match self
                .store
                .fail_event(event.id, event.fence, message, retry_at, count_attempt)
                .await
            {
                Ok(true) if retry_at.is_none() => {
                    self.stats.dead.fetch_add(1, Ordering::Relaxed);
                    warn!(event_id = event.event_id, attempts = event.attempts, error = %message, "push event is dead");
                }
                Ok(true) => {
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => warn!(
                    event_id = event.event_id,
                    "lease lost before recording a failure"
                ),
                Err(se) => {
                    warn!(event_id = event.event_id, error = %se, "cannot record a failed attempt")
                }
            }
        }
    }

    /// A refund message also means its order changed (its refund list, refund time, and a
    /// refund before shipping closes it); no order message is promised for that, so both are
    /// fetched.
    async fn refund_and_order(&self, shop: &str, refund_id: i64) -> Result<Fetched, ApiError> {
        let refund = self.client.refund_detail(shop, refund_id).await?;
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let order = self.client.order_detail(shop, refund.oid).await?;
        Ok(Fetched::Refund(Box::new((refund, order))))
    }

    /// Marks the group's events dead at once (nothing a retry could fix).
    async fn bury(&self, group: &Group, why: &str) {
        for event in &group.events {
            if let Ok(true) = self
                .store
                .fail_event(event.id, event.fence, why, None, true)
                .await
            {
                self.stats.dead.fetch_add(1, Ordering::Relaxed);
                warn!(event_id = event.event_id, error = why, "push event is dead");
            }
        }
    }

    /// Exponential backoff with full jitter, in ms, for the attempt just made (1-based).
    fn backoff(&self, attempts: i64) -> i64 {
        let base = self.settings.retry_base.as_millis() as f64;
        let cap = self.settings.retry_max.as_millis() as f64;
        let exp = (base * 2f64.powi((attempts.max(1) - 1).min(30) as i32)).min(cap);
        let jitter: f64 = rand::rng().random_range(0.5..1.0);
        (exp * jitter) as i64
    }
}

/// A panic's message, when it carries one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

enum Fetched {
    Order(Box<crate::api::records::Order>),
    Refund(Box<(crate::api::records::Refund, crate::api::records::Order)>),
    Item(Option<Box<crate::api::records::Item>>),
}

/// Groups claimed events by the record they are about, so each record is fetched once.
fn group_by_record(claimed: Vec<ClaimedEvent>) -> Vec<Group> {
    let mut groups: BTreeMap<(String, &'static str, Option<i64>), Group> = BTreeMap::new();
    for event in claimed {
        // Events without a record id cannot be coalesced: each is its own group.
        let key = (
            event.shop_id.clone(),
            event.kind.as_str(),
            event.biz_id.or(Some(-event.id)),
        );
        groups
            .entry(key)
            .or_insert_with(|| Group {
                shop_id: event.shop_id.clone(),
                kind: event.kind,
                biz_id: event.biz_id,
                events: Vec::new(),
            })
            .events
            .push(event);
    }
    groups.into_values().collect()
}
