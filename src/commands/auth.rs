//! `kwaishop-sync auth …`: the authorize link for a shop, the code exchange, and importing a
//! token copied from the platform console. Tokens are read from a file or standard input, never
//! from the command line (where they would land in shell history and the process list).

use std::path::PathBuf;

use super::ConfigArg;
use crate::api::oauth::TokenSet;
use crate::app::{App, clock_for};
use crate::clock::format_ms;
use crate::store::{ShopRow, ShopStatus};
use anyhow::Context;

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
            let tokens = TokenSet::from_json(&text, now).map_err(anyhow::Error::msg)?;
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
