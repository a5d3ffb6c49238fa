//! `kwaishop-sync run`: the service (`crate::daemon::service`), until `main` turns a signal into
//! its stop.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ConfigArg;
use crate::daemon::service::{Control, Service, ServiceOptions};

/// What `run` is told.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Request a resync of every shop and stream at start.
    #[arg(long)]
    pub resync: bool,
}

/// Builds the service and runs it until `shutdown`, answering `controls` (SIGHUP, SIGUSR1).
pub async fn run(
    args: RunArgs,
    shutdown: CancellationToken,
    controls: mpsc::UnboundedReceiver<Control>,
) -> anyhow::Result<()> {
    let service = Service::build(ServiceOptions {
        config_path: args.config.config,
        resync_at_start: args.resync,
        listener: None,
    })
    .await?;
    service.run_until(shutdown, controls).await?;
    Ok(())
}
