//! Test-only consistency checks over simulated shops, shared by the generator's and the
//! mutation clock's tests.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::docs::{self, ItemDoc, OrderDoc, RefundDetailExtra, RefundDoc};
use super::lifecycle::{self as lc, PROMISE_SHIP_MS};
use super::model::{Doc, ShopData};

fn order_of(doc: &Doc) -> OrderDoc {
    docs::parse(doc).unwrap_or_else(|| panic!("order {} has the order shape", doc.id))
}

/// Checks every order, refund and item of a shop as of `now`. `fresh` (just generated) also
/// requires every order to reference an existing item at its current SKU price.
pub fn check_shop(shop: &ShopData, now: i64, fresh: bool) {
    let mut refunds_by_order: HashMap<i64, Vec<RefundDoc>> = HashMap::new();
    for doc in shop.refunds.iter() {
        let refund = check_refund(doc, now);
        refunds_by_order.entry(refund.oid).or_default().push(refund);
    }
    for doc in shop.orders.iter() {
        let order = order_of(doc);
        check_order(doc, &order, now);
        check_refund_view(&order, refunds_by_order.get(&doc.id).map(Vec::as_slice));
        if fresh {
            check_goods(shop, &order);
        }
    }
    for oid in refunds_by_order.keys() {
        assert!(
            shop.orders.get(*oid).is_some(),
            "refund of unknown order {oid}"
        );
    }
    for doc in shop.items.values() {
        check_item(doc, now);
    }
}

fn check_order(doc: &Doc, order: &OrderDoc, now: i64) {
    let b = &order.order_base_info;
    let oid = b.oid;
    assert_eq!(oid, doc.id);
    assert_eq!(b.create_time, doc.create_time, "{oid}");
    assert_eq!(
        b.update_time, doc.update_time,
        "{oid}: JSON updateTime = Doc"
    );
    assert!(b.update_time <= now, "{oid} updated after now");
    // Times reached are in order; times not reached are 0.
    let mut last = b.create_time;
    for (name, t) in [
        ("pay", b.pay_time),
        ("send", b.send_time),
        ("recv", b.recv_time),
    ] {
        if t > 0 {
            assert!(t >= last, "{oid}: {name} {t} before {last}");
            last = t;
        }
    }
    assert!(
        b.update_time >= last && b.update_time >= b.refund_time,
        "{oid}"
    );
    assert!(b.send_time == 0 || b.pay_time > 0, "{oid}: shipped unpaid");
    assert!(
        b.recv_time == 0 || b.send_time > 0,
        "{oid}: received unshipped"
    );
    let (paid, sent, received) = (b.pay_time > 0, b.send_time > 0, b.recv_time > 0);
    let ok = match b.status {
        lc::UNPAID => !paid,
        lc::PAID => paid && !sent,
        lc::SHIPPED => sent && !received,
        lc::RECEIVED | lc::SUCCEEDED => received,
        lc::CLOSED => !sent,
        _ => false,
    };
    assert!(
        ok,
        "{oid}: status {} with times {paid} {sent} {received}",
        b.status
    );
    if b.status == lc::CLOSED && paid {
        let latest = order.order_refund_list.first();
        assert_eq!(latest.map(|r| r.refund_status), Some(lc::REFUNDED), "{oid}");
    }
    if paid && b.status != lc::CLOSED {
        assert_eq!(
            b.valid_promise_shipment_time_stamp,
            b.pay_time + PROMISE_SHIP_MS
        );
    }
    let item = &order.order_item_info;
    assert_eq!(b.total_fee, item.price * item.num, "{oid}");
    assert!(b.discount_fee >= 0 && b.discount_fee < b.total_fee, "{oid}");
    assert_eq!(item.discount_fee, b.discount_fee);
    assert!(item.original_price >= item.price);
    assert_eq!(sent, !order.order_logistics_info.is_empty(), "{oid}");
    let delivered = order.order_delivery_info.delivery_num;
    assert_eq!(delivered, if sent { item.num } else { 0 }, "{oid}");
    for sub in &order.sub_order_info {
        let sb = &sub.sub_order_base_info;
        assert_eq!(sub.sub_order_type, 2);
        assert_eq!(sb.status, b.status, "{oid}: gift follows parent");
        assert_eq!((sb.send_time, sb.recv_time), (b.send_time, b.recv_time));
        assert!(sb.update_time <= b.update_time && sb.update_time >= b.create_time);
        assert_eq!(sub.sub_order_item_info.price, 0);
    }
    check_address(order);
}

