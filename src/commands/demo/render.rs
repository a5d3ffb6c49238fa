//! The demo's report as printed: the totals beside the simulator's, the last week's sales, the
//! best sellers, and what to try next.

use super::{DemoReport, FileUse, SHOP};
use crate::store::ShopTotals;

/// The totals block: one line per figure, `label: mirror` with the truth beside it.
pub fn totals_lines(t: &ShopTotals) -> Vec<(&'static str, String)> {
    use crate::commands::report::yuan;
    vec![
        ("orders", t.orders.to_string()),
        ("paid orders", t.paid_orders.to_string()),
        ("GMV (yuan)", yuan(t.gmv_fen)),
        ("refunds", t.refunds.to_string()),
        ("refunded (yuan)", yuan(t.refund_fen)),
        ("items", t.items.to_string()),
        ("SKUs", t.skus.to_string()),
    ]
}

/// The text printed at the end of the demo.
pub fn render(report: &DemoReport) -> String {
    use crate::commands::report::{table, yuan};
    let mut out = String::new();
    let file = match &report.file {
        FileUse::Created => "created".to_string(),
        FileUse::Reused => "reused: only what changed was synced".to_string(),
        FileUse::Recreated(why) => format!("recreated: {why}"),
    };
    out.push_str(&format!(
        "\nMirrored a simulated shop into {} ({file}) in {:.1} s; {} pushes received, {} applied.\n\n",
        report.db.display(),
        report.seconds,
        report.pushes_received,
        report.events_applied,
    ));
    let matches = report.mirror == report.truth;
    out.push_str(&format!(
        "Totals for {SHOP} (gift sub-orders not counted as orders):\n"
    ));
    let body: Vec<Vec<String>> = totals_lines(&report.mirror)
        .into_iter()
        .zip(totals_lines(&report.truth))
        .map(|((label, m), (_, t))| vec![label.to_string(), m, t])
        .collect();
    out.push_str(&indent(&table(&["total", "mirror", "simulator"], &body)));
    out.push_str(if matches {
        "  The mirror matches the simulator's truth.\n"
    } else {
        "  MISMATCH: the mirror differs from the simulator's truth.\n"
    });
    if !report.daily.is_empty() {
        out.push_str("\nLast days (daily_sales, China time):\n");
        let body: Vec<Vec<String>> = report
            .daily
            .iter()
            .map(|d| {
                vec![
                    d.day.clone(),
                    d.orders.to_string(),
                    d.paid_orders.to_string(),
                    yuan(d.gmv_fen),
                    d.refunds.to_string(),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &["day", "orders", "paid", "gmv_yuan", "refunds"],
            &body,
        )));
    }
    if !report.top_items.is_empty() {
        out.push_str("\nBest sellers (item_sales):\n");
        let body: Vec<Vec<String>> = report
            .top_items
            .iter()
            .map(|i| {
                vec![
                    i.item_title.clone().unwrap_or_default(),
                    i.sku_desc.clone().unwrap_or_default(),
                    i.units.to_string(),
                    yuan(i.revenue_fen),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &["item_title", "sku_desc", "units", "revenue_yuan"],
            &body,
        )));
    }
    for f in &report.failures {
        out.push_str(&format!("  problem: {f}\n"));
    }
    out.push_str(&format!(
        "\nThe database: {db}\nTry it:\n  sqlite3 {db} \"select * from daily_sales order by day desc limit 7\"\n  sqlite3 {db} \"select status, handling_way, refunds, amount_yuan, round(rate * 100, 1) as pct from refund_summary\"\n  sqlite3 {db} \"select item_title, sku_desc, units, revenue_yuan from item_sales order by revenue_fen desc limit 5\"\nor: kwaishop-sync report --db {db}\n",
        db = report.db.display()
    ));
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
