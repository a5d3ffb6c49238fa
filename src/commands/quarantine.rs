//! `kwaishop-sync quarantine ls|retry|drop`: the records a poller set aside because they could
//! not be read or stored. `retry` fetches each again by id (the order, refund or item detail)
//! and stores it; one still unreadable stays, with its new error.

use super::{ConfigArg, StreamArg};
use crate::api::records::Rejected;
use crate::app::App;
use crate::clock::format_ms;
use crate::daemon::instance::Presence;
use crate::store::{QuarantineRow, Source, Store, StoreError, Stream};

/// `quarantine`'s subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum QuarantineCommand {
    /// List the quarantined records with their errors (the JSON of each with --json).
    Ls {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this shop's.
        #[arg(long)]
        shop: Option<String>,
        /// Everything, raw JSON included, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch quarantined records again by id and store them; those still unreadable stay.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this shop's.
        #[arg(long)]
        shop: Option<String>,
        /// Only these keys (second column of `quarantine ls`); all when none.
        keys: Vec<String>,
    },
    /// Remove a record from quarantine without storing it (one whose id cannot be read, after
    /// a resync of its range).
    Drop {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        shop: String,
        #[arg(long, value_enum)]
        stream: StreamArg,
        key: String,
    },
}

/// Runs a `quarantine` subcommand.
pub async fn run(cmd: QuarantineCommand) -> anyhow::Result<()> {
    match cmd {
        QuarantineCommand::Ls { config, shop, json } => {
            let (_, store) = config.open_store().await?;
            let rows = store.quarantined(shop.as_deref()).await?;
            if json {
                let list: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "shop": r.shop_id, "stream": r.stream.as_str(), "key": r.record_key,
                            "has_id": r.has_id, "error": r.error, "raw": r.raw,
                            "first_seen_ms": r.first_seen_ms, "last_seen_ms": r.last_seen_ms,
                            "times_seen": r.times_seen,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", render(&rows));
            }
        }
        QuarantineCommand::Retry { config, shop, keys } => {
            let (app, presence) = Presence::open(config.load()?, "quarantine retry").await?;
            let rows: Vec<_> = app
                .store
                .quarantined(shop.as_deref())
                .await?
                .into_iter()
                .filter(|r| keys.is_empty() || keys.contains(&r.record_key))
                .collect();
            let (mut stored, mut kept) = (0, 0);
            for row in &rows {
                let what = format!("{} {} {}", row.shop_id, row.stream.as_str(), row.record_key);
                match retry_one(&app, row).await {
                    Ok(RetryOutcome::Stored) => {
                        stored += 1;
                        println!("{what}: stored");
                    }
                    Ok(RetryOutcome::Gone) => {
                        stored += 1;
                        println!("{what}: the platform no longer lists it; removed");
                    }
                    Ok(RetryOutcome::Kept(why)) => {
                        kept += 1;
                        println!("{what}: still in quarantine: {why}");
                    }
                    Err(e) => {
                        kept += 1;
                        println!("{what}: not retried: {e}");
                    }
                }
            }
            app.finish_calls().await;
            presence.leave().await;
            println!("{stored} out of quarantine, {kept} still in it");
            anyhow::ensure!(kept == 0, "{kept} record(s) still in quarantine");
        }
        QuarantineCommand::Drop {
            config,
            shop,
            stream,
            key,
        } => {
            let (_, store) = config.open_store().await?;
            let stream: Stream = stream.into();
            anyhow::ensure!(
                store.release_quarantined(&shop, stream, &key).await?,
                "no record {key} of {shop} {} in quarantine",
                stream.as_str()
            );
            println!("{shop} {} {key}: removed from quarantine", stream.as_str());
        }
    }
    Ok(())
}

/// What a retry did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Fetched, stored, and out of quarantine.
    Stored,
    /// The platform no longer has it: out of quarantine.
    Gone,
    /// Still in quarantine, with why.
    Kept(String),
}

/// The quarantine as a table for a terminal.
pub fn render(rows: &[QuarantineRow]) -> String {
    if rows.is_empty() {
        return "the quarantine is empty\n".into();
    }
    let mut out = format!(
        "{:<14} {:<8} {:<22} {:>5} {:<24} {}\n",
        "shop", "stream", "key", "seen", "last seen", "error"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<14} {:<8} {:<22} {:>5} {:<24} {}\n",
            r.shop_id,
            r.stream.as_str(),
            r.record_key,
            r.times_seen,
            format_ms(r.last_seen_ms),
            r.error
        ));
    }
    out
}

/// Fetches one quarantined record again by its id and stores it.
pub async fn retry_one(app: &App, row: &QuarantineRow) -> Result<RetryOutcome, StoreError> {
    let store = &app.store;
    let Some(id) = row
        .has_id
        .then(|| row.record_key.parse::<i64>().ok())
        .flatten()
    else {
        return Ok(RetryOutcome::Kept(format!(
            "its id could not be read, so it cannot be fetched alone: `kwaishop-sync resync \
             --shop {} --stream {}` re-reads its range (then `quarantine drop {}`)",
            row.shop_id,
            row.stream.as_str(),
            row.record_key
        )));
    };
    let (shop, client, now) = (&row.shop_id, &app.client, app.clock.now_ms());
    let fetched = match row.stream {
        Stream::Orders => match client.order_detail(shop, id).await {
            Ok(order) => store
                .upsert_orders(shop, std::slice::from_ref(&order), Source::Detail, now)
                .await
                .map(|_| Some(())),
            Err(e) => return kept(store, row, id, e.to_string(), now).await,
        },
        Stream::Refunds => match client.refund_detail(shop, id).await {
            Ok(refund) => store
                .upsert_refunds(shop, std::slice::from_ref(&refund), Source::Detail, now)
                .await
                .map(|_| Some(())),
            Err(e) => return kept(store, row, id, e.to_string(), now).await,
        },
        Stream::Items => match client.item(shop, id).await {
            Ok(Some(item)) => store
                .upsert_items(shop, std::slice::from_ref(&item), Source::Detail, now)
                .await
                .map(|_| Some(())),
            Ok(None) => Ok(None),
            Err(e) => return kept(store, row, id, e.to_string(), now).await,
        },
    };
    match fetched {
        Ok(found) => {
            store
                .release_quarantined(shop, row.stream, &row.record_key)
                .await?;
            Ok(if found.is_some() {
                RetryOutcome::Stored
            } else {
                RetryOutcome::Gone
            })
        }
        Err(e) if !e.is_transient() => {
            kept(store, row, id, format!("the database refused it: {e}"), now).await
        }
        Err(e) => Err(e),
    }
}

/// Records the retry's failure on the quarantined row and says why it stays.
async fn kept(
    store: &Store,
    row: &QuarantineRow,
    id: i64,
    error: String,
    now: i64,
) -> Result<RetryOutcome, StoreError> {
    let again = Rejected {
        key: id.to_string(),
        has_id: true,
        raw: row.raw.clone(),
        error: error.clone(),
    };
    store
        .quarantine(&row.shop_id, row.stream, &[again], now)
        .await?;
    Ok(RetryOutcome::Kept(error))
}
