//! Writing items and their SKUs: scan pages (which mark every listed item as seen), plain
//! upserts, and the soft deletes that follow a completed scan. Rows are never hard-deleted.

use std::collections::HashSet;

use super::batch::{Table, id_chunks, newest, record_fields};
use super::db::{MAX_BINDS, Tx, Val, placeholders};
use super::quarantine::{quarantine_in, release_in};
use super::state::{check_state, write_state};
use super::{PageOutcome, Source, Store, StoreError, Stream, StreamState};
use crate::api::records::{Item, Rejected, Sku};

record_fields! { ITEM_FIELDS, push_item_fields, Item {
    kwai_item_id, rel_item_id, user_id, title, category_id, category_name, price, volume,
    item_status, shelf_status, audit_status, item_type, from_type, main_image_url, link_url,
    create_time, update_time, raw,
} }

/// `items`: one row per item (`skus` are rows of their own).
pub(crate) const ITEMS: Table = Table {
    name: "items",
    fields: ITEM_FIELDS,
    extra: &["seen_scan", "deleted_at"],
    version: "update_time",
    // A push or detail write outside a scan must not forget which scan last listed the item.
    keep_when_null: &["seen_scan"],
};

/// One `items` row's values, in [`ITEMS`]' column order; a written row is live.
fn item_vals<'a>(
    shop_id: &'a str,
    item: &'a Item,
    source: Source,
    now_ms: i64,
    seen_scan: Option<i64>,
) -> Vec<Val<'a>> {
    let mut vals = Vec::with_capacity(ITEM_FIELDS.len() + 5);
    vals.push(shop_id.into());
    push_item_fields(item, &mut vals);
    vals.extend([source.as_str().into(), now_ms.into()]);
    vals.extend([seen_scan.into(), Val::Int(None)]);
    vals
}

record_fields! { SKU_FIELDS, push_sku_fields, Sku {
    kwai_sku_id, kwai_item_id, rel_sku_id, sku_nick, specification, image_url, sku_stock,
    reserve_stock, sku_sale_price, is_valid, create_time, update_time, raw,
} }

/// `skus`: one row per SKU, versioned by `version` (its own `update_time`, else its item's).
pub(crate) const SKUS: Table = Table {
    name: "skus",
    fields: SKU_FIELDS,
    extra: &["version", "deleted_at"],
    version: "version",
    keep_when_null: &[],
};

/// A SKU with the version its guard compares: its own `update_time`, else its item's.
type VersionedSku<'a> = (&'a Sku, i64);

/// One `skus` row's values, in [`SKUS`]' column order; a written row is live.
fn sku_vals<'a>(
    shop_id: &'a str,
    (sku, version): VersionedSku<'a>,
    source: Source,
    now_ms: i64,
) -> Vec<Val<'a>> {
    let mut vals = Vec::with_capacity(SKU_FIELDS.len() + 5);
    vals.push(shop_id.into());
    push_sku_fields(sku, &mut vals);
    vals.extend([source.as_str().into(), now_ms.into()]);
    vals.extend([version.into(), Val::Int(None)]);
    vals
}

/// Which scan the written items count as seen in.
#[derive(Clone, Copy)]
pub(crate) enum Seen {
    /// A page of the full scan `scan_id`: every listed item is seen, written or not.
    Scan(i64),
    /// A push or detail write: written items count as seen by the scan in progress (if any),
    /// so a scan that passed their page before they existed does not delete them.
    CurrentScan,
}

