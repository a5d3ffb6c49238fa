//! Push messages from the platform: decryption, decoding and validation, and the HTTP receiver
//! that stores each message durably before acknowledging it (I6).

pub mod crypto;
pub mod decode;
pub mod receiver;

pub use crypto::{CryptoError, MessageKey};
pub use decode::{Decoded, MessageKind, PushMessage, Rejection, decode};
