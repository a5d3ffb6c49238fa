//! The push message each change of the mutation clock produces: name and `info` payload per
//! reference §11.5 (refund messages say `orderId` where order messages say `oid`).

use serde_json::json;

use super::docs::{OrderDetailExtra, OrderDoc, RefundDoc};
use super::lifecycle;
use super::model::{Change, ChangeKind, ShopIdentity};

/// Item messages exist (NEWBIE §3.1.3) but no source names them (reference §15): these two names
/// and their `info` (kwaiItemId, userId, updateTime) are the simulator's own assumption.
pub const ITEM_CHANGE: &str = "kwaishop_item_change";
/// See [`ITEM_CHANGE`]: an assumed name, not the platform's.
pub const ITEM_DELETE: &str = "kwaishop_item_delete";

/// The message for an order moving to `status`, if that status has one.
pub fn order_event(status: i32) -> Option<&'static str> {
    match status {
        lifecycle::PAID => Some("kwaishop_order_paySuccess"),
        lifecycle::SHIPPED => Some("kwaishop_order_delivering"),
        lifecycle::RECEIVED => Some("kwaishop_order_deliverySuccess"),
        lifecycle::SUCCEEDED => Some("kwaishop_order_orderSuccess"),
        lifecycle::CLOSED => Some("kwaishop_order_orderFail"),
        _ => None,
    }
}

/// `kwaishop_order_addOrder`. `openId` in the payload is the order's seller openId (the real
/// sample's value has that style), not the token's open_id.
pub fn order_added(
    shop: usize,
    identity: &ShopIdentity,
    order: &OrderDoc,
    extra: &OrderDetailExtra,
) -> Change {
    let base = &order.order_base_info;
    Change {
        shop,
        kind: ChangeKind::Order,
        biz_id: base.oid,
        event: "kwaishop_order_addOrder",
        info: json!({
            "oid": base.oid,
            "sellerId": identity.seller_id,
            "openId": base.seller_open_id,
            "buyerOpenId": base.buyer_open_id,
            "createTime": base.create_time,
            "customizedInfo": extra.order_customized_info,
        }),
        update_time: base.update_time,
    }
}

/// The status message of an order that just moved (paySuccess … orderFail).
pub fn order_moved(shop: usize, identity: &ShopIdentity, order: &OrderDoc) -> Option<Change> {
    let base = &order.order_base_info;
    Some(Change {
        shop,
        kind: ChangeKind::Order,
        biz_id: base.oid,
        event: order_event(base.status)?,
        info: json!({
            "oid": base.oid,
            "sellerId": identity.seller_id,
            "status": base.status,
            "updateTime": base.update_time,
        }),
        update_time: base.update_time,
    })
}

/// `kwaishop_aftersales_addRefund`.
pub fn refund_added(shop: usize, refund: &RefundDoc, special_refund_type: i32) -> Change {
    Change {
        shop,
        kind: ChangeKind::Refund,
        biz_id: refund.refund_id,
        event: "kwaishop_aftersales_addRefund",
        info: json!({
            "orderId": refund.oid,
            "refundId": refund.refund_id,
            "handlingWay": refund.handling_way,
            "specialRefundType": special_refund_type,
            "status": refund.status,
            "createTime": refund.create_time,
        }),
        update_time: refund.update_time,
    }
}

/// `kwaishop_aftersales_updateRefund`.
pub fn refund_updated(shop: usize, refund: &RefundDoc, special_refund_type: i32) -> Change {
    Change {
        shop,
        kind: ChangeKind::Refund,
        biz_id: refund.refund_id,
        event: "kwaishop_aftersales_updateRefund",
        info: json!({
            "orderId": refund.oid,
            "refundId": refund.refund_id,
            "handlingWay": refund.handling_way,
            "specialRefundType": special_refund_type,
            "status": refund.status,
            "createTime": refund.create_time,
            "eventType": lifecycle::refund_event_type(refund.status),
            "updateTime": refund.update_time,
        }),
        update_time: refund.update_time,
    }
}

/// An item message ([`ITEM_CHANGE`] or [`ITEM_DELETE`]).
pub fn item_message(
    shop: usize,
    event: &'static str,
    kwai_item_id: i64,
    user_id: i64,
    update_time: i64,
) -> Change {
    Change {
        shop,
        kind: ChangeKind::Item,
        biz_id: kwai_item_id,
        event,
        info: json!({
            "kwaiItemId": kwai_item_id,
            "userId": user_id,
            "updateTime": update_time,
        }),
        update_time,
    }
}
