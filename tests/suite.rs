//! The integration suite, one test binary: every file beside this one is a module of it, so
//! the tests of all files run side by side (four at a time, `.cargo/config.toml`) instead of
//! one file after another, and the crate is linked once. Run one file's tests with
//! `cargo test --test suite sync_sim::`. The leak check (`zz_no_secret_leaks`) stays a binary
//! of its own, run after this one.

mod common;
mod common_db;

mod cli;
mod client_sim;
mod crash_resume;
mod demo;
mod observe;
mod push_durability;
mod push_queue;
mod real_shop;
mod reports;
mod service;
mod sim_platform;
mod status_page;
mod store_conformance;
mod store_events;
mod store_leases;
mod sync_sim;
