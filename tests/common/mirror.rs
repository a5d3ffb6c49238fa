//! Comparing the mirror with the simulator's truth, field by field. The expected typed columns
//! are read from the simulator's documents by plain JSON paths (the tables below, written from
//! the reference's field lists), never by the product's record parsers: a parser that drops or
//! misreads a field then differs from the truth instead of agreeing with itself. The raw JSON is
//! compared as parsed values.

use std::collections::BTreeMap;

use kwaishop_sim::SimHandle;
use kwaishop_sync::store::{Source, Store};
use serde_json::{Map, Value};

use super::{shop_id, shop_truth};

/// How the reference says a typed column reads its field.
#[derive(Debug, Clone, Copy)]
enum Read {
    /// An amount or count: an integer, 0 when absent.
    Int,
    /// An enum or count that may be absent.
    Opt,
    /// An id or time where 0 means "none" (not set, step not reached).
    NonZero,
    /// Text; an empty string means none.
    Text,
    /// A list of integers.
    Ints,
    /// A list kept as sent (a JSON array column): `[]` when absent.
    List,
}

/// A typed column and the JSON paths that may hold it (alternative spellings, first present
/// wins). A path segment that is a number indexes an array.
type Column = (&'static str, &'static [&'static [&'static str]], Read);

use Read::*;

/// Order base fields (reference §8.3), in `orderBaseInfo` or a gift's `subOrderBaseInfo`.
const ORDER_BASE: &[Column] = &[
    ("status", &[&["status"]], Int),
    ("create_time", &[&["createTime"]], Int),
    ("update_time", &[&["updateTime"]], Int),
    ("pay_time", &[&["payTime"]], NonZero),
    ("send_time", &[&["sendTime"]], NonZero),
    ("recv_time", &[&["recvTime"]], NonZero),
    ("refund_time", &[&["refundTime"]], NonZero),
    ("total_fee", &[&["totalFee"]], Int),
    ("discount_fee", &[&["discountFee"]], Int),
    ("express_fee", &[&["expressFee"]], Int),
    ("buyer_open_id", &[&["buyerOpenId"]], Text),
    ("buyer_nick", &[&["buyerNick"]], Text),
    ("seller_open_id", &[&["sellerOpenId"]], Text),
    ("seller_nick", &[&["sellerNick"]], Text),
    ("remark", &[&["remark"]], Text),
    ("pay_type", &[&["payType"]], Opt),
    ("pay_channel", &[&["payChannel"]], Text),
    ("cps_type", &[&["cpsType"]], Opt),
    ("pre_sale", &[&["preSale"]], Opt),
    ("co_type", &[&["coType"]], Opt),
    ("comment_status", &[&["commentStatus"]], Opt),
    ("risk_code", &[&["riskCode"]], Opt),
    ("activity_types", &[&["allActivityType"]], Ints),
];

/// The item line (§8.4), in `orderItemInfo` or a gift's `subOrderItemInfo`.
const ORDER_ITEM: &[Column] = &[
    ("item_id", &[&["itemId"]], NonZero),
    ("rel_item_id", &[&["relItemId"]], NonZero),
    ("sku_id", &[&["skuId"]], NonZero),
    ("rel_sku_id", &[&["relSkuId"]], NonZero),
    ("item_title", &[&["itemTitle"]], Text),
    ("sku_desc", &[&["skuDesc"]], Text),
    ("sku_nick", &[&["skuNick"]], Text),
    ("item_pic_url", &[&["itemPicUrl"]], Text),
    ("num", &[&["num"]], Int),
    ("original_price", &[&["originalPrice"]], Int),
    ("price", &[&["price"]], Int),
    ("item_discount_fee", &[&["discountFee"]], Int),
    (
        "category_id",
        &[&["itemExtra", "categoryInfo", "itemCid"]],
        NonZero,
    ),
    (
        "category_name",
        &[&["itemExtra", "categoryInfo", "categoryName"]],
        Text,
    ),
];

/// The first package (§8.2), of `orderLogisticsInfo` or a gift's `subOrderLogisticsInfo`.
const ORDER_PACKAGE: &[Column] = &[
    ("express_no", &[&["expressNo"]], Text),
    ("express_code", &[&["expressCode"]], Opt),
    ("logistics_id", &[&["logisticsId"]], NonZero),
];

