use serde_json::value::RawValue;

use super::*;

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("test JSON is valid")
}

/// A list element with every field of reference §9.2, in the middle of a return.
const LISTED: &str = r#"{"refundId": 2300012345678, "oid": 2607602240240301, "itemId": 1837462910,
  "skuId": 2054370118, "relItemId": 0, "relSkuId": 0, "skuNick": "TS-BLK-M", "logisticsId": 0,
  "sellerId": 1940293, "buyerId": 0, "handlingWay": 1, "status": 30, "negotiateStatus": 2,
  "refundType": 1, "refundFee": 11900, "refundReason": 12, "refundReasonDesc": "尺码不合适",
  "refundDesc": "想换大一号", "receiptStatus": 2, "createTime": 1687300000000,
  "updateTime": 1687310000000, "submitTime": 1687300000000, "negotiateUpdateTime": 1687305000000,
  "endTime": 0, "expireTime": 1687559200000, "urgeTimes": 0}"#;

#[test]
fn a_listed_refund_reads_every_field() {
    let refund = Refund::from_raw(&raw(LISTED)).expect("refund");
    assert_eq!(refund.refund_id, 2_300_012_345_678);
    assert_eq!(refund.oid, 2_607_602_240_240_301);
    assert_eq!(
        (refund.item_id, refund.sku_id),
        (Some(1_837_462_910), Some(2_054_370_118))
    );
    assert_eq!(
        (refund.rel_item_id, refund.rel_sku_id),
        (None, None),
        "0 is unset"
    );
    assert_eq!(refund.sku_nick.as_deref(), Some("TS-BLK-M"));
    assert_eq!((refund.seller_id, refund.buyer_id), (Some(1_940_293), None));
    assert_eq!((refund.handling_way, refund.status), (Some(1), 30));
    assert_eq!(
        (refund.negotiate_status, refund.refund_type),
        (Some(2), Some(1))
    );
    assert_eq!(
        (refund.refund_fee, refund.refund_reason),
        (11_900, Some(12))
    );
    assert_eq!(refund.refund_reason_desc.as_deref(), Some("尺码不合适"));
    assert_eq!(refund.refund_desc.as_deref(), Some("想换大一号"));
    assert_eq!(refund.receipt_status, Some(2));
    assert_eq!(
        (refund.create_time, refund.update_time),
        (1_687_300_000_000, 1_687_310_000_000)
    );
    assert_eq!(refund.submit_time, Some(1_687_300_000_000));
    assert_eq!(refund.negotiate_update_time, Some(1_687_305_000_000));
    assert_eq!(
        (refund.end_time, refund.expire_time),
        (None, Some(1_687_559_200_000))
    );
    assert_eq!(
        (refund.logistics_id, refund.express_no.as_deref()),
        (None, None)
    );
    assert_eq!(
        (refund.buyer_open_id.as_deref(), refund.special_refund_type),
        (None, None)
    );
    assert_eq!(refund.raw, LISTED);
}

#[test]
fn the_detail_adds_its_fields_and_seller_id_may_be_snake_case() {
    let detail = r#"{"refundId": "2300012345678", "oid": "2607602240240301", "seller_id": "1940293",
      "status": "60", "handlingWay": 10, "refundFee": "11900", "buyerOpenId": "f19b4a6d2a8c3e0b",
      "specialRefundType": 0, "logisticsId": 4455, "logisticsInfo": {"expressNo": "SF1234567890", "expressCode": 1},
      "endTime": "1687400000000", "pictures": ["https://p1.a.yximgs.com/r.jpg"], "productNum": 0,
      "returnFreightInfo": {"returnFreightAmount": 800, "returnFreightStatus": 40}, "updateTime": 1687400000000}"#;
    let refund = Refund::from_raw(&raw(detail)).expect("detail");
    assert_eq!(
        (refund.refund_id, refund.oid),
        (2_300_012_345_678, 2_607_602_240_240_301)
    );
    assert_eq!((refund.seller_id, refund.status), (Some(1_940_293), 60));
    assert_eq!((refund.refund_fee, refund.handling_way), (11_900, Some(10)));
    assert_eq!(refund.buyer_open_id.as_deref(), Some("f19b4a6d2a8c3e0b"));
    assert_eq!(refund.special_refund_type, Some(0));
    assert_eq!(refund.logistics_id, Some(4455));
    assert_eq!(refund.express_no.as_deref(), Some("SF1234567890"));
    assert_eq!(refund.end_time, Some(1_687_400_000_000));
    assert_eq!(refund.create_time, 0, "missing key times default to 0");
}

