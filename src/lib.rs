//! kwaishop-sync: mirrors Kuaishou shops (orders, refunds, items and SKUs) from the Kuaishou
//! e-commerce open platform into SQLite or Postgres, for reporting.
//!
//! The binary (`main.rs`) is only the command line; everything lives here so tests can reach it.
//! See `design.md` for the architecture and the invariants I1–I8 the tests name.

pub mod api;
pub mod app;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod identity;
pub mod push;
pub mod queue;
pub mod secret;
pub mod store;
pub mod sync;

pub use clock::{Clock, SharedClock, SystemClock};
pub use secret::Secret;
