//! Comparing the mirror with the simulator's truth, field by field: typed columns (through the
//! same record parser applied to the truth) and the raw JSON (as parsed values).

use std::collections::BTreeMap;

use kwaishop_sync::api::records::{Item, Order, Refund};
use kwaishop_sync::sim::SimHandle;
use kwaishop_sync::store::Store;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{shop_id, truth};

fn raw(v: &Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).expect("truth values are JSON")
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).expect("stored raw JSON parses")
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

/// Typed columns of a detail row against the list record: equal, except fields the list does
/// not carry (None there) that the detail filled in.
fn typed_matches<T: serde::Serialize + PartialEq>(
    source: kwaishop_sync::store::Source,
    got: &T,
    want: &T,
) -> bool {
    use kwaishop_sync::store::Source;
    match source {
        Source::Poll | Source::Resync => got == want,
        Source::Detail | Source::Push => {
            let (g, w) = (
                serde_json::to_value(got).expect("json"),
                serde_json::to_value(want).expect("json"),
            );
            match (g, w) {
                (Value::Object(g), Value::Object(w)) => {
                    w.iter().all(|(k, wv)| wv.is_null() || g.get(k) == Some(wv))
                }
                _ => false,
            }
        }
    }
}

fn raw_matches(source: kwaishop_sync::store::Source, stored: &Value, truth: &Value) -> bool {
    use kwaishop_sync::store::Source;
    match source {
        Source::Detail | Source::Push => covers(stored, truth),
        Source::Poll | Source::Resync => stored == truth,
    }
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
    let truth = truth(sim).await;
    let shop = &truth["shops"][index];
    let id = shop_id(index);
    let mut diff = MirrorDiff::default();

    let mut want: BTreeMap<i64, (Order, Value)> = BTreeMap::new();
    for doc in shop["orders"].as_array().expect("orders") {
        let order = Order::from_raw(&raw(doc)).expect("the truth parses");
        for (i, gift) in order.gifts.iter().enumerate() {
            want.insert(gift.oid, (gift.clone(), doc["subOrderInfo"][i].clone()));
        }
        let mut main = order.clone();
        main.gifts.clear();
        want.insert(main.oid, (main, doc.clone()));
    }
    let rows = store.order_rows(&id).await.expect("order rows");
    if rows.len() != want.len() {
        diff.problem(format!(
            "{} order rows, the truth has {}",
            rows.len(),
            want.len()
        ));
    }
    for row in rows {
        let got = row.to_order().expect("a stored order reads back");
        let Some((mut expected, raw_want)) = want.remove(&got.oid) else {
            diff.problem(format!("order {} is not in the truth", got.oid));
            continue;
        };
        if !raw_matches(row.source, &parsed(&got.raw), &raw_want) {
            diff.problem(format!("order {}: raw JSON differs", got.oid));
        }
        expected.raw = got.raw.clone();
        if !typed_matches(row.source, &got, &expected) {
            diff.problem(format!(
                "order {}: typed columns differ:\n  got  {got:?}\n  want {expected:?}",
                got.oid
            ));
        }
        diff.orders_checked += 1;
    }
    for (oid, (order, _)) in want.iter().take(5) {
        diff.problem(format!(
            "order {oid} (created {}, updated {}, status {}) is missing from the mirror",
            order.create_time, order.update_time, order.status
        ));
    }

    let mut want: BTreeMap<i64, (Refund, Value)> = BTreeMap::new();
    for doc in shop["refunds"].as_array().expect("refunds") {
        let r = Refund::from_raw(&raw(doc)).expect("the truth parses");
        want.insert(r.refund_id, (r, doc.clone()));
    }
    let rows = store.refund_rows(&id).await.expect("refund rows");
    if rows.len() != want.len() {
        diff.problem(format!(
            "{} refund rows, the truth has {}",
            rows.len(),
            want.len()
        ));
    }
    for row in rows {
        let got = row.to_refund();
        let Some((mut expected, raw_want)) = want.remove(&got.refund_id) else {
            diff.problem(format!("refund {} is not in the truth", got.refund_id));
            continue;
        };
        if !raw_matches(row.source, &parsed(&got.raw), &raw_want) {
            diff.problem(format!("refund {}: raw JSON differs", got.refund_id));
        }
        expected.raw = got.raw.clone();
        if !typed_matches(row.source, &got, &expected) {
            diff.problem(format!(
                "refund {}: typed columns differ:\n  got  {got:?}\n  want {expected:?}",
                got.refund_id
            ));
        }
        diff.refunds_checked += 1;
    }

    let mut want_items: BTreeMap<i64, (Item, Value)> = BTreeMap::new();
    for doc in shop["items"].as_array().expect("items") {
        let item = Item::from_raw(&raw(doc)).expect("the truth parses");
        want_items.insert(item.kwai_item_id, (item, doc.clone()));
    }
    let item_rows = store.item_rows(&id).await.expect("item rows");
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
            (Some((expected, raw_want)), None) => {
                if parsed(&got.raw) != *raw_want {
                    diff.problem(format!("item {}: raw JSON differs", got.kwai_item_id));
                }
                let mut expected = expected.clone();
                expected.skus.clear();
                expected.raw = got.raw.clone();
                let mut got = got.clone();
                got.skus.clear();
                if got != expected {
                    diff.problem(format!("item {}: typed columns differ", got.kwai_item_id));
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
    let sku_rows = store.sku_rows(&id).await.expect("sku rows");
    let live_skus: BTreeMap<i64, _> = sku_rows
        .iter()
        .filter(|s| s.deleted_at.is_none())
        .map(|s| (s.kwai_sku_id, s.to_sku()))
        .collect();
    let mut sku_count = 0;
    for (item, _) in want_items.values() {
        for sku in &item.skus {
            sku_count += 1;
            match live_skus.get(&sku.kwai_sku_id) {
                Some(got) if parsed(&got.raw) == parsed(&sku.raw) && same_sku(got, sku) => {
                    diff.skus_checked += 1
                }
                Some(_) => diff.problem(format!("sku {} differs", sku.kwai_sku_id)),
                None => diff.problem(format!("sku {} is missing", sku.kwai_sku_id)),
            }
        }
    }
    if live_skus.len() != sku_count {
        diff.problem(format!(
            "{} live SKUs in the mirror, the truth has {sku_count}",
            live_skus.len()
        ));
    }
    diff
}

fn same_sku(a: &kwaishop_sync::api::records::Sku, b: &kwaishop_sync::api::records::Sku) -> bool {
    let mut b = b.clone();
    b.raw = a.raw.clone();
    *a == b
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