/// Upserts items and, for each item actually written, its SKUs; inside `tx`.
pub(crate) async fn write_items(
    tx: &mut Tx,
    shop_id: &str,
    items: &[Item],
    source: Source,
    seen: Seen,
    now_ms: i64,
) -> Result<PageOutcome, StoreError> {
    let received = items.len() + items.iter().map(|i| i.skus.len()).sum::<usize>();
    let items = newest(items, |i| i.kwai_item_id, |i| i.update_time);
    let ids: Vec<i64> = items.iter().map(|i| i.kwai_item_id).collect();
    let was_deleted = deleted_among(tx, shop_id, &ids).await?;
    let seen_scan = match seen {
        Seen::Scan(scan_id) => Some(scan_id),
        Seen::CurrentScan => current_scan(tx, shop_id).await?,
    };
    let rows = items
        .iter()
        .map(|i| item_vals(shop_id, i, source, now_ms, seen_scan))
        .collect();
    let written: HashSet<i64> = ITEMS
        .upsert(tx, "writing items", rows)
        .await?
        .into_iter()
        .collect();
    // Listed again (or returned by a detail): the item is live, whatever its version.
    match seen {
        Seen::Scan(scan_id) => mark_seen(tx, shop_id, &ids, Some(scan_id)).await?,
        Seen::CurrentScan => mark_seen(tx, shop_id, &was_deleted, None).await?,
    }

    let fresh: Vec<&Item> = items
        .iter()
        .copied()
        .filter(|i| written.contains(&i.kwai_item_id))
        .collect();
    let sku_rows = sku_batch(shop_id, &fresh, source, now_ms);
    let skus_written = SKUS.upsert(tx, "writing skus", sku_rows).await?.len();
    drop_unlisted_skus(tx, shop_id, &fresh, now_ms).await?;
    let back: Vec<i64> = items
        .iter()
        .filter(|i| written.contains(&i.kwai_item_id) || was_deleted.contains(&i.kwai_item_id))
        .filter(|i| !i.is_deleted())
        .flat_map(|i| i.skus.iter().map(|s| s.kwai_sku_id))
        .collect();
    undelete_skus(tx, shop_id, &back).await?;
    // An item whose own status says deleted (by the seller or the platform) is kept, and
    // soft-deleted like one that is gone.
    for item in items.iter().filter(|i| i.is_deleted()) {
        delete_item_in(tx, shop_id, item.kwai_item_id, now_ms).await?;
    }
    Ok(PageOutcome {
        received,
        written: (written.len() + skus_written) as u64,
    })
}

/// The rows of the SKUs of `items`, newest per SKU id. A plain function for the same reason
/// as `records::order_batch`: no closure-typed iterator may live in the `async fn`.
fn sku_batch<'a>(
    shop_id: &'a str,
    items: &[&'a Item],
    source: Source,
    now_ms: i64,
) -> Vec<Vec<Val<'a>>> {
    let skus = items.iter().flat_map(|i| {
        i.skus
            .iter()
            .map(|s| (s, s.update_time.unwrap_or(i.update_time)))
    });
    newest(skus, |s| s.0.kwai_sku_id, |s| s.1)
        .into_iter()
        .map(|s| sku_vals(shop_id, s, source, now_ms))
        .collect()
}

/// The ids among `ids` of items that are soft-deleted now.
async fn deleted_among(tx: &mut Tx, shop_id: &str, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
    let mut deleted = Vec::new();
    for chunk in id_chunks(ids, 1) {
        let sql = format!(
            "SELECT kwai_item_id FROM items WHERE shop_id = $1 AND deleted_at IS NOT NULL \
             AND kwai_item_id IN ({})",
            placeholders(2, chunk.len())
        );
        let vals: Vec<Val> = std::iter::once(shop_id.into())
            .chain(chunk.iter().map(|&id| id.into()))
            .collect();
        let rows: Vec<(i64,)> = tx.fetch_all("reading deleted items", sql, &vals).await?;
        deleted.extend(rows.into_iter().map(|r| r.0));
    }
    Ok(deleted)
}

/// The item scan in progress for the shop, from its stream state.
async fn current_scan(tx: &mut Tx, shop_id: &str) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "SELECT scan_id FROM sync_state WHERE shop_id = $1 AND stream = 'items'";
    let rows: Vec<(Option<i64>,)> = tx
        .fetch_all("reading the item scan", SQL, &[shop_id.into()])
        .await?;
    Ok(rows.first().and_then(|r| r.0))
}

