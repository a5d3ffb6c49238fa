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

use super::docs::{self, ItemDoc, OrderDoc, RefundDetailExtra, RefundDoc};
use super::factory::{self, IdPool, OrderLine, ShopContext};
use super::generate::GenParams;
use super::lifecycle::{self, HOUR_MS, OrderStep, Stage};
use super::messages;
use super::model::{Change, Doc, ShopData};
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

/// What a new order sells: an item and SKU index, maybe a gift item and SKU index.
struct Goods {
    item: ItemDoc,
    sku: usize,
    gift: Option<(ItemDoc, usize)>,
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

    fn new_order(&mut self, s: usize, shop: &mut ShopData, t: i64, out: &mut Vec<Change>) {
        self.schedule_arrival(s, t, self.params.orders_per_day, Step::NewOrder);
        let Some(Goods { item, sku, gift }) = self.choose_goods(shop) else {
            return;
        };
        let ctx = &self.contexts[s];
        let line = OrderLine {
            item: &item,
            sku: &item.sku_list[sku],
            gift: gift.as_ref().map(|(g, k)| (g, &g.sku_list[*k])),
            buyer: ctx.random_buyer(&mut self.rng),
            shop_new_buyer: self.rng.random_bool(0.3),
        };
        let (order, extra) = factory::new_order(ctx, &mut self.ids, &mut self.rng, t, &line);
        let oid = order.order_base_info.oid;
        shop.orders.put(Doc {
            id: oid,
            create_time: t,
            update_time: t,
            json: docs::raw(&order),
            detail_extra: docs::raw(&extra),
        });
        out.push(messages::order_added(s, &shop.identity, &order, &extra));
        if self.rng.random_bool(lifecycle::NEVER_PAY_SHARE) {
            let deadline = t + lifecycle::PAY_DEADLINE_MS;
            self.schedule(s, deadline, Step::Order(oid, OrderStep::Cancel));
        } else {
            let paid = t + lifecycle::pay_delay(&mut self.rng);
            self.schedule(s, paid, Step::Order(oid, OrderStep::Pay));
        }
    }

    /// An item and SKU to sell, and maybe a gift from another item.
    fn choose_goods(&mut self, shop: &ShopData) -> Option<Goods> {
        let n = shop.items.len();
        if n == 0 {
            return None;
        }
        let any_item = |rng: &mut StdRng| {
            shop.items
                .values()
                .nth(rng.random_range(0..n))
                .and_then(docs::parse::<ItemDoc>)
                .filter(|item| !item.sku_list.is_empty())
        };
        let item = any_item(&mut self.rng)?;
        let sku = self.rng.random_range(0..item.sku_list.len());
        let gift = if n > 1 && self.rng.random_bool(self.params.gift_rate.clamp(0.0, 1.0)) {
            any_item(&mut self.rng)
                .filter(|g| g.kwai_item_id != item.kwai_item_id)
                .map(|g| {
                    let k = self.rng.random_range(0..g.sku_list.len());
                    (g, k)
                })
        } else {
            None
        };
        Some(Goods { item, sku, gift })
    }

    fn order_step(
        &mut self,
        s: usize,
        shop: &mut ShopData,
        t: i64,
        oid: i64,
        step: OrderStep,
        out: &mut Vec<Change>,
    ) {
        let Some(mut order) = shop.orders.get(oid).and_then(docs::parse::<OrderDoc>) else {
            return;
        };
        if order.order_base_info.status != step.starting_status()
            || (step == OrderStep::Ship && lifecycle::has_open_refund(&order))
        {
            return;
        }
        let rng = &mut self.rng;
        let Some(u) = shop.orders.restamp(oid, t, |old, u| {
            step.apply(&mut order, u, rng);
            (docs::raw(&order), old.detail_extra.clone())
        }) else {
            return;
        };
        out.extend(messages::order_moved(s, &shop.identity, &order));
        match step {
            OrderStep::Pay => {
                let ship = u + lifecycle::ship_delay(&mut self.rng);
                self.schedule_batched(s, ship, Step::Order(oid, OrderStep::Ship));
                if self
                    .rng
                    .random_bool(self.params.refund_rate.clamp(0.0, 1.0))
                {
                    let open = u + lifecycle::refund_open_delay(&mut self.rng);
                    self.schedule(s, open, Step::OpenRefund(oid));
                }
            }
            OrderStep::Ship => {
                let received = u + lifecycle::receive_delay(&mut self.rng);
                self.schedule_batched(s, received, Step::Order(oid, OrderStep::Receive));
            }
            OrderStep::Receive => {
                let done = u + lifecycle::SUCCESS_DELAY_MS;
                self.schedule_batched(s, done, Step::Order(oid, OrderStep::Succeed));
            }
            OrderStep::Cancel | OrderStep::Succeed | OrderStep::CloseByRefund => {}
        }
    }

    fn open_refund(
        &mut self,
        s: usize,
        shop: &mut ShopData,
        t: i64,
        oid: i64,
        out: &mut Vec<Change>,
    ) {
        let Some(order) = shop.orders.get(oid).and_then(docs::parse::<OrderDoc>) else {
            return;
        };
        let base = &order.order_base_info;
        // One refund per order: the list view shows only the latest anyway.
        if !order.order_refund_list.is_empty() || base.pay_time == 0 {
            return;
        }
        let Some(stage) = Stage::of_order_status(base.status) else {
            return;
        };
        let handling_way = lifecycle::choose_handling_way(&mut self.rng, stage);
        let ctx = &self.contexts[s];
        let (refund, extra) = factory::new_refund(
            ctx,
            &mut self.ids,
            &mut self.rng,
            &order,
            handling_way,
            stage,
            t,
        );
        shop.refunds.put(Doc {
            id: refund.refund_id,
            create_time: t,
            update_time: t,
            json: docs::raw(&refund),
            detail_extra: docs::raw(&extra),
        });
        out.push(messages::refund_added(
            s,
            &refund,
            extra.special_refund_type,
        ));
        self.show_on_order(s, shop, &refund, extra.special_refund_type, t);
        let next = t + lifecycle::refund_step_delay(&mut self.rng);
        self.schedule(s, next, Step::AdvanceRefund(refund.refund_id));
    }

