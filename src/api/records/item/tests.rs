use serde_json::value::RawValue;

use super::*;

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("test JSON is valid")
}

/// A SKU element as it sits inside [`ITEM`], inner whitespace included.
const SKU_BLACK: &str = r#"{"kwaiSkuId": 2054370118, "relSkuId": 0, "skuStock": 120,  "reserveStock": 3,
      "skuSalePrice": 12900, "skuNick": "TS-BLK-M", "specification": "颜色:黑色;尺码:M",
      "imageUrl": "https://p2.a.yximgs.com/b.jpg", "isValid": 1, "gtinCode": "", "goodsCode": [],
      "skuProp": [{"propName": "颜色", "propValueName": "黑色"}], "createTime": 1680000000000,
      "updateTime": 1687000000000, "kwaiItemId": 1837462910, "volume": 7}"#;

/// An item with every field of reference §10 and two SKUs, one of which omits its item id.
const ITEM: &str = r#"{"kwaiItemId": 1837462910, "relItemId": 77001, "userId": 1940293,
  "title": "纯棉短袖T恤", "details": "<p>100% cotton</p>", "mainImageUrl": "https://p2.a.yximgs.com/t.jpg",
  "imageUrls": ["https://p2.a.yximgs.com/t.jpg"], "linkUrl": "https://app.kwaixiaodian.com/item/1837462910",
  "categoryId": 1234, "categoryName": "T恤", "price": 12900, "volume": 352, "status": 1,
  "itemStatus": 1, "shelfStatus": 1, "shelfStatusUpdateReason": "", "auditStatus": 2, "auditReason": "",
  "fromType": 1, "appkey": "ks123", "expressTemplateId": 9, "itemType": 1, "multipleStock": false,
  "serviceRule": {"refundRule": "7天无理由"}, "createTime": 1680000000000, "updateTime": 1687000000000,
  "skuList": [{"kwaiSkuId": 2054370118, "relSkuId": 0, "skuStock": 120,  "reserveStock": 3,
      "skuSalePrice": 12900, "skuNick": "TS-BLK-M", "specification": "颜色:黑色;尺码:M",
      "imageUrl": "https://p2.a.yximgs.com/b.jpg", "isValid": 1, "gtinCode": "", "goodsCode": [],
      "skuProp": [{"propName": "颜色", "propValueName": "黑色"}], "createTime": 1680000000000,
      "updateTime": 1687000000000, "kwaiItemId": 1837462910, "volume": 7},
    {"kwaiSkuId": "2054370119", "skuStock": "0", "skuSalePrice": "13900", "isValid": 0, "updateTime": 0}]}"#;

