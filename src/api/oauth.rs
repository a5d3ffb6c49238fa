//! OAuth (reference §7): the authorize link, code exchange and refresh with rotation, and the
//! token store interface. A refresh returns a new refresh token and the old one dies within
//! minutes, so the rotated pair must be stored before the new access token is used.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codes::{RESULT_OK, classify};
use super::envelope::{lenient_i64, lenient_text, undecodable};
use super::error::{ApiError, ErrorClass};
use crate::clock::{DAY_MS, HOUR_MS};
use crate::secret::Secret;

/// How long an access token lives when the platform does not say: 48 hours (reference §7.3).
pub const ACCESS_LIFETIME_MS: i64 = 48 * HOUR_MS;
/// How long a grant (its refresh token) lives when the platform does not say: about 180 days,
/// after which the merchant must authorize the app again (reference §7.3).
pub const GRANT_LIFETIME_MS: i64 = 180 * DAY_MS;
/// From this much before a grant ends, the keeper warns and the status page shows it.
pub const GRANT_WARNING_MS: i64 = 30 * DAY_MS;

/// A shop's tokens with their expiries (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: Secret,
    pub access_expires_at: i64,
    pub refresh_token: Secret,
    /// Fixed at the original authorization; refreshing never extends it.
    pub refresh_expires_at: i64,
    /// The developer-scoped user id the grant belongs to.
    pub open_id: String,
    pub scopes: Vec<String>,
}

/// A failure of the token store's storage.
#[derive(Debug, Clone, thiserror::Error)]
#[error("token store: {0}")]
pub struct TokenStoreError(pub String);

/// Where tokens live. `save` must be durable and atomic (both tokens and expiries at once)
/// before it returns: the client uses a rotated access token only after `save` succeeded.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    async fn load(&self, shop: &str) -> Result<Option<TokenSet>, TokenStoreError>;
    async fn save(&self, shop: &str, tokens: &TokenSet) -> Result<(), TokenStoreError>;

    /// Takes the right to refresh the shop's token for `holder` until `until_ms` (epoch ms, wall
    /// clock), unless another holder has it and it has not lapsed; returns whether it was taken.
    /// Shared by every process on the store: a refresh discards the refresh token the others
    /// hold. A store of one process has nobody to share it with.
    async fn begin_refresh(
        &self,
        _shop: &str,
        _holder: &str,
        _now_ms: i64,
        _until_ms: i64,
    ) -> Result<bool, TokenStoreError> {
        Ok(true)
    }

    /// Gives the right up; with `fresh`, first stores it in place of `replaced` — only if the
    /// stored token is still `replaced` (an `auth` in between wins). Returns whether `fresh` was
    /// stored.
    async fn end_refresh(
        &self,
        shop: &str,
        _holder: &str,
        replaced: &TokenSet,
        fresh: Option<&TokenSet>,
    ) -> Result<bool, TokenStoreError> {
        let Some(fresh) = fresh else {
            return Ok(false);
        };
        let current = self.load(shop).await?;
        if current.is_some_and(|c| c.access_token != replaced.access_token) {
            return Ok(false);
        }
        self.save(shop, fresh).await.map(|()| true)
    }
}

/// An in-memory [`TokenStore`] for tests and one-shot tools.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, TokenSet>>,
}

impl MemoryTokenStore {
    /// A store holding one shop's tokens.
    pub fn with(shop: &str, tokens: TokenSet) -> Self {
        let store = Self::default();
        if let Ok(mut map) = store.tokens.lock() {
            map.insert(shop.to_string(), tokens);
        }
        store
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, shop: &str) -> Result<Option<TokenSet>, TokenStoreError> {
        let map = self
            .tokens
            .lock()
            .map_err(|_| TokenStoreError("lock poisoned".into()))?;
        Ok(map.get(shop).cloned())
    }

    async fn save(&self, shop: &str, tokens: &TokenSet) -> Result<(), TokenStoreError> {
        let mut map = self
            .tokens
            .lock()
            .map_err(|_| TokenStoreError("lock poisoned".into()))?;
        map.insert(shop.to_string(), tokens.clone());
        Ok(())
    }
}

