//! `kwaishop-sync migrate` and `check-config`: the database's schema and the config file.

use crate::store::Store;

use super::ConfigArg;

/// Creates or upgrades the database's schema.
pub async fn migrate(arg: ConfigArg) -> anyhow::Result<()> {
    let config = arg.load()?;
    let store = Store::open(&config.database_url).await?;
    store.migrate().await?;
    println!("the database at {} is up to date", config.database_url);
    Ok(())
}

/// Validates the config file, listing every error in it.
pub fn check_config(arg: ConfigArg) -> anyhow::Result<()> {
    let config = arg.load()?;
    println!(
        "{} is valid: {} shop(s), database {}",
        arg.config.display(),
        config.shops.len(),
        config.database_url
    );
    Ok(())
}