    fn advance_refund(
        &mut self,
        s: usize,
        shop: &mut ShopData,
        t: i64,
        id: i64,
        out: &mut Vec<Change>,
    ) {
        let Some(doc) = shop.refunds.get(id) else {
            return;
        };
        let parsed = (
            docs::parse::<RefundDoc>(doc),
            docs::parse_extra::<RefundDetailExtra>(doc),
        );
        let (Some(mut refund), Some(mut extra)) = parsed else {
            return;
        };
        let Some(next) =
            lifecycle::next_refund_status(&mut self.rng, refund.status, refund.handling_way)
        else {
            return;
        };
        let back = (next == lifecycle::RETURNED).then(|| factory::return_waybill(&mut self.rng));
        let Some(u) = shop.refunds.restamp(id, t, |_, u| {
            lifecycle::apply_refund_step(&mut refund, &mut extra, next, u, back);
            (docs::raw(&refund), docs::raw(&extra))
        }) else {
            return;
        };
        out.push(messages::refund_updated(
            s,
            &refund,
            extra.special_refund_type,
        ));
        self.show_on_order(s, shop, &refund, extra.special_refund_type, u);
        if !lifecycle::is_refund_terminal(next) {
            let later = u + lifecycle::refund_step_delay(&mut self.rng);
            self.schedule(s, later, Step::AdvanceRefund(id));
        }
    }

    /// Mirrors a refund's state on its order. A refund that ends while the order is still
    /// unshipped decides it: refunded → the order closes; closed → the held shipment goes ahead.
    /// The order gets no message of its own: the refund's message makes receivers re-fetch.
    fn show_on_order(
        &mut self,
        s: usize,
        shop: &mut ShopData,
        refund: &RefundDoc,
        special: i32,
        t: i64,
    ) {
        let oid = refund.oid;
        let Some(mut order) = shop.orders.get(oid).and_then(docs::parse::<OrderDoc>) else {
            return;
        };
        let decided = order.order_base_info.status == lifecycle::PAID
            && lifecycle::is_refund_terminal(refund.status);
        let close = decided && refund.status == lifecycle::REFUNDED;
        let rng = &mut self.rng;
        let Some(u) = shop.orders.restamp(oid, t, |old, u| {
            lifecycle::show_refund_on_order(&mut order, refund, special, u);
            if close {
                OrderStep::CloseByRefund.apply(&mut order, u, rng);
            }
            (docs::raw(&order), old.detail_extra.clone())
        }) else {
            return;
        };
        if decided && !close {
            let ship = u + lifecycle::ship_delay(&mut self.rng);
            self.schedule(s, ship, Step::Order(oid, OrderStep::Ship));
        }
    }

    fn edit_item(&mut self, s: usize, shop: &mut ShopData, t: i64, out: &mut Vec<Change>) {
        self.schedule_arrival(s, t, self.params.item_changes_per_day, Step::EditItem);
        let n = shop.items.len();
        if n == 0 {
            return;
        }
        let Some(doc) = shop.items.values().nth(self.rng.random_range(0..n)) else {
            return;
        };
        let Some(mut item) = docs::parse::<ItemDoc>(doc).filter(|i| !i.sku_list.is_empty()) else {
            return;
        };
        let u = t.max(doc.update_time + 1);
        let k = self.rng.random_range(0..item.sku_list.len());
        let sku = &mut item.sku_list[k];
        if self.rng.random_bool(0.5) {
            let old = sku.sku_sale_price;
            let new = factory::round_jiao(old as f64 * self.rng.random_range(0.8..1.2)).max(100);
            sku.sku_sale_price = if new == old { old + 100 } else { new };
        } else {
            sku.sku_stock = if self.rng.random_bool(0.1) {
                0
            } else {
                self.rng.random_range(1..1000)
            };
        }
        sku.update_time = u;
        item.update_time = u;
        item.price = item.min_sku_price();
        let new_doc = Doc {
            id: doc.id,
            create_time: doc.create_time,
            update_time: u,
            json: docs::raw(&item),
            detail_extra: doc.detail_extra.clone(),
        };
        shop.items.insert(new_doc.id, new_doc);
        out.push(messages::item_message(
            s,
            messages::ITEM_CHANGE,
            item.kwai_item_id,
            item.user_id,
            u,
        ));
    }

    fn take_down_item(&mut self, s: usize, shop: &mut ShopData, t: i64, out: &mut Vec<Change>) {
        self.schedule_arrival(s, t, self.params.item_takedowns_per_day, Step::TakeDownItem);
        // The last item stays, so the shop can still take orders.
        let n = shop.items.len();
        if n <= 1 {
            return;
        }
        let Some(&id) = shop.items.keys().nth(self.rng.random_range(0..n)) else {
            return;
        };
        let Some(doc) = shop.items.remove(&id) else {
            return;
        };
        let u = t.max(doc.update_time + 1);
        shop.deleted_items.insert(id, (doc, u));
        out.push(messages::item_message(
            s,
            messages::ITEM_DELETE,
            id,
            shop.identity.seller_id,
            u,
        ));
    }
}

#[cfg(test)]
mod tests;
