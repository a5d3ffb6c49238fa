//! Writing orders (gift sub-orders as rows of their own) and refunds: page commits that carry
//! the stream state in the same transaction (I3), and plain upserts for the push worker.

use super::batch::{Table, newest, record_fields};
use super::db::{Tx, Val};
use super::quarantine::{quarantine_in, release_in};
use super::state::{check_state, write_state};
use super::{PageOutcome, Source, Store, StoreError, Stream, StreamState};
use crate::api::records::{Order, Refund, Rejected};

record_fields! { ORDER_FIELDS, push_order_fields, Order {
    oid, parent_oid, sub_order_type, status, create_time, update_time, pay_time, send_time,
    recv_time, refund_time, total_fee, discount_fee, express_fee, buyer_open_id, buyer_nick,
    seller_open_id, seller_nick, remark, pay_type, pay_channel, cps_type, pre_sale, co_type,
    comment_status, risk_code, activity_types, item_id, rel_item_id, sku_id, rel_sku_id,
    item_title, sku_desc, sku_nick, item_pic_url, num, original_price, price,
    item_discount_fee, category_id, category_name, province, city, district, town,
    masked_consignee, masked_mobile, masked_address, encrypted_consignee, encrypted_mobile,
    encrypted_address, express_no, express_code, logistics_id, latest_refund_id,
    latest_refund_status, delivery_num, package_num, seller_role_type, seller_role_id,
    seller_role_name, distributor_id, distributor_name, packages, raw,
} }

/// `orders`: one row per order line, gifts included (`gifts` itself is not a column).
pub(crate) const ORDERS: Table = Table {
    name: "orders",
    fields: ORDER_FIELDS,
    extra: &[],
    version: "update_time",
    keep_when_null: &[],
};

/// One `orders` row's values, in [`ORDERS`]' column order.
fn order_vals<'a>(shop_id: &'a str, o: &'a Order, source: Source, now_ms: i64) -> Vec<Val<'a>> {
    let mut vals = Vec::with_capacity(ORDER_FIELDS.len() + 3);
    vals.push(shop_id.into());
    push_order_fields(o, &mut vals);
    // An order made in code rather than read from the platform may have no package list at
    // all; the column always holds a JSON array.
    if o.packages.is_empty()
        && let Some(at) = ORDER_FIELDS.iter().position(|f| *f == "packages")
    {
        vals[at + 1] = Val::from("[]");
    }
    vals.extend([source.as_str().into(), now_ms.into()]);
    vals
}

record_fields! { REFUND_FIELDS, push_refund_fields, Refund {
    refund_id, oid, item_id, sku_id, rel_item_id, rel_sku_id, sku_nick, seller_id, buyer_id,
    buyer_open_id, handling_way, status, negotiate_status, refund_type, refund_fee,
    refund_reason, refund_reason_desc, refund_desc, receipt_status, special_refund_type,
    create_time, update_time, submit_time, negotiate_update_time, end_time, expire_time,
    logistics_id, express_no, raw,
} }

/// `refunds`: one row per refund.
pub(crate) const REFUNDS: Table = Table {
    name: "refunds",
    fields: REFUND_FIELDS,
    extra: &[],
    version: "update_time",
    keep_when_null: &[],
};

/// One `refunds` row's values, in [`REFUNDS`]' column order.
fn refund_vals<'a>(shop_id: &'a str, r: &'a Refund, source: Source, now_ms: i64) -> Vec<Val<'a>> {
    let mut vals = Vec::with_capacity(REFUND_FIELDS.len() + 3);
    vals.push(shop_id.into());
    push_refund_fields(r, &mut vals);
    vals.extend([source.as_str().into(), now_ms.into()]);
    vals
}

/// The rows of a batch of orders and their gifts, newest per oid, and how many records that
/// was. A plain function: a closure-typed iterator alive in an `async fn` makes its future
/// fail to be `Send` for every lifetime, which `tokio::spawn` needs.
fn order_batch<'a>(
    shop_id: &'a str,
    pages: &[&'a [Order]],
    source: Source,
    now_ms: i64,
) -> (usize, Vec<Vec<Val<'a>>>) {
    let all = pages
        .iter()
        .flat_map(|p| p.iter())
        .flat_map(|o| std::iter::once(o).chain(&o.gifts));
    let received = all.clone().count();
    let rows = newest(all, |o| o.oid, |o| o.update_time)
        .into_iter()
        .map(|o| order_vals(shop_id, o, source, now_ms))
        .collect();
    (received, rows)
}

/// Upserts the orders and their gifts inside `tx`.
pub(crate) async fn write_orders(
    tx: &mut Tx,
    shop_id: &str,
    orders: &[Order],
    source: Source,
    now_ms: i64,
) -> Result<PageOutcome, StoreError> {
    write_orders_of(tx, shop_id, &[orders], source, now_ms).await
}