/// Delivery counts (§8.2), of `orderDeliveryInfo` or a gift's `subOrderDeliveryInfo`.
const ORDER_DELIVERY: &[Column] = &[
    ("delivery_num", &[&["deliveryNum"]], Opt),
    ("package_num", &[&["packageNum"]], Opt),
];

/// What only a main order carries: address (§8.5), latest refund, seller role, distributor.
const ORDER_PARTIES: &[Column] = &[
    ("province", &[&["orderAddress", "province"]], Text),
    ("city", &[&["orderAddress", "city"]], Text),
    ("district", &[&["orderAddress", "district"]], Text),
    ("town", &[&["orderAddress", "town"]], Text),
    (
        "masked_consignee",
        &[&["orderAddress", "desensitiseConsignee"]],
        Text,
    ),
    (
        "masked_mobile",
        &[&["orderAddress", "desensitiseMobile"]],
        Text,
    ),
    (
        "masked_address",
        &[&["orderAddress", "desensitiseAddress"]],
        Text,
    ),
    (
        "encrypted_consignee",
        &[&["orderAddress", "encryptedConsignee"]],
        Text,
    ),
    (
        "encrypted_mobile",
        &[&["orderAddress", "encryptedMobile"]],
        Text,
    ),
    (
        "encrypted_address",
        &[&["orderAddress", "encryptedAddress"]],
        Text,
    ),
    (
        "latest_refund_id",
        &[
            &["orderRefundList", "0", "refundId"],
            &["orderDetailRefundList", "0", "refundId"],
        ],
        NonZero,
    ),
    (
        "latest_refund_status",
        &[
            &["orderRefundList", "0", "refundStatus"],
            &["orderDetailRefundList", "0", "refundStatus"],
        ],
        Opt,
    ),
    ("seller_role_type", ROLE_TYPE, Opt),
    ("seller_role_id", ROLE_ID, NonZero),
    ("seller_role_name", ROLE_NAME, Text),
    (
        "distributor_id",
        &[&["orderCpsInfo", "distributorId"]],
        NonZero,
    ),
    (
        "distributor_name",
        &[&["orderCpsInfo", "distributorName"]],
        Text,
    ),
];

const ROLE_TYPE: &[&[&str]] = &[
    &["orderBaseInfo", "orderSellerRoleInfo", "roleType"],
    &["orderBaseInfo", "orderlSellerRoleInfo", "roleType"],
    &["orderSellerRoleInfo", "roleType"],
    &["orderlSellerRoleInfo", "roleType"],
];
const ROLE_ID: &[&[&str]] = &[
    &["orderBaseInfo", "orderSellerRoleInfo", "roleId"],
    &["orderBaseInfo", "orderlSellerRoleInfo", "roleId"],
    &["orderSellerRoleInfo", "roleId"],
    &["orderlSellerRoleInfo", "roleId"],
];
const ROLE_NAME: &[&[&str]] = &[
    &["orderBaseInfo", "orderSellerRoleInfo", "roleName"],
    &["orderBaseInfo", "orderlSellerRoleInfo", "roleName"],
    &["orderSellerRoleInfo", "roleName"],
    &["orderlSellerRoleInfo", "roleName"],
];

/// A refund-list element (§9.2).
const REFUND: &[Column] = &[
    ("oid", &[&["oid"]], Int),
    ("item_id", &[&["itemId"]], NonZero),
    ("sku_id", &[&["skuId"]], NonZero),
    ("rel_item_id", &[&["relItemId"]], NonZero),
    ("rel_sku_id", &[&["relSkuId"]], NonZero),
    ("sku_nick", &[&["skuNick"]], Text),
    ("seller_id", &[&["sellerId"], &["seller_id"]], NonZero),
    ("buyer_id", &[&["buyerId"]], NonZero),
    ("buyer_open_id", &[&["buyerOpenId"]], Text),
    ("handling_way", &[&["handlingWay"]], Opt),
    ("status", &[&["status"]], Int),
    ("negotiate_status", &[&["negotiateStatus"]], Opt),
    ("refund_type", &[&["refundType"]], Opt),
    ("refund_fee", &[&["refundFee"]], Int),
    ("refund_reason", &[&["refundReason"]], Opt),
    ("refund_reason_desc", &[&["refundReasonDesc"]], Text),
    ("refund_desc", &[&["refundDesc"]], Text),
    ("receipt_status", &[&["receiptStatus"]], Opt),
    ("special_refund_type", &[&["specialRefundType"]], Opt),
    ("create_time", &[&["createTime"]], Int),
    ("update_time", &[&["updateTime"]], Int),
    ("submit_time", &[&["submitTime"]], NonZero),
    (
        "negotiate_update_time",
        &[&["negotiateUpdateTime"]],
        NonZero,
    ),
    ("end_time", &[&["endTime"]], NonZero),
    ("expire_time", &[&["expireTime"]], NonZero),
    ("logistics_id", &[&["logisticsId"]], NonZero),
    ("express_no", &[&["logisticsInfo", "expressNo"]], Text),
];

