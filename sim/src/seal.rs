//! How the platform seals a push body (reference §11.2): AES-CBC with a zero IV and PKCS#7
//! padding under the Base64-decoded message secret (16, 24 or 32 bytes), sent as standard Base64.
//! The simulator's own implementation, checked against the reference's vectors, so a mistake in
//! the product's decryption cannot hide behind shared code.

use aes::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const ZERO_IV: [u8; 16] = [0; 16];

/// An app's message key.
#[derive(Clone)]
pub struct PushKey(Vec<u8>);

impl std::fmt::Debug for PushKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushKey(..)")
    }
}

impl PushKey {
    /// The key a Base64 message secret decodes to; `None` unless it is 16, 24 or 32 bytes.
    pub fn from_secret(msg_secret: &str) -> Option<Self> {
        let key = B64.decode(msg_secret.trim()).ok()?;
        matches!(key.len(), 16 | 24 | 32).then_some(Self(key))
    }

    /// The Base64 body the platform would post for `plaintext`.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let sealed = match self.0.len() {
            16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.0, &ZERO_IV)
                .map(|c| c.encrypt_padded_vec::<Pkcs7>(plaintext)),
            24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(&self.0, &ZERO_IV)
                .map(|c| c.encrypt_padded_vec::<Pkcs7>(plaintext)),
            _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(&self.0, &ZERO_IV)
                .map(|c| c.encrypt_padded_vec::<Pkcs7>(plaintext)),
        }
        .expect("the key's length is checked in from_secret");
        B64.encode(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_the_reference_vector() {
        let key = PushKey::from_secret("MDEyMzQ1Njc4OWFiY2RlZg==").expect("16 bytes");
        assert_eq!(key.seal(br#"{"test":true}"#), "watm3Pt/wCJGbPJJXW0XpA==");
    }

    #[test]
    fn only_aes_key_lengths_are_keys() {
        assert!(PushKey::from_secret("c2hvcnQ=").is_none());
        assert!(PushKey::from_secret("not base64!").is_none());
    }
}