/// Upserts the orders of several pages and their gifts inside `tx`, in as few statements as
/// the bind limit allows.
pub(crate) async fn write_orders_of(
    tx: &mut Tx,
    shop_id: &str,
    pages: &[&[Order]],
    source: Source,
    now_ms: i64,
) -> Result<PageOutcome, StoreError> {
    let (received, rows) = order_batch(shop_id, pages, source, now_ms);
    let written = ORDERS.upsert(tx, "writing orders", rows).await?;
    Ok(PageOutcome {
        received,
        written: written.len() as u64,
    })
}

/// Upserts the refunds inside `tx`.
pub(crate) async fn write_refunds(
    tx: &mut Tx,
    shop_id: &str,
    refunds: &[Refund],
    source: Source,
    now_ms: i64,
) -> Result<PageOutcome, StoreError> {
    write_refunds_of(tx, shop_id, &[refunds], source, now_ms).await
}

/// Upserts the refunds of several pages inside `tx`.
pub(crate) async fn write_refunds_of(
    tx: &mut Tx,
    shop_id: &str,
    pages: &[&[Refund]],
    source: Source,
    now_ms: i64,
) -> Result<PageOutcome, StoreError> {
    let (received, rows) = refund_batch(shop_id, pages, source, now_ms);
    let written = REFUNDS.upsert(tx, "writing refunds", rows).await?;
    Ok(PageOutcome {
        received,
        written: written.len() as u64,
    })
}

/// The rows of a batch of refunds, newest per id, and how many records that was.
fn refund_batch<'a>(
    shop_id: &'a str,
    pages: &[&'a [Refund]],
    source: Source,
    now_ms: i64,
) -> (usize, Vec<Vec<Val<'a>>>) {
    let all = pages.iter().flat_map(|p| p.iter());
    let received = all.clone().count();
    let rows = newest(all, |r| r.refund_id, |r| r.update_time)
        .into_iter()
        .map(|r| refund_vals(shop_id, r, source, now_ms))
        .collect();
    (received, rows)
}

impl Store {
    /// Upserts a page of orders (gifts as rows), quarantines the page's `rejected` elements and
    /// saves the stream state, in one transaction: either all are committed or none (I3). The
    /// orders written leave the quarantine. The state is saved with
    /// `updated_at_ms = now_ms`; it must be this shop's orders state.
    pub async fn commit_order_page(
        &self,
        shop_id: &str,
        orders: &[Order],
        source: Source,
        state: &StreamState,
        now_ms: i64,
        rejected: &[Rejected],
    ) -> Result<PageOutcome, StoreError> {
        check_state(state, shop_id, Stream::Orders)?;
        let op = "committing an order page";
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, shop_id, Stream::Orders).await?;
        let outcome = write_orders(&mut tx, shop_id, orders, source, now_ms).await?;
        quarantine_in(&mut tx, shop_id, Stream::Orders, rejected, now_ms).await?;
        release_in(
            &mut tx,
            shop_id,
            Stream::Orders,
            orders.iter().map(|o| o.oid),
        )
        .await?;
        write_state(&mut tx, state, now_ms).await?;
        tx.commit(op).await?;
        Ok(outcome)
    }

    /// Upserts a page of refunds, quarantines its `rejected` elements and saves the stream
    /// state, in one transaction (I3).
    pub async fn commit_refund_page(
        &self,
        shop_id: &str,
        refunds: &[Refund],
        source: Source,
        state: &StreamState,
        now_ms: i64,
        rejected: &[Rejected],
    ) -> Result<PageOutcome, StoreError> {
        check_state(state, shop_id, Stream::Refunds)?;
        let op = "committing a refund page";
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, shop_id, Stream::Refunds).await?;
        let outcome = write_refunds(&mut tx, shop_id, refunds, source, now_ms).await?;
        quarantine_in(&mut tx, shop_id, Stream::Refunds, rejected, now_ms).await?;
        let ids = refunds.iter().map(|r| r.refund_id);
        release_in(&mut tx, shop_id, Stream::Refunds, ids).await?;
        write_state(&mut tx, state, now_ms).await?;
        tx.commit(op).await?;
        Ok(outcome)
    }

    /// Upserts orders (and their gifts) without touching any stream state: push and detail.
    pub async fn upsert_orders(
        &self,
        shop_id: &str,
        orders: &[Order],
        source: Source,
        now_ms: i64,
    ) -> Result<PageOutcome, StoreError> {
        let op = "upserting orders";
        let mut tx = self.pool.write_tx(op).await?;
        let outcome = write_orders(&mut tx, shop_id, orders, source, now_ms).await?;
        tx.commit(op).await?;
        Ok(outcome)
    }

    /// Upserts refunds without touching any stream state: push and detail.
    pub async fn upsert_refunds(
        &self,
        shop_id: &str,
        refunds: &[Refund],
        source: Source,
        now_ms: i64,
    ) -> Result<PageOutcome, StoreError> {
        let op = "upserting refunds";
        let mut tx = self.pool.write_tx(op).await?;
        let outcome = write_refunds(&mut tx, shop_id, refunds, source, now_ms).await?;
        tx.commit(op).await?;
        Ok(outcome)
    }
}
