//! How orders and refunds move through simulated time (reference §8.3, §9.3, §13.1): the delays
//! between steps, the refund state machine, and the edit each step makes to a document. The
//! generator replays these to build history; the mutation clock applies them live, so both
//! produce the same documents.

use rand::Rng;

use super::docs::{OrderDoc, OrderRefundEntry, RefundDetailExtra, RefundDoc, ReturnLogistics};
use super::factory;
use crate::clock::DAY_MS;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;

/// Order `status` values (§8.3).
pub const UNPAID: i32 = 10;
pub const PAID: i32 = 30;
pub const SHIPPED: i32 = 40;
pub const RECEIVED: i32 = 50;
pub const SUCCEEDED: i32 = 70;
pub const CLOSED: i32 = 80;

/// Refund `status` values (§9.3, current enum).
pub const APPLIED_REFUND_ONLY: i32 = 10;
pub const APPLIED_RETURN: i32 = 11;
pub const AWAITING_RETURN: i32 = 30;
pub const RETURNED: i32 = 40;
pub const EXCHANGE_RESHIPPED: i32 = 45;
pub const REFUND_EXECUTING: i32 = 50;
pub const REFUNDED: i32 = 60;
pub const REFUND_CLOSED: i32 = 70;

/// Refund `handlingWay` values.
pub const RETURN_AND_REFUND: i32 = 1;
pub const EXCHANGE: i32 = 3;
pub const REFUND_ONLY: i32 = 10;

/// An unpaid order closes this long after creation.
pub const PAY_DEADLINE_MS: i64 = 30 * MINUTE_MS;
/// Share of orders never paid.
pub const NEVER_PAY_SHARE: f64 = 0.08;
/// A received order succeeds this long after receipt.
pub const SUCCESS_DELAY_MS: i64 = 7 * DAY_MS;
/// A refund opens this long after payment, at the latest.
pub const REFUND_OPEN_LATEST_MS: i64 = 5 * DAY_MS;
/// A refund opens this long after payment, at the earliest.
pub const REFUND_OPEN_EARLIEST_MS: i64 = HOUR_MS;
/// Share of refunds that end refunded (60) rather than closed (70).
pub const REFUND_SUCCESS_SHARE: f64 = 0.85;
/// The promised shipping deadline after payment (`validPromiseShipmentTimeStamp`).
pub const PROMISE_SHIP_MS: i64 = 48 * HOUR_MS;
/// How long the merchant has to act on a refund step (`expireTime`).
pub const REFUND_DEADLINE_MS: i64 = 48 * HOUR_MS;

pub fn pay_delay(rng: &mut impl Rng) -> i64 {
    rng.random_range(MINUTE_MS..=PAY_DEADLINE_MS)
}

pub fn ship_delay(rng: &mut impl Rng) -> i64 {
    rng.random_range(2 * HOUR_MS..=48 * HOUR_MS)
}

pub fn receive_delay(rng: &mut impl Rng) -> i64 {
    rng.random_range(DAY_MS..=4 * DAY_MS)
}

pub fn refund_open_delay(rng: &mut impl Rng) -> i64 {
    rng.random_range(REFUND_OPEN_EARLIEST_MS..=REFUND_OPEN_LATEST_MS)
}

pub fn refund_step_delay(rng: &mut impl Rng) -> i64 {
    rng.random_range(2 * HOUR_MS..=48 * HOUR_MS)
}

/// Where the goods are when a refund opens; it decides what the buyer can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Unshipped,
    InTransit,
    Received,
}

impl Stage {
    /// The stage of a paid order in `status`, or `None` when it cannot get a refund.
    pub fn of_order_status(status: i32) -> Option<Self> {
        match status {
            PAID => Some(Stage::Unshipped),
            SHIPPED => Some(Stage::InTransit),
            RECEIVED | SUCCEEDED => Some(Stage::Received),
            _ => None,
        }
    }
}

