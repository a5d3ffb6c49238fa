//! `kwaishop-sync auth …`: the authorize link for a shop, the code exchange, and importing a
//! token copied from the platform console. Tokens are read from a file or standard input, never
//! from the command line (where they would land in shell history and the process list).

use serde::Deserialize;

use crate::api::oauth::TokenSet;
use crate::secret::Secret;

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

/// Reads a pasted token (JSON) into a token set; `now_ms` dates the relative lifetimes.
pub fn parse_pasted(text: &str, now_ms: i64) -> Result<TokenSet, String> {
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
        .unwrap_or(now_ms + 172_800_000);
    let refresh_expires_at = t
        .refresh_expires_at
        .or(t.refresh_token_expires_in.map(|s| now_ms + s * 1000))
        .unwrap_or(if refresh_token.is_some() {
            now_ms + 15_552_000_000
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_refresh_token_counts_as_none_and_spaces_are_trimmed() {
        let t = parse_pasted(r#"{"access_token":"a","refresh_token":"  "}"#, 0).expect("parses");
        assert_eq!(t.refresh_token.expose(), "");
        assert_eq!(t.refresh_expires_at, t.access_expires_at);
        let t = parse_pasted(r#"{"access_token":"a","refresh_token":" r1 "}"#, 0).expect("parses");
        assert_eq!(t.refresh_token.expose(), "r1");
        assert_eq!(t.refresh_expires_at, 15_552_000_000);
    }

    #[test]
    fn a_console_copy_gets_48_hours() {
        let t = parse_pasted(r#"{"access_token":" ChFvYX "}"#, 1_000).expect("parses");
        assert_eq!(t.access_token.expose(), "ChFvYX");
        assert_eq!(t.access_expires_at, 1_000 + 172_800_000);
        assert!(t.refresh_token.is_empty());
        let full = parse_pasted(r#"{"access_token":"a","refresh_token":"r","expires_in":10,"refresh_token_expires_in":20}"#, 0).expect("parses");
        assert_eq!(
            (full.access_expires_at, full.refresh_expires_at),
            (10_000, 20_000)
        );
        assert!(parse_pasted("not json", 0).is_err());
        assert!(parse_pasted(r#"{"access_token":""}"#, 0).is_err());
    }
}