/// The link a merchant opens to authorize the app (reference §7.1).
pub fn authorize_url(
    authorize_base: &str,
    app_key: &str,
    redirect_uri: &str,
    scopes: &[&str],
    state: &str,
) -> String {
    let query = serde_urlencoded::to_string([
        ("app_id", app_key),
        ("redirect_uri", redirect_uri),
        ("scope", &scopes.join(",")),
        ("response_type", "code"),
        ("state", state),
    ])
    .unwrap_or_default();
    format!("{authorize_base}?{query}")
}

/// Reads a token endpoint's answer into a [`TokenSet`]. `previous_refresh_expiry` keeps the
/// grant's fixed end when the answer omits `refresh_token_expires_in`.
pub fn parse_token_response(
    endpoint: &str,
    body: &[u8],
    http_status: u16,
    now_ms: i64,
    previous_refresh_expiry: Option<i64>,
) -> Result<TokenSet, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| undecodable(endpoint, http_status, body, &e))?;
    let field = |name: &str| value.get(name);
    let result = field("result").and_then(lenient_i64);
    if result != Some(RESULT_OK) {
        let error = field("error").and_then(lenient_text).unwrap_or_default();
        let message = field("error_msg")
            .and_then(lenient_text)
            .unwrap_or_default();
        let class = if result.is_none() && http_status >= 500 {
            ErrorClass::Transient
        } else {
            classify(result, None, None, &message)
        };
        return Err(ApiError {
            class,
            method: endpoint.to_string(),
            result,
            code: (!error.is_empty()).then_some(error),
            sub_code: None,
            message: if message.is_empty() {
                "no message".into()
            } else {
                message
            },
            request_id: None,
            retry_at_ms: None,
            too_large: false,
            timed_out: false,
        });
    }
    let text = |name: &str| field(name).and_then(lenient_text);
    let missing = |what: &str| {
        ApiError::local(
            ErrorClass::Malformed,
            endpoint,
            format!("the token answer has no {what}"),
        )
    };
    let access = text("access_token").ok_or_else(|| missing("access_token"))?;
    let refresh = text("refresh_token").ok_or_else(|| missing("refresh_token"))?;
    let expires_in = field("expires_in")
        .and_then(lenient_i64)
        .unwrap_or(ACCESS_LIFETIME_MS / 1000);
    let refresh_expires_at = match field("refresh_token_expires_in").and_then(lenient_i64) {
        Some(secs) => now_ms + secs * 1000,
        None => previous_refresh_expiry.unwrap_or(now_ms + GRANT_LIFETIME_MS),
    };
    let scopes = match field("scopes") {
        Some(Value::Array(items)) => items.iter().filter_map(lenient_text).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    Ok(TokenSet {
        access_token: Secret::new(access),
        access_expires_at: now_ms + expires_in * 1000,
        refresh_token: Secret::new(refresh),
        refresh_expires_at,
        open_id: text("open_id").unwrap_or_default(),
        scopes,
    })
}

