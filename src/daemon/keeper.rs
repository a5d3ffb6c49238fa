//! The token keeper: refreshes each shop's access token once less than half of its 48 hours
//! remain (never later than an hour before expiry), and warns well before the refresh token's
//! fixed ~180 days end, when the merchant must authorize again (reference §2, §7.3).

use std::collections::HashMap;

use tracing::{error, info, warn};

use crate::api::oauth::{ACCESS_LIFETIME_MS, GRANT_WARNING_MS};
use crate::app::App;
use crate::clock::{DAY_MS, beijing_day, format_ms};
use crate::store::ShopStatus;

/// Refresh when less than this remains (half of the platform's 48 h).
const REFRESH_WHEN_LEFT_MS: i64 = ACCESS_LIFETIME_MS / 2;

/// One pass over every active shop. The end-of-grant warnings go out once per shop and China
/// day (`warned` remembers the day of each shop's last one), not at every pass.
pub async fn check_tokens(app: &App, warned: &mut HashMap<String, i64>) {
    let now = app.clock.now_ms();
    let today = beijing_day(now);
    let Ok(shops) = app.store.shops().await else {
        return;
    };
    for shop in shops.iter().filter(|s| s.status == ShopStatus::Active) {
        let tokens = match app.store.load_tokens(&shop.shop_id).await {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                warn!(shop = shop.shop_id, error = %e, "cannot read the shop's token");
                continue;
            }
        };
        let grant_left = tokens.refresh_expires_at - now;
        let warn_today = grant_left < GRANT_WARNING_MS
            && warned.insert(shop.shop_id.clone(), today) != Some(today);
        if warn_today && grant_left < 7 * DAY_MS {
            error!(shop = shop.shop_id, ends = %format_ms(tokens.refresh_expires_at), "the shop's authorization ends within 7 days: the merchant must authorize the app again (kwaishop-sync auth url)");
        } else if warn_today {
            warn!(shop = shop.shop_id, ends = %format_ms(tokens.refresh_expires_at), "the shop's authorization ends within 30 days");
        }
        if tokens.access_expires_at - now > REFRESH_WHEN_LEFT_MS || tokens.refresh_token.is_empty()
        {
            continue;
        }
        match app.client.refresh_now(&shop.shop_id).await {
            Ok(fresh) => {
                info!(shop = shop.shop_id, expires = %format_ms(fresh.access_expires_at), "refreshed the shop's access token ahead of expiry")
            }
            Err(e) if e.class == crate::api::ErrorClass::AuthorizationRevoked => {
                error!(shop = shop.shop_id, error = %e, "the shop's authorization is gone: it needs to authorize the app again");
                let _ = app
                    .store
                    .set_shop_status(&shop.shop_id, ShopStatus::NeedsReauth, Some(&e.message))
                    .await;
            }
            Err(e) => {
                warn!(shop = shop.shop_id, error = %e, "cannot refresh the shop's token yet; will try again")
            }
        }
    }
}
