//! The `shops` table: who the mirror is for, and whether each shop can still be synced.

use super::db::from_row;
use std::fmt;

use super::db::{Tx, Val};
use super::{Store, StoreError};
use crate::clock::wall_ms;

/// Whether a shop is synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopStatus {
    /// Authorized; its streams run.
    Active,
    /// The merchant revoked the authorization (or it lapsed): nothing runs until they
    /// authorize again.
    NeedsReauth,
}

impl ShopStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ShopStatus::Active => "active",
            ShopStatus::NeedsReauth => "needs_reauth",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(ShopStatus::Active),
            "needs_reauth" => Ok(ShopStatus::NeedsReauth),
            other => Err(StoreError::Corrupt(format!("shop status {other:?}"))),
        }
    }
}

impl fmt::Display for ShopStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `shops`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopRow {
    pub shop_id: String,
    pub open_id: Option<String>,
    pub seller_id: Option<i64>,
    pub name: Option<String>,
    pub status: ShopStatus,
    pub status_reason: Option<String>,
    /// Epoch ms until which the shop's daily quota is spent.
    pub quota_paused_until: Option<i64>,
}

impl ShopRow {
    /// An active shop known only by its id.
    pub fn new(shop_id: &str) -> Self {
        ShopRow {
            shop_id: shop_id.to_string(),
            open_id: None,
            seller_id: None,
            name: None,
            status: ShopStatus::Active,
            status_reason: None,
            quota_paused_until: None,
        }
    }
}

struct StoredShop {
    shop_id: String,
    open_id: Option<String>,
    seller_id: Option<i64>,
    name: Option<String>,
    status: String,
    status_reason: Option<String>,
    quota_paused_until: Option<i64>,
}

from_row!(StoredShop {
    shop_id,
    open_id,
    seller_id,
    name,
    status,
    status_reason,
    quota_paused_until,
});

impl Store {
    /// Adds the shop, or updates its `open_id`, `seller_id` and `name` where the new row has
    /// them. The status is never changed here: a shop that needs re-authorization stays so
    /// until [`Store::set_shop_status`] says otherwise.
    pub async fn ensure_shop(&self, shop: &ShopRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO shops (shop_id, open_id, seller_id, name, status, \
             status_reason, quota_paused_until, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (shop_id) DO UPDATE SET \
             open_id = COALESCE(excluded.open_id, shops.open_id), \
             seller_id = COALESCE(excluded.seller_id, shops.seller_id), \
             name = COALESCE(excluded.name, shops.name), \
             updated_at = excluded.updated_at";
        let vals = [
            Val::from(&shop.shop_id),
            Val::from(&shop.open_id),
            Val::from(shop.seller_id),
            Val::from(&shop.name),
            Val::from(shop.status.as_str()),
            Val::from(&shop.status_reason),
            Val::from(shop.quota_paused_until),
            Val::from(wall_ms()),
        ];
        let op = "saving a shop";
        let mut tx = self.pool.write_tx(op).await?;
        tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await
    }

    /// Every shop, by id.
    pub async fn shops(&self) -> Result<Vec<ShopRow>, StoreError> {
        const SQL: &str = "SELECT shop_id, open_id, seller_id, name, status, status_reason, \
             quota_paused_until FROM shops ORDER BY shop_id";
        let rows: Vec<StoredShop> = self.pool.fetch_all("listing shops", SQL, &[]).await?;
        rows.into_iter()
            .map(|r| {
                Ok(ShopRow {
                    status: ShopStatus::parse(&r.status)?,
                    shop_id: r.shop_id,
                    open_id: r.open_id,
                    seller_id: r.seller_id,
                    name: r.name,
                    status_reason: r.status_reason,
                    quota_paused_until: r.quota_paused_until,
                })
            })
            .collect()
    }

    /// One shop's status; `None` when it has no row yet.
    pub async fn shop_status(&self, shop_id: &str) -> Result<Option<ShopStatus>, StoreError> {
        const SQL: &str = "SELECT status FROM shops WHERE shop_id = $1";
        let rows: Vec<(String,)> = self
            .pool
            .fetch_all("reading a shop's status", SQL, &[shop_id.into()])
            .await?;
        rows.first()
            .map(|(status,)| ShopStatus::parse(status))
            .transpose()
    }

    /// Sets the shop's status and the reason shown beside it; [`StoreError::UnknownShop`] if
    /// the shop has no row.
    pub async fn set_shop_status(
        &self,
        shop_id: &str,
        status: ShopStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE shops SET status = $2, status_reason = $3, updated_at = $4 WHERE shop_id = $1";
        let vals = [
            Val::from(shop_id),
            Val::from(status.as_str()),
            Val::from(reason),
            Val::from(wall_ms()),
        ];
        let op = "setting a shop's status";
        let mut tx = self.pool.write_tx(op).await?;
        let changed = tx.execute(op, SQL, &vals).await?;
        if changed == 0 {
            return Err(StoreError::UnknownShop(shop_id.to_string()));
        }
        tx.commit(op).await
    }
}

impl Store {
    /// Records who the shop is, as the platform said (`open.user.seller.get`): its seller id,
    /// its merchant open id and name. In the same transaction, the push events that arrived for
    /// it before it was known (`unknown_shop`, with the seller id as `userId` or one of
    /// `open_ids` as `openId`) become its own and pending, due at `now_ms`. Returns how many.
    pub async fn learn_shop_identity(
        &self,
        shop_id: &str,
        seller_id: i64,
        open_id: Option<&str>,
        name: Option<&str>,
        open_ids: &[&str],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        const SHOP: &str = "UPDATE shops SET seller_id = $2, open_id = COALESCE($3, open_id), \
             name = COALESCE($4, name), updated_at = $5 WHERE shop_id = $1";
        let op = "recording a shop's identity";
        let mut tx = self.pool.write_tx(op).await?;
        ensure_shop_row(&mut tx, shop_id).await?;
        let vals = [
            Val::from(shop_id),
            Val::from(seller_id),
            Val::from(open_id),
            Val::from(name),
            Val::from(wall_ms()),
        ];
        tx.execute(op, SHOP, &vals).await?;
        let adopted = adopt_in(&mut tx, shop_id, seller_id, open_ids, now_ms).await?;
        tx.commit(op).await?;
        Ok(adopted)
    }

