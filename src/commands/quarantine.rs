//! `kwaishop-sync quarantine ls|retry|drop`: the records a poller set aside because they could
//! not be read or stored. `retry` fetches each again by id (the order, refund or item detail)
//! and stores it; one still unreadable stays, with its new error.

use crate::api::records::Rejected;
use crate::app::App;
use crate::clock::format_ms;
use crate::store::{QuarantineRow, Source, Store, StoreError, Stream};

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
