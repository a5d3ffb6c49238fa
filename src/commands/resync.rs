//! `kwaishop-sync resync`: asks (durably) for a range to be re-read, and wakes the daemon
//! running here, if any; without one, the next `run` or `sync --once` does it.

use crate::app::App;
use crate::clock::{BEIJING_OFFSET_MS, format_ms};
use crate::store::ResyncKind;
use crate::sync::HORIZON_MS;

use super::{ConfigArg, StreamArg, streams};

/// What `resync` is told.
#[derive(clap::Args, Debug)]
pub struct ResyncArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this shop.
    #[arg(long)]
    pub shop: Option<String>,
    /// Only this stream.
    #[arg(long, value_enum)]
    pub stream: Option<StreamArg>,
    /// From this date (YYYY-MM-DD, Beijing time) or instant (RFC 3339); default and limit: the
    /// platform's 90 days.
    #[arg(long)]
    pub since: Option<String>,
}

/// A date (Beijing midnight) or an RFC 3339 instant, as epoch ms.
pub fn parse_since(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("--since {text:?}: expected YYYY-MM-DD or an RFC 3339 time")
    })?;
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or(0);
    Ok(midnight - BEIJING_OFFSET_MS)
}

/// Requests the resyncs and wakes the daemon.
pub async fn run(args: ResyncArgs) -> anyhow::Result<()> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let app = App::open(args.config.load()?).await?;
    let shops = app.shops(args.shop.as_deref())?;
    let horizon = app.clock.now_ms() - HORIZON_MS;
    if since.is_some_and(|s| s < horizon) {
        eprintln!(
            "note: the platform keeps 90 days; the resync starts at {}",
            format_ms(horizon)
        );
    }
    let cx = app.sync_context();
    for shop in &shops {
        for stream in streams(args.stream) {
            let (id, merged) = cx
                .request_resync(shop, stream, ResyncKind::Resync, since)
                .await?;
            println!(
                "{shop} {}: resync #{id} {}",
                stream.as_str(),
                if merged {
                    "(merged into the waiting one)"
                } else {
                    "requested"
                }
            );
        }
    }
    match crate::daemon::wake_daemon(&app.config.daemon.state_dir) {
        Some(pid) => println!("woke the running daemon (pid {pid})"),
        None => println!(
            "no daemon is running here: the next `kwaishop-sync run` or `sync --once` does it"
        ),
    }
    Ok(())
}
