//! The batches a writer has written and not yet committed: each commits once the one before
//! it has, and one writing the same records as another waits for it.

use std::collections::HashSet;

use tracing::debug;

use super::super::super::{Counts, SyncContext, SyncError, SyncProgress};
use super::{Batch, commit_batch};
use crate::store::{PageOutcome, StoreError, Stream};

/// How many batches one writer has written and not yet committed at most. Postgres runs their
/// statements side by side on as many connections (a batch's records take the server about
/// 30 µs each; one connection alone kept the 200,000-order backfill at 0.63 of the rate
/// limit).
const BATCHES_AT_ONCE: usize = 3;

/// The batches a writer has in flight, oldest first, each committing after the one before.
/// None in flight: every batch before has committed (or been committed again, one by one).
#[derive(Default)]
pub(super) struct InFlight {
    batches: std::collections::VecDeque<Committing>,
}

impl InFlight {
    /// Whether a batch writing `keys` (`None`: rows no key set describes) must wait for the
    /// oldest in flight first: too many are in flight, or one of them writes the same rows.
    /// Two transactions writing one row wait for each other, and a wait on a later batch,
    /// which itself waits for the earlier to commit, would never end.
    pub(super) fn must_wait(&self, keys: Option<&HashSet<i64>>) -> bool {
        self.batches.len() >= BATCHES_AT_ONCE
            || self.batches.iter().any(|c| match (keys, &c.keys) {
                (Some(keys), Some(theirs)) => !keys.is_disjoint(theirs),
                _ => true,
            })
    }

    /// Writes the batch in a task of its own, which commits once the batch before has.
    pub(super) fn start(
        &mut self,
        cx: &SyncContext,
        shop: &str,
        stream: Stream,
        batch: Batch,
        open: crate::store::OpenPages,
        keys: Option<HashSet<i64>>,
    ) {
        let (store, shop) = (cx.store.clone(), shop.to_string());
        let before = self.batches.back_mut().and_then(|c| c.told.take());
        let (told, told_next) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let pages = batch.pages();
            let written = store
                .write_window_pages(open, &shop, stream, &batch.planned, &pages, batch.now)
                .await;
            // A batch before that did not commit leaves this one to be committed again.
            let before_committed = match before {
                Some(before) => before.await.unwrap_or(false),
                None => true,
            };
            let finished = match (before_committed, written) {
                (true, Ok(written)) => store
                    .finish_window_pages(written, &shop, stream, &pages, &batch.splits, batch.now)
                    .await
                    .map_err(Some),
                (true, Err(e)) => Err(Some(e)),
                (false, _) => Err(None),
            };
            let _ = told.send(finished.is_ok());
            drop(pages);
            (batch, finished)
        });
        self.batches.push_back(Committing {
            task,
            keys,
            told: Some(told_next),
        });
    }

    /// Waits for the oldest batch to commit. When it did not, every later one was rolled
    /// back: all of them are committed again, one by one, with [`commit_batch`].
    pub(super) async fn settle_first(
        &mut self,
        cx: &SyncContext,
        shop: &str,
        stream: Stream,
        progress: &dyn SyncProgress,
        counts: &mut Counts,
    ) -> Result<(), SyncError> {
        let Some(first) = self.batches.pop_front() else {
            return Ok(());
        };
        let Err(failed) = first.settle(shop, stream, progress, counts).await else {
            return Ok(());
        };
        let mut again = vec![failed];
        while let Some(next) = self.batches.pop_front() {
            if let Err(batch) = next.settle(shop, stream, progress, counts).await {
                again.push(batch);
            }
        }
        for batch in again {
            commit_batch(cx, shop, stream, batch, progress, counts).await?;
        }
        Ok(())
    }

    /// Waits for every batch in flight.
    pub(super) async fn settle(
        &mut self,
        cx: &SyncContext,
        shop: &str,
        stream: Stream,
        progress: &dyn SyncProgress,
        counts: &mut Counts,
    ) -> Result<(), SyncError> {
        while !self.batches.is_empty() {
            self.settle_first(cx, shop, stream, progress, counts)
                .await?;
        }
        Ok(())
    }
}

/// How a batch written in a task of its own ended: committed, or not (`None`: rolled back
/// because the batch before did not commit).
type Finished = Result<(PageOutcome, Option<i64>), Option<StoreError>>;

/// A batch being written and committed in a task of its own. Dropped, the task is aborted (and
/// the transaction rolled back unless it had committed).
struct Committing {
    task: tokio::task::JoinHandle<(Batch, Finished)>,
    /// The records it writes (see [`InFlight::must_wait`]).
    keys: Option<HashSet<i64>>,
    /// Told whether it committed: what the batch after it waits for (taken by that batch).
    told: Option<tokio::sync::oneshot::Receiver<bool>>,
}

impl Committing {
    /// Waits for the commit; counts the batch, or hands it back to be committed again.
    async fn settle(
        mut self,
        shop: &str,
        stream: Stream,
        progress: &dyn SyncProgress,
        counts: &mut Counts,
    ) -> Result<(), Batch> {
        let (batch, finished) = match (&mut self.task).await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match finished {
            Ok(committed) => {
                batch.committed(shop, stream, committed, progress, counts);
                Ok(())
            }
            Err(e) => {
                if let Some(e) = e {
                    debug!(shop, stream = stream.as_str(), error = %e, "a batch's commit failed; committing it again");
                }
                Err(batch)
            }
        }
    }
}

impl Drop for Committing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;