/// An item-list element (§10).
const ITEM: &[Column] = &[
    ("rel_item_id", &[&["relItemId"]], NonZero),
    ("user_id", &[&["userId"]], NonZero),
    ("title", &[&["title"]], Text),
    ("category_id", &[&["categoryId"]], NonZero),
    ("category_name", &[&["categoryName"]], Text),
    ("price", &[&["price"]], Int),
    ("volume", &[&["volume"]], Opt),
    ("item_status", &[&["itemStatus"]], Opt),
    ("shelf_status", &[&["shelfStatus"]], Opt),
    ("audit_status", &[&["auditStatus"]], Opt),
    ("item_type", &[&["itemType"]], Opt),
    ("from_type", &[&["fromType"]], Opt),
    ("main_image_url", &[&["mainImageUrl"]], Text),
    ("link_url", &[&["linkUrl"]], Text),
    ("create_time", &[&["createTime"]], Int),
    ("update_time", &[&["updateTime"]], Int),
];

/// A `skuList` element (§10).
const SKU: &[Column] = &[
    ("rel_sku_id", &[&["relSkuId"]], NonZero),
    ("sku_nick", &[&["skuNick"]], Text),
    ("specification", &[&["specification"]], Text),
    ("image_url", &[&["imageUrl"]], Text),
    ("sku_stock", &[&["skuStock"]], Int),
    ("reserve_stock", &[&["reserveStock"]], Opt),
    ("sku_sale_price", &[&["skuSalePrice"]], Int),
    ("is_valid", &[&["isValid"]], Opt),
    ("create_time", &[&["createTime"]], NonZero),
    ("update_time", &[&["updateTime"]], NonZero),
];

/// The value at `path`, if present and not `null`.
fn at<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut v = doc;
    for seg in path {
        v = match (v, seg.parse::<usize>()) {
            (Value::Array(a), Ok(i)) => a.get(i)?,
            (Value::Object(o), _) => o.get(*seg)?,
            _ => return None,
        };
    }
    (!v.is_null()).then_some(v)
}

/// An integer as the reference allows it: a JSON integer or a numeric string.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn expected_value(doc: &Value, paths: &[&[&str]], read: Read) -> Value {
    let found = paths.iter().find_map(|p| at(doc, p));
    match read {
        Int => Value::from(found.and_then(integer).unwrap_or(0)),
        Opt => found.and_then(integer).map_or(Value::Null, Value::from),
        NonZero => found
            .and_then(integer)
            .filter(|i| *i != 0)
            .map_or(Value::Null, Value::from),
        // Text is stored without U+0000 on both backends (Postgres refuses it in text).
        Text => match found {
            Some(Value::String(s)) if !s.is_empty() => Value::from(s.replace('\0', "")),
            Some(Value::Number(n)) => Value::from(n.to_string()),
            _ => Value::Null,
        },
        Ints => Value::from(
            found
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(integer).collect::<Vec<i64>>())
                .unwrap_or_default(),
        ),
        List => found
            .filter(|v| v.is_array())
            .cloned()
            .unwrap_or_else(|| Value::Array(vec![])),
    }
}

/// The expected columns of `doc` by `tables`, each read inside the block at its path.
fn expected_columns(doc: &Value, tables: &[(&[&str], &[Column])]) -> Map<String, Value> {
    let mut out = Map::new();
    for (root, table) in tables {
        let block = at(doc, root).unwrap_or(&Value::Null);
        for (name, paths, read) in *table {
            out.insert(name.to_string(), expected_value(block, paths, *read));
        }
    }
    out
}

