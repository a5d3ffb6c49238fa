//! The mutation clock: keeps the simulated shops changing after generation. New orders arrive,
//! orders and refunds take their next lifecycle steps, refunds open, items are edited and taken
//! down, and every change comes back as a [`Change`] for the push sender.
//!
//! Pending steps wait in a map ordered by (time, sequence), so an [`Mutator::advance`] with
//! nothing due costs one lookup. A step re-reads its document when it fires and does nothing if
//! the document has moved on (a shipment held by a refund, an item taken down), so steps never
//! need cancelling.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::factory::{IdPool, ShopContext};
use super::generate::GenParams;
use super::lifecycle::{HOUR_MS, OrderStep};
use super::model::{Change, ShopData};
use super::variants::OrderIds;
use crate::clock::DAY_MS;

/// How busy the simulated shops are.
#[derive(Debug, Clone)]
pub struct MutationParams {
    /// New orders per shop per simulated day.
    pub orders_per_day: f64,
    /// Share of paid orders that get a refund.
    pub refund_rate: f64,
    /// Share of orders carrying a gift sub-order.
    pub gift_rate: f64,
    /// Price or stock edits per shop per day.
    pub item_changes_per_day: f64,
    /// Items removed upstream per shop per day.
    pub item_takedowns_per_day: f64,
    /// How order ids are made.
    pub oids: OrderIds,
}

impl MutationParams {
    /// The pace of the generated history: `orders / days` new orders a day, the same rates,
    /// 20 item edits and 2 takedowns a day.
    pub fn from_gen(params: &GenParams) -> Self {
        Self {
            orders_per_day: params.orders as f64 / f64::from(params.days.max(1)),
            refund_rate: params.refund_rate,
            gift_rate: params.gift_rate,
            item_changes_per_day: 20.0,
            item_takedowns_per_day: 2.0,
            oids: params.oids,
        }
    }
}

/// Share of order steps moved onto another pending step of the same shop (a batch shipment, a
/// system job), so live orders also share update times now and then.
const BATCH_SHARE: f64 = 0.05;
/// How far ahead a batch partner is looked for, and among how many pending steps.
const BATCH_WINDOW_MS: i64 = HOUR_MS;
const BATCH_LOOKAHEAD: usize = 64;
/// A step that was already overdue when the clock took over happens within this long.
const RESUME_SPREAD_MS: i64 = 2 * HOUR_MS;

/// A step waiting for its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    NewOrder,
    Order(i64, OrderStep),
    OpenRefund(i64),
    AdvanceRefund(i64),
    EditItem,
    TakeDownItem,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    shop: usize,
    step: Step,
}

mod items;
mod orders;
mod refunds;
mod resume;

/// The live side of the simulated platform.
#[derive(Debug)]
pub struct Mutator {
    params: MutationParams,
    rng: StdRng,
    /// Everything due up to here has been applied.
    now_ms: i64,
    next_seq: u64,
    queue: BTreeMap<(i64, u64), Pending>,
    ids: IdPool,
    contexts: Vec<ShopContext>,
}

impl Mutator {
    /// Builds the schedule of pending lifecycle steps from the current data (orders and refunds
    /// not yet terminal, refunds still to open) plus each shop's arrivals and item edits.
    pub fn new(seed: u64, params: MutationParams, shops: &[ShopData], now_ms: i64) -> Self {
        let mut mutator = Self {
            rng: StdRng::seed_from_u64(seed),
            now_ms,
            next_seq: 0,
            queue: BTreeMap::new(),
            ids: IdPool::new(params.oids),
            contexts: Vec::with_capacity(shops.len()),
            params,
        };
        for shop in shops {
            mutator.ids.reserve(shop.identity.seller_id);
        }
        let buyer_pool = (mutator.params.orders_per_day * 10.0).max(50.0) as u64;
        for shop in shops {
            let ctx = ShopContext::new(
                shop.identity.clone(),
                &mut mutator.rng,
                &mut mutator.ids,
                buyer_pool,
            );
            mutator.contexts.push(ctx);
        }
        for (s, shop) in shops.iter().enumerate() {
            mutator.take_over(s, shop, now_ms);
            for (rate, step) in [
                (mutator.params.orders_per_day, Step::NewOrder),
                (mutator.params.item_changes_per_day, Step::EditItem),
                (mutator.params.item_takedowns_per_day, Step::TakeDownItem),
            ] {
                mutator.schedule_arrival(s, now_ms, rate, step);
            }
        }
        mutator
    }

    /// Applies everything due in (last, `now_ms`]: new orders, lifecycle steps of orders and
    /// refunds, new refunds, item edits and takedowns. Returns the changes in the order they
    /// happened; nothing when `now_ms` is not past the last call.
    pub fn advance(&mut self, shops: &mut [ShopData], now_ms: i64) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some((&(t, seq), _)) = self.queue.first_key_value() {
            if t > now_ms {
                break;
            }
            let Some(pending) = self.queue.remove(&(t, seq)) else {
                break;
            };
            self.apply(shops, t, pending, &mut changes);
        }
        self.now_ms = self.now_ms.max(now_ms);
        changes
    }

    /// The time everything due has been applied up to.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// How many steps are waiting.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    fn apply(&mut self, shops: &mut [ShopData], t: i64, pending: Pending, out: &mut Vec<Change>) {
        let s = pending.shop;
        let Some(shop) = shops.get_mut(s) else {
            return;
        };
        if s >= self.contexts.len() {
            return;
        }
        match pending.step {
            Step::NewOrder => self.new_order(s, shop, t, out),
            Step::Order(oid, step) => self.order_step(s, shop, t, oid, step, out),
            Step::OpenRefund(oid) => self.open_refund(s, shop, t, oid, out),
            Step::AdvanceRefund(id) => self.advance_refund(s, shop, t, id, out),
            Step::EditItem => self.edit_item(s, shop, t, out),
            Step::TakeDownItem => self.take_down_item(s, shop, t, out),
        }
    }

    fn schedule(&mut self, shop: usize, t: i64, step: Step) {
        self.next_seq += 1;
        self.queue
            .insert((t, self.next_seq), Pending { shop, step });
    }

    /// Schedules an order step, now and then joining a pending order step of the same shop
    /// shortly after, so both orders change at the same instant.
    fn schedule_batched(&mut self, shop: usize, t: i64, step: Step) {
        let mut at = t;
        if self.rng.random_bool(BATCH_SHARE) {
            let partner = self
                .queue
                .range((t, 0)..(t + BATCH_WINDOW_MS, 0))
                .take(BATCH_LOOKAHEAD)
                .find(|(_, p)| p.shop == shop && matches!(p.step, Step::Order(..)));
            if let Some((&(partner_time, _), _)) = partner {
                at = partner_time;
            }
        }
        self.schedule(shop, at, step);
    }

    /// Schedules the next of a Poisson stream of `per_day` events after `t` (none if the rate
    /// is not positive).
    fn schedule_arrival(&mut self, shop: usize, t: i64, per_day: f64, step: Step) {
        if !(per_day.is_finite() && per_day > 0.0) {
            return;
        }
        let u: f64 = self.rng.random();
        let gap = (-(1.0 - u).ln() / per_day * DAY_MS as f64).max(1.0);
        self.schedule(shop, t.saturating_add(gap as i64), step);
    }
}

#[cfg(test)]
mod tests;
