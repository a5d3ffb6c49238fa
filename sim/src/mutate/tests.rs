use super::*;
use crate::checks;
use crate::docs::{self, OrderDoc};
use crate::generate::generate;
use crate::lifecycle;
use crate::messages;
use crate::model::{ChangeKind, Doc};
use std::collections::HashMap;

const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn params() -> GenParams {
    GenParams::new(21, 2, 20, 1500, NOW)
}

/// Every record's update time, by (shop, kind, id).
fn versions(shops: &[ShopData]) -> HashMap<(usize, ChangeKind, i64), i64> {
    let mut out = HashMap::new();
    for (s, shop) in shops.iter().enumerate() {
        for d in shop.orders.iter() {
            out.insert((s, ChangeKind::Order, d.id), d.update_time);
        }
        for d in shop.refunds.iter() {
            out.insert((s, ChangeKind::Refund, d.id), d.update_time);
        }
        for d in shop.items.values() {
            out.insert((s, ChangeKind::Item, d.id), d.update_time);
        }
    }
    out
}

fn doc(shops: &[ShopData], change: &Change) -> Option<Doc> {
    let shop = &shops[change.shop];
    match change.kind {
        ChangeKind::Order => shop.orders.get(change.biz_id).cloned(),
        ChangeKind::Refund => shop.refunds.get(change.biz_id).cloned(),
        ChangeKind::Item => shop.items.get(&change.biz_id).cloned(),
    }
}

#[test]
fn three_days_bring_every_kind_of_change() {
    let params = params();
    let mut shops = generate(&params);
    let orders_before: usize = shops.iter().map(|s| s.orders.len()).sum();
    let items_before: usize = shops.iter().map(|s| s.items.len()).sum();
    let mut mutator = Mutator::new(5, MutationParams::from_gen(&params), &shops, NOW);
    let mut before = versions(&shops);
    let mut all: Vec<Change> = Vec::new();
    let mut last_per_record: HashMap<(usize, ChangeKind, i64), i64> = HashMap::new();
    for hour in 1..=72 {
        let now = NOW + hour * HOUR_MS;
        let changes = mutator.advance(&mut shops, now);
        for pair in changes.windows(2) {
            assert!(pair[0].update_time <= pair[1].update_time, "{pair:?}");
        }
        for change in &changes {
            assert!(change.update_time > now - HOUR_MS && change.update_time <= now);
            let key = (change.shop, change.kind, change.biz_id);
            let previous = last_per_record.insert(key, change.update_time);
            assert!(
                previous < Some(change.update_time),
                "{change:?} after {previous:?}"
            );
            if let Some(t) = change.info.get("updateTime") {
                assert_eq!(t.as_i64(), Some(change.update_time), "{change:?}");
            }
        }
        // The newest change of each record is its document's version; only orders can be
        // newer, edited silently when their refund moves.
        for change in &changes {
            let Some(d) = doc(&shops, change) else {
                assert_eq!(change.event, messages::ITEM_DELETE);
                continue;
            };
            let last = last_per_record[&(change.shop, change.kind, change.biz_id)];
            match change.kind {
                ChangeKind::Order => assert!(d.update_time >= last, "{change:?}"),
                _ => assert_eq!(d.update_time, last, "{change:?}"),
            }
        }
        let after = versions(&shops);
        for (key, old) in &before {
            if let Some(new) = after.get(key) {
                assert!(new >= old, "{key:?} went back from {old} to {new}");
            }
        }
        before = after;
        assert!(
            mutator.advance(&mut shops, now).is_empty(),
            "second advance to {now}"
        );
        all.extend(changes);
    }
    let mut by_event: HashMap<&str, usize> = HashMap::new();
    for change in &all {
        *by_event.entry(change.event).or_default() += 1;
    }
    for event in [
        "kwaishop_order_addOrder",
        "kwaishop_order_paySuccess",
        "kwaishop_order_delivering",
        "kwaishop_order_deliverySuccess",
        "kwaishop_order_orderSuccess",
        "kwaishop_order_orderFail",
        "kwaishop_aftersales_addRefund",
        "kwaishop_aftersales_updateRefund",
        messages::ITEM_CHANGE,
        messages::ITEM_DELETE,
    ] {
        assert!(
            by_event.get(event).is_some_and(|&n| n > 0),
            "no {event}: {by_event:?}"
        );
    }
    // 1500 orders over 20 days is 75 a day per shop: about 450 new in three days.
    let added = by_event["kwaishop_order_addOrder"];
    assert!((300..600).contains(&added), "{added} new orders");
    let orders_after: usize = shops.iter().map(|s| s.orders.len()).sum();
    assert_eq!(orders_after, orders_before + added);
    let items_after: usize = shops.iter().map(|s| s.items.len()).sum();
    assert_eq!(items_after, items_before - by_event[messages::ITEM_DELETE]);
    let end = NOW + 72 * HOUR_MS;
    for shop in &shops {
        checks::check_shop(shop, end, false);
    }
    checks::check_unique_ids(&shops);
}

#[test]
fn advancing_to_the_same_or_an_earlier_time_does_nothing() {
    let params = params();
    let mut shops = generate(&params);
    let mut mutator = Mutator::new(5, MutationParams::from_gen(&params), &shops, NOW);
    assert!(mutator.advance(&mut shops, NOW).is_empty());
    assert!(!mutator.advance(&mut shops, NOW + DAY_MS).is_empty());
    assert!(mutator.advance(&mut shops, NOW + DAY_MS).is_empty());
    assert!(mutator.advance(&mut shops, NOW).is_empty());
    assert_eq!(mutator.now_ms(), NOW + DAY_MS);
    assert!(mutator.pending() > 0);
}

#[test]
fn same_seed_same_changes() {
    let params = params();
    let run = |seed: u64| {
        let mut shops = generate(&params);
        let mut mutator = Mutator::new(seed, MutationParams::from_gen(&params), &shops, NOW);
        mutator.advance(&mut shops, NOW + DAY_MS)
    };
    let a = run(8);
    assert_eq!(a, run(8));
    assert_ne!(a, run(9));
}

#[test]
fn refunds_held_before_shipping_decide_the_order() {
    let params = GenParams {
        refund_rate: 0.6,
        ..GenParams::new(22, 1, 10, 600, NOW)
    };
    let mut shops = generate(&params);
    let mut mutator = Mutator::new(3, MutationParams::from_gen(&params), &shops, NOW);
    let changes = mutator.advance(&mut shops, NOW + 10 * DAY_MS);
    checks::check_shop(&shops[0], NOW + 10 * DAY_MS, false);
    // Some refunds ended with the order still unshipped: closed orders with a paid refund,
    // and orders shipped after their refund was closed.
    let mut closed_by_refund = 0;
    let mut shipped_after_refund = 0;
    for d in shops[0].orders.iter() {
        let order: OrderDoc = docs::parse(d).expect("order");
        let b = &order.order_base_info;
        if b.status == lifecycle::CLOSED && b.pay_time > 0 {
            closed_by_refund += 1;
        }
        if b.send_time > 0 && b.refund_time > 0 && b.refund_time < b.send_time {
            shipped_after_refund += 1;
        }
    }
    assert!(closed_by_refund > 0 && shipped_after_refund > 0);
    assert!(
        changes
            .iter()
            .any(|c| c.event == "kwaishop_aftersales_addRefund")
    );
}
