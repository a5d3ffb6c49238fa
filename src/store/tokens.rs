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
}
