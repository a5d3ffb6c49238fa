//! `kwaishop-sync status`: per shop and stream, the checkpoint, lag, rows, last success and
//! last error — the status page's report
//! ([`crate::daemon::observe::status::StatusReport`]), read from the database whether or not
//! the daemon runs, as a table or as the page's JSON.

use std::sync::Arc;

use super::{ConfigArg, DEFAULT_CONFIG};
use crate::app::clock_for;
use crate::clock::{format_ms, human_span};
use crate::daemon::observe::ObserveSources;
use crate::daemon::observe::status::{StatusReport, StreamView, read_status};
use crate::store::{DatabaseUrl, Store};
use crate::sync::StallLimits;

/// What `status` is told.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the status page's JSON (`/status.json`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the status of every (shop, stream) the database knows; fails when a read failed.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let sources = match super::report::demo_database(&args.config.config, DEFAULT_CONFIG) {
        Some(url) => demo_sources(&url).await?,
        None => {
            let (config, store) = args.config.open_store().await?;
            ObserveSources::database(
                store,
                clock_for(&config),
                config.limits.daily_quota,
                StallLimits::from_config(&config),
            )
        }
    };
    let report = read_status(&sources).await;
    sources.store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.shops.is_empty() && report.failed_reads == 0 {
        println!("no shops in the database yet: run `kwaishop-sync sync --once` first");
    } else {
        print!("{}", render(&report));
    }
    anyhow::ensure!(
        report.failed_reads == 0,
        "{} read(s) of the database failed: the figures above are incomplete",
        report.failed_reads
    );
    Ok(())
}

/// The status report of `app`'s database, on its clock and with its config's stall limits.
pub async fn report_of(app: &crate::app::App) -> StatusReport {
    let sources = ObserveSources::database(
        app.store.for_reading(),
        app.clock.clone(),
        app.config.limits.daily_quota,
        StallLimits::from_config(&app.config),
    );
    read_status(&sources).await
}

/// The demo's database, read at the instant its world stopped, with the default settings the
/// demo runs with.
async fn demo_sources(url: &DatabaseUrl) -> anyhow::Result<ObserveSources> {
    let store = Store::open(url).await?;
    store.migrate().await?;
    let stopped = url
        .sqlite_file()
        .and_then(super::demo::world_stopped_at)
        .unwrap_or_else(crate::clock::wall_ms);
    Ok(ObserveSources::database(
        store,
        Arc::new(kwaishop_sim::ScaledClock::stopped_at(stopped)),
        None,
        StallLimits::defaults(),
    ))
}

/// The report as a table for a terminal: a line per (shop, stream), then what needs a look.
pub fn render(report: &StatusReport) -> String {
    let mut out = format!(
        "{:<14} {:<12} {:<8} {:<24} {:>10} {:>9} {:<24}\n",
        "shop", "state", "stream", "checkpoint", "lag", "rows", "last success"
    );
    for shop in &report.shops {
        for s in &shop.streams {
            out.push_str(&format!(
                "{:<14} {:<12} {:<8} {:<24} {:>10} {:>9} {:<24}\n",
                shop.shop_id,
                shop.status,
                s.stream,
                s.checkpoint_ms
                    .map(format_ms)
                    .unwrap_or_else(|| "never".into()),
                s.lag_ms.map(human_span).unwrap_or_else(|| "-".into()),
                s.rows.map_or_else(|| "-".into(), |n| n.to_string()),
                s.last_success_ms
                    .map(format_ms)
                    .unwrap_or_else(|| "-".into()),
            ));
            notes(&mut out, &shop.shop_id, s);
        }
    }
    if report.failed_reads > 0 {
        out.push_str(&format!(
            "{} read(s) of the database failed: the figures above are incomplete\n",
            report.failed_reads
        ));
    }
    out
}

/// What needs a look in one stream: a pause, a stall, quarantined records, the last error.
fn notes(out: &mut String, shop: &str, s: &StreamView) {
    if let Some(until) = s.paused_until_ms {
        out.push_str(&format!(
            "    paused: daily quota spent until {}\n",
            format_ms(until)
        ));
    }
    if let Some(behind) = s.stalled_behind_ms {
        out.push_str(&format!(
            "    STALLED: its runs end caught up while the checkpoint stays {} behind \
             (check window_minutes against lookback_secs, and the logs)\n",
            human_span(behind)
        ));
    }
    if s.quarantined > 0 {
        out.push_str(&format!(
            "    {} record(s) in quarantine: `kwaishop-sync quarantine ls --shop {shop}`\n",
            s.quarantined
        ));
    }
    match (&s.last_error, s.failures_in_row) {
        (Some(e), n) if n > 1 => out.push_str(&format!("    last error, {n} runs in a row: {e}\n")),
        (Some(e), _) => out.push_str(&format!("    last error: {e}\n")),
        (None, _) => {}
    }
}
