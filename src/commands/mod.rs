//! What the command line runs, one module per command, each with its arguments and its body;
//! `main.rs` only parses the arguments, turns signals into calls, and dispatches.

pub mod auth;
pub mod bench;
pub mod demo;
pub mod progress;
pub mod quarantine;
pub mod queue;
pub mod report;
pub mod resync;
pub mod run;
pub mod schema;
pub mod sim;
pub mod status;
pub mod sync;

use std::path::PathBuf;

use crate::config::Config;
use crate::store::{Store, Stream};

/// The config file read when none is named.
pub const DEFAULT_CONFIG: &str = "kwaishop-sync.toml";

/// The config file a command reads.
#[derive(clap::Args, Debug)]
pub struct ConfigArg {
    /// The config file.
    #[arg(
        long,
        short,
        env = "KWAISHOP_SYNC_CONFIG",
        default_value = DEFAULT_CONFIG
    )]
    pub config: PathBuf,
}

impl ConfigArg {
    /// The validated config, or every error in it.
    pub fn load(&self) -> anyhow::Result<Config> {
        Config::load(&self.config).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The config and its database, migrated.
    pub async fn open_store(&self) -> anyhow::Result<(Config, Store)> {
        let config = self.load()?;
        let store = Store::open(&config.database_url).await?;
        store.migrate().await?;
        Ok((config, store))
    }
}

/// A stream named on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum StreamArg {
    Orders,
    Refunds,
    Items,
}

impl From<StreamArg> for Stream {
    fn from(s: StreamArg) -> Stream {
        match s {
            StreamArg::Orders => Stream::Orders,
            StreamArg::Refunds => Stream::Refunds,
            StreamArg::Items => Stream::Items,
        }
    }
}

/// The stream named, or every stream.
pub fn streams(only: Option<StreamArg>) -> Vec<Stream> {
    match only {
        Some(s) => vec![s.into()],
        None => Stream::ALL.to_vec(),
    }
}
