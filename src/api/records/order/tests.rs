use serde_json::value::RawValue;

use super::*;

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("test JSON is valid")
}

/// A gift sub-order exactly as it sits inside [`full_order`], with inner whitespace kept.
const GIFT_ELEMENT: &str = r#"{ "subOrderBaseInfo": {"oid": 2607602240240302, "status": 30, "sendTime": 0, "updateTime": 1687251000000, "recvTime": 0},
      "subOrderItemInfo": {"skuId": 2054370999, "itemId": 1837462999, "itemTitle": "赠品：帆布袋", "num": 1, "originalPrice": 0, "price": 0, "discountFee": 0},
      "subOrderLogisticsInfo": [], "subOrderDeliveryInfo": {"deliveryNum": 0, "packageNum": 0}, "subOrderType": 2 }"#;

/// A shipped list-view order with every block (reference §8.2–§8.5), a gift and a refund.
fn full_order() -> String {
    format!(
        r##"{{
  "orderBaseInfo": {{"oid": 2607602240240301, "status": 40, "createTime": 1687250000000,
    "updateTime": 1687251104545, "payTime": 1687250030000, "sendTime": 1687251100000,
    "recvTime": 0, "refundTime": 0, "totalFee": 12900, "discountFee": 1000, "expressFee": 0,
    "buyerOpenId": "f19b4a6d2a8c3e0b", "buyerNick": "小明", "buyerImage": "https://p1.a.yximgs.com/u.jpg",
    "sellerOpenId": "f1a7c0b5e9d24c31", "sellerNick": "好物小店", "remark": "请尽快发货",
    "payType": 1, "payChannel": "微信支付", "cpsType": 2, "preSale": 0, "coType": 0,
    "commentStatus": 0, "riskCode": 0, "allActivityType": [18, 19], "disableDeliveryReasonCode": [],
    "orderLabels": [], "theDayOfDeliverGoodsTime": 2, "validPromiseShipmentTimeStamp": 1687423000000,
    "priorityDelivery": false,
    "orderSellerRoleInfo": {{"roleType": 2, "roleId": 1940293, "roleName": "达人小王"}}}},
  "orderItemInfo": {{"skuId": 2054370118, "relSkuId": 0, "skuDesc": "颜色:黑色;尺码:M",
    "skuNick": "TS-BLK-M", "itemId": 1837462910, "relItemId": 77001, "itemTitle": "纯棉短袖T恤",
    "itemPicUrl": "https://p2.a.yximgs.com/t.jpg", "num": 1, "originalPrice": 15900,
    "discountFee": 3000, "price": 12900, "itemType": 1,
    "itemExtra": {{"categoryInfo": {{"itemCid": 1234, "categoryName": "T恤"}}}}}},
  "orderRefundList": [{{"refundId": 2300012345678, "refundStatus": 10}}, {{"refundId": 1, "refundStatus": 70}}],
  "orderLogisticsInfo": [{{"expressNo": "YT7412589630", "expressCode": 5, "logisticsId": 998877}}],
  "orderNote": {{"sellerNote": [], "orderNoteInfo": [{{"createTime": 1687250100000, "note": "送帆布袋",
    "flagTagCode": "red_flag_tag_order", "operatorName": "客服A"}}]}},
  "orderAddress": {{"encryptedConsignee": "#pOz8#Zm9v#1##", "encryptedMobile": "$18$YmFy$1$$",
    "encryptedAddress": "~Ym#F6~1~", "desensitiseConsignee": "张**", "desensitiseMobile": "138****5678",
    "desensitiseAddress": "粤海街道****", "province": "广东省", "provinceCode": 440000, "city": "深圳市",
    "district": "南山区", "town": "粤海街道", "consignee": null, "mobile": null, "address": null}},
  "orderCpsInfo": {{"distributorId": 55012, "distributorName": "达人小王"}},
  "orderDeliveryInfo": {{"maxPackageNum": 50, "totalPackageNum": 1, "deliveryNum": 1, "packageNum": 1}},
  "subOrderInfo": [{GIFT_ELEMENT}]
}}"##
    )
}

