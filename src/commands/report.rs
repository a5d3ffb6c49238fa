//! `kwaishop-sync report`: the reporting views (`daily_sales`, `refund_summary`, `item_sales`)
//! as a table for people, CSV for spreadsheets or JSON for scripts.

use std::fmt::Write as _;

use serde::Serialize;
use unicode_width::UnicodeWidthStr;

use super::ConfigArg;
use crate::store::{
    DailySales, DatabaseUrl, ItemSales, RefundSummary, ReportFilter, Store, StoreError,
};

/// What `report` is told.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Read this database instead of the config's (a SQLite path, `sqlite://…` or
    /// `postgres://…`), e.g. `--db kwaishop-demo.db` after the demo.
    #[arg(long)]
    pub db: Option<String>,
    /// Only this shop (its id in the config).
    #[arg(long)]
    pub shop: Option<String>,
    /// First China-time day to include (YYYY-MM-DD).
    #[arg(long, value_parser = parse_day)]
    pub from: Option<String>,
    /// Last China-time day to include (YYYY-MM-DD).
    #[arg(long, value_parser = parse_day)]
    pub to: Option<String>,
    /// Only these views (repeatable; default: all three).
    #[arg(long, value_enum)]
    pub view: Vec<View>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Prints the chosen views.
pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let url = match &args.db {
        Some(db) => {
            let url = DatabaseUrl::from_arg(db)?;
            if let Some(path) = url.sqlite_file() {
                anyhow::ensure!(
                    path.exists(),
                    "no database at {}: run `kwaishop-sync demo` or `kwaishop-sync sync --once` first",
                    path.display()
                );
            }
            url
        }
        None => match demo_database(&args.config.config, super::DEFAULT_CONFIG) {
            Some(url) => url,
            None => args.config.load()?.database_url,
        },
    };
    let store = Store::open(&url).await?;
    store.migrate().await?;
    let filter = ReportFilter {
        shop_id: args.shop,
        from: args.from,
        to: args.to,
    };
    if let (Some(from), Some(to)) = (&filter.from, &filter.to) {
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    }
    let report = read(&store, &filter, &args.view).await?;
    store.close().await;
    print!(
        "{}",
        render(&report, args.format).map_err(anyhow::Error::msg)?
    );
    Ok(())
}

/// The reporting views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum View {
    DailySales,
    RefundSummary,
    ItemSales,
}

impl View {
    pub const ALL: [View; 3] = [View::DailySales, View::RefundSummary, View::ItemSales];

    pub fn name(self) -> &'static str {
        match self {
            View::DailySales => "daily_sales",
            View::RefundSummary => "refund_summary",
            View::ItemSales => "item_sales",
        }
    }
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The rows of the views asked for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_sales: Option<Vec<DailySales>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_summary: Option<Vec<RefundSummary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_sales: Option<Vec<ItemSales>>,
}

/// Reads the views asked for (every view for an empty list).
pub async fn read(
    store: &Store,
    filter: &ReportFilter,
    views: &[View],
) -> Result<Report, StoreError> {
    let views = if views.is_empty() { &View::ALL } else { views };
    let mut report = Report::default();
    for view in views {
        match view {
            View::DailySales => report.daily_sales = Some(store.daily_sales(filter).await?),
            View::RefundSummary => {
                report.refund_summary = Some(store.refund_summary(filter).await?)
            }
            View::ItemSales => report.item_sales = Some(store.item_sales(filter).await?),
        }
    }
    Ok(report)
}

/// Checks a `--from`/`--to` day: `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| format!("{text:?} is not a date like 2026-11-29"))
}

