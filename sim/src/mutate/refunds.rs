//! Refunds opening and taking their steps, each mirrored on its order.

use super::{Mutator, Step};
use crate::docs::{self, OrderDoc, RefundDetailExtra, RefundDoc};
use crate::factory;
use crate::lifecycle::{self, OrderStep, Stage};
use crate::messages;
use crate::model::{Change, Doc, ShopData};

impl Mutator {
    pub(super) fn open_refund(
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

    pub(super) fn advance_refund(
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
}
