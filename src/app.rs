//! Wiring shared by the commands and the daemon: from a validated [`Config`] to an open store,
//! a platform client whose tokens and quota live in that store, the shops registered, and the
//! clock (the wall clock, or a simulator's fast clock).

use std::sync::Arc;

use tracing::{info, warn};

use crate::api::client::DEFAULT_CONNECT_TIMEOUT;
use crate::api::oauth::TokenSet;
use crate::api::{ApiClient, ApiError, AppCredentials, ClientOptions, HourlyCalls};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::store::{ShopRow, ShopStatus, Store, StoreError};
use crate::sync::SyncContext;
use kwaishop_sim::ScaledClock;

/// Errors of putting the application together.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the platform client: {0}")]
    Client(#[from] ApiError),
    #[error("shop {shop}: cannot import tokens from {path}: {message}")]
    TokenFile {
        shop: String,
        path: String,
        message: String,
    },
    #[error(transparent)]
    UnknownShop(#[from] crate::config::UnknownShop),
}

/// The open application: what every command and the daemon work with.
#[derive(Debug, Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub client: ApiClient,
    pub clock: SharedClock,
}

/// The clock the config asks for: a simulator's fast clock, else the wall clock.
pub fn clock_for(config: &Config) -> SharedClock {
    match config.clock {
        Some(c) => Arc::new(ScaledClock::new(c.wall_origin_ms, c.origin_ms, c.speed)),
        None => Arc::new(SystemClock),
    }
}

/// The client settings a config describes.
pub fn client_options(config: &Config) -> ClientOptions {
    ClientOptions {
        base_url: config.platform.base_url.clone(),
        sign_method: config.platform.sign_method,
        qps: config.limits.qps.clone(),
        daily_quota: config.limits.daily_quota,
        retry: config.retry.clone(),
        timeout: config.platform.timeout,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT.min(config.platform.timeout),
        ..ClientOptions::default()
    }
}

/// The app's credentials a config holds.
pub fn app_credentials(config: &Config) -> AppCredentials {
    AppCredentials {
        app_key: config.platform.app_key.clone(),
        app_secret: config.platform.app_secret.clone(),
        sign_secret: config.platform.sign_secret.clone(),
    }
}

impl App {
    /// Opens the database (migrating it), builds the client, registers the shops and imports
    /// token files for shops that have no token yet.
    pub async fn open(config: Config) -> Result<App, AppError> {
        let store = Store::open(&config.database_url).await?;
        Self::with_store(config, store, None).await
    }

    /// [`App::open`] over an already connected store (migrated here). A daemon passes its
    /// `instance` id: the client names it in the User-Agent, so the platform's logs (and the
    /// simulator's) tell the daemons apart.
    pub async fn with_store(
        config: Config,
        store: Store,
        instance: Option<&str>,
    ) -> Result<App, AppError> {
        store.migrate().await?;
        let clock = clock_for(&config);
        let store_arc = Arc::new(store.clone());
        let mut options = client_options(&config);
        options.instance = instance.map(str::to_string);
        let client = ApiClient::new(
            app_credentials(&config),
            options,
            clock.clone(),
            store_arc.clone(),
            store_arc,
        )?;
        let app = App {
            config: Arc::new(config),
            store,
            client,
            clock,
        };
        app.register_shops().await?;
        Ok(app)
    }

    /// This application under a reloaded config: the same store, clock and client, the client
    /// reconfigured in place — so whoever holds it (the worker, the pollers, the keeper) keeps
    /// one set of rate limiters (at this instance's share), one refresh lock per shop and one
    /// count buffer. The new config's shops are registered.
    pub async fn reconfigured(&self, config: Config) -> Result<App, AppError> {
        let mut options = client_options(&config);
        options.instance = self.client.instance();
        self.client.reconfigure(app_credentials(&config), options);
        let app = App {
            config: Arc::new(config),
            store: self.store.clone(),
            client: self.client.clone(),
            clock: self.clock.clone(),
        };
        app.register_shops().await?;
        Ok(app)
    }

    async fn register_shops(&self) -> Result<(), AppError> {
        for shop in &self.config.shops {
            self.store
                .ensure_shop(&ShopRow {
                    shop_id: shop.id.clone(),
                    open_id: shop.open_id.clone(),
                    seller_id: shop.seller_id,
                    name: shop.name.clone(),
                    status: ShopStatus::Active,
                    status_reason: None,
                    quota_paused_until: None,
                })
                .await?;
            let Some(path) = &shop.token_file else {
                continue;
            };
            if self.store.load_tokens(&shop.id).await?.is_some() {
                continue;
            }
            let err = |message: String| AppError::TokenFile {
                shop: shop.id.clone(),
                path: path.display().to_string(),
                message,
            };
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let tokens = TokenSet::from_json(&text, self.clock.now_ms())
                .map_err(|e| err(format!("not a token file: {e}")))?;
            self.store.save_tokens(&shop.id, &tokens).await?;
            info!(
                shop = shop.id,
                "imported the shop's tokens from its token file"
            );
        }
        Ok(())
    }

    /// The sync context over this application.
    pub fn sync_context(&self) -> SyncContext {
        SyncContext {
            client: self.client.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Writes the client's hourly call counts to `api_calls` (see [`flush_api_calls`]); a
    /// failure is logged as a warning and the counts wait for the next flush.
    pub async fn flush_api_calls(&self) {
        if let Err(e) = flush_api_calls(self.client.hourly_calls(), &self.store).await {
            warn!(error = %e, "cannot write the API call counts; they are kept for the next try");
        }
    }

    /// At a stop: gives back the calls counted ahead and not made, then writes the call
    /// counts ([`App::flush_api_calls`]).
    pub async fn finish_calls(&self) {
        self.client.give_back_unused(None).await;
        self.flush_api_calls().await;
    }

    /// The configured shops, or just the one named.
    pub fn shops(&self, only: Option<&str>) -> Result<Vec<String>, AppError> {
        match only {
            Some(id) => Ok(vec![self.config.configured_shop(id)?.id.clone()]),
            None => Ok(self.config.shops.iter().map(|s| s.id.clone()).collect()),
        }
    }
}

/// Moves the counts waiting in `calls` into the database's `api_calls` in one transaction and
/// returns how many (shop, hour, method, outcome) rows they were; when the write fails, the
/// counts are put back, so the next flush writes them.
pub async fn flush_api_calls(calls: &HourlyCalls, store: &Store) -> Result<usize, StoreError> {
    let counts = calls.drain();
    if counts.is_empty() {
        return Ok(0);
    }
    match store.add_api_calls(&counts).await {
        Ok(()) => Ok(counts.len()),
        Err(e) => {
            calls.restore(counts);
            Err(e)
        }
    }
}