/// Clears `deleted_at` of the items (and sets `seen_scan`, when given).
async fn mark_seen(
    tx: &mut Tx,
    shop_id: &str,
    ids: &[i64],
    scan_id: Option<i64>,
) -> Result<(), StoreError> {
    for chunk in id_chunks(ids, 2) {
        let sql = format!(
            "UPDATE items SET deleted_at = NULL, seen_scan = COALESCE($1, seen_scan) \
             WHERE shop_id = $2 AND kwai_item_id IN ({})",
            placeholders(3, chunk.len())
        );
        let vals: Vec<Val> = [scan_id.into(), shop_id.into()]
            .into_iter()
            .chain(chunk.iter().map(|&id| id.into()))
            .collect();
        tx.execute("marking items seen", sql, &vals).await?;
    }
    Ok(())
}

/// Soft-deletes the SKUs of these (just written) items that their `skuList` no longer has.
async fn drop_unlisted_skus(
    tx: &mut Tx,
    shop_id: &str,
    items: &[&Item],
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut start = 0;
    while start < items.len() {
        // As many items as fit one statement with their SKU ids (at least one item).
        let mut end = start;
        let mut binds = 2;
        while end < items.len() && (end == start || binds + 1 + items[end].skus.len() <= MAX_BINDS)
        {
            binds += 1 + items[end].skus.len();
            end += 1;
        }
        let group = &items[start..end];
        start = end;
        let item_ids: Vec<i64> = group.iter().map(|i| i.kwai_item_id).collect();
        let sku_ids: Vec<i64> = group
            .iter()
            .flat_map(|i| i.skus.iter().map(|s| s.kwai_sku_id))
            .collect();
        let mut sql = format!(
            "UPDATE skus SET deleted_at = $1 WHERE shop_id = $2 AND deleted_at IS NULL \
             AND kwai_item_id IN ({})",
            placeholders(3, item_ids.len())
        );
        if !sku_ids.is_empty() {
            let from = 3 + item_ids.len();
            sql += &format!(
                " AND kwai_sku_id NOT IN ({})",
                placeholders(from, sku_ids.len())
            );
        }
        let vals: Vec<Val> = [now_ms.into(), shop_id.into()]
            .into_iter()
            .chain(item_ids.iter().chain(&sku_ids).map(|&id| id.into()))
            .collect();
        tx.execute("deleting unlisted skus", sql, &vals).await?;
    }
    Ok(())
}

/// Clears `deleted_at` of these SKUs (listed again under a live item).
async fn undelete_skus(tx: &mut Tx, shop_id: &str, sku_ids: &[i64]) -> Result<(), StoreError> {
    for chunk in id_chunks(sku_ids, 1) {
        let sql = format!(
            "UPDATE skus SET deleted_at = NULL WHERE shop_id = $1 AND deleted_at IS NOT NULL \
             AND kwai_sku_id IN ({})",
            placeholders(2, chunk.len())
        );
        let vals: Vec<Val> = std::iter::once(shop_id.into())
            .chain(chunk.iter().map(|&id| id.into()))
            .collect();
        tx.execute("restoring skus", sql, &vals).await?;
    }
    Ok(())
}

/// Soft-deletes one item and its SKUs inside `tx`; returns whether a live item was deleted.
pub(crate) async fn delete_item_in(
    tx: &mut Tx,
    shop_id: &str,
    kwai_item_id: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    const SKUS_SQL: &str = "UPDATE skus SET deleted_at = $3 WHERE shop_id = $1 \
         AND kwai_item_id = $2 AND deleted_at IS NULL";
    const ITEM_SQL: &str = "UPDATE items SET deleted_at = $3 WHERE shop_id = $1 \
         AND kwai_item_id = $2 AND deleted_at IS NULL";
    let op = "deleting an item";
    let vals = [shop_id.into(), kwai_item_id.into(), now_ms.into()];
    tx.execute(op, SKUS_SQL, &vals).await?;
    let deleted = tx.execute(op, ITEM_SQL, &vals).await?;
    Ok(deleted > 0)
}

