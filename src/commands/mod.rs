//! What the command line runs, one module per command; `main.rs` only parses arguments.

pub mod demo;
pub mod status;
pub mod sync;