/// A main order's expected columns.
fn expected_order(doc: &Value) -> Map<String, Value> {
    let mut want = expected_columns(
        doc,
        &[
            (&["orderBaseInfo"], ORDER_BASE),
            (&["orderItemInfo"], ORDER_ITEM),
            (&["orderLogisticsInfo", "0"], ORDER_PACKAGE),
            (&["orderDeliveryInfo"], ORDER_DELIVERY),
            (&[], ORDER_PARTIES),
            (&[], &[("packages", &[&["orderLogisticsInfo"]], List)]),
        ],
    );
    want.insert(
        "oid".into(),
        expected_value(doc, &[&["orderBaseInfo", "oid"]], Int),
    );
    want.insert("parent_oid".into(), Value::Null);
    want.insert("sub_order_type".into(), Value::Null);
    want
}

/// A gift sub-order's expected columns: its own base fields and line; what it lacks of create,
/// update and pay time, buyer and seller it takes from its main order (so a version of 0 never
/// pins it); it has no address, refund, role or distributor of its own.
fn expected_gift(gift: &Value, main: &Map<String, Value>) -> Map<String, Value> {
    let mut want = expected_columns(
        gift,
        &[
            (&["subOrderBaseInfo"], ORDER_BASE),
            (&["subOrderItemInfo"], ORDER_ITEM),
            (&["subOrderLogisticsInfo", "0"], ORDER_PACKAGE),
            (&["subOrderDeliveryInfo"], ORDER_DELIVERY),
            (&[], &[("packages", &[&["subOrderLogisticsInfo"]], List)]),
        ],
    );
    for (name, _, read) in ORDER_PARTIES {
        let none = match read {
            Int => Value::from(0),
            Ints => Value::from(Vec::<i64>::new()),
            _ => Value::Null,
        };
        want.insert(name.to_string(), none);
    }
    for name in ["create_time", "update_time"] {
        if want[name] == 0 {
            want.insert(name.into(), main[name].clone());
        }
    }
    for name in [
        "pay_time",
        "buyer_open_id",
        "buyer_nick",
        "seller_open_id",
        "seller_nick",
    ] {
        if want[name].is_null() {
            want.insert(name.into(), main[name].clone());
        }
    }
    want.insert(
        "oid".into(),
        expected_value(gift, &[&["subOrderBaseInfo", "oid"]], Int),
    );
    want.insert("parent_oid".into(), main["oid"].clone());
    want.insert(
        "sub_order_type".into(),
        expected_value(
            gift,
            &[&["subOrderType"], &["subOrderBaseInfo", "subOrderType"]],
            Opt,
        ),
    );
    want
}

/// The detail API returns the list document plus detail-only fields, sometimes under the
/// alternative spellings (reference §8.6): a detail raw "covers" the list raw when every list
/// field is there with the same value, under either spelling.
pub fn covers(detail: &Value, list: &Value) -> bool {
    const ALIASES: [(&str, &str); 2] = [
        ("orderRefundList", "orderDetailRefundList"),
        ("orderSellerRoleInfo", "orderlSellerRoleInfo"),
    ];
    match (detail, list) {
        (Value::Object(d), Value::Object(l)) => l.iter().all(|(k, v)| {
            let alias = ALIASES
                .iter()
                .find_map(|(a, b)| if k == a { Some(*b) } else { None });
            d.get(k)
                .or_else(|| alias.and_then(|a| d.get(a)))
                .is_some_and(|dv| covers(dv, v))
        }),
        _ => detail == list,
    }
}

/// The typed columns of a stored record (as written) against the expectation: every column
/// must have an expectation (a new column needs a line in the tables); rows written from a
/// detail answer may fill in what the list document does not carry (`null` there).
fn column_problems(
    what: &str,
    source: Source,
    got: &impl serde::Serialize,
    want: &Map<String, Value>,
) -> Vec<String> {
    let Value::Object(got) = serde_json::to_value(got).expect("a record serializes") else {
        return vec![format!("{what}: not a record")];
    };
    let mut out = Vec::new();
    for (name, value) in &got {
        if matches!(
            name.as_str(),
            "raw" | "gifts" | "skus" | "kwai_item_id" | "kwai_sku_id" | "refund_id"
        ) {
            continue;
        }
        let Some(expected) = want.get(name) else {
            out.push(format!(
                "{what}: the column {name} has no expectation in tests/common/mirror.rs"
            ));
            continue;
        };
        let from_detail = matches!(source, Source::Detail | Source::Push);
        // A JSON column holds its value as text.
        let value = match (value, expected) {
            (Value::String(text), Value::Array(_)) => {
                serde_json::from_str(text).unwrap_or_else(|_| value.clone())
            }
            _ => value.clone(),
        };
        if value != *expected && !(from_detail && expected.is_null()) {
            out.push(format!(
                "{what}: {name} is {value}, the truth says {expected}"
            ));
        }
    }
    out
}

