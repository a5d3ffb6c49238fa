//! The token lifecycle of the client: each shop's token read from the store and cached, refreshed
//! before it expires or once the platform calls it expired (one refresh at a time per shop, in
//! this process and across processes, the rotated pair stored before use), and the first
//! tokens exchanged for an authorization code.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tracing::{debug, info, warn};

use super::Method;
use super::client::{ApiClient, Inner};
use super::error::{ApiError, ErrorClass};
use super::oauth::{self, TokenSet};
use super::transport::exchange;
use crate::clock::wall_ms;

/// How long a token read from the store is used before it is read again.
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a process holds a shop's right to refresh (wall clock): longer than a refresh
/// exchange can take with its timeout; a holder that died loses it after this.
const REFRESH_RIGHT_MS: i64 = 60_000;

/// How long storing a rotated token pair is tried before its error is returned: the old
/// refresh token is already discarded, so the pair is the shop's authorization.
const STORE_ROTATED_FOR: Duration = Duration::from_secs(20);

/// How often a process waiting for another's refresh looks at the store again.
const REFRESH_WAIT_POLL: Duration = Duration::from_millis(100);

impl ApiClient {
    /// The shop's current token, refreshed first when it is about to expire.
    pub(super) async fn token_for_call(
        &self,
        shop: &str,
        method: Method,
    ) -> Result<TokenSet, ApiError> {
        let token = self.load_token(shop, method.name()).await?;
        let now = self.inner.clock.now_ms();
        if now + self.settings().opts.refresh_margin_ms < token.access_expires_at {
            return Ok(token);
        }
        match self.refresh_replacing(shop, &token).await {
            Ok(fresh) => Ok(fresh),
            // A refresh that failed for a passing reason does not stop a still-valid token.
            Err(e) if e.class.is_retryable() && now < token.access_expires_at => {
                warn!(shop, error = %e, "early token refresh failed; using the current token");
                Ok(token)
            }
            Err(e) => Err(e),
        }
    }

    /// The shop's token from the cache while it is fresh ([`TOKEN_CACHE_TTL`]), else from the
    /// store.
    async fn load_token(&self, shop: &str, what: &str) -> Result<TokenSet, ApiError> {
        if let Some(t) = self.inner.cache.read().ok().and_then(|c| {
            c.get(shop)
                .filter(|(_, read_at)| read_at.elapsed() < TOKEN_CACHE_TTL)
                .map(|(t, _)| t.clone())
        }) {
            return Ok(t);
        }
        self.read_token(shop, what).await
    }

    /// The shop's token as the store holds it now (and cached).
    pub(super) async fn read_token(&self, shop: &str, what: &str) -> Result<TokenSet, ApiError> {
        let loaded = self
            .inner
            .tokens
            .load(shop)
            .await
            .map_err(|e| ApiError::local(ErrorClass::Transient, what, e.to_string()))?
            .ok_or_else(|| {
                ApiError::local(
                    ErrorClass::AuthorizationRevoked,
                    what,
                    format!("no token for shop {shop}: authorize it (kwaishop-sync auth)"),
                )
            })?;
        self.cache_token(shop, &loaded);
        Ok(loaded)
    }

    fn cache_token(&self, shop: &str, tokens: &TokenSet) {
        cache_token(&self.inner, shop, tokens);
    }

    /// Forgets the cached token of a shop, so the next call reads the store again.
    pub fn forget_token(&self, shop: &str) {
        if let Ok(mut cache) = self.inner.cache.write() {
            cache.remove(shop);
        }
    }

    fn refresh_lock(&self, shop: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .refresh_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        locks.entry(shop.to_string()).or_default().clone()
    }

