//! `kwaishop-sync status`: per shop and stream, the checkpoint, lag, last run, rows and last
//! error, read from the database whether or not the daemon runs.

use super::ConfigArg;
use crate::clock::format_ms;
use crate::store::{Store, StoreError, Stream};
use crate::sync::StallLimits;

/// What `status` is told.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the status of every (shop, stream) the database knows.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let (config, store) = args.config.open_store().await?;
    let clock = crate::app::clock_for(&config);
    let stalls = StallLimits::from_config(&config);
    let lines = status_lines(&store, clock.now_ms(), &stalls).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
    } else if lines.is_empty() {
        println!("no shops in the database yet: run `kwaishop-sync sync --once` first");
    } else {
        print!("{}", render(&lines));
    }
    Ok(())
}

/// One line of the status table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusLine {
    pub shop_id: String,
    pub shop_status: String,
    pub stream: String,
    pub checkpoint_ms: Option<i64>,
    pub lag_ms: Option<i64>,
    pub last_run_ms: Option<i64>,
    pub last_outcome: Option<String>,
    pub rows: i64,
    pub paused_until_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Runs in a row that ended with `last_error`.
    pub failures_in_row: i64,
    /// Set when the stream is stalled: how far behind its checkpoint was when its last run
    /// ended "caught up" ([`StallLimits`]).
    pub stalled_behind_ms: Option<i64>,
    /// Records of the stream in quarantine (`kwaishop-sync quarantine ls`).
    pub quarantined: i64,
}

/// The status of every (shop, stream) known to the database.
pub async fn status_lines(
    store: &Store,
    now_ms: i64,
    stalls: &StallLimits,
) -> Result<Vec<StatusLine>, StoreError> {
    let shops = store.shops().await?;
    let states = store.all_states().await?;
    let runs = store.recent_runs(None, 1000).await?;
    let quarantine = store.quarantine_counts().await?;
    let counted = store.row_counts().await?;
    let counts: std::collections::HashMap<(&str, &str), i64> = counted
        .iter()
        .map(|(shop, table, n)| ((shop.as_str(), *table), *n))
        .collect();
    let mut lines = Vec::new();
    for shop in &shops {
        for stream in Stream::ALL {
            let state = states
                .iter()
                .find(|s| s.shop_id == shop.shop_id && s.stream == stream);
            let run = runs
                .iter()
                .find(|r| r.shop_id == shop.shop_id && r.stream == stream.as_str());
            let table = stream.as_str();
            let rows = counts
                .get(&(shop.shop_id.as_str(), table))
                .copied()
                .unwrap_or(0);
            // The stream's own pause or the shop's quota pause, whichever lasts longer.
            let paused = [
                state.and_then(|s| s.paused_until_ms),
                shop.quota_paused_until,
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t > now_ms)
            .max();
            lines.push(StatusLine {
                shop_id: shop.shop_id.clone(),
                shop_status: shop.status.as_str().to_string(),
                stream: stream.as_str().to_string(),
                checkpoint_ms: state.and_then(|s| s.checkpoint_ms),
                lag_ms: state
                    .and_then(|s| s.checkpoint_ms)
                    .map(|c| (now_ms - c).max(0)),
                last_run_ms: run.map(|r| r.finished_at_ms.unwrap_or(r.started_at_ms)),
                last_outcome: run.and_then(|r| r.outcome.clone()),
                rows,
                paused_until_ms: paused,
                last_error: state.and_then(|s| s.last_error.clone()),
                failures_in_row: state.map_or(0, |s| s.failures_in_row),
                stalled_behind_ms: state.and_then(|s| stalls.stalled_by(s)),
                quarantined: quarantine
                    .iter()
                    .find(|(s, st, _)| *s == shop.shop_id && *st == stream)
                    .map_or(0, |q| q.2),
            });
        }
    }
    Ok(lines)
}

/// The status as a table for a terminal.
pub fn render(lines: &[StatusLine]) -> String {
    let mut out = format!(
        "{:<14} {:<12} {:<8} {:<24} {:>10} {:>9} {:<24} {:<12}\n",
        "shop", "state", "stream", "checkpoint", "lag", "rows", "last run", "outcome"
    );
    for l in lines {
        out.push_str(&format!(
            "{:<14} {:<12} {:<8} {:<24} {:>10} {:>9} {:<24} {:<12}\n",
            l.shop_id,
            l.shop_status,
            l.stream,
            l.checkpoint_ms
                .map(format_ms)
                .unwrap_or_else(|| "never".into()),
            l.lag_ms
                .map(crate::clock::human_span)
                .unwrap_or_else(|| "-".into()),
            l.rows,
            l.last_run_ms.map(format_ms).unwrap_or_else(|| "-".into()),
            l.last_outcome.clone().unwrap_or_else(|| "-".into()),
        ));
        if let Some(until) = l.paused_until_ms {
            out.push_str(&format!(
                "    paused: daily quota spent until {}\n",
                format_ms(until)
            ));
        }
        if let Some(behind) = l.stalled_behind_ms {
            out.push_str(&format!(
                "    STALLED: its runs end caught up while the checkpoint stays {} behind \
                 (check window_minutes against lookback_secs, and the logs)\n",
                crate::clock::human_span(behind)
            ));
        }
        if l.quarantined > 0 {
            out.push_str(&format!(
                "    {} record(s) in quarantine: `kwaishop-sync quarantine ls --shop {}`\n",
                l.quarantined, l.shop_id
            ));
        }
        match (&l.last_error, l.failures_in_row) {
            (Some(e), n) if n > 1 => {
                out.push_str(&format!("    last error, {n} runs in a row: {e}\n"));
            }
            (Some(e), _) => out.push_str(&format!("    last error: {e}\n")),
            (None, _) => {}
        }
    }
    out
}
