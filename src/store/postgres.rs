//! Opening the Postgres backend: a modest pool, and connection errors that never show the
//! URL's password (I8).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::StoreError;
use super::error::{redact_url, scrub};

/// Enough for the pollers, the push worker and the receiver of one instance.
const MAX_CONNECTIONS: u32 = 8;
/// How long a caller waits for a free connection (or a new one) before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the server named by `url` (`postgres://` or `postgresql://`). One connection is
/// made at once, so a wrong URL or a server that is down fails here, with its reason; the pool
/// opens the others as they are needed.
pub(crate) async fn connect(url: &str) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
        url: redact_url(url),
        reason: scrub(&e.to_string(), url),
    })?;
    let probe = PgConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Connect {
            url: redact_url(url),
            reason: scrub(&e.to_string(), url),
        })?;
    // The probe only proved the server answers; closing it cleanly is a courtesy.
    let _ = probe.close().await;
    Ok(PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options))
}