    /// Refreshes the shop's token unless another task or process already replaced `stale`. One
    /// refresh at a time per shop, in this process (a mutex) and across every process on the
    /// store (the right to refresh, [`oauth::TokenStore::begin_refresh`]): whoever waits reads the
    /// store again and uses the token the other one stored. The rotated pair is stored before it
    /// is returned for use, and only in place of the token it replaces.
    ///
    /// The refresh runs as a task of its own, to its end even when the caller is dropped (a
    /// hedged call whose other request answered first, a timeout): once the platform has
    /// rotated the pair, the old refresh token is discarded, and a refresh abandoned before its
    /// pair is stored would leave the shop only a dead one.
    pub async fn refresh_replacing(
        &self,
        shop: &str,
        stale: &TokenSet,
    ) -> Result<TokenSet, ApiError> {
        let client = self.clone();
        let (shop, stale) = (shop.to_string(), stale.clone());
        match tokio::spawn(async move { client.refresh_to_the_end(&shop, &stale).await }).await {
            Ok(refreshed) => refreshed,
            // A panic in the refresh is the caller's, as it was before the refresh had a task.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(ApiError::local(
                ErrorClass::Transient,
                "oauth2/refresh_token",
                format!("the refresh task ended early: {e}"),
            )),
        }
    }

    /// [`Self::refresh_replacing`]'s work, in its own task.
    async fn refresh_to_the_end(&self, shop: &str, stale: &TokenSet) -> Result<TokenSet, ApiError> {
        const WHAT: &str = "oauth2/refresh_token";
        let lock = self.refresh_lock(shop);
        let _one_at_a_time = lock.lock().await;
        let holder = self.inner.refresh_holder.as_str();
        let tokens = &self.inner.tokens;
        let storage =
            |e: oauth::TokenStoreError| ApiError::local(ErrorClass::Transient, WHAT, e.to_string());
        let waiting_since = std::time::Instant::now();
        let current = loop {
            // The store, not the cache: another process (a second daemon, `sync --once`,
            // `auth`) may have refreshed or replaced the token; its refresh token is then the
            // only valid one, and ours was discarded.
            let current = self.read_token(shop, WHAT).await?;
            if current.access_token != stale.access_token {
                return Ok(current);
            }
            let now = wall_ms();
            if tokens
                .begin_refresh(shop, holder, now, now + REFRESH_RIGHT_MS)
                .await
                .map_err(storage)?
            {
                // Read again under the right: a holder that finished between the read above
                // and now stored its token.
                match self.read_token(shop, WHAT).await {
                    Ok(again) if again.access_token == stale.access_token => break again,
                    read => {
                        let _ = tokens.end_refresh(shop, holder, &current, None).await;
                        return read;
                    }
                }
            }
            if waiting_since.elapsed() > Duration::from_millis(2 * REFRESH_RIGHT_MS as u64) {
                return Err(ApiError::local(
                    ErrorClass::Transient,
                    WHAT,
                    format!(
                        "another process has been refreshing the token of shop {shop} for too long"
                    ),
                ));
            }
            debug!(
                shop,
                "another process is refreshing the token; waiting for it"
            );
            tokio::time::sleep(REFRESH_WAIT_POLL).await;
        };
        let refreshed = self.refresh_held(shop, &current).await;
        let stored = self
            .end_refresh_storing(shop, &current, refreshed.as_ref().ok())
            .await;
        match (refreshed, stored) {
            (Ok(fresh), Ok(true)) => {
                self.cache_token(shop, &fresh);
                info!(
                    shop,
                    access_expires_at = fresh.access_expires_at,
                    "access token refreshed"
                );
                Ok(fresh)
            }
            // `auth` stored a new authorization meanwhile: it wins.
            (Ok(_), Ok(false)) => self.read_token(shop, WHAT).await,
            (Ok(_), Err(e)) => Err(storage(e)),
            (Err(e), _) if e.class == ErrorClass::AuthorizationRevoked => {
                // A refused refresh token may be one another authorization replaced.
                match self.read_token(shop, WHAT).await {
                    Ok(now) if now.access_token != current.access_token => Ok(now),
                    _ => Err(e),
                }
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Gives up this client's right to refresh the shop's token, first storing `fresh` in
    /// place of `current`. The platform has already discarded `current`'s refresh token (at
    /// once, or within 5 minutes): a rotated pair that is not stored is the shop's authorization
    /// lost. So a failure to store it (a database restarting, a full pool) is tried again for up
    /// to [`STORE_ROTATED_FOR`], well within the right's [`REFRESH_RIGHT_MS`], before the error
    /// is returned.
    async fn end_refresh_storing(
        &self,
        shop: &str,
        current: &TokenSet,
        fresh: Option<&TokenSet>,
    ) -> Result<bool, oauth::TokenStoreError> {
        let tokens = &self.inner.tokens;
        let holder = self.inner.refresh_holder.as_str();
        if fresh.is_none() {
            return tokens.end_refresh(shop, holder, current, None).await;
        }
        let store = || tokens.end_refresh(shop, holder, current, fresh);
        store
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .without_max_times()
                    .with_total_delay(Some(STORE_ROTATED_FOR)),
            )
            .notify(|e, after| {
                warn!(
                    shop,
                    error = %e,
                    retry_in = ?after,
                    "the platform rotated the shop's token but storing it failed; trying again"
                );
            })
            .await
    }

    /// The refresh itself, once this client holds the right: refused locally when the refresh
    /// token has expired.
    async fn refresh_held(&self, shop: &str, current: &TokenSet) -> Result<TokenSet, ApiError> {
        if self.inner.clock.now_ms() >= current.refresh_expires_at {
            return Err(ApiError::local(
                ErrorClass::AuthorizationRevoked,
                "oauth2/refresh_token",
                format!(
                    "the refresh token of shop {shop} has expired: the merchant must authorize again"
                ),
            ));
        }
        self.refresh_grant(current).await
    }

    /// Forces a refresh of the shop's token now (the token keeper's entry point).
    pub async fn refresh_now(&self, shop: &str) -> Result<TokenSet, ApiError> {
        let current = self.load_token(shop, "oauth2/refresh_token").await?;
        self.refresh_replacing(shop, &current).await
    }

    /// Sends the refresh grant (reference §7.2) and reads the rotated pair. The documentation
    /// says POST; the platform's own demo and the SDKs send a GET query. The first is tried
    /// first; when it is refused as a request (HTTP 404/405/501, or `invalid_request`), the other
    /// is, and the one that worked is used from then on by this process.
    async fn refresh_grant(&self, current: &TokenSet) -> Result<TokenSet, ApiError> {
        use std::sync::atomic::Ordering::Relaxed;
        let by_get = self.inner.refresh_by_get.load(Relaxed);
        match self.refresh_by(current, by_get).await {
            Err(Refresh::Refused(first)) => match self.refresh_by(current, !by_get).await {
                Ok(fresh) => {
                    self.inner.refresh_by_get.store(!by_get, Relaxed);
                    warn!(
                        refused = verb(by_get),
                        using = verb(!by_get),
                        error = %first,
                        "the platform refused the token refresh by one verb; using the other from now on"
                    );
                    Ok(fresh)
                }
                Err(Refresh::Refused(e) | Refresh::Failed(e)) => Err(e),
            },
            Err(Refresh::Failed(e)) => Err(e),
            Ok(fresh) => Ok(fresh),
        }
    }

    /// One refresh attempt, as a form POST or a GET query.
    async fn refresh_by(&self, current: &TokenSet, get: bool) -> Result<TokenSet, Refresh> {
        const ENDPOINT: &str = "oauth2/refresh_token";
        let inner = &self.inner;
        let settings = self.settings();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", current.refresh_token.expose()),
            ("app_id", &settings.app.app_key),
            ("app_secret", settings.app.app_secret.expose()),
        ];
        let url = format!("{}/{ENDPOINT}", settings.base_url);
        let request = if get {
            inner.http.get(url).query(&form)
        } else {
            inner.http.post(url).form(&form)
        };
        // The URL of a GET carries the secrets; network_error drops it.
        let (status, body) = exchange(ENDPOINT, request, settings.opts.timeout, 1 << 20)
            .await
            .map_err(Refresh::Failed)?;
        let parsed = oauth::parse_token_response(
            ENDPOINT,
            &body,
            status,
            inner.clock.now_ms(),
            Some(current.refresh_expires_at),
        );
        let mut fresh = match parsed {
            Ok(fresh) => fresh,
            Err(e) if matches!(status, 404 | 405 | 501) || e.result == Some(100_200_100) => {
                return Err(Refresh::Refused(ApiError {
                    message: format!("{} (HTTP {status} to a {})", e.message, verb(get)),
                    ..e
                }));
            }
            Err(e) => return Err(Refresh::Failed(e)),
        };
        if fresh.open_id.is_empty() {
            fresh.open_id = current.open_id.clone();
        }
        if fresh.scopes.is_empty() {
            fresh.scopes = current.scopes.clone();
        }
        Ok(fresh)
    }

    /// Exchanges an authorization code for the shop's first tokens (reference §7.2) and stores them.
    pub async fn exchange_code(&self, shop: &str, code: &str) -> Result<TokenSet, ApiError> {
        const ENDPOINT: &str = "oauth2/access_token";
        let inner = &self.inner;
        let settings = self.settings();
        let query = serde_urlencoded::to_string([
            ("app_id", settings.app.app_key.as_str()),
            ("grant_type", "code"),
            ("code", code),
            ("app_secret", settings.app.app_secret.expose()),
        ])
        .map_err(|e| ApiError::local(ErrorClass::InvalidRequest, ENDPOINT, e.to_string()))?;
        let url = format!("{}/{ENDPOINT}?{query}", settings.base_url);
        let request = inner.http.get(url);
        let (status, body) = exchange(ENDPOINT, request, settings.opts.timeout, 1 << 20).await?;
        let tokens =
            oauth::parse_token_response(ENDPOINT, &body, status, inner.clock.now_ms(), None)?;
        inner
            .tokens
            .save(shop, &tokens)
            .await
            .map_err(|e| ApiError::local(ErrorClass::Transient, ENDPOINT, e.to_string()))?;
        cache_token(inner, shop, &tokens);
        Ok(tokens)
    }
}

/// Caches `tokens` as just read from (or written to) the store.
fn cache_token(inner: &Inner, shop: &str, tokens: &TokenSet) {
    if let Ok(mut cache) = inner.cache.write() {
        cache.insert(
            shop.to_string(),
            (tokens.clone(), std::time::Instant::now()),
        );
    }
}

/// How a refresh attempt went wrong: refused as a request (try the other verb), or failed.
enum Refresh {
    Refused(ApiError),
    Failed(ApiError),
}

fn verb(get: bool) -> &'static str {
    if get { "GET" } else { "POST" }
}
