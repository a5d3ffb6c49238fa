//! `kwaishop-sync queue …`: look at the push queue, re-queue dead events, purge done ones.

use std::time::Duration;

use super::ConfigArg;
use crate::clock::format_ms;
use crate::store::{EventRow, EventStatus};

/// `queue`'s subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum QueueCommand {
    /// List the newest events (all statuses, or one).
    Ls {
        #[command(flatten)]
        config: ConfigArg,
        /// Only events with this status: pending, running, done, dead, unknown_shop.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// List dead events with their last error.
    Dead {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put a dead (or unknown-shop) event back in the queue.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        /// The event's id (first column of `queue ls`).
        id: i64,
        /// For an unknown-shop event: the shop it belongs to.
        #[arg(long)]
        shop: Option<String>,
    },
    /// Remove done events older than a duration (e.g. 7d, 12h).
    Purge {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_name = "DURATION")]
        done_older_than: String,
    },
}

/// Runs a `queue` subcommand.
pub async fn run(cmd: QueueCommand) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::Ls {
            config,
            status,
            limit,
        } => {
            let (_, store) = config.open_store().await?;
            let status = status
                .as_deref()
                .map(parse_status)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let stats = store.queue_stats().await?;
            println!(
                "pending {}, running {}, done {}, dead {}, unknown shop {}",
                stats.pending, stats.running, stats.done, stats.dead, stats.unknown_shop
            );
            print!("{}", render(&store.list_events(status, limit).await?));
        }
        QueueCommand::Dead { config, limit } => {
            let (_, store) = config.open_store().await?;
            print!(
                "{}",
                render(
                    &store
                        .list_events(Some(crate::store::EventStatus::Dead), limit)
                        .await?
                )
            );
        }
        QueueCommand::Retry { config, id, shop } => {
            let (config, store) = config.open_store().await?;
            if let Some(s) = &shop {
                config.configured_shop(s)?;
            }
            let now = crate::app::clock_for(&config).now_ms();
            anyhow::ensure!(
                store.retry_event(id, shop.as_deref(), now).await?,
                "no dead or unknown-shop event {id}"
            );
            println!("event {id} is queued again");
        }
        QueueCommand::Purge {
            config,
            done_older_than,
        } => {
            let (config, store) = config.open_store().await?;
            let age = parse_duration(&done_older_than).map_err(anyhow::Error::msg)?;
            let now = crate::app::clock_for(&config).now_ms();
            let n = store
                .purge_done_events(now - age.as_millis() as i64)
                .await?;
            println!("removed {n} done event(s)");
        }
    }
    Ok(())
}

/// Parses `30s`, `15m`, `12h`, `7d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 15m, 12h or 7d"))?;
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// A table of events.
pub fn render(events: &[EventRow]) -> String {
    let mut out = format!(
        "{:>8} {:<14} {:<12} {:<34} {:>18} {:>8} {:<24} {}\n",
        "id", "status", "shop", "event", "record", "tries", "received", "last error"
    );
    for e in events {
        out.push_str(&format!(
            "{:>8} {:<14} {:<12} {:<34} {:>18} {:>8} {:<24} {}\n",
            e.id,
            e.status.as_str(),
            e.shop_id.as_deref().unwrap_or("?"),
            e.event,
            e.biz_id.map(|b| b.to_string()).unwrap_or_default(),
            e.attempts,
            format_ms(e.received_at_ms),
            e.last_error.as_deref().unwrap_or(""),
        ));
    }
    out
}

/// The status word a user types.
pub fn parse_status(s: &str) -> Result<EventStatus, String> {
    s.parse()
        .map_err(|_| format!("{s:?}: expected pending, running, done, dead or unknown_shop"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert!(parse_duration("7 days").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(
            parse_duration("999999999999999999d").is_err(),
            "overflows a u64 of seconds"
        );
    }
}
