//! Taking over existing data: the next step of every order and refund that is not yet
//! terminal, and the refunds still to open, derived from the documents alone (the generator's
//! plans are not kept). A step that is already overdue happens soon after the takeover.

use rand::Rng;
use serde::Deserialize;

use super::{Mutator, RESUME_SPREAD_MS, Step};
use crate::docs;
use crate::lifecycle::{self, OrderStep, Stage};
use crate::model::{ShopData, TimeField};

/// The parts of an order document that decide its next steps.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderView {
    order_base_info: OrderBaseView,
    #[serde(default)]
    order_refund_list: Vec<RefundEntryView>,
    #[serde(default)]
    sub_order_info: Vec<SubOrderView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderBaseView {
    oid: i64,
    status: i32,
    create_time: i64,
    pay_time: i64,
    send_time: i64,
    recv_time: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundEntryView {
    refund_status: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubOrderView {
    sub_order_base_info: SubOrderBaseView,
}

#[derive(Deserialize)]
struct SubOrderBaseView {
    oid: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundView {
    refund_id: i64,
    status: i32,
    update_time: i64,
}

impl Mutator {
    /// Schedules the pending steps of one shop's orders and refunds as of `now`, and reserves
    /// their ids.
    pub(super) fn take_over(&mut self, s: usize, shop: &ShopData, now: i64) {
        // Creation order, not hash order, so the schedule is the same on every run.
        for (_, oid) in shop.orders.range(TimeField::Create, i64::MIN, i64::MAX) {
            let view = shop.orders.get(oid).and_then(docs::parse::<OrderView>);
            if let Some(view) = view {
                self.resume_order(s, &view, now);
            }
        }
        for (_, id) in shop.refunds.range(TimeField::Create, i64::MIN, i64::MAX) {
            let view = shop.refunds.get(id).and_then(docs::parse::<RefundView>);
            if let Some(view) = view {
                self.resume_refund(s, &view, now);
            }
        }
    }

    /// `planned` if still ahead, else soon after `now`: steps overdue at takeover are spread out
    /// instead of all firing at once.
    fn resume(&mut self, planned: i64, now: i64) -> i64 {
        if planned > now {
            planned
        } else {
            now + self.rng.random_range(1_000..=RESUME_SPREAD_MS)
        }
    }

    fn resume_order(&mut self, s: usize, view: &OrderView, now: i64) {
        let base = &view.order_base_info;
        self.ids.reserve(base.oid);
        for sub in &view.sub_order_info {
            self.ids.reserve(sub.sub_order_base_info.oid);
        }
        let refund_open = view
            .order_refund_list
            .first()
            .is_some_and(|r| !lifecycle::is_refund_terminal(r.refund_status));
        let next = match base.status {
            lifecycle::UNPAID => Some(self.resume_payment(base.create_time, now)),
            // A shipment waits while a refund is open; the refund's end reschedules it.
            lifecycle::PAID if refund_open => None,
            lifecycle::PAID => {
                let planned = base.pay_time + lifecycle::ship_delay(&mut self.rng);
                Some((self.resume(planned, now), OrderStep::Ship))
            }
            lifecycle::SHIPPED => {
                let planned = base.send_time + lifecycle::receive_delay(&mut self.rng);
                Some((self.resume(planned, now), OrderStep::Receive))
            }
            lifecycle::RECEIVED => {
                let planned = base.recv_time + lifecycle::SUCCESS_DELAY_MS;
                Some((self.resume(planned, now), OrderStep::Succeed))
            }
            _ => None,
        };
        if let Some((t, step)) = next {
            self.schedule(s, t, Step::Order(base.oid, step));
        }
        if view.order_refund_list.is_empty() {
            self.maybe_plan_refund(s, base, now);
        }
    }

    /// When an unpaid order pays, or closes at its deadline, given it has not paid by `now`.
    fn resume_payment(&mut self, create: i64, now: i64) -> (i64, OrderStep) {
        let deadline = create + lifecycle::PAY_DEADLINE_MS;
        if deadline <= now {
            return (self.resume(deadline, now), OrderStep::Cancel);
        }
        let earliest = (now + 1).max(create + lifecycle::MINUTE_MS);
        let window = (lifecycle::PAY_DEADLINE_MS - lifecycle::MINUTE_MS) as f64;
        let left = ((deadline - earliest) as f64 / window).clamp(0.0, 1.0);
        let never = lifecycle::NEVER_PAY_SHARE;
        let pays = (1.0 - never) * left / (never + (1.0 - never) * left);
        if self.rng.random_bool(pays.clamp(0.0, 1.0)) {
            (self.rng.random_range(earliest..=deadline), OrderStep::Pay)
        } else {
            (deadline, OrderStep::Cancel)
        }
    }

    /// A paid order without a refund may still get one while within the refund window; the
    /// chance is the rate conditioned on none having opened so far.
    fn maybe_plan_refund(&mut self, s: usize, base: &OrderBaseView, now: i64) {
        if base.pay_time == 0 || Stage::of_order_status(base.status).is_none() {
            return;
        }
        let latest = base.pay_time + lifecycle::REFUND_OPEN_LATEST_MS;
        if latest <= now {
            return;
        }
        let from = (base.pay_time + lifecycle::REFUND_OPEN_EARLIEST_MS).max(now + 1);
        let window = (lifecycle::REFUND_OPEN_LATEST_MS - lifecycle::REFUND_OPEN_EARLIEST_MS) as f64;
        let left = ((latest - from) as f64 / window).clamp(0.0, 1.0);
        let rate = self.params.refund_rate.clamp(0.0, 1.0);
        let chance = rate * left / (1.0 - rate * (1.0 - left)).max(f64::EPSILON);
        if self.rng.random_bool(chance.clamp(0.0, 1.0)) {
            let t = self.rng.random_range(from..=latest);
            self.schedule(s, t, Step::OpenRefund(base.oid));
        }
    }

    fn resume_refund(&mut self, s: usize, view: &RefundView, now: i64) {
        self.ids.reserve(view.refund_id);
        if !lifecycle::is_refund_terminal(view.status) {
            let planned = view.update_time + lifecycle::refund_step_delay(&mut self.rng);
            let t = self.resume(planned, now);
            self.schedule(s, t, Step::AdvanceRefund(view.refund_id));
        }
    }
}