fn raw_matches(source: Source, stored: &Value, truth: &Value) -> bool {
    match source {
        Source::Detail | Source::Push => covers(stored, truth),
        Source::Poll | Source::Resync => stored == truth,
    }
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).expect("stored raw JSON parses")
}

fn id_at(doc: &Value, path: &[&str]) -> i64 {
    at(doc, path)
        .and_then(integer)
        .expect("the truth's documents carry their ids")
}

/// What the comparison found, for assertions and messages.
#[derive(Debug, Default)]
pub struct MirrorDiff {
    pub orders_checked: usize,
    pub refunds_checked: usize,
    pub items_checked: usize,
    pub skus_checked: usize,
    pub problems: Vec<String>,
}

impl MirrorDiff {
    fn problem(&mut self, p: String) {
        if self.problems.len() < 20 {
            self.problems.push(p);
        }
    }
}

/// Compares shop `index` of the simulator with the mirror.
pub async fn diff_mirror(store: &Store, sim: &SimHandle, index: usize) -> MirrorDiff {
    let shop = &shop_truth(sim, index).await;
    assert_eq!(shop["index"], index, "the simulator's shop {index}");
    let id = shop_id(index);
    let mut diff = MirrorDiff::default();
    diff_orders(store, &id, shop, &mut diff).await;
    diff_refunds(store, &id, shop, &mut diff).await;
    diff_items(store, &id, shop, &mut diff).await;
    diff
}

async fn diff_orders(store: &Store, id: &str, shop: &Value, diff: &mut MirrorDiff) {
    // oid → (expected columns, the document its raw JSON must equal)
    let mut want: BTreeMap<i64, (Map<String, Value>, Value)> = BTreeMap::new();
    for doc in shop["orders"].as_array().expect("orders") {
        let main = expected_order(doc);
        for gift in doc["subOrderInfo"].as_array().into_iter().flatten() {
            let oid = id_at(gift, &["subOrderBaseInfo", "oid"]);
            want.insert(oid, (expected_gift(gift, &main), gift.clone()));
        }
        want.insert(id_at(doc, &["orderBaseInfo", "oid"]), (main, doc.clone()));
    }
    let rows = store.order_rows(id).await.expect("order rows");
    if rows.len() != want.len() {
        diff.problem(format!(
            "{} order rows, the truth has {}",
            rows.len(),
            want.len()
        ));
    }
    for row in rows {
        let got = row.to_order().expect("a stored order reads back");
        let Some((columns, raw_want)) = want.remove(&got.oid) else {
            diff.problem(format!("order {} is not in the truth", got.oid));
            continue;
        };
        if !raw_matches(row.source, &parsed(&got.raw), &raw_want) {
            diff.problem(format!("order {}: raw JSON differs", got.oid));
        }
        for p in column_problems(&format!("order {}", got.oid), row.source, &got, &columns) {
            diff.problem(p);
        }
        diff.orders_checked += 1;
    }
    for (oid, (columns, _)) in want.iter().take(5) {
        diff.problem(format!(
            "order {oid} (created {}, updated {}, status {}) is missing from the mirror",
            columns["create_time"], columns["update_time"], columns["status"]
        ));
    }
}