/// What the buyer asks for: only a refund before the goods ship; mostly refund-only in transit;
/// returns, refunds and some exchanges once received.
pub fn choose_handling_way(rng: &mut impl Rng, stage: Stage) -> i32 {
    match stage {
        Stage::Unshipped => REFUND_ONLY,
        Stage::InTransit if rng.random_bool(0.8) => REFUND_ONLY,
        Stage::InTransit => RETURN_AND_REFUND,
        Stage::Received => match rng.random_range(0..10) {
            0..4 => REFUND_ONLY,
            4..9 => RETURN_AND_REFUND,
            _ => EXCHANGE,
        },
    }
}

pub fn initial_refund_status(handling_way: i32) -> i32 {
    if handling_way == REFUND_ONLY {
        APPLIED_REFUND_ONLY
    } else {
        APPLIED_RETURN
    }
}

pub fn is_refund_terminal(status: i32) -> bool {
    status == REFUNDED || status == REFUND_CLOSED
}

/// The status a refund moves to next, or `None` once it is terminal. Refund-only goes
/// 10 → 50 → 60, returns 11 → 30 → 40 → 50 → 60, exchanges 11 → 30 → 40 → 45 → 60; before
/// execution each step may close it (70) instead, so that overall about 85 % succeed.
pub fn next_refund_status(rng: &mut impl Rng, status: i32, handling_way: i32) -> Option<i32> {
    // A path with k closable steps closes at each with probability 1 − 0.85^(1/k).
    let mut closes = |closable_steps: f64| {
        rng.random_bool(1.0 - REFUND_SUCCESS_SHARE.powf(1.0 / closable_steps))
    };
    let next = match status {
        APPLIED_REFUND_ONLY if closes(1.0) => REFUND_CLOSED,
        APPLIED_REFUND_ONLY => REFUND_EXECUTING,
        APPLIED_RETURN | AWAITING_RETURN | RETURNED if closes(3.0) => REFUND_CLOSED,
        APPLIED_RETURN => AWAITING_RETURN,
        AWAITING_RETURN => RETURNED,
        RETURNED if handling_way == EXCHANGE => EXCHANGE_RESHIPPED,
        RETURNED => REFUND_EXECUTING,
        EXCHANGE_RESHIPPED | REFUND_EXECUTING => REFUNDED,
        REFUNDED | REFUND_CLOSED => return None,
        // Platform-intervention states (20–23) are never generated; settle them.
        _ => REFUND_EXECUTING,
    };
    Some(next)
}

/// The `eventType` of the `updateRefund` message announcing a move to `status` (§9.3).
pub fn refund_event_type(status: i32) -> i32 {
    match status {
        AWAITING_RETURN => 3,
        RETURNED => 6,
        EXCHANGE_RESHIPPED => 7,
        REFUND_EXECUTING => 50,
        REFUNDED => 60,
        REFUND_CLOSED => 70,
        _ => 0,
    }
}

/// A step in an order's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStep {
    Pay,
    /// Unpaid at the deadline.
    Cancel,
    Ship,
    Receive,
    Succeed,
    /// A refund succeeded before shipping.
    CloseByRefund,
}

impl OrderStep {
    /// The order status this step starts from.
    pub fn starting_status(self) -> i32 {
        match self {
            OrderStep::Pay | OrderStep::Cancel => UNPAID,
            OrderStep::Ship | OrderStep::CloseByRefund => PAID,
            OrderStep::Receive => SHIPPED,
            OrderStep::Succeed => RECEIVED,
        }
    }

    /// The order status this step leads to.
    pub fn resulting_status(self) -> i32 {
        match self {
            OrderStep::Pay => PAID,
            OrderStep::Cancel | OrderStep::CloseByRefund => CLOSED,
            OrderStep::Ship => SHIPPED,
            OrderStep::Receive => RECEIVED,
            OrderStep::Succeed => SUCCEEDED,
        }
    }