/// A token as pasted: the console's copy, or a full token file. No `Debug`: it holds the
/// tokens in the clear until they become [`Secret`]s.
#[derive(Deserialize)]
struct PastedToken {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    /// Seconds the access token stays valid (the console's copy lasts 48 h).
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    access_expires_at: Option<i64>,
    #[serde(default)]
    refresh_token_expires_in: Option<i64>,
    #[serde(default)]
    refresh_expires_at: Option<i64>,
    #[serde(default)]
    open_id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

impl TokenSet {
    /// Reads a token as JSON — the console's copy (`expires_in` and the like, relative to `now_ms`)
    /// or a token file (absolute `access_expires_at`, …) — into a token set: the one reader of
    /// `auth import` and the config's `token_file`.
    pub fn from_json(text: &str, now_ms: i64) -> Result<TokenSet, String> {
        let t: PastedToken = serde_json::from_str(text.trim()).map_err(|e| {
        format!("expected JSON like {{\"access_token\": \"…\", \"refresh_token\": \"…\", \"expires_in\": 172800}}: {e}")
    })?;
        if t.access_token.trim().is_empty() {
            return Err("access_token is empty".into());
        }
        let refresh_token = t
            .refresh_token
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let access_expires_at = t
            .access_expires_at
            .or(t.expires_in.map(|s| now_ms + s * 1000))
            .unwrap_or(now_ms + ACCESS_LIFETIME_MS);
        let refresh_expires_at = t
            .refresh_expires_at
            .or(t.refresh_token_expires_in.map(|s| now_ms + s * 1000))
            .unwrap_or(if refresh_token.is_some() {
                now_ms + GRANT_LIFETIME_MS
            } else {
                access_expires_at
            });
        Ok(TokenSet {
            access_token: Secret::new(t.access_token.trim()),
            access_expires_at,
            // Without a refresh token the shop works until the access token expires.
            refresh_token: Secret::new(refresh_token.unwrap_or_default()),
            refresh_expires_at,
            open_id: t.open_id.unwrap_or_default(),
            scopes: t.scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_has_the_documented_parameters() {
        let url = authorize_url(
            "https://open.kwaixiaodian.com/oauth/authorize",
            "ks000000000000000001",
            "https://example.com/cb",
            &["merchant_order", "merchant_item"],
            "s1",
        );
        assert_eq!(
            url,
            "https://open.kwaixiaodian.com/oauth/authorize?app_id=ks000000000000000001&redirect_uri=https%3A%2F%2Fexample.com%2Fcb&scope=merchant_order%2Cmerchant_item&response_type=code&state=s1"
        );
    }

    #[test]
    fn token_answer_parses_and_errors_classify() {
        let body = br#"{"result":1,"access_token":"AT","refresh_token":"RT","expires_in":172800,"refresh_token_expires_in":1000,"open_id":"o1","scopes":["merchant_order"]}"#;
        let t = parse_token_response("oauth2/access_token", body, 200, 1_000, None).expect("ok");
        assert_eq!(t.access_token.expose(), "AT");
        assert_eq!(t.access_expires_at, 1_000 + 172_800_000);
        assert_eq!(t.refresh_expires_at, 1_000 + 1_000_000);
        assert_eq!(t.scopes, vec!["merchant_order"]);
        let denied =
            br#"{"result":100200102,"error":"access_denied","error_msg":"refreshToken.discarded"}"#;
        let e =
            parse_token_response("oauth2/refresh_token", denied, 200, 0, None).expect_err("denied");
        assert_eq!(e.class, ErrorClass::AuthorizationRevoked);
        let e = parse_token_response("oauth2/refresh_token", b"<html>", 502, 0, None)
            .expect_err("html");
        assert_eq!(e.class, ErrorClass::Transient);
    }
}

#[cfg(test)]
mod token_json {
    use super::*;

    #[test]
    fn a_blank_refresh_token_counts_as_none_and_spaces_are_trimmed() {
        let t =
            TokenSet::from_json(r#"{"access_token":"a","refresh_token":"  "}"#, 0).expect("parses");
        assert_eq!(t.refresh_token.expose(), "");
        assert_eq!(t.refresh_expires_at, t.access_expires_at);
        let t = TokenSet::from_json(r#"{"access_token":"a","refresh_token":" r1 "}"#, 0)
            .expect("parses");
        assert_eq!(t.refresh_token.expose(), "r1");
        assert_eq!(t.refresh_expires_at, GRANT_LIFETIME_MS);
    }

    #[test]
    fn a_console_copy_gets_48_hours() {
        let t = TokenSet::from_json(r#"{"access_token":" ChFvYX "}"#, 1_000).expect("parses");
        assert_eq!(t.access_token.expose(), "ChFvYX");
        assert_eq!(t.access_expires_at, 1_000 + ACCESS_LIFETIME_MS);
        assert!(t.refresh_token.is_empty());
        let full = TokenSet::from_json(r#"{"access_token":"a","refresh_token":"r","expires_in":10,"refresh_token_expires_in":20}"#, 0).expect("parses");
        assert_eq!(
            (full.access_expires_at, full.refresh_expires_at),
            (10_000, 20_000)
        );
        assert!(TokenSet::from_json("not json", 0).is_err());
        assert!(TokenSet::from_json(r#"{"access_token":""}"#, 0).is_err());
    }
}