    /// Hands the shop the `unknown_shop` events whose `userId` is its seller id or whose `openId`
    /// is one of `open_ids`: they become its own and pending, due at `now_ms`. Returns how many.
    pub async fn adopt_unknown_events(
        &self,
        shop_id: &str,
        seller_id: i64,
        open_ids: &[&str],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let op = "handing waiting events to their shop";
        let mut tx = self.pool.write_tx(op).await?;
        let adopted = adopt_in(&mut tx, shop_id, seller_id, open_ids, now_ms).await?;
        tx.commit(op).await?;
        Ok(adopted)
    }
}

/// [`Store::adopt_unknown_events`] inside `tx`.
async fn adopt_in(
    tx: &mut Tx,
    shop_id: &str,
    seller_id: i64,
    open_ids: &[&str],
    now_ms: i64,
) -> Result<u64, StoreError> {
    let op = "handing waiting events to their shop";
    let adopt = format!(
        "UPDATE events SET shop_id = $1, status = 'pending', next_attempt_at_ms = $2, \
         attempts = 0 WHERE status = 'unknown_shop' AND (user_id = $3{})",
        if open_ids.is_empty() {
            String::new()
        } else {
            format!(
                " OR open_id IN ({})",
                super::db::placeholders(4, open_ids.len())
            )
        }
    );
    let vals: Vec<Val> = [Val::from(shop_id), now_ms.into(), seller_id.into()]
        .into_iter()
        .chain(open_ids.iter().map(|o| Val::from(*o)))
        .collect();
    tx.execute(op, adopt, &vals).await
}

/// Adds a bare row for the shop if it has none, inside `tx` (tokens and usage can arrive before
/// the shop is configured, and the other tables reference `shops`).
pub(crate) async fn ensure_shop_row(tx: &mut Tx, shop_id: &str) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO shops (shop_id, created_at, updated_at) VALUES ($1, $2, $2) \
         ON CONFLICT (shop_id) DO NOTHING";
    tx.execute(
        "adding a shop",
        SQL,
        &[Val::from(shop_id), Val::from(wall_ms())],
    )
    .await
    .map(drop)
}
