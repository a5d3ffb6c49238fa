//! Reading the reporting views (`migrations/*/0005_reports.sql`) for `kwaishop-sync report` and
//! the demo: per day, per refund status and handling way, per item and SKU — over every day, or
//! over a range of China-time days through the per-day views they are built from.

use serde::Serialize;

use super::db::Val;
use super::{Store, StoreError};

/// Which rows a report covers: one shop or all, and China-time days `from..=to`
/// (`YYYY-MM-DD`, either end open).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFilter {
    pub shop_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl ReportFilter {
    /// The values of [`filter_sql`], `times` times over.
    fn vals(&self, times: usize) -> Vec<Val<'_>> {
        let one = [
            self.shop_id.as_deref(),
            self.shop_id.as_deref(),
            self.from.as_deref(),
            self.from.as_deref(),
            self.to.as_deref(),
            self.to.as_deref(),
        ];
        (0..times).flat_map(|_| one.map(Val::from)).collect()
    }
}

/// The filter over a per-day view aliased `v`, with placeholders `$first`… (six of them: the
/// store binds placeholders in order, each once).
fn filter_sql(first: usize) -> String {
    let n = |i: usize| first + i;
    format!(
        "(${} IS NULL OR v.shop_id = ${}) AND (${} IS NULL OR v.day >= ${}) \
         AND (${} IS NULL OR v.day <= ${})",
        n(0),
        n(1),
        n(2),
        n(3),
        n(4),
        n(5)
    )
}

/// One row of `daily_sales`. Money in fen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailySales {
    pub shop_id: String,
    pub day: String,
    pub orders: i64,
    pub paid_orders: i64,
    pub gmv_fen: i64,
    pub refunds: i64,
    pub refund_fen: i64,
}

/// One row of `refund_summary`: refunds of a status and handling way, and their share of the
/// shop's paid orders over the same days (`None` without paid orders).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundSummary {
    pub shop_id: String,
    pub status: i64,
    pub handling_way: Option<i64>,
    pub refunds: i64,
    pub amount_fen: i64,
    pub rate: Option<f64>,
}

/// One row of `item_sales`: units and revenue of an item and SKU on paid orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemSales {
    pub shop_id: String,
    pub item_id: Option<i64>,
    pub sku_id: Option<i64>,
    pub item_title: Option<String>,
    pub sku_desc: Option<String>,
    pub units: i64,
    pub revenue_fen: i64,
}

/// A shop's totals over the whole mirror, from the views and the item tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShopTotals {
    pub orders: i64,
    pub paid_orders: i64,
    pub gmv_fen: i64,
    pub refunds: i64,
    pub refund_fen: i64,
    /// Items and SKUs the platform still lists (not soft-deleted).
    pub items: i64,
    pub skus: i64,
}

