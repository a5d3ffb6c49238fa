//! `kwaishop-sync sim`: starts the simulator, writes the credentials and a ready config file for
//! kwaishop-sync, and serves until asked to stop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{SimConfig, SimCredentials, SimHandle, start};
use crate::clock::{ScaledClock, wall_ms};

/// Where the simulator writes what a client needs.
#[derive(Debug, Clone, Default)]
pub struct SimOutputs {
    /// JSON with the fake app's key and secrets and each shop's tokens.
    pub credentials_out: Option<PathBuf>,
    /// A kwaishop-sync config file pointing at this simulator; its secrets go beside it.
    pub config_out: Option<PathBuf>,
    /// The database URL written into the config (default: a SQLite file beside the config).
    pub db: Option<String>,
}

/// Errors of starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimRunError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Binds `listen`, starts the simulator and writes the requested files.
pub async fn launch(
    config: SimConfig,
    listen: &str,
    outputs: &SimOutputs,
) -> Result<SimHandle, SimRunError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SimRunError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    let now = wall_ms();
    let clock = Arc::new(ScaledClock::new(now, now, config.speed));
    let qps = config.qps;
    let quota = config.daily_quota;
    let handle = start(config, listener, clock)
        .await
        .map_err(|source| SimRunError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    if let Some(path) = &outputs.credentials_out {
        let json = serde_json::to_string_pretty(handle.credentials()).unwrap_or_default();
        write_private(path, json.as_bytes())?;
    }
    if let Some(path) = &outputs.config_out {
        write_config(&handle, path, outputs.db.as_deref(), qps, quota)?;
    }
    Ok(handle)
}

/// Writes a file readable by its owner only (it holds fake secrets, but habits matter).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), SimRunError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| SimRunError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(contents).map_err(err)
}

/// A TOML basic string: JSON's string escapes are valid TOML.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The queue worker's claim lease for a kwaishop-sync that follows a clock running `speed` times
/// as fast: the lease is measured on that clock, so this keeps the default five minutes of real
/// time (at 600x the default would expire in half a second, in the middle of a fetch).
pub fn queue_lease_secs(speed: f64) -> u64 {
    (300.0 * speed.max(1.0)).round() as u64
}

/// The config file, with each secret in its own file under `<name>.secrets/`.
pub fn write_config(
    handle: &SimHandle,
    path: &Path,
    db: Option<&str>,
    qps: Option<f64>,
    quota: Option<u64>,
) -> Result<(), SimRunError> {
    let creds: &SimCredentials = handle.credentials();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("kwaishop-sync");
    let secrets = format!("{stem}.secrets");
    let put =
        |name: &str, value: &str| write_private(&dir.join(&secrets).join(name), value.as_bytes());
    put("app_secret", &creds.app_secret)?;
    put("sign_secret", &creds.sign_secret)?;
    put("msg_secret", &creds.msg_secret)?;
    let db = db
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite://{stem}.db"));
    let (wall_origin, origin) = handle.state.clock.origin();
    let mut out = format!(
        "# Written by `kwaishop-sync sim --config-out`: kwaishop-sync against the local simulator.\n\
         # Paths are relative to this file. The secrets are the simulator's fake ones.\n\n\
         [platform]\nbase_url = {}\napp_key = {}\napp_secret_file = {}\nsign_secret_file = {}\nmsg_secret_file = {}\n\n\
         [database]\nurl = {}\n",
        toml_str(&handle.base_url()),
        toml_str(&creds.app_key),
        toml_str(&format!("{secrets}/app_secret")),
        toml_str(&format!("{secrets}/sign_secret")),
        toml_str(&format!("{secrets}/msg_secret")),
        toml_str(&db),
    );
    if (handle.state.clock.speed() - 1.0).abs() > f64::EPSILON {
        out.push_str(&format!(
            "\n# The simulator's clock runs {}x: kwaishop-sync follows it.\n[clock]\nspeed = {:?}\nwall_origin_ms = {wall_origin}\norigin_ms = {origin}\n",
            handle.state.clock.speed(),
            handle.state.clock.speed()
        ));
        out.push_str(&format!(
            "\n[queue]\nlease_secs = {}\n",
            queue_lease_secs(handle.state.clock.speed())
        ));
    }
    if qps.is_some() || quota.is_some() {
        out.push_str("\n[limits]\n");
        if let Some(q) = qps {
            out.push_str(&format!("qps = {{ default = {q:?} }}\n"));
        }
        if let Some(q) = quota {
            out.push_str(&format!("daily_quota = {q}\n"));
        }
    }
    for (i, shop) in creds.shops.iter().enumerate() {
        let token = serde_json::json!({
            "access_token": shop.access_token,
            "refresh_token": shop.refresh_token,
            "access_expires_at": shop.access_expires_at,
            "refresh_expires_at": shop.refresh_expires_at,
            "open_id": shop.open_id,
        });
        put(&format!("shop-{i}.token.json"), &token.to_string())?;
        out.push_str(&format!(
            "\n[[shops]]\nid = {}\nopen_id = {}\nseller_id = {}\ntoken_file = {}\n",
            toml_str(&format!("shop-{i}")),
            toml_str(&shop.open_id),
            shop.seller_id,
            toml_str(&format!("{secrets}/shop-{i}.token.json")),
        ));
    }
    write_private(path, out.as_bytes())
}