/// Fen as yuan with two decimals, exactly (no floating point).
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// One view as printed in the table and CSV forms: its column names and cells.
type Block = (View, Vec<&'static str>, Vec<Vec<String>>);

/// The views of the report as [`Block`]s.
fn cells(report: &Report) -> Vec<Block> {
    let mut out = Vec::new();
    if let Some(rows) = &report.daily_sales {
        let header = vec![
            "shop_id",
            "day",
            "orders",
            "paid_orders",
            "gmv_yuan",
            "refunds",
            "refund_yuan",
        ];
        let body = rows
            .iter()
            .map(|r| {
                vec![
                    r.shop_id.clone(),
                    r.day.clone(),
                    r.orders.to_string(),
                    r.paid_orders.to_string(),
                    yuan(r.gmv_fen),
                    r.refunds.to_string(),
                    yuan(r.refund_fen),
                ]
            })
            .collect();
        out.push((View::DailySales, header, body));
    }
    if let Some(rows) = &report.refund_summary {
        let header = vec![
            "shop_id",
            "status",
            "handling_way",
            "refunds",
            "amount_yuan",
            "rate",
        ];
        let body = rows
            .iter()
            .map(|r| {
                vec![
                    r.shop_id.clone(),
                    r.status.to_string(),
                    opt(r.handling_way),
                    r.refunds.to_string(),
                    yuan(r.amount_fen),
                    r.rate.map(|x| format!("{x:.4}")).unwrap_or_default(),
                ]
            })
            .collect();
        out.push((View::RefundSummary, header, body));
    }
    if let Some(rows) = &report.item_sales {
        let header = vec![
            "shop_id",
            "item_id",
            "sku_id",
            "item_title",
            "sku_desc",
            "units",
            "revenue_yuan",
        ];
        let body = rows
            .iter()
            .map(|r| {
                vec![
                    r.shop_id.clone(),
                    opt(r.item_id),
                    opt(r.sku_id),
                    r.item_title.clone().unwrap_or_default(),
                    r.sku_desc.clone().unwrap_or_default(),
                    r.units.to_string(),
                    yuan(r.revenue_fen),
                ]
            })
            .collect();
        out.push((View::ItemSales, header, body));
    }
    out
}

/// Text columns (left-aligned) of each view; the rest are numbers (right-aligned).
fn is_text(column: &str) -> bool {
    matches!(
        column,
        "shop_id" | "day" | "item_title" | "sku_desc" | "total"
    )
}

/// Cuts a cell to `max` display columns (titles can be long), with an ellipsis.
fn fit(cell: &str, max: usize) -> String {
    if cell.width() <= max {
        return cell.to_string();
    }
    let mut out = String::new();
    for c in cell.chars() {
        if out.width() + c.to_string().width() + 1 > max {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// A plain-text table with aligned columns (display width, so CJK titles line up).
pub fn table(header: &[&str], body: &[Vec<String>]) -> String {
    const MAX: usize = 30;
    let body: Vec<Vec<String>> = body
        .iter()
        .map(|r| r.iter().map(|c| fit(c, MAX)).collect())
        .collect();
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            body.iter()
                .map(|r| r.get(i).map_or(0, |c| c.width()))
                .fold(h.width(), usize::max)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w.saturating_sub(cell.width()));
            if i > 0 {
                s.push_str("  ");
            }
            if is_text(header[i]) {
                s.push_str(cell);
                s.push_str(&pad);
            } else {
                s.push_str(&pad);
                s.push_str(cell);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &body {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The report in the asked format. CSV holds one view per block: a block is a `# view` line,
/// a header row and the rows, and blocks are separated by an empty line; with a single view
/// (`--view`) it is one plain CSV document with no comment line.
pub fn render(report: &Report, format: Format) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(report)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Table => {
            let mut out = String::new();
            for (i, (view, header, body)) in cells(report).into_iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                let _ = writeln!(out, "{} ({} rows)", view.name(), body.len());
                if body.is_empty() {
                    out.push_str("  (no rows)\n");
                } else {
                    out.push_str(&table(&header, &body));
                }
            }
            Ok(out)
        }
        Format::Csv => {
            let blocks = cells(report);
            let single = blocks.len() == 1;
            let mut out = String::new();
            for (i, (view, header, body)) in blocks.into_iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                if !single {
                    let _ = writeln!(out, "# {}", view.name());
                }
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(&header).map_err(|e| e.to_string())?;
                for row in &body {
                    w.write_record(row).map_err(|e| e.to_string())?;
                }
                let bytes = w.into_inner().map_err(|e| e.to_string())?;
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
            Ok(out)
        }
    }
}

/// After `demo`, in a folder with no config: the demo's database, said on stderr. Only when the
/// config is the default one (`default_config`, not named by `--config` or
/// `KWAISHOP_SYNC_CONFIG`) and missing.
pub fn demo_database(config: &std::path::Path, default_config: &str) -> Option<DatabaseUrl> {
    use super::demo::DEFAULT_DB;
    let unnamed = config == std::path::Path::new(default_config)
        && std::env::var_os("KWAISHOP_SYNC_CONFIG").is_none();
    if !unnamed || config.exists() || !std::path::Path::new(DEFAULT_DB).exists() {
        return None;
    }
    eprintln!(
        "no {default_config} here: reading the demo's database, {DEFAULT_DB} \
         (--db or --config reads another)"
    );
    Some(DatabaseUrl::Sqlite(DEFAULT_DB.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_is_exact() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(123_456), "1234.56");
        assert_eq!(yuan(-250), "-2.50");
    }

    #[test]
    fn days_are_checked() {
        assert_eq!(parse_day("2026-11-29").as_deref(), Ok("2026-11-29"));
        assert!(parse_day("2026-13-01").is_err());
        assert!(parse_day("29/11/2026").is_err());
    }

    #[test]
    fn tables_align_wide_characters() {
        let t = table(
            &["item_title", "units"],
            &[
                vec!["连衣裙".into(), "3".into()],
                vec!["shirt".into(), "12".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1].width(), lines[2].width(), "{t}");
        assert!(lines[1].ends_with(" 3"));
    }

    #[test]
    fn csv_quotes_commas_and_splits_views() {
        let report = Report {
            daily_sales: Some(vec![]),
            item_sales: Some(vec![ItemSales {
                shop_id: "s".into(),
                item_id: Some(1),
                sku_id: None,
                item_title: Some("a, \"b\"".into()),
                sku_desc: None,
                units: 2,
                revenue_fen: 199,
            }]),
            ..Report::default()
        };
        let out = render(&report, Format::Csv).expect("csv");
        assert!(out.starts_with("# daily_sales\n"), "{out}");
        assert!(out.contains("\n# item_sales\n"), "{out}");
        assert!(out.contains("s,1,,\"a, \"\"b\"\"\",,2,1.99\n"), "{out}");
    }
}