async fn diff_refunds(store: &Store, id: &str, shop: &Value, diff: &mut MirrorDiff) {
    let mut want: BTreeMap<i64, (Map<String, Value>, Value)> = BTreeMap::new();
    for doc in shop["refunds"].as_array().expect("refunds") {
        want.insert(
            id_at(doc, &["refundId"]),
            (expected_columns(doc, &[(&[], REFUND)]), doc.clone()),
        );
    }
    let rows = store.refund_rows(id).await.expect("refund rows");
    if rows.len() != want.len() {
        diff.problem(format!(
            "{} refund rows, the truth has {}",
            rows.len(),
            want.len()
        ));
    }
    for row in rows {
        let got = row.to_refund();
        let Some((columns, raw_want)) = want.remove(&got.refund_id) else {
            diff.problem(format!("refund {} is not in the truth", got.refund_id));
            continue;
        };
        if !raw_matches(row.source, &parsed(&got.raw), &raw_want) {
            diff.problem(format!("refund {}: raw JSON differs", got.refund_id));
        }
        for p in column_problems(
            &format!("refund {}", got.refund_id),
            row.source,
            &got,
            &columns,
        ) {
            diff.problem(p);
        }
        diff.refunds_checked += 1;
    }
}

async fn diff_items(store: &Store, id: &str, shop: &Value, diff: &mut MirrorDiff) {
    let want_items: BTreeMap<i64, &Value> = shop["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|doc| (id_at(doc, &["kwaiItemId"]), doc))
        .collect();
    let item_rows = store.item_rows(id).await.expect("item rows");
    for row in &item_rows {
        let got = row.to_item();
        match (want_items.get(&got.kwai_item_id), row.deleted_at) {
            (None, None) => diff.problem(format!(
                "item {} was removed upstream but is live in the mirror",
                got.kwai_item_id
            )),
            (Some(_), Some(_)) => diff.problem(format!(
                "item {} exists upstream but is marked deleted",
                got.kwai_item_id
            )),
            (None, Some(_)) => {}
            (Some(doc), None) => {
                if parsed(&got.raw) != **doc {
                    diff.problem(format!("item {}: raw JSON differs", got.kwai_item_id));
                }
                let columns = expected_columns(doc, &[(&[], ITEM)]);
                let what = format!("item {}", got.kwai_item_id);
                for p in column_problems(&what, row.source, &got, &columns) {
                    diff.problem(p);
                }
                diff.items_checked += 1;
            }
        }
    }
    let live = item_rows.iter().filter(|r| r.deleted_at.is_none()).count();
    if live != want_items.len() {
        diff.problem(format!(
            "{live} live items in the mirror, the truth has {}",
            want_items.len()
        ));
    }
    let sku_rows = store.sku_rows(id).await.expect("sku rows");
    let live_skus: BTreeMap<i64, _> = sku_rows
        .iter()
        .filter(|s| s.deleted_at.is_none())
        .map(|s| (s.kwai_sku_id, s))
        .collect();
    let mut sku_count = 0;
    for (item_id, doc) in &want_items {
        for sku_doc in doc["skuList"].as_array().into_iter().flatten() {
            sku_count += 1;
            let sku_id = id_at(sku_doc, &["kwaiSkuId"]);
            let Some(row) = live_skus.get(&sku_id) else {
                diff.problem(format!("sku {sku_id} is missing"));
                continue;
            };
            let got = row.to_sku();
            let mut columns = expected_columns(sku_doc, &[(&[], SKU)]);
            let parent = expected_value(sku_doc, &[&["kwaiItemId"]], NonZero);
            columns.insert(
                "kwai_item_id".into(),
                if parent.is_null() {
                    Value::from(*item_id)
                } else {
                    parent
                },
            );
            let mut problems =
                column_problems(&format!("sku {sku_id}"), row.source, &got, &columns);
            if got.kwai_item_id != columns["kwai_item_id"] {
                problems.push(format!(
                    "sku {sku_id}: belongs to item {}",
                    got.kwai_item_id
                ));
            }
            if parsed(&got.raw) != *sku_doc {
                problems.push(format!("sku {sku_id}: raw JSON differs"));
            }
            if problems.is_empty() {
                diff.skus_checked += 1;
            }
            for p in problems {
                diff.problem(p);
            }
        }
    }
    if live_skus.len() != sku_count {
        diff.problem(format!(
            "{} live SKUs in the mirror, the truth has {sku_count}",
            live_skus.len()
        ));
    }
}

/// Panics with the differences when the mirror is not the truth.
pub async fn assert_mirror_equals_truth(
    store: &Store,
    sim: &SimHandle,
    index: usize,
) -> MirrorDiff {
    let diff = diff_mirror(store, sim, index).await;
    assert!(
        diff.problems.is_empty(),
        "the mirror differs from the truth:\n{}",
        diff.problems.join("\n")
    );
    diff
}
