//! The queue worker (design.md "Push path"): turns stored push events into fresh rows. Events
//! are claimed with a lease and a fencing token; events about the same record are coalesced
//! into one detail fetch through the rate-limited client (no transaction is held across it);
//! the fetched record and the events' done marks commit together (I5). Failures are retried with
//! exponential backoff and jitter; after `max_attempts` an event is dead, its last error kept.

mod settings;
mod worker;

pub use settings::{BeforeFetch, BeforeFetchFn, WorkerSettings};
pub use worker::{Worker, WorkerStats};