#[test]
fn a_full_order_reads_every_block() {
    let json = full_order();
    let order = Order::from_raw(&raw(&json)).expect("full order");
    assert_eq!(order.oid, 2_607_602_240_240_301);
    assert_eq!((order.status, order.update_time), (40, 1_687_251_104_545));
    assert_eq!(order.pay_time, Some(1_687_250_030_000));
    assert_eq!(order.send_time, Some(1_687_251_100_000));
    assert_eq!(
        (order.recv_time, order.refund_time),
        (None, None),
        "0 = not reached"
    );
    assert_eq!(order.amount_paid(), 11_900);
    assert_eq!(order.buyer_nick.as_deref(), Some("小明"));
    assert_eq!(order.seller_open_id.as_deref(), Some("f1a7c0b5e9d24c31"));
    assert_eq!(order.activity_types, vec![18, 19]);
    assert_eq!(
        (order.sku_id, order.rel_sku_id),
        (Some(2_054_370_118), None)
    );
    assert_eq!(order.rel_item_id, Some(77_001));
    assert_eq!(
        (order.num, order.price, order.item_discount_fee),
        (1, 12_900, 3_000)
    );
    assert_eq!(order.category_id, Some(1234));
    assert_eq!(order.category_name.as_deref(), Some("T恤"));
    assert_eq!(order.masked_mobile.as_deref(), Some("138****5678"));
    assert_eq!(order.encrypted_consignee.as_deref(), Some("#pOz8#Zm9v#1##"));
    assert_eq!(order.town.as_deref(), Some("粤海街道"));
    assert_eq!(order.express_no.as_deref(), Some("YT7412589630"));
    assert_eq!(
        (order.express_code, order.logistics_id),
        (Some(5), Some(998_877))
    );
    // The list is newest first: the first entry is the latest refund.
    assert_eq!(order.latest_refund_id, Some(2_300_012_345_678));
    assert_eq!(order.latest_refund_status, Some(10));
    assert_eq!((order.delivery_num, order.package_num), (Some(1), Some(1)));
    assert_eq!(order.seller_role_type, Some(2));
    assert_eq!(order.seller_role_name.as_deref(), Some("达人小王"));
    assert_eq!(order.distributor_id, Some(55_012));
    assert_eq!(order.raw, json);
}

#[test]
fn a_gift_is_its_own_order_and_inherits_what_it_lacks() {
    let order = Order::from_raw(&raw(&full_order())).expect("full order");
    let [gift] = order.gifts.as_slice() else {
        panic!("one gift expected, got {:?}", order.gifts);
    };
    assert_eq!(gift.oid, 2_607_602_240_240_302);
    assert_eq!(gift.parent_oid, Some(order.oid));
    assert_eq!(gift.sub_order_type, Some(2));
    assert_eq!((gift.status, gift.update_time), (30, 1_687_251_000_000));
    assert_eq!(gift.create_time, order.create_time);
    assert_eq!(gift.pay_time, order.pay_time);
    assert_eq!(gift.buyer_open_id, order.buyer_open_id);
    assert_eq!(gift.seller_nick, order.seller_nick);
    assert_eq!(gift.send_time, None);
    assert_eq!(
        (gift.total_fee, gift.discount_fee, gift.amount_paid()),
        (0, 0, 0)
    );
    assert_eq!(gift.item_title.as_deref(), Some("赠品：帆布袋"));
    assert_eq!(gift.delivery_num, Some(0));
    assert_eq!(
        (gift.remark.as_deref(), gift.latest_refund_id),
        (None, None)
    );
    assert!(gift.gifts.is_empty());
    assert_eq!(
        gift.raw, GIFT_ELEMENT,
        "the gift keeps its own element verbatim"
    );
}