#[test]
fn an_item_reads_with_its_skus() {
    let item = Item::from_raw(&raw(ITEM)).expect("item");
    assert_eq!(item.kwai_item_id, 1_837_462_910);
    assert_eq!(
        (item.rel_item_id, item.user_id),
        (Some(77_001), Some(1_940_293))
    );
    assert_eq!(item.title.as_deref(), Some("纯棉短袖T恤"));
    assert_eq!(
        (item.category_id, item.category_name.as_deref()),
        (Some(1234), Some("T恤"))
    );
    assert_eq!((item.price, item.volume), (12_900, Some(352)));
    assert_eq!(
        (item.item_status, item.shelf_status, item.audit_status),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!((item.item_type, item.from_type), (Some(1), Some(1)));
    assert_eq!(
        item.link_url.as_deref(),
        Some("https://app.kwaixiaodian.com/item/1837462910")
    );
    assert_eq!(
        (item.create_time, item.update_time),
        (1_680_000_000_000, 1_687_000_000_000)
    );
    assert_eq!(item.raw, ITEM);

    let [black, white] = item.skus.as_slice() else {
        panic!("two SKUs expected, got {:?}", item.skus);
    };
    assert_eq!(
        (black.kwai_sku_id, black.kwai_item_id),
        (2_054_370_118, 1_837_462_910)
    );
    assert_eq!(
        (black.sku_stock, black.reserve_stock, black.sku_sale_price),
        (120, Some(3), 12_900)
    );
    assert_eq!(black.specification.as_deref(), Some("颜色:黑色;尺码:M"));
    assert_eq!((black.rel_sku_id, black.is_valid), (None, Some(1)));
    assert_eq!(black.update_time, Some(1_687_000_000_000));
    assert_eq!(black.raw, SKU_BLACK, "a SKU keeps its own element verbatim");

    assert_eq!(white.kwai_sku_id, 2_054_370_119);
    assert_eq!(
        white.kwai_item_id, item.kwai_item_id,
        "inherited from the item"
    );
    assert_eq!((white.sku_stock, white.sku_sale_price), (0, 13_900));
    assert_eq!(
        (white.update_time, white.create_time, white.reserve_stock),
        (None, None, None)
    );
}

#[test]
fn a_bare_item_has_defaults() {
    let json = r#"{"kwaiItemId": "5", "skuList": null, "title": "", "price": "free"}"#;
    let item = Item::from_raw(&raw(json)).expect("bare");
    let expected = Item {
        kwai_item_id: 5,
        raw: json.into(),
        ..Item::default()
    };
    assert_eq!(item, expected);
}

#[test]
fn a_bad_key_field_names_the_item_or_sku() {
    let cases = [
        (
            r#"{"kwaiItemId": 5, "updateTime": "abc"}"#,
            r#"item 5: updateTime is not a number: "abc""#,
        ),
        (
            r#"{"kwaiItemId": 5, "itemStatus": [1]}"#,
            "item 5: itemStatus is not a number: [1]",
        ),
        (
            r#"{"kwaiItemId": [5]}"#,
            "item: kwaiItemId is not a number: [5]",
        ),
        (r#"{"title": "无编号"}"#, "item: kwaiItemId is missing"),
        (
            r#"{"kwaiItemId": 5, "skuList": {"kwaiSkuId": 1}}"#,
            "item 5: skuList is not an array",
        ),
        (
            r#"{"kwaiItemId": 5, "skuList": [{"kwaiSkuId": 8, "updateTime": {}}]}"#,
            "sku 8: updateTime is not a number: {} (in item 5)",
        ),
        (
            r#"{"kwaiItemId": 5, "skuList": [{"kwaiSkuId": 8}, {"skuStock": 1}]}"#,
            "sku (no id, element 1): kwaiSkuId is missing (in item 5)",
        ),
    ];
    for (json, want) in cases {
        let err = Item::from_raw(&raw(json)).expect_err(json);
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn a_page_of_items() {
    let data = format!(
        r#"{{"totalItemCount": 101, "currentPageItemCount": 2, "currentPageNumber": "1",
          "totalPage": "2", "items": [{ITEM}, {{"kwaiItemId": 6}}]}}"#
    );
    let page = ItemPage::from_data(&raw(&data)).expect("page");
    assert_eq!(
        (page.total_item_count, page.current_page_number),
        (Some(101), Some(1))
    );
    assert_eq!(page.total_page, 2);
    let ids: Vec<i64> = page.items.iter().map(|i| i.kwai_item_id).collect();
    assert_eq!(ids, vec![1_837_462_910, 6]);
    assert_eq!(page.items[0].raw, ITEM);
    assert_eq!(page.items[0].skus.len(), 2);
}

#[test]
fn a_single_item_lookup_is_a_page_of_one() {
    let data = r#"{"kwaiItemId": 7, "relItemId": 70, "skuList": []}"#;
    let page = ItemPage::from_data(&raw(data)).expect("single item");
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        (page.items[0].kwai_item_id, page.items[0].rel_item_id),
        (7, Some(70))
    );
}

#[test]
fn empty_null_and_broken_pages() {
    let empty = ItemPage::from_data(&raw(r#"{"totalPage":0,"items":[]}"#)).expect("empty");
    assert!(empty.items.is_empty());
    assert_eq!(
        ItemPage::from_data(&raw("null")).expect("null"),
        ItemPage::default()
    );
    let cases = [
        (
            r#"{"totalPage":1,"items":{"kwaiItemId":1}}"#,
            "item page: items is not an array",
        ),
        (
            r#"{"totalPage":"many","items":[]}"#,
            r#"item page: totalPage is not a number: "many""#,
        ),
        ("7", "item page: data is neither null nor a JSON object"),
    ];
    for (data, want) in cases {
        let err = ItemPage::from_data(&raw(data)).expect_err(data);
        assert_eq!(err.to_string(), want);
    }
    // A bad item fails alone.
    let page = ItemPage::from_data(&raw(r#"{"items":[{"kwaiItemId":1},{"kwaiItemId":0}]}"#))
        .expect("a page");
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.rejected[0].error,
        "item (no id, element 1): kwaiItemId is missing"
    );
}
