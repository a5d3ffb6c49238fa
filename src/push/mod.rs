//! Push messages from the platform: decryption (and, later, the receiver and durable enqueue).

pub mod crypto;

pub use crypto::{CryptoError, MessageKey};