#[test]
fn a_gift_without_times_takes_its_parents_and_keeps_its_own() {
    let json = r#"{"orderBaseInfo": {"oid": 1, "createTime": 100, "updateTime": 300, "payTime": 150},
      "subOrderInfo": [{"subOrderBaseInfo": {"oid": 2, "status": 30}},
        {"subOrderBaseInfo": {"oid": 3, "createTime": 110, "updateTime": 290, "payTime": 160,
          "buyerOpenId": "own", "totalFee": 500}, "subOrderType": "2"}]}"#;
    let order = Order::from_raw(&raw(json)).expect("gifts");
    let times: Vec<_> = order
        .gifts
        .iter()
        .map(|g| (g.oid, g.create_time, g.update_time, g.pay_time))
        .collect();
    assert_eq!(
        times,
        vec![(2, 100, 300, Some(150)), (3, 110, 290, Some(160))]
    );
    assert_eq!(order.gifts[0].sub_order_type, None);
    assert_eq!(order.gifts[1].sub_order_type, Some(2));
    assert_eq!(order.gifts[1].buyer_open_id.as_deref(), Some("own"));
    assert_eq!(
        order.gifts[1].total_fee, 500,
        "a gift's fee counts when present"
    );
}

#[test]
fn the_detail_spellings_are_accepted() {
    let detail = r#"{"orderBaseInfo": {"oid": 2607602240240301, "status": 70, "updateTime": 1,
        "orderlSellerRoleInfo": {"roleType": 1, "roleId": 42, "roleName": "店主"},
        "shopNewBuyer": true, "carrierType": 2, "orderTaxInfo": {"taxAmount": 0}},
      "orderDetailRefundList": [{"refundId": "2300012345678", "refundStatus": 60}],
      "orderPoiInfo": {"poiId": 1}, "addressUpdateAuditInfo": {}}"#;
    let order = Order::from_raw(&raw(detail)).expect("detail");
    assert_eq!(order.latest_refund_id, Some(2_300_012_345_678));
    assert_eq!(order.latest_refund_status, Some(60));
    assert_eq!(order.seller_role_id, Some(42));
    assert_eq!(order.seller_role_name.as_deref(), Some("店主"));

    let beside =
        r#"{"orderBaseInfo": {"oid": 3}, "orderSellerRoleInfo": {"roleType": 3, "roleId": "8"}}"#;
    let order = Order::from_raw(&raw(beside)).expect("role beside the base");
    assert_eq!(
        (order.seller_role_type, order.seller_role_id),
        (Some(3), Some(8))
    );
}

#[test]
fn numeric_strings_nulls_and_missing_fields_are_tolerated() {
    let json = r#"{"orderBaseInfo": {"oid": "2607602240240301", "status": "30",
        "updateTime": "1687251104545", "payTime": "0", "totalFee": "12900", "buyerNick": null,
        "remark": "", "riskCode": null}, "orderItemInfo": null, "subOrderInfo": null}"#;
    let order = Order::from_raw(&raw(json)).expect("strings");
    assert_eq!(order.oid, 2_607_602_240_240_301);
    assert_eq!((order.status, order.update_time), (30, 1_687_251_104_545));
    assert_eq!((order.pay_time, order.total_fee), (None, 12_900));
    assert_eq!(
        (order.buyer_nick, order.remark, order.risk_code),
        (None, None, None)
    );
    assert_eq!((order.create_time, order.num, order.item_id), (0, 0, None));
    assert!(order.gifts.is_empty() && order.activity_types.is_empty());

    let bare = Order::from_raw(&raw(r#"{"orderBaseInfo":{"oid":7},"unknown":[1]}"#)).expect("bare");
    let expected = Order {
        oid: 7,
        packages: "[]".into(),
        raw: r#"{"orderBaseInfo":{"oid":7},"unknown":[1]}"#.into(),
        ..Order::default()
    };
    assert_eq!(bare, expected);
}

#[test]
fn wrong_types_degrade_on_descriptive_fields_only() {
    let json = r#"{"orderBaseInfo": {"oid": 5, "totalFee": {"x": 1}, "buyerNick": [1],
        "payTime": "soon", "allActivityType": "18"}, "orderItemInfo": "broken",
        "orderLogisticsInfo": {"expressNo": "x"}}"#;
    let order = Order::from_raw(&raw(json)).expect("descriptive fields degrade");
    assert_eq!(
        (order.total_fee, order.buyer_nick, order.pay_time),
        (0, None, None)
    );
    assert!(order.activity_types.is_empty());
    assert_eq!((order.item_id, order.express_no), (None, None));
}