fn check_address(order: &OrderDoc) {
    let a = &order.order_address;
    assert!(a.consignee.is_none() && a.mobile.is_none() && a.address.is_none());
    let mobile = a.desensitise_mobile.as_bytes();
    assert_eq!(mobile.len(), 11);
    assert!(&mobile[3..7] == b"****", "{}", a.desensitise_mobile);
    assert!(a.desensitise_consignee.ends_with("**"));
    assert!(a.desensitise_address.ends_with("***"));
    for cipher in [
        &a.encrypted_consignee,
        &a.encrypted_mobile,
        &a.encrypted_address,
    ] {
        assert!(cipher.starts_with('#') && cipher.ends_with('#') && cipher.len() > 30);
    }
}

/// The order's `orderRefundList` shows its newest refund, and `refundTime` when it was asked.
fn check_refund_view(order: &OrderDoc, refunds: Option<&[RefundDoc]>) {
    let b = &order.order_base_info;
    let newest = refunds.and_then(|r| r.iter().max_by_key(|r| (r.create_time, r.refund_id)));
    match (order.order_refund_list.as_slice(), newest) {
        ([], None) => assert_eq!(b.refund_time, 0),
        ([shown], Some(refund)) => {
            assert_eq!(shown.refund_id, refund.refund_id, "{}", b.oid);
            assert_eq!(shown.refund_status, refund.status, "{}", b.oid);
            assert_eq!(shown.handling_way, refund.handling_way);
            assert_eq!(b.refund_time, refund.create_time);
            assert!(refund.create_time >= b.pay_time && b.pay_time > 0);
            assert!(refund.update_time <= b.update_time, "{}", b.oid);
            assert!(refund.refund_fee <= b.total_fee - b.discount_fee);
            assert_eq!(refund.item_id, order.order_item_info.item_id);
        }
        (shown, newest) => panic!("{}: list {shown:?} vs newest {newest:?}", b.oid),
    }
}

fn check_goods(shop: &ShopData, order: &OrderDoc) {
    let line = &order.order_item_info;
    let item: ItemDoc = shop
        .items
        .get(&line.item_id)
        .and_then(docs::parse)
        .expect("ordered item exists");
    let sku = item.sku_list.iter().find(|s| s.kwai_sku_id == line.sku_id);
    assert_eq!(sku.map(|s| s.sku_sale_price), Some(line.price));
    assert_eq!(line.item_title, item.title);
}

fn check_refund(doc: &Doc, now: i64) -> RefundDoc {
    let r: RefundDoc = docs::parse(doc).expect("refund shape");
    let x: RefundDetailExtra = docs::parse_extra(doc).expect("refund extra shape");
    let id = r.refund_id;
    assert_eq!(id, doc.id);
    assert_eq!(
        (r.create_time, r.update_time),
        (doc.create_time, doc.update_time)
    );
    assert_eq!(r.submit_time, r.create_time);
    assert!(r.create_time <= r.negotiate_update_time && r.negotiate_update_time <= r.update_time);
    assert!(r.update_time <= now, "{id} updated after now");
    assert!([1, 3, 10].contains(&r.handling_way), "{id}");
    let valid: &[i32] = match r.handling_way {
        lc::REFUND_ONLY => &[10, 50, 60, 70],
        lc::RETURN_AND_REFUND => &[11, 30, 40, 50, 60, 70],
        _ => &[11, 30, 40, 45, 60, 70],
    };
    assert!(
        valid.contains(&r.status),
        "{id}: status {} for {}",
        r.status,
        r.handling_way
    );
    if lc::is_refund_terminal(r.status) {
        assert_eq!(r.end_time, r.update_time, "{id}");
        assert_eq!(r.expire_time, 0);
    } else {
        assert_eq!(r.end_time, 0, "{id}");
        assert!(r.expire_time > r.update_time);
    }
    let applied = r.status == lc::APPLIED_REFUND_ONLY || r.status == lc::APPLIED_RETURN;
    assert_eq!(r.negotiate_status == 1, applied, "{id}");
    // Goods sent back carry a waybill; a return may still close (70) after that.
    let sent_back = r.handling_way != lc::REFUND_ONLY && [40, 45, 50, 60].contains(&r.status);
    let may_be_sent_back = r.handling_way != lc::REFUND_ONLY && r.status >= 40;
    let has_waybill = r.logistics_id > 0;
    assert!(
        has_waybill || !sent_back,
        "{id}: returned without a waybill"
    );
    assert!(
        !has_waybill || may_be_sent_back,
        "{id}: waybill without a return"
    );
    assert_eq!(x.logistics_info.express_no.is_empty(), !has_waybill);
    assert!(r.refund_fee >= 0);
    assert_eq!(r.handling_way == lc::EXCHANGE, r.refund_fee == 0, "{id}");
    r
}

