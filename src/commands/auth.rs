//! `kwaishop-sync auth …`: the authorize link for a shop, the code exchange, and importing a
//! token copied from the platform console. Tokens are read from a file or standard input, never
//! from the command line (where they would land in shell history and the process list).

use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;

use super::ConfigArg;
use crate::api::oauth::TokenSet;
use crate::app::{App, clock_for};
use crate::clock::format_ms;
use crate::secret::Secret;
use crate::store::{ShopRow, ShopStatus};

/// `auth`'s subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum AuthCommand {
    /// Print the link the merchant opens to authorize the app for a shop.
    Url {
        #[command(flatten)]
        config: ConfigArg,
        /// The shop's id in the config.
        #[arg(long)]
        shop: String,
        /// An opaque value the platform echoes back to the callback.
        #[arg(long, default_value = "kwaishop-sync")]
        state: String,
    },
    /// Exchange the code the callback received for the shop's tokens (stored in the database).
    Exchange {
        #[command(flatten)]
        config: ConfigArg,
        /// The shop's id in the config.
        #[arg(long)]
        shop: String,
        /// The authorization code (valid for 2 minutes, once).
        #[arg(long)]
        code: String,
    },
    /// Store a token copied from the platform console, read as JSON from a file or stdin.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        /// The shop's id in the config.
        #[arg(long)]
        shop: String,
        /// The JSON file ({"access_token": …, "refresh_token": …, "expires_in": …}); `-` is stdin.
        #[arg(long, default_value = "-")]
        file: PathBuf,
    },
}

/// Runs an `auth` subcommand.
pub async fn run(cmd: AuthCommand) -> anyhow::Result<()> {
    match cmd {
        AuthCommand::Url {
            config,
            shop,
            state,
        } => {
            let config = config.load()?;
            config.configured_shop(&shop)?;
            let redirect = config.platform.redirect_uri.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "set platform.redirect_uri (the callback registered in the console)"
                )
            })?;
            let url = crate::api::oauth::authorize_url(
                &config.platform.authorize_url,
                &config.platform.app_key,
                &redirect,
                &crate::api::REQUIRED_SCOPES,
                &state,
            );
            println!(
                "Open this link as the merchant of {shop}, approve, then run\n  kwaishop-sync auth exchange --shop {shop} --code <the code in the callback URL>\n\n{url}"
            );
        }
        AuthCommand::Exchange { config, shop, code } => {
            let config = config.load()?;
            config.configured_shop(&shop)?;
            let app = App::open(config).await?;
            let tokens = app.client.exchange_code(&shop, code.trim()).await?;
            app.store
                .set_shop_status(&shop, ShopStatus::Active, None)
                .await?;
            println!(
                "shop {shop} is authorized (open_id {}); the access token expires at {}, the grant at {}",
                tokens.open_id,
                format_ms(tokens.access_expires_at),
                format_ms(tokens.refresh_expires_at)
            );
            print_identity(&app, &shop).await;
        }
        AuthCommand::Import { config, shop, file } => {
            let config = config.load()?;
            config.configured_shop(&shop)?;
            let app = App::open(config).await?;
            let (config, store) = (&app.config, &app.store);
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let now = clock_for(config).now_ms();
            let tokens = parse_pasted(&text, now).map_err(anyhow::Error::msg)?;
            store.ensure_shop(&ShopRow::new(&shop)).await?;
            store.save_tokens(&shop, &tokens).await?;
            store
                .set_shop_status(&shop, ShopStatus::Active, None)
                .await?;
            println!(
                "stored the token of shop {shop}; it expires at {}",
                format_ms(tokens.access_expires_at)
            );
            print_identity(&app, &shop).await;
        }
    }
    Ok(())
}

/// Learns who the just-authorized shop is (its pushes are routed by it) and says so; a failure
/// is only a warning: the daemon tries again at its start.
async fn print_identity(app: &App, shop: &str) {
    let within = std::time::Duration::from_secs(30);
    match crate::identity::learn_within(app, shop, within).await {
        Ok(who) => println!(
            "shop {shop} is seller {}{}; its pushes are routed by that id",
            who.seller_id,
            who.name.map(|n| format!(" ({n})")).unwrap_or_default()
        ),
        Err(e) => eprintln!(
            "warning: cannot learn who shop {shop} is yet ({e}); `kwaishop-sync run` tries again at start, and its pushes wait until then"
        ),
    }
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
