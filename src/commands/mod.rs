//! What the command line runs, one module per command; `main.rs` only parses arguments.

pub mod auth;
pub mod bench;
pub mod demo;
pub mod quarantine;
pub mod queue;
pub mod report;
pub mod sim;
pub mod status;
pub mod sync;