impl Store {
    /// Upserts a page of the full item scan `scan_id` and saves the stream state, in one
    /// transaction (I3). Every item on the page is marked seen in the scan and live again,
    /// even when its stored version is newer; SKUs are written only for items actually written.
    pub async fn commit_item_page(
        &self,
        shop_id: &str,
        items: &[Item],
        scan_id: i64,
        state: &StreamState,
        now_ms: i64,
        rejected: &[Rejected],
    ) -> Result<PageOutcome, StoreError> {
        check_state(state, shop_id, Stream::Items)?;
        let op = "committing an item page";
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, shop_id, Stream::Items).await?;
        let seen = Seen::Scan(scan_id);
        let outcome = write_items(&mut tx, shop_id, items, Source::Poll, seen, now_ms).await?;
        quarantine_in(&mut tx, shop_id, Stream::Items, rejected, now_ms).await?;
        let ids = items.iter().map(|i| i.kwai_item_id);
        release_in(&mut tx, shop_id, Stream::Items, ids).await?;
        // A quarantined item is still listed: its last good version is seen by the scan, not
        // taken for deleted at its end.
        const SEEN: &str =
            "UPDATE items SET seen_scan = $2 WHERE shop_id = $1 AND kwai_item_id = $3";
        for id in rejected.iter().filter(|r| r.has_id) {
            if let Ok(id) = id.key.parse::<i64>() {
                let vals = [Val::from(shop_id), Val::from(scan_id), Val::from(id)];
                tx.execute(op, SEEN, &vals).await?;
            }
        }
        write_state(&mut tx, state, now_ms).await?;
        tx.commit(op).await?;
        Ok(outcome)
    }

    /// Upserts items (push, detail) without touching the stream state. Written items count as
    /// seen by the scan in progress, and any listed item that was soft-deleted is live again.
    pub async fn upsert_items(
        &self,
        shop_id: &str,
        items: &[Item],
        source: Source,
        now_ms: i64,
    ) -> Result<PageOutcome, StoreError> {
        let op = "upserting items";
        let mut tx = self.pool.write_tx(op).await?;
        let seen = Seen::CurrentScan;
        let outcome = write_items(&mut tx, shop_id, items, source, seen, now_ms).await?;
        tx.commit(op).await?;
        Ok(outcome)
    }

    /// Ids of the shop's live items that the scan `scan_id` has not listed (yet), by id.
    pub async fn unseen_items(&self, shop_id: &str, scan_id: i64) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT kwai_item_id FROM items WHERE shop_id = $1 \
             AND deleted_at IS NULL AND (seen_scan IS NULL OR seen_scan <> $2) \
             ORDER BY kwai_item_id";
        let rows: Vec<(i64,)> = self
            .pool
            .fetch_all(
                "listing unseen items",
                SQL,
                &[shop_id.into(), scan_id.into()],
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Ends a completed scan: in one transaction with the state, every live item of the shop
    /// that the scan did not list (and its SKUs) gets `deleted_at = now_ms`. Returns how many
    /// items. Call it only after a scan that read every page without error.
    pub async fn finish_item_scan(
        &self,
        shop_id: &str,
        scan_id: i64,
        state: &StreamState,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        const SKUS_SQL: &str = "UPDATE skus SET deleted_at = $3 WHERE shop_id = $1 \
             AND deleted_at IS NULL AND kwai_item_id IN (SELECT kwai_item_id FROM items \
             WHERE shop_id = $1 AND deleted_at IS NULL \
             AND (seen_scan IS NULL OR seen_scan <> $2))";
        const ITEMS_SQL: &str = "UPDATE items SET deleted_at = $3 WHERE shop_id = $1 \
             AND deleted_at IS NULL AND (seen_scan IS NULL OR seen_scan <> $2)";
        check_state(state, shop_id, Stream::Items)?;
        let op = "finishing an item scan";
        let vals = [shop_id.into(), scan_id.into(), now_ms.into()];
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, shop_id, Stream::Items).await?;
        tx.execute(op, SKUS_SQL, &vals).await?;
        let deleted = tx.execute(op, ITEMS_SQL, &vals).await?;
        write_state(&mut tx, state, now_ms).await?;
        tx.commit(op).await?;
        Ok(deleted)
    }

    /// Soft-deletes one item and its SKUs (a push said it is gone). Returns whether a live
    /// item was deleted.
    pub async fn delete_item(
        &self,
        shop_id: &str,
        kwai_item_id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let op = "deleting an item";
        let mut tx = self.pool.write_tx(op).await?;
        let deleted = delete_item_in(&mut tx, shop_id, kwai_item_id, now_ms).await?;
        tx.commit(op).await?;
        Ok(deleted)
    }
}
