//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds the migration files,
//! and cargo does not otherwise notice a new file in those folders.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
