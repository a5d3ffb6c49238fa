//! The reporting views on SQLite and on Postgres: a simulated shop is synced into the store, and
//! `daily_sales`, `refund_summary` and `item_sales` (over every day and over a range of days)
//! must equal the same figures computed in Rust from the simulator's own documents.

use crate::common;
use crate::common_db;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use common_db::{on_postgres, on_sqlite};
use kwaishop_sim::SimConfig;
use kwaishop_sync::commands::sync::sync_once;
use kwaishop_sync::store::{
    DailySales, ItemSales, RefundSummary, ReportFilter, ShopTotals, Store, Stream,
};
use kwaishop_sync::sync::{NoProgress, RunOutcome};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The China-time calendar date of an epoch-ms instant.
fn china_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms + 8 * 3_600_000)
        .expect("a valid instant")
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

/// An integer at a JSON path of a simulator document (0 when absent).
fn int_at(doc: &Value, path: &[&str]) -> i64 {
    path.iter().fold(doc, |v, k| &v[k]).as_i64().unwrap_or(0)
}

/// A text at a JSON path (`None` when absent or empty).
fn text_at(doc: &Value, path: &[&str]) -> Option<String> {
    path.iter()
        .fold(doc, |v, k| &v[k])
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// What the views must say, computed from the truth of shop 0.
struct Expected {
    daily: Vec<DailySales>,
    refunds: Vec<RefundSummary>,
    items: Vec<ItemSales>,
}

/// The figures the views must show, from the simulator's documents by plain JSON paths (never
/// through the product's parsers): an order counts on the China-time day of
/// `orderBaseInfo.createTime`, it is paid when `payTime != 0`, and sells `orderBaseInfo.totalFee`
/// of `orderItemInfo.num` units; a refund counts on the day of its `createTime` with its
/// `refundFee`. Gift sub-orders (`subOrderInfo`) are not orders of their own.
fn expected(truth: &Value, shop_id: &str, from: Option<&str>, to: Option<&str>) -> Expected {
    let shop = &truth["shops"][0];
    let orders = shop["orders"].as_array().expect("orders");
    let refunds = shop["refunds"].as_array().expect("refunds");
    let in_range = |day: &str| from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t);
    let mut daily: BTreeMap<String, DailySales> = BTreeMap::new();
    let row = |daily: &mut BTreeMap<String, DailySales>, day: &str| {
        daily.entry(day.to_string()).or_insert_with(|| DailySales {
            shop_id: shop_id.to_string(),
            day: day.to_string(),
            orders: 0,
            paid_orders: 0,
            gmv_fen: 0,
            refunds: 0,
            refund_fen: 0,
        });
    };
    let mut items: BTreeMap<(Option<i64>, Option<i64>), ItemSales> = BTreeMap::new();
    let mut paid_total = 0;
    for o in orders {
        let day = china_day(int_at(o, &["orderBaseInfo", "createTime"]));
        if !in_range(&day) {
            continue;
        }
        row(&mut daily, &day);
        let d = daily.get_mut(&day).expect("row");
        d.orders += 1;
        if int_at(o, &["orderBaseInfo", "payTime"]) != 0 {
            let total_fee = int_at(o, &["orderBaseInfo", "totalFee"]);
            d.paid_orders += 1;
            d.gmv_fen += total_fee;
            paid_total += 1;
            let nonzero = |path: &[&str]| Some(int_at(o, path)).filter(|i| *i != 0);
            let (item_id, sku_id) = (
                nonzero(&["orderItemInfo", "itemId"]),
                nonzero(&["orderItemInfo", "skuId"]),
            );
            let i = items.entry((item_id, sku_id)).or_insert_with(|| ItemSales {
                shop_id: shop_id.to_string(),
                item_id,
                sku_id,
                item_title: text_at(o, &["orderItemInfo", "itemTitle"]),
                sku_desc: text_at(o, &["orderItemInfo", "skuDesc"]),
                units: 0,
                revenue_fen: 0,
            });
            i.units += int_at(o, &["orderItemInfo", "num"]);
            i.revenue_fen += total_fee;
        }
    }
    let mut by_kind: BTreeMap<(i64, Option<i64>), (i64, i64)> = BTreeMap::new();
    for r in refunds {
        let day = china_day(int_at(r, &["createTime"]));
        if !in_range(&day) {
            continue;
        }
        let fee = int_at(r, &["refundFee"]);
        row(&mut daily, &day);
        let d = daily.get_mut(&day).expect("row");
        d.refunds += 1;
        d.refund_fen += fee;
        let handling_way = r["handlingWay"].as_i64();
        let k = by_kind
            .entry((int_at(r, &["status"]), handling_way))
            .or_default();
        k.0 += 1;
        k.1 += fee;
    }
    let mut items: Vec<ItemSales> = items.into_values().collect();
    items.sort_by(|a, b| {
        b.revenue_fen
            .cmp(&a.revenue_fen)
            .then(a.item_id.cmp(&b.item_id))
            .then(a.sku_id.cmp(&b.sku_id))
    });
    Expected {
        daily: daily.into_values().collect(),
        refunds: by_kind
            .into_iter()
            .map(|((status, handling_way), (n, fen))| RefundSummary {
                shop_id: shop_id.to_string(),
                status,
                handling_way,
                refunds: n,
                amount_fen: fen,
                rate: (paid_total > 0).then(|| n as f64 / paid_total as f64),
            })
            .collect(),
        items,
    }
}