fn check_item(doc: &Doc, now: i64) {
    let item: ItemDoc = docs::parse(doc).expect("item shape");
    assert_eq!(item.kwai_item_id, doc.id);
    assert_eq!(
        (item.create_time, item.update_time),
        (doc.create_time, doc.update_time)
    );
    assert!(item.update_time <= now);
    assert!((1..=6).contains(&item.sku_list.len()));
    assert_eq!(item.price, item.min_sku_price());
    for sku in &item.sku_list {
        assert_eq!(sku.kwai_item_id, item.kwai_item_id);
        assert!(sku.create_time <= sku.update_time && sku.update_time <= item.update_time);
        assert!(sku.sku_sale_price >= 100 && sku.sku_stock >= 0);
    }
}

/// Ids are unique across the platform and have the platform's widths.
pub fn check_unique_ids(shops: &[ShopData]) {
    let mut long_ids = HashSet::new();
    let mut item_ids = HashSet::new();
    let mut sellers = HashSet::new();
    for shop in shops {
        assert!(sellers.insert(shop.identity.seller_id));
        assert_eq!(shop.identity.seller_id.to_string().len(), 10);
        assert_eq!(shop.identity.open_id.len(), 32);
        assert!(
            shop.identity
                .open_id
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        for doc in shop.orders.iter() {
            let order = order_of(doc);
            let subs = order
                .sub_order_info
                .iter()
                .map(|s| s.sub_order_base_info.oid);
            for oid in std::iter::once(doc.id).chain(subs) {
                assert!(long_ids.insert(oid), "duplicate oid {oid}");
            }
        }
        for doc in shop.refunds.iter() {
            assert!(long_ids.insert(doc.id), "duplicate refundId {}", doc.id);
        }
        for doc in shop.items.values() {
            let item: ItemDoc = docs::parse(doc).expect("item shape");
            let skus = item.sku_list.iter().map(|s| s.kwai_sku_id);
            for id in std::iter::once(item.kwai_item_id).chain(skus) {
                assert!(item_ids.insert(id), "duplicate item/SKU id {id}");
                assert!((11..=13).contains(&id.to_string().len()), "{id}");
            }
        }
    }
    for id in &long_ids {
        assert_eq!(id.to_string().len(), 16, "{id}");
        assert!(*id < 1 << 53);
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

fn expect_keys(v: &Value, names: &str) {
    let mut want: Vec<&str> = names.split_whitespace().collect();
    want.sort_unstable();
    assert_eq!(keys(v), want);
}

/// The documents carry exactly the field names of the reference (§8–§10).
pub fn check_field_names(shop: &ShopData) {
    let with_gift = shop
        .orders
        .iter()
        .find(|d| !order_of(d).sub_order_info.is_empty())
        .expect("an order with a gift");
    let order = with_gift.value();
    expect_keys(
        &order,
        "orderBaseInfo orderItemInfo orderRefundList orderLogisticsInfo orderNote orderAddress orderCpsInfo orderDeliveryInfo subOrderInfo",
    );
    expect_keys(
        &order["orderBaseInfo"],
        "oid status createTime updateTime payTime sendTime recvTime refundTime totalFee discountFee expressFee buyerOpenId buyerNick buyerImage sellerOpenId sellerNick remark payType payChannel cpsType preSale coType commentStatus riskCode allActivityType orderLabels priorityDelivery remindShipmentSign theDayOfDeliverGoodsTime validPromiseShipmentTimeStamp disableDeliveryReasonCode orderSellerRoleInfo",
    );
    expect_keys(
        &order["orderBaseInfo"]["orderSellerRoleInfo"],
        "roleType roleId roleName",
    );
    let item_info = "skuId relSkuId skuDesc skuNick itemId relItemId itemTitle itemLinkUrl itemPicUrl num originalPrice discountFee price itemType goodsCode itemExtra";
    expect_keys(&order["orderItemInfo"], item_info);
    expect_keys(
        &order["orderItemInfo"]["itemExtra"]["categoryInfo"],
        "itemCid categoryName",
    );
    expect_keys(&order["orderNote"], "sellerNote orderNoteInfo");
    expect_keys(
        &order["orderAddress"],
        "encryptedConsignee encryptedMobile encryptedAddress desensitiseConsignee desensitiseMobile desensitiseAddress province provinceCode city cityCode district districtCode town townCode consignee mobile address",
    );
    expect_keys(&order["orderCpsInfo"], "distributorId distributorName");
    expect_keys(
        &order["orderDeliveryInfo"],
        "maxPackageNum enableAppendPackage totalPackageNum deliveryNum packageNum",
    );
    let gift = &order["subOrderInfo"][0];
    expect_keys(
        gift,
        "subOrderBaseInfo subOrderItemInfo subOrderLogisticsInfo subOrderDeliveryInfo subOrderType",
    );
    expect_keys(
        &gift["subOrderBaseInfo"],
        "oid status sendTime updateTime recvTime",
    );
    expect_keys(&gift["subOrderItemInfo"], item_info);
    expect_keys(&gift["subOrderDeliveryInfo"], "deliveryNum packageNum");
    let extra: Value = serde_json::from_str(with_gift.detail_extra.get()).expect("JSON");
    expect_keys(
        &extra,
        "orderCustomizedInfo addressUpdateAuditInfo orderBaseInfoExtra",
    );
    expect_keys(
        &extra["orderBaseInfoExtra"],
        "shopNewBuyer platformNewBuyer carrierType carrierId privacyInfoAuthStatus orderPoiInfo",
    );

    let shipped = shop
        .orders
        .iter()
        .map(Doc::value)
        .find(|o| {
            o["orderRefundList"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
                && o["orderBaseInfo"]["sendTime"].as_i64() > Some(0)
        })
        .expect("a shipped order with a refund");
    expect_keys(
        &shipped["orderRefundList"][0],
        "refundId refundStatus handlingWay specialRefundType",
    );
    expect_keys(
        &shipped["orderLogisticsInfo"][0],
        "expressNo expressCode logisticsId",
    );

    let refund = shop.refunds.iter().next().expect("a refund");
    expect_keys(
        &refund.value(),
        "refundId oid itemId skuId relItemId relSkuId skuNick logisticsId sellerId buyerId handlingWay status negotiateStatus refundType refundFee refundReason refundReasonDesc refundDesc receiptStatus createTime updateTime submitTime negotiateUpdateTime endTime expireTime",
    );
    let extra: Value = serde_json::from_str(refund.detail_extra.get()).expect("JSON");
    expect_keys(
        &extra,
        "buyerOpenId pictures logisticsInfo productNum specialRefundType sellerDisagreeDesc returnFreightInfo",
    );
    expect_keys(&extra["logisticsInfo"], "expressNo expressCode");

    let item = shop.items.values().next().expect("an item").value();
    expect_keys(
        &item,
        "kwaiItemId relItemId userId title details mainImageUrl imageUrls linkUrl categoryId categoryName price volume itemStatus shelfStatus auditStatus fromType appkey expressTemplateId itemType multipleStock createTime updateTime skuList",
    );
    expect_keys(
        &item["skuList"][0],
        "kwaiSkuId relSkuId skuStock reserveStock skuSalePrice skuNick specification imageUrl isValid gtinCode goodsId goodsCode skuProp createTime updateTime kwaiItemId appkey",
    );
    expect_keys(&item["skuList"][0]["skuProp"][0], "propName propValueName");
}
