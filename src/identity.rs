//! Who each shop is. A push names its merchant by `openId` and `userId` (the seller id), and a
//! shop's config needs neither: both are learnt from the platform (`open.user.seller.get`, and
//! the token's `open_id`) when the shop is authorized (`auth exchange`, `auth import`) and at
//! every start of the daemon while still unknown, then kept in `shops`. Nothing public says the
//! envelope's `openId` is the token's, so the seller id alone routes a push. Pushes that arrived
//! before the shop was known wait as `unknown_shop` and become the shop's as soon as it is.

use tracing::{info, warn};

use crate::api::ApiError;
use crate::app::App;
use crate::store::StoreError;

/// What was learnt about one shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learnt {
    pub seller_id: i64,
    pub name: Option<String>,
    /// Every open id a push for it may carry: the merchant's, a sub-account's, the token's.
    pub open_ids: Vec<String>,
    /// Waiting `unknown_shop` events that became its own.
    pub adopted: u64,
}

/// Why a shop's identity could not be learnt.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("asking the platform who the shop is: {0}")]
    Api(#[from] ApiError),
    #[error("recording who the shop is: {0}")]
    Store(#[from] StoreError),
    #[error("the platform did not answer within {0:?}")]
    TimedOut(std::time::Duration),
}

/// [`learn`], giving up after `within` (a command waiting on an unreachable platform).
pub async fn learn_within(
    app: &App,
    shop: &str,
    within: std::time::Duration,
) -> Result<Learnt, LearnError> {
    tokio::time::timeout(within, learn(app, shop))
        .await
        .unwrap_or(Err(LearnError::TimedOut(within)))
}

/// Asks the platform who authorized the app for `shop` and records it (see the module doc).
pub async fn learn(app: &App, shop: &str) -> Result<Learnt, LearnError> {
    let seller = app.client.seller(shop).await?;
    let token_open_id = app
        .store
        .load_tokens(shop)
        .await?
        .map(|t| t.open_id)
        .filter(|o| !o.is_empty());
    let mut open_ids: Vec<String> = seller.open_ids().map(str::to_string).collect();
    open_ids.extend(token_open_id);
    open_ids.sort();
    open_ids.dedup();
    let ids: Vec<&str> = open_ids.iter().map(String::as_str).collect();
    let adopted = app
        .store
        .learn_shop_identity(
            shop,
            seller.seller_id,
            seller.open_id.as_deref(),
            seller.name.as_deref(),
            &ids,
            app.clock.now_ms(),
        )
        .await?;
    info!(
        shop,
        seller_id = seller.seller_id,
        name = seller.name.as_deref().unwrap_or(""),
        adopted,
        "learnt who the shop is"
    );
    Ok(Learnt {
        seller_id: seller.seller_id,
        name: seller.name,
        open_ids,
        adopted,
    })
}

/// [`learn`] for every configured shop the database knows no seller id of; failures are
/// logged (a shop without its identity still syncs; its pushes wait) and tried again later.
/// Returns how many were learnt.
pub async fn learn_unknown(app: &App) -> usize {
    let known: Vec<String> = match app.store.shops().await {
        Ok(rows) => rows
            .into_iter()
            .filter(|r| r.seller_id.is_some())
            .map(|r| r.shop_id)
            .collect(),
        Err(e) => {
            warn!(error = %e, "cannot read the shops to learn who they are");
            return 0;
        }
    };
    let mut learnt = 0;
    for shop in app.config.shops.iter().filter(|s| !known.contains(&s.id)) {
        match learn(app, &shop.id).await {
            Ok(_) => learnt += 1,
            Err(e) => {
                warn!(shop = shop.id, error = %e, "cannot learn who the shop is yet; its pushes wait until then")
            }
        }
    }
    learnt
}

/// One pass of the daemon: with `learn`, [`learn_unknown`]; and when push events wait as
/// `unknown_shop` (they came before their shop was known, or an `auth import` in another
/// process has just made it known), hands them to the shops now known. Returns whether the push
/// routing should be rebuilt (something was learnt, or events were waiting).
pub async fn pass(app: &App, learn: bool) -> bool {
    let learnt = if learn { learn_unknown(app).await } else { 0 };
    let waiting = match app.store.queue_stats().await {
        Ok(stats) => stats.unknown_shop,
        Err(e) => {
            warn!(error = %e, "cannot count the pushes waiting for their shop");
            0
        }
    };
    if waiting > 0 {
        adopt_waiting(app).await;
    }
    learnt > 0 || waiting > 0
}

/// Hands every known shop the `unknown_shop` events that name it.
async fn adopt_waiting(app: &App) {
    let Ok(shops) = app.store.shops().await else {
        return;
    };
    let now = app.clock.now_ms();
    for shop in shops {
        let Some(seller_id) = shop.seller_id else {
            continue;
        };
        let token = app.store.load_tokens(&shop.shop_id).await.ok().flatten();
        let open_ids: Vec<&str> = shop
            .open_id
            .as_deref()
            .into_iter()
            .chain(token.as_ref().map(|t| t.open_id.as_str()))
            .filter(|o| !o.is_empty())
            .collect();
        match app
            .store
            .adopt_unknown_events(&shop.shop_id, seller_id, &open_ids, now)
            .await
        {
            Ok(0) => {}
            Ok(n) => info!(
                shop = shop.shop_id,
                events = n,
                "pushes that waited for their shop are now its own"
            ),
            Err(e) => {
                warn!(shop = shop.shop_id, error = %e, "cannot hand waiting pushes to their shop")
            }
        }
    }
}
