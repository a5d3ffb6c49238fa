//! OAuth tokens in `oauth_tokens`: the client's [`TokenStore`]. A refresh rotates the refresh
//! token, so both tokens and both expiries are replaced by one statement in one transaction.

use super::db::Val;
use super::db::from_row;
use super::shops::ensure_shop_row;
use super::{Store, StoreError};
use crate::api::oauth::{TokenSet, TokenStore, TokenStoreError};
use crate::clock::wall_ms;
use crate::secret::Secret;

struct StoredTokens {
    access_token: String,
    access_expires_at: i64,
    refresh_token: String,
    refresh_expires_at: i64,
    open_id: String,
    scopes: String,
}

from_row!(StoredTokens {
    access_token,
    access_expires_at,
    refresh_token,
    refresh_expires_at,
    open_id,
    scopes,
});

impl Store {
    /// The shop's tokens, if it was ever authorized.
    pub async fn load_tokens(&self, shop_id: &str) -> Result<Option<TokenSet>, StoreError> {
        const SQL: &str = "SELECT access_token, access_expires_at, refresh_token, \
             refresh_expires_at, open_id, scopes FROM oauth_tokens WHERE shop_id = $1";
        let rows: Vec<StoredTokens> = self
            .pool
            .fetch_all("loading tokens", SQL, &[shop_id.into()])
            .await?;
        let Some(r) = rows.into_iter().next() else {
            return Ok(None);
        };
        let scopes = serde_json::from_str(&r.scopes)
            .map_err(|e| StoreError::Corrupt(format!("scopes of shop {shop_id}: {e}")))?;
        Ok(Some(TokenSet {
            access_token: Secret::new(r.access_token),
            access_expires_at: r.access_expires_at,
            refresh_token: Secret::new(r.refresh_token),
            refresh_expires_at: r.refresh_expires_at,
            open_id: r.open_id,
            scopes,
        }))
    }

    /// Every shop's token expiries (access, refresh; epoch ms), never the tokens themselves.
    pub async fn token_expiries(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        const SQL: &str = "SELECT shop_id, access_expires_at, refresh_expires_at FROM oauth_tokens";
        self.pool
            .fetch_all("reading token expiries", SQL, &[])
            .await
    }

    /// Replaces the shop's tokens (adding a bare shop row if it has none), durably, before
    /// returning.
    pub async fn save_tokens(&self, shop_id: &str, tokens: &TokenSet) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO oauth_tokens (shop_id, access_token, access_expires_at, \
             refresh_token, refresh_expires_at, open_id, scopes, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (shop_id) DO UPDATE SET access_token = excluded.access_token, \
             access_expires_at = excluded.access_expires_at, \
             refresh_token = excluded.refresh_token, \
             refresh_expires_at = excluded.refresh_expires_at, open_id = excluded.open_id, \
             scopes = excluded.scopes, updated_at = excluded.updated_at";
        let scopes = serde_json::Value::from(tokens.scopes.clone()).to_string();
        let vals = [
            Val::from(shop_id),
            Val::from(tokens.access_token.expose()),
            Val::from(tokens.access_expires_at),
            Val::from(tokens.refresh_token.expose()),
            Val::from(tokens.refresh_expires_at),
            Val::from(&tokens.open_id),
            Val::from(scopes),
            Val::from(wall_ms()),
        ];
        let op = "saving tokens";
        let mut tx = self.pool.write_tx(op).await?;
        ensure_shop_row(&mut tx, shop_id).await?;
        tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await
    }
}

impl Store {
    /// Takes the right to refresh the shop's token (its row's `refresh_holder`) for `holder`
    /// until `until_ms`, unless another holder has it and it has not lapsed at `now_ms`. One
    /// statement: of concurrent callers in any process, one wins. No transaction stays open
    /// across the refresh's HTTP exchange, so nothing else waits on the database meanwhile.
    pub async fn begin_token_refresh(
        &self,
        shop_id: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE oauth_tokens SET refresh_holder = $2, refresh_until_ms = $3 \
             WHERE shop_id = $1 AND (refresh_holder IS NULL OR refresh_holder = $2 \
             OR refresh_until_ms <= $4)";
        let op = "taking the right to refresh a token";
        let vals = [
            Val::from(shop_id),
            Val::from(holder),
            Val::from(until_ms),
            Val::from(now_ms),
        ];
        let mut tx = self.pool.write_tx(op).await?;
        let taken = tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await?;
        Ok(taken == 1)
    }

    /// Gives up `holder`'s right to refresh the shop's token; with `fresh`, stores it first in
    /// the same transaction, only if the stored access token is still `replaced`'s. Returns
    /// whether `fresh` was stored.
    pub async fn end_token_refresh(
        &self,
        shop_id: &str,
        holder: &str,
        replaced: &TokenSet,
        fresh: Option<&TokenSet>,
    ) -> Result<bool, StoreError> {
        const SAVE: &str = "UPDATE oauth_tokens SET access_token = $3, access_expires_at = $4, \
             refresh_token = $5, refresh_expires_at = $6, open_id = $7, scopes = $8, \
             updated_at = $9 WHERE shop_id = $1 AND access_token = $2";
        const RELEASE: &str = "UPDATE oauth_tokens SET refresh_holder = NULL, \
             refresh_until_ms = 0 WHERE shop_id = $1 AND refresh_holder = $2";
        let op = "storing a refreshed token";
        let mut tx = self.pool.write_tx(op).await?;
        let mut stored = false;
        if let Some(t) = fresh {
            let scopes = serde_json::Value::from(t.scopes.clone()).to_string();
            let vals = [
                Val::from(shop_id),
                Val::from(replaced.access_token.expose()),
                Val::from(t.access_token.expose()),
                Val::from(t.access_expires_at),
                Val::from(t.refresh_token.expose()),
                Val::from(t.refresh_expires_at),
                Val::from(&t.open_id),
                Val::from(scopes),
                Val::from(wall_ms()),
            ];
            stored = tx.execute(op, SAVE, &vals).await? == 1;
        }
        tx.execute(op, RELEASE, &[Val::from(shop_id), Val::from(holder)])
            .await?;
        tx.commit(op).await?;
        Ok(stored)
    }
}

/// The store's errors as the client sees them; they name the operation, never a token.
fn token_error(e: StoreError) -> TokenStoreError {
    TokenStoreError(e.to_string())
}

#[async_trait::async_trait]
impl TokenStore for Store {
    async fn load(&self, shop: &str) -> Result<Option<TokenSet>, TokenStoreError> {
        self.load_tokens(shop).await.map_err(token_error)
    }

    async fn save(&self, shop: &str, tokens: &TokenSet) -> Result<(), TokenStoreError> {
        self.save_tokens(shop, tokens).await.map_err(token_error)
    }

    async fn begin_refresh(
        &self,
        shop: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, TokenStoreError> {
        self.begin_token_refresh(shop, holder, now_ms, until_ms)
            .await
            .map_err(token_error)
    }

    async fn end_refresh(
        &self,
        shop: &str,
        holder: &str,
        replaced: &TokenSet,
        fresh: Option<&TokenSet>,
    ) -> Result<bool, TokenStoreError> {
        self.end_token_refresh(shop, holder, replaced, fresh)
            .await
            .map_err(token_error)
    }
}