/// Item rows compared without the titles' MAX() pick (one title per item in the simulator).
fn item_key(rows: &[ItemSales]) -> Vec<(Option<i64>, Option<i64>, i64, i64)> {
    rows.iter()
        .map(|r| (r.item_id, r.sku_id, r.units, r.revenue_fen))
        .collect()
}

/// (status, handling way, refunds, amount, rate × 10⁹ rounded).
type RefundKey = (i64, Option<i64>, i64, i64, Option<i64>);

fn refund_key(rows: &[RefundSummary]) -> Vec<RefundKey> {
    rows.iter()
        .map(|r| {
            (
                r.status,
                r.handling_way,
                r.refunds,
                r.amount_fen,
                r.rate.map(|x| (x * 1e9).round() as i64),
            )
        })
        .collect()
}

async fn views_match_the_truth(store: Store) {
    let sim = start_sim(SimConfig {
        orders: 1_500,
        days: 12,
        mutate: false,
        ..SimConfig::default()
    })
    .await;
    let app = app_for(&sim, store.clone(), |_| {}).await;
    let shops = app.shops(None).expect("shops");
    let runs = sync_once(
        &app,
        &shops,
        &Stream::ALL,
        Arc::new(NoProgress),
        CancellationToken::new(),
    )
    .await;
    assert!(runs.iter().all(|r| r.outcome == RunOutcome::CaughtUp));
    let truth = truth(&sim).await;
    let shop = shop_id(0);

    // Every day.
    let all = ReportFilter {
        shop_id: Some(shop.clone()),
        ..ReportFilter::default()
    };
    let want = expected(&truth, &shop, None, None);
    let daily = store.daily_sales(&all).await.expect("daily_sales");
    assert!(daily.len() >= 12, "{} days", daily.len());
    assert_eq!(daily, want.daily);
    assert_eq!(
        refund_key(&store.refund_summary(&all).await.expect("refund_summary")),
        refund_key(&want.refunds)
    );
    assert_eq!(
        item_key(&store.item_sales(&all).await.expect("item_sales")),
        item_key(&want.items)
    );
    // Without a shop filter: the same rows (one shop).
    assert_eq!(
        store
            .daily_sales(&ReportFilter::default())
            .await
            .expect("daily_sales"),
        want.daily
    );

    // A range of days inside the history.
    let (from, to) = (daily[3].day.clone(), daily[8].day.clone());
    let range = ReportFilter {
        shop_id: Some(shop.clone()),
        from: Some(from.clone()),
        to: Some(to.clone()),
    };
    let want = expected(&truth, &shop, Some(&from), Some(&to));
    let got = store.daily_sales(&range).await.expect("daily_sales");
    assert_eq!(got.len(), 6);
    assert_eq!(got, want.daily);
    assert_eq!(
        refund_key(&store.refund_summary(&range).await.expect("refund_summary")),
        refund_key(&want.refunds)
    );
    assert_eq!(
        item_key(&store.item_sales(&range).await.expect("item_sales")),
        item_key(&want.items)
    );

    // Another shop's filter: nothing.
    let other = ReportFilter {
        shop_id: Some("no-such-shop".into()),
        ..ReportFilter::default()
    };
    assert!(store.daily_sales(&other).await.expect("read").is_empty());

    // The shop's totals (the demo prints them) add the days up.
    let totals = store.shop_totals(&shop).await.expect("totals");
    let want = expected(&truth, &shop, None, None);
    let sum = |f: fn(&DailySales) -> i64| want.daily.iter().map(f).sum::<i64>();
    assert_eq!(
        (
            totals.orders,
            totals.paid_orders,
            totals.gmv_fen,
            totals.refunds,
            totals.refund_fen
        ),
        (
            sum(|d| d.orders),
            sum(|d| d.paid_orders),
            sum(|d| d.gmv_fen),
            sum(|d| d.refunds),
            sum(|d| d.refund_fen)
        )
    );
    let items = truth["shops"][0]["items"].as_array().expect("items");
    assert_eq!(totals.items, items.len() as i64);
    assert_ne!(totals, ShopTotals::default());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_views_match_the_truth() {
    init_logs();
    on_sqlite(views_match_the_truth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_views_match_the_truth() {
    init_logs();
    on_postgres(views_match_the_truth).await;
}