type DailyRow = (String, String, i64, i64, i64, i64, i64);
type RefundRow = (String, i64, Option<i64>, i64, i64, Option<i64>);
type ItemRow = (
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

impl Store {
    /// `daily_sales` rows, by shop and day.
    pub async fn daily_sales(&self, filter: &ReportFilter) -> Result<Vec<DailySales>, StoreError> {
        let sql = format!(
            "SELECT v.shop_id, v.day, v.orders, v.paid_orders, v.gmv_fen, v.refunds, v.refund_fen \
             FROM daily_sales v WHERE {} ORDER BY v.shop_id, v.day",
            filter_sql(1)
        );
        let rows: Vec<DailyRow> = self
            .pool
            .fetch_all("reading daily_sales", sql, &filter.vals(1))
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(shop_id, day, orders, paid_orders, gmv_fen, refunds, refund_fen)| DailySales {
                    shop_id,
                    day,
                    orders,
                    paid_orders,
                    gmv_fen,
                    refunds,
                    refund_fen,
                },
            )
            .collect())
    }

    /// `refund_summary` over the filter's days, by shop, status and handling way: the view's
    /// query over `refund_daily` and `order_daily` with the filter applied (the same figures as
    /// the view when every day is asked for; `tests/reports.rs` and `tests/demo.rs` check both).
    pub async fn refund_summary(
        &self,
        filter: &ReportFilter,
    ) -> Result<Vec<RefundSummary>, StoreError> {
        let sql = format!(
            "WITH paid AS (SELECT v.shop_id, CAST(SUM(v.paid_orders) AS BIGINT) AS paid_orders \
                 FROM order_daily v WHERE {} GROUP BY v.shop_id) \
             SELECT v.shop_id, v.status, v.handling_way, CAST(SUM(v.refunds) AS BIGINT), \
                 CAST(SUM(v.amount_fen) AS BIGINT), MAX(p.paid_orders) \
             FROM refund_daily v LEFT JOIN paid p ON p.shop_id = v.shop_id \
             WHERE {} GROUP BY v.shop_id, v.status, v.handling_way \
             ORDER BY v.shop_id, v.status, v.handling_way",
            filter_sql(1),
            filter_sql(7)
        );
        let rows: Vec<RefundRow> = self
            .pool
            .fetch_all("reading refund_summary", sql, &filter.vals(2))
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(shop_id, status, handling_way, refunds, amount_fen, paid)| RefundSummary {
                    shop_id,
                    status,
                    handling_way,
                    refunds,
                    amount_fen,
                    rate: paid.filter(|p| *p > 0).map(|p| refunds as f64 / p as f64),
                },
            )
            .collect())
    }

    /// `item_sales` over the filter's days, best sellers (by revenue) first.
    pub async fn item_sales(&self, filter: &ReportFilter) -> Result<Vec<ItemSales>, StoreError> {
        let sql = format!(
            "SELECT v.shop_id, v.item_id, v.sku_id, MAX(v.item_title), MAX(v.sku_desc), \
                 CAST(SUM(v.units) AS BIGINT), CAST(SUM(v.revenue_fen) AS BIGINT) \
             FROM item_daily v WHERE {} GROUP BY v.shop_id, v.item_id, v.sku_id \
             ORDER BY v.shop_id, 7 DESC, v.item_id, v.sku_id",
            filter_sql(1)
        );
        let rows: Vec<ItemRow> = self
            .pool
            .fetch_all("reading item_sales", sql, &filter.vals(1))
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(shop_id, item_id, sku_id, item_title, sku_desc, units, revenue_fen)| ItemSales {
                    shop_id,
                    item_id,
                    sku_id,
                    item_title,
                    sku_desc,
                    units,
                    revenue_fen,
                },
            )
            .collect())
    }

    /// The shop's totals: orders, paid orders, GMV and refunds over every day of `daily_sales`,
    /// and the items and SKUs still listed.
    pub async fn shop_totals(&self, shop_id: &str) -> Result<ShopTotals, StoreError> {
        const SALES: &str = "SELECT CAST(COALESCE(SUM(orders), 0) AS BIGINT), \
             CAST(COALESCE(SUM(paid_orders), 0) AS BIGINT), CAST(COALESCE(SUM(gmv_fen), 0) AS BIGINT), \
             CAST(COALESCE(SUM(refunds), 0) AS BIGINT), CAST(COALESCE(SUM(refund_fen), 0) AS BIGINT) \
             FROM daily_sales WHERE shop_id = $1";
        const CATALOG: &str = "SELECT \
             (SELECT COUNT(*) FROM items WHERE shop_id = $1 AND deleted_at IS NULL), \
             (SELECT COUNT(*) FROM skus WHERE shop_id = $1 AND deleted_at IS NULL)";
        let op = "reading a shop's totals";
        let sales: Vec<(i64, i64, i64, i64, i64)> = self
            .pool
            .fetch_all(op, SALES, &[Val::from(shop_id)])
            .await?;
        let catalog: Vec<(i64, i64)> = self
            .pool
            .fetch_all(op, CATALOG, &[Val::from(shop_id)])
            .await?;
        let (orders, paid_orders, gmv_fen, refunds, refund_fen) =
            sales.first().copied().unwrap_or_default();
        let (items, skus) = catalog.first().copied().unwrap_or_default();
        Ok(ShopTotals {
            orders,
            paid_orders,
            gmv_fen,
            refunds,
            refund_fen,
            items,
            skus,
        })
    }
}
