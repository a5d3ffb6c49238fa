//! New orders and the steps of their lifecycle: goods and a buyer chosen for each arrival, each
//! step applied when due and the next one scheduled.

use rand::Rng;
use rand::rngs::StdRng;

use super::{Mutator, Step};
use crate::docs::{self, ItemDoc, OrderDoc};
use crate::factory::{self, OrderLine};
use crate::lifecycle::{self, OrderStep};
use crate::messages;
use crate::model::{Change, Doc, ShopData};

/// What a new order sells: an item and SKU index, maybe a gift item and SKU index.
struct Goods {
    item: ItemDoc,
    sku: usize,
    gift: Option<(ItemDoc, usize)>,
}

impl Mutator {
    pub(super) fn new_order(
        &mut self,
        s: usize,
        shop: &mut ShopData,
        t: i64,
        out: &mut Vec<Change>,
    ) {
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

    pub(super) fn order_step(
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
}