#[test]
fn missing_and_mistyped_descriptive_fields_degrade() {
    let bare = Refund::from_raw(&raw(r#"{"refundId": 9, "sellerId": null}"#)).expect("bare");
    let expected = Refund {
        refund_id: 9,
        raw: r#"{"refundId": 9, "sellerId": null}"#.into(),
        ..Refund::default()
    };
    assert_eq!(bare, expected);
    let odd = r#"{"refundId": 9, "refundFee": "12.5", "refundDesc": {"t": 1}, "submitTime": [0],
      "sellerId": "n/a", "seller_id": 77, "logisticsInfo": "none"}"#;
    let refund = Refund::from_raw(&raw(odd)).expect("odd");
    assert_eq!((refund.refund_fee, refund.refund_desc), (0, None));
    assert_eq!((refund.submit_time, refund.express_no), (None, None));
    assert_eq!(
        refund.seller_id,
        Some(77),
        "an unreadable spelling falls back to the other"
    );
}

#[test]
fn a_bad_key_field_names_the_refund() {
    let cases = [
        (
            r#"{"refundId": 5, "updateTime": "abc"}"#,
            r#"refund 5: updateTime is not a number: "abc""#,
        ),
        (
            r#"{"refundId": 5, "status": [60]}"#,
            "refund 5: status is not a number: [60]",
        ),
        (
            r#"{"refundId": 5, "oid": {"x": 1}}"#,
            r#"refund 5: oid is not a number: {"x":1}"#,
        ),
        (
            r#"{"refundId": "R-5"}"#,
            r#"refund: refundId is not a number: "R-5""#,
        ),
        (r#"{"oid": 1, "status": 60}"#, "refund: refundId is missing"),
        ("null", "refund: is not a JSON object but null"),
    ];
    for (json, want) in cases {
        let err = Refund::from_raw(&raw(json)).expect_err(json);
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn pages_read_under_either_list_name() {
    let official = format!(
        r#"{{"currentPage": 1, "pageSize": 100, "totalPage": 3, "totalSize": "201",
          "beginTime": 1687300000000, "endTime": 1687386400000, "pcursor": "1687310000000_2300012345678",
          "refundOrderInfoList": [{LISTED}, {{"refundId": 2, "updateTime": 1687310000001}}]}}"#
    );
    let page = RefundPage::from_data(&raw(&official)).expect("official name");
    assert_eq!(page.pcursor, "1687310000000_2300012345678");
    assert!(!page.is_last());
    assert_eq!((page.current_page, page.page_size), (Some(1), Some(100)));
    assert_eq!((page.total_page, page.total_size), (Some(3), Some(201)));
    let ids: Vec<i64> = page.refunds.iter().map(|r| r.refund_id).collect();
    assert_eq!(ids, vec![2_300_012_345_678, 2]);
    assert_eq!(page.refunds[0].raw, LISTED, "elements kept byte for byte");

    let go_sdk = r#"{"pcursor": "nomore", "dataList": [ {"refundId": 3,  "status": 70} ]}"#;
    let page = RefundPage::from_data(&raw(go_sdk)).expect("dataList");
    assert!(page.is_last());
    assert_eq!(page.refunds.len(), 1);
    assert_eq!(page.refunds[0].raw, r#"{"refundId": 3,  "status": 70}"#);

    // An empty official list does not hide elements under the other name.
    let both = r#"{"pcursor": "nomore", "refundOrderInfoList": [], "dataList": [{"refundId": 4}]}"#;
    let page = RefundPage::from_data(&raw(both)).expect("both names");
    assert_eq!(page.refunds.len(), 1);
    assert_eq!(page.refunds[0].refund_id, 4);
    let official_first =
        r#"{"refundOrderInfoList": [{"refundId": 5}], "dataList": [{"refundId": 6}]}"#;
    let page = RefundPage::from_data(&raw(official_first)).expect("both filled");
    let ids: Vec<i64> = page.refunds.iter().map(|r| r.refund_id).collect();
    assert_eq!(
        ids,
        vec![5],
        "the official spelling wins when both hold elements"
    );
}

#[test]
fn empty_null_and_broken_pages() {
    let empty = RefundPage::from_data(&raw(r#"{"pcursor":"nomore","refundOrderInfoList":[]}"#))
        .expect("empty");
    assert!(empty.is_last() && empty.refunds.is_empty());
    let null = RefundPage::from_data(&raw("null")).expect("null");
    assert_eq!(null, RefundPage::default());
    assert!(!null.is_last());
    let cases = [
        (
            r#"{"pcursor":"nomore","dataList":{"refundId":1}}"#,
            "refund page: dataList is not an array",
        ),
        (
            r#"{"pcursor":["nomore"]}"#,
            "refund page: pcursor is not a string",
        ),
    ];
    for (data, want) in cases {
        let err = RefundPage::from_data(&raw(data)).expect_err(data);
        assert_eq!(err.to_string(), want);
    }
    // A bad refund fails alone.
    for (data, want) in [
        (
            r#"{"refundOrderInfoList":[{"refundId":1},{"refundId":2,"createTime":"yesterday"}]}"#,
            r#"refund 2: createTime is not a number: "yesterday""#,
        ),
        (
            r#"{"refundOrderInfoList":[{"refundId":1},{}]}"#,
            "refund (no id, element 1): refundId is missing",
        ),
    ] {
        let page = RefundPage::from_data(&raw(data)).expect(data);
        assert_eq!(page.refunds.len(), 1, "{data}");
        assert_eq!(page.rejected[0].error, want);
    }
}
