//! The shop's daily quota: calls counted ahead in blocks, the quota pauses read and recorded,
//! and the calls counted and not made given back.

use std::sync::Arc;

use tracing::warn;

use super::ApiClient;
use crate::api::Method;
use crate::api::error::{ApiError, ErrorClass};
use crate::clock::{beijing_day, next_beijing_midnight};

/// One (shop, method)'s calls counted ahead, locked while a block is counted.
pub(super) type ReserveSlot = Arc<tokio::sync::Mutex<Reserve>>;

/// Calls of one (shop, method) counted ahead: a busy stream counts its calls in blocks, one
/// database write per block instead of one per call; an idle one, one at a time.
#[derive(Debug, Default)]
pub(super) struct Reserve {
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

impl ApiClient {
    /// Checks the shop's quota pause and daily limit, and counts the call: from a block counted
    /// ahead when there is one left; otherwise the pauses are read and a new block is counted
    /// ([`block_after`], up to [`MAX_CALL_BLOCK`]). A pause recorded by another process is
    /// seen at the next block.
    pub(super) async fn count_call(&self, shop: &str, method: Method) -> Result<(), ApiError> {
        let inner = &self.inner;
        let settings = self.settings();
        let slot = self.reserve_slot(shop, method);
        let mut reserve = slot.lock().await;
        let now = inner.clock.now_ms();
        if let Some(paused) = self.paused_here(shop, method, now) {
            return Err(paused);
        }
        let day = beijing_day(now);
        if reserve.day == day && reserve.left > 0 {
            reserve.left -= 1;
            return Ok(());
        }
        self.give_back_in(shop, method, &mut reserve).await;
        let storage = |e: crate::api::limits::UsageError| {
            ApiError::local(ErrorClass::Transient, method.name(), e.to_string())
        };
        if let Some(until) = inner.usage.paused_until(shop).await.map_err(storage)?
            && until > now
        {
            return Err(quota_error(method, until, SHOP_PAUSED));
        }
        if let Some(until) = inner
            .usage
            .api_paused_until(shop, method)
            .await
            .map_err(storage)?
            && until > now
        {
            return Err(quota_error(method, until, API_PAUSED));
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

    pub(super) async fn pause(&self, shop: &str, until: i64) {
        self.pause_here(shop, None, until);
        if let Err(e) = self.inner.usage.pause_until(shop, until).await {
            warn!(shop, error = %e, "could not record the quota pause");
        }
        self.give_back_unused(Some(shop)).await;
    }

    pub(super) async fn pause_api(&self, shop: &str, method: Method, until: i64) {
        warn!(
            shop,
            method = method.name(),
            "this API's daily quota for the shop is spent; pausing it alone"
        );
        self.pause_here(shop, Some(method), until);
        if let Err(e) = self.inner.usage.pause_api_until(shop, method, until).await {
            warn!(shop, error = %e, "could not record the quota pause");
        }
        // Calls counted ahead would go out without looking at the pause.
        self.give_back_of(Some(shop), Some(method)).await;
    }
}

impl ApiClient {
    /// Pauses `shop`'s calls (of `method` only, when given) in this process at once: calls
    /// counted ahead must not go out while the pause is written to the database.
    fn pause_here(&self, shop: &str, method: Option<Method>, until: i64) {
        let mut paused = self.inner.paused.lock().unwrap_or_else(|p| p.into_inner());
        paused.insert((shop.to_string(), method), until);
    }

    /// The refusal of `method`'s call of `shop` when a pause this process met holds it at
    /// `now`.
    fn paused_here(&self, shop: &str, method: Method, now: i64) -> Option<ApiError> {
        let paused = self.inner.paused.lock().unwrap_or_else(|p| p.into_inner());
        [(None, SHOP_PAUSED), (Some(method), API_PAUSED)]
            .into_iter()
            .find_map(|(paused_method, why)| {
                let until = *paused.get(&(shop.to_string(), paused_method))?;
                (until > now).then(|| quota_error(method, until, why))
            })
    }
}

/// Why a call is refused while the shop's quota is paused …
const SHOP_PAUSED: &str = "the daily quota is spent (paused by an earlier answer)";
/// … or that of its API alone.
const API_PAUSED: &str =
    "this API's daily quota for the shop is spent (paused by an earlier answer)";

fn quota_error(method: Method, until: i64, why: &str) -> ApiError {
    ApiError {
        retry_at_ms: Some(until),
        ..ApiError::local(ErrorClass::QuotaExhausted, method.name(), why)
    }
}

#[cfg(test)]
mod tests;
