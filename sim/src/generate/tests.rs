use super::*;
use crate::checks;
use std::collections::HashMap;

const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn small(seed: u64) -> GenParams {
    GenParams::new(seed, 2, 30, 3000, NOW)
}

fn snapshot(shops: &[ShopData]) -> Vec<String> {
    let mut out = Vec::new();
    for shop in shops {
        out.push(format!("{:?}", shop.identity));
        for set in [&shop.orders, &shop.refunds] {
            for id in set.ids_sorted() {
                let doc = set.get(id).expect("listed");
                out.push(format!(
                    "{} {} {} {}",
                    doc.create_time,
                    doc.update_time,
                    doc.json.get(),
                    doc.detail_extra.get()
                ));
            }
        }
        out.extend(shop.items.values().map(|d| d.json.get().to_string()));
    }
    out
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = snapshot(&generate(&small(1)));
    let b = snapshot(&generate(&small(1)));
    let c = snapshot(&generate(&small(2)));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a[1..100], c[1..100]);
}

#[test]
fn counts_match_the_parameters() {
    let params = small(3);
    let shops = generate(&params);
    assert_eq!(shops.len(), 2);
    for shop in &shops {
        assert_eq!(shop.orders.len(), 3000);
        assert_eq!(shop.items.len(), params.items);
        let mut paid = 0;
        let mut gifts = 0;
        for doc in shop.orders.iter() {
            let order: docs::OrderDoc = docs::parse(doc).expect("order shape");
            paid += usize::from(order.order_base_info.pay_time > 0);
            gifts += order.sub_order_info.len();
        }
        // Refunds opening after "now" are not there yet, so slightly under the rate.
        let share = shop.refunds.len() as f64 / paid as f64;
        assert!((0.09..0.14).contains(&share), "refund share {share}");
        let unpaid = 1.0 - paid as f64 / 3000.0;
        assert!((0.05..0.12).contains(&unpaid), "unpaid share {unpaid}");
        assert!((40..140).contains(&gifts), "{gifts} gifts");
    }
}

#[test]
fn every_document_is_consistent() {
    let params = small(4);
    let shops = generate(&params);
    for shop in &shops {
        checks::check_shop(shop, params.now_ms, true);
    }
    checks::check_unique_ids(&shops);
}

#[test]
fn documents_use_the_platform_field_names() {
    let shops = generate(&small(5));
    checks::check_field_names(&shops[0]);
}

#[test]
fn some_orders_share_an_update_time() {
    let shops = generate(&small(6));
    for shop in &shops {
        let mut by_time: HashMap<i64, usize> = HashMap::new();
        for doc in shop.orders.iter() {
            *by_time.entry(doc.update_time).or_default() += 1;
        }
        let tied: usize = by_time.values().filter(|&&n| n > 1).sum();
        let share = tied as f64 / shop.orders.len() as f64;
        assert!((0.03..0.08).contains(&share), "tied share {share}");
    }
}

#[test]
fn orders_spread_over_the_window_and_statuses() {
    let params = small(7);
    let shops = generate(&params);
    let mut statuses: HashMap<i32, usize> = HashMap::new();
    for doc in shops[0].orders.iter() {
        assert!(doc.create_time >= params.window_start() && doc.create_time < NOW);
        let order: docs::OrderDoc = docs::parse(doc).expect("order shape");
        *statuses.entry(order.order_base_info.status).or_default() += 1;
    }
    // Unpaid orders last at most 30 minutes, so few (often none) are unpaid at "now".
    for status in [30, 40, 50, 70, 80] {
        assert!(
            statuses.get(&status).is_some_and(|&n| n > 0),
            "{statuses:?}"
        );
    }
    assert!(statuses[&70] > 1500, "{statuses:?}");
}

#[test]
fn edge_parameters_still_make_consistent_data() {
    // (shops, days, orders, items): a one-day window, no window, no items, no orders.
    for (seed, shops, days, orders, items) in [
        (1, 1, 1, 400, 5),
        (2, 1, 0, 30, 0),
        (3, 0, 5, 10, 3),
        (4, 2, 5, 0, 3),
    ] {
        let params = GenParams {
            items,
            ..GenParams::new(seed, shops, days, orders, NOW)
        };
        let data = generate(&params);
        assert_eq!(data.len(), shops);
        for shop in &data {
            assert_eq!(shop.orders.len(), orders);
            assert_eq!(shop.items.len(), items.max(1));
            checks::check_shop(shop, NOW, true);
        }
        checks::check_unique_ids(&data);
    }
}

/// `cargo test --release -- --ignored --nocapture generate_200k`
#[test]
#[ignore = "timing; run in release"]
fn generate_200k_orders_timing() {
    use crate::mutate::{MutationParams, Mutator};
    let params = GenParams::new(9, 1, 60, 200_000, NOW);
    let started = std::time::Instant::now();
    let mut shops = generate(&params);
    let elapsed = started.elapsed();
    let bytes: usize = shops[0].orders.iter().map(|d| d.json.get().len()).sum();
    let (orders, refunds) = (shops[0].orders.len(), shops[0].refunds.len());
    println!(
        "generated {orders} orders, {refunds} refunds in {elapsed:?}; JSON {} MiB",
        bytes >> 20
    );
    assert_eq!(orders, 200_000);

    let started = std::time::Instant::now();
    let mut mutator = Mutator::new(1, MutationParams::from_gen(&params), &shops, NOW);
    println!(
        "mutator: {} steps in {:?}",
        mutator.pending(),
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let changes: usize = (1..=600)
        .map(|step| mutator.advance(&mut shops, NOW + step * 100).len())
        .sum();
    println!(
        "600 advances of 100 ms: {changes} changes in {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let day = mutator.advance(&mut shops, NOW + DAY_MS).len();
    println!(
        "one simulated day: {day} changes in {:?}",
        started.elapsed()
    );
}