#[test]
fn a_bad_key_field_names_the_record() {
    let cases = [
        (
            r#"{"orderBaseInfo": {"oid": 2607602240240301, "updateTime": "abc"}}"#,
            r#"order 2607602240240301: updateTime is not a number: "abc""#,
        ),
        (
            r#"{"orderBaseInfo": {"oid": 9, "status": [1]}}"#,
            "order 9: status is not a number: [1]",
        ),
        (
            r#"{"orderBaseInfo": {"oid": 9, "createTime": 1.5}}"#,
            "order 9: createTime is not a number: 1.5",
        ),
        (
            r#"{"orderBaseInfo": {"oid": {"x":1}}}"#,
            r#"order: oid is not a number: {"x":1}"#,
        ),
        (
            r#"{"orderBaseInfo": {"status": 30}}"#,
            "order: oid is missing",
        ),
        (
            r#"{"orderBaseInfo": "x"}"#,
            r#"order: orderBaseInfo is not an object: "x""#,
        ),
        ("[1]", "order: is not a JSON object but [1]"),
        (
            r#"{"orderBaseInfo": {"oid": 9}, "subOrderInfo": {"oid": 1}}"#,
            "order 9: subOrderInfo is not an array",
        ),
        (
            r#"{"orderBaseInfo": {"oid": 9}, "subOrderInfo": [{"subOrderBaseInfo": {"oid": 10, "updateTime": "x"}}]}"#,
            r#"gift order 10: updateTime is not a number: "x" (in order 9)"#,
        ),
        (
            r#"{"orderBaseInfo": {"oid": 9}, "subOrderInfo": [{"subOrderBaseInfo": {"oid": 10}}, {}]}"#,
            "gift order (no id, element 1): oid is missing (in order 9)",
        ),
    ];
    for (json, want) in cases {
        let err = Order::from_raw(&raw(json)).expect_err(json);
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn a_page_keeps_each_element_verbatim() {
    let first = "{ \"orderBaseInfo\" : { \"oid\" : 1 ,\n \"updateTime\": 10 } }";
    let second = r#"{"orderBaseInfo":{"oid":2,"updateTime":20},"x":"\u4e2d"}"#;
    let data = format!(
        r#"{{"pageSize": 50, "beginTime": 1000, "endTime": "2000", "cursor": "1687251104545_2307500074108220", "orderList": [ {first} ,{second}]}}"#
    );
    let page = OrderPage::from_data(&raw(&data)).expect("page");
    assert_eq!(page.cursor, "1687251104545_2307500074108220");
    assert!(!page.is_last());
    assert_eq!(
        (page.page_size, page.begin_time, page.end_time),
        (Some(50), Some(1000), Some(2000))
    );
    let raws: Vec<&str> = page.orders.iter().map(|o| o.raw.as_str()).collect();
    assert_eq!(raws, vec![first, second]);
    assert_eq!(page.orders[1].update_time, 20);
}

#[test]
fn empty_pages_and_null_data() {
    let last = OrderPage::from_data(&raw(r#"{"cursor":"nomore","orderList":[]}"#)).expect("empty");
    assert!(last.is_last() && last.orders.is_empty());
    // The failure skeleton of FAQ-K0005: a valid, empty page whose cursor is not an end marker.
    let skeleton = OrderPage::from_data(&raw(r#"{"cursor":"","orderList":[],"pageSize":0}"#))
        .expect("skeleton");
    assert_eq!(
        (skeleton.cursor.as_str(), skeleton.page_size),
        ("", Some(0))
    );
    assert!(!skeleton.is_last());
    let null = OrderPage::from_data(&raw("null")).expect("null data");
    assert_eq!(null, OrderPage::default());
    assert!(!null.is_last());
    let no_list = OrderPage::from_data(&raw(r#"{"cursor":"nomore"}"#)).expect("no list");
    assert!(no_list.orders.is_empty() && no_list.is_last());
}

#[test]
fn broken_pages_are_errors_that_say_where() {
    let cases = [
        (
            r#"{"cursor":"nomore","orderList":{"oid":1}}"#,
            "order page: orderList is not an array",
        ),
        (
            r#"{"cursor":{"next":1},"orderList":[]}"#,
            "order page: cursor is not a string",
        ),
        ("[]", "order page: data is neither null nor a JSON object"),
        (
            "\"nomore\"",
            "order page: data is neither null nor a JSON object",
        ),
    ];
    for (data, want) in cases {
        let err = OrderPage::from_data(&raw(data)).expect_err(data);
        assert_eq!(err.to_string(), want);
    }
    // A bad element fails alone: set aside with its JSON, the rest of the page is read.
    let rejected = [
        (
            r#"{"orderList":[{"orderBaseInfo":{"oid":1}}, {"orderBaseInfo":{}}]}"#,
            "order (no id, element 1): oid is missing",
            None,
        ),
        (
            r#"{"orderList":[{"orderBaseInfo":{"oid":1}}, {"orderBaseInfo":{"oid":2,"updateTime":"abc"}}]}"#,
            r#"order 2: updateTime is not a number: "abc""#,
            Some("2"),
        ),
    ];
    for (data, want, id) in rejected {
        let page = OrderPage::from_data(&raw(data)).expect(data);
        assert_eq!(page.orders.len(), 1, "{data}");
        assert_eq!(page.rejected.len(), 1, "{data}");
        let r = &page.rejected[0];
        assert_eq!(r.error, want);
        assert_eq!(r.has_id, id.is_some());
        match id {
            Some(id) => assert_eq!(r.key, id),
            None => assert!(r.key.starts_with("raw:") && r.key.len() == 20, "{}", r.key),
        }
        let element: serde_json::Value = serde_json::from_str(data).expect("JSON");
        let raw_json: serde_json::Value = serde_json::from_str(&r.raw).expect("raw");
        assert_eq!(raw_json, element["orderList"][1]);
    }
    let page = OrderPage::from_data(&raw(r#"{"orderList":[{"orderBaseInfo":{"oid":1}}, 5]}"#))
        .expect("a page");
    assert_eq!(page.rejected.len(), 1, "a number is no order");
    assert_eq!(page.rejected[0].raw, "5");
    assert!(
        page.rejected[0].error.contains("element 1"),
        "{}",
        page.rejected[0].error
    );
}

#[test]
fn every_package_is_kept_and_a_text_carrier_code_reads_as_a_number() {
    let json = r#"{"orderBaseInfo":{"oid":9},"orderLogisticsInfo":[
        {"expressNo":"YT1","expressCode":"5","logisticsId":1},
        {"expressNo":"YT2","expressCode":5,"logisticsId":2}],
        "subOrderInfo":[{"subOrderBaseInfo":{"oid":10},
        "subOrderLogisticsInfo":[{"expressNo":"G1","expressCode":7,"logisticsId":3}]}]}"#;
    let order = Order::from_raw(&raw(json)).expect("order");
    let packages: serde_json::Value = serde_json::from_str(&order.packages).expect("JSON");
    assert_eq!(packages.as_array().map(Vec::len), Some(2));
    assert_eq!(packages[1]["expressNo"], "YT2");
    assert_eq!(
        (order.express_no.as_deref(), order.express_code),
        (Some("YT1"), Some(5))
    );
    let gift: serde_json::Value = serde_json::from_str(&order.gifts[0].packages).expect("JSON");
    assert_eq!(gift[0]["expressNo"], "G1");
    // Not an array: the order stays, with no packages.
    let odd = Order::from_raw(&raw(
        r#"{"orderBaseInfo":{"oid":9},"orderLogisticsInfo":{"x":1}}"#,
    ))
    .expect("order");
    assert_eq!(odd.packages, "[]");
}