    /// Edits the order (and its gift sub-orders, whose status follows it) as of time `t`;
    /// payment channel and waybill come from `rng`.
    pub fn apply(self, order: &mut OrderDoc, t: i64, rng: &mut impl Rng) {
        let status = self.resulting_status();
        let base = &mut order.order_base_info;
        base.status = status;
        base.update_time = t;
        match self {
            OrderStep::Pay => {
                let (pay_type, channel) = factory::payment(rng);
                base.pay_time = t;
                base.pay_type = pay_type;
                base.pay_channel = channel.to_string();
                base.valid_promise_shipment_time_stamp = t + PROMISE_SHIP_MS;
            }
            OrderStep::Cancel | OrderStep::Succeed => {}
            // Nothing may ship any more.
            OrderStep::CloseByRefund => base.valid_promise_shipment_time_stamp = 0,
            OrderStep::Ship => {
                base.send_time = t;
                let waybill = factory::waybill(rng);
                let delivery = &mut order.order_delivery_info;
                delivery.enable_append_package = true;
                delivery.total_package_num = 1;
                delivery.package_num = 1;
                delivery.delivery_num = order.order_item_info.num;
                order.order_logistics_info = vec![waybill];
            }
            OrderStep::Receive => base.recv_time = t,
        }
        for sub in &mut order.sub_order_info {
            let sub_base = &mut sub.sub_order_base_info;
            sub_base.status = status;
            sub_base.update_time = t;
            match self {
                OrderStep::Ship => {
                    sub_base.send_time = t;
                    sub.sub_order_logistics_info = order.order_logistics_info.clone();
                    sub.sub_order_delivery_info.delivery_num = sub.sub_order_item_info.num;
                    sub.sub_order_delivery_info.package_num = 1;
                }
                OrderStep::Receive => sub_base.recv_time = t,
                _ => {}
            }
        }
    }
}

/// Shows a refund's current state on its order (`orderRefundList` holds only the latest refund,
/// `refundTime` is when it was requested) as of time `t`.
pub fn show_refund_on_order(order: &mut OrderDoc, refund: &RefundDoc, special: i32, t: i64) {
    order.order_refund_list = vec![OrderRefundEntry {
        refund_id: refund.refund_id,
        refund_status: refund.status,
        handling_way: refund.handling_way,
        special_refund_type: special,
    }];
    order.order_base_info.refund_time = refund.create_time;
    order.order_base_info.update_time = t;
}

/// Whether the order's latest refund is still open.
pub fn has_open_refund(order: &OrderDoc) -> bool {
    order
        .order_refund_list
        .first()
        .is_some_and(|r| !is_refund_terminal(r.refund_status))
}

/// Moves a refund to status `to` at time `t`. `return_shipment` is the buyer's waybill and
/// logistics id when the goods go back (status 40).
pub fn apply_refund_step(
    refund: &mut RefundDoc,
    extra: &mut RefundDetailExtra,
    to: i32,
    t: i64,
    return_shipment: Option<(ReturnLogistics, i64)>,
) {
    let from = refund.status;
    if from == APPLIED_REFUND_ONLY || from == APPLIED_RETURN {
        // The merchant answers the application: agreed, or rejected and the refund closes.
        refund.negotiate_status = if to == REFUND_CLOSED { 3 } else { 2 };
        refund.negotiate_update_time = t;
    }
    if let Some((waybill, logistics_id)) = return_shipment {
        refund.logistics_id = logistics_id;
        extra.logistics_info = waybill;
    }
    refund.status = to;
    refund.update_time = t;
    if is_refund_terminal(to) {
        refund.end_time = t;
        refund.expire_time = 0;
    } else {
        refund.expire_time = t + REFUND_DEADLINE_MS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn refund_paths_end_and_mostly_succeed() {
        let mut rng = StdRng::seed_from_u64(7);
        for handling_way in [REFUND_ONLY, RETURN_AND_REFUND, EXCHANGE] {
            let mut refunded = 0;
            for _ in 0..4000 {
                let mut status = initial_refund_status(handling_way);
                let mut steps = 0;
                while let Some(next) = next_refund_status(&mut rng, status, handling_way) {
                    status = next;
                    steps += 1;
                    assert!(steps <= 5, "path too long for {handling_way}");
                }
                if status == REFUNDED {
                    refunded += 1;
                }
            }
            let share = f64::from(refunded) / 4000.0;
            assert!((0.82..0.88).contains(&share), "{handling_way}: {share}");
        }
    }

    #[test]
    fn unshipped_orders_only_get_refund_only() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(choose_handling_way(&mut rng, Stage::Unshipped), REFUND_ONLY);
        }
        assert_eq!(Stage::of_order_status(UNPAID), None);
        assert_eq!(Stage::of_order_status(CLOSED), None);
    }
}
