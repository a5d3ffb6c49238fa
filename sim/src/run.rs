//! Starting the simulator as a program does (`kwaishop-sync sim`): bind the address, start, and
//! write the fake app's credentials and each shop's tokens where a client can read them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{SimConfig, SimHandle, start};
use crate::clock::{ScaledClock, wall_ms};

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

/// Binds `listen` and starts the simulator; with `credentials_out`, writes there (as JSON) the
/// fake app's key and secrets and each shop's tokens.
pub async fn launch(
    config: SimConfig,
    listen: &str,
    credentials_out: Option<&Path>,
) -> Result<SimHandle, SimRunError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SimRunError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    let now = wall_ms();
    let clock = Arc::new(ScaledClock::new(now, now, config.speed));
    let handle = start(config, listener, clock)
        .await
        .map_err(|source| SimRunError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    if let Some(path) = credentials_out {
        let json = serde_json::to_string_pretty(handle.credentials()).unwrap_or_default();
        write_private(path, json.as_bytes())?;
    }
    Ok(handle)
}

/// Writes a file readable by its owner only (it holds fake secrets, but habits matter).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), SimRunError> {
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
