//! Push message encryption (reference §11.2): AES-CBC with a zero IV and PKCS#7 padding, the key
//! being the Base64-decoded message secret (16, 24 or 32 bytes), the body standard Base64.

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;

const IV: [u8; 16] = [0u8; 16];
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a push body could not be opened. Deliberately coarse: a forged body learns nothing.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the message secret is not Base64 for a 16, 24 or 32 byte key")]
    BadKey,
    #[error("the body is not Base64")]
    NotBase64,
    #[error("the body does not decrypt with this app's message secret")]
    Undecryptable,
}

/// An AES key derived from the app's message secret.
#[derive(Clone)]
pub struct MessageKey(Vec<u8>);

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageKey([redacted])")
    }
}

impl MessageKey {
    /// Decodes the console's message secret (Base64) into a key.
    pub fn from_secret(msg_secret: &str) -> Result<Self, CryptoError> {
        let key = B64
            .decode(msg_secret.trim())
            .map_err(|_| CryptoError::BadKey)?;
        match key.len() {
            16 | 24 | 32 => Ok(Self(key)),
            _ => Err(CryptoError::BadKey),
        }
    }

    /// Encrypts a plaintext message into a Base64 body.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let ct = match self.0.len() {
            16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.0, &IV)
                .map(|c| c.encrypt_padded_vec::<Pkcs7>(plaintext)),
            24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(&self.0, &IV)
                .map(|c| c.encrypt_padded_vec::<Pkcs7>(plaintext)),
            _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(&self.0, &IV)
                .map(|c| c.encrypt_padded_vec::<Pkcs7>(plaintext)),
        }
        .expect("key length checked in from_secret");
        B64.encode(ct)
    }

    /// Decrypts a Base64 body (surrounding whitespace ignored) into the plaintext bytes.
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let text = body.trim_ascii();
        let ct = B64.decode(text).map_err(|_| CryptoError::NotBase64)?;
        if ct.is_empty() || ct.len() % 16 != 0 {
            return Err(CryptoError::Undecryptable);
        }
        let pt = match self.0.len() {
            16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.0, &IV)
                .map(|c| c.decrypt_padded_vec::<Pkcs7>(&ct)),
            24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&self.0, &IV)
                .map(|c| c.decrypt_padded_vec::<Pkcs7>(&ct)),
            _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&self.0, &IV)
                .map(|c| c.decrypt_padded_vec::<Pkcs7>(&ct)),
        };
        match pt {
            Ok(Ok(pt)) => Ok(pt),
            _ => Err(CryptoError::Undecryptable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZg==";
    const ORDER_PLAIN: &str = r#"{"eventId":"243_4027_2375715766426","msgId":"84_2375715766425","bizId":2607602240240301,"userId":2161524184,"openId":"f1b68e8f2a4995ed14bf57245903fd9a","appKey":"ks699183844582124027","event":"kwaishop_order_paySuccess","info":"{\"oid\":2607602240240301,\"sellerId\":2161524184,\"status\":30,\"updateTime\":1773750945776}","status":2,"createTime":1773750943589,"updateTime":1773750945776}"#;
    const ORDER_BODY: &str = "bR+wF2nPNNun2sKB6x5rQnSOliMjne23/WFmr6v2ghrdBZJ8S9amUgGSkiIuXbAFl94+pyGSBeUBuv+osWjoIgMVPg5WLqoqROhAwK1irqNpH1Wvd7Mu/mfFXVDmhAQ7TeXMCZXtdMsBjEkRdJ+Ldr7crf91mAnTojplkmQ8iG51aFK1l2vOx54ezQWdWf4vwxGb0R8oUu/yIxXzrDVnO5T3dxkxzSJHdTvYCH4uKpoq1vLdq4QpagQkNcnVHAK1jpE6gwRTmpo5tiDaPeBFHBqPlH2XcflLzBum8p+M8r/nPrDLGxS2S7IEPfxl4cRXuC3vkNq1rt3GLTEum97zRvYtVUHUEJmmyLLfd/lDTlMWTv7rga4EpOsaDkfM1FxTQziLiTDMpuAVrs+nHC0Jw1oB83hwvCH+LG8CnqnaHpjvIPl/6Zk95JaX34C94ZllXUVO3CHVcZgViEnP9rZ5K+Y/nXAUCg7AagPRlbjBUARA8as79w95R+eyJ9Mupzag9XXP8mcjQ+vsLmbQK9u4Hg==";

    #[test]
    fn heartbeat_vector() {
        let key = MessageKey::from_secret(SECRET).expect("key");
        assert_eq!(key.encrypt(br#"{"test":true}"#), "watm3Pt/wCJGbPJJXW0XpA==");
        assert_eq!(
            key.decrypt(b"watm3Pt/wCJGbPJJXW0XpA==\n").expect("decrypt"),
            br#"{"test":true}"#
        );
    }

    #[test]
    fn order_vector() {
        let key = MessageKey::from_secret(SECRET).expect("key");
        assert_eq!(key.encrypt(ORDER_PLAIN.as_bytes()), ORDER_BODY);
        assert_eq!(
            key.decrypt(ORDER_BODY.as_bytes()).expect("decrypt"),
            ORDER_PLAIN.as_bytes()
        );
    }

    #[test]
    fn garbage_is_rejected() {
        let key = MessageKey::from_secret(SECRET).expect("key");
        assert_eq!(key.decrypt(b"not base64 !!"), Err(CryptoError::NotBase64));
        assert_eq!(key.decrypt(b""), Err(CryptoError::Undecryptable));
        assert_eq!(key.decrypt(b"AAAA"), Err(CryptoError::Undecryptable));
        let other = MessageKey::from_secret("ZmVkY2JhOTg3NjU0MzIxMA==").expect("key");
        assert!(other.decrypt(ORDER_BODY.as_bytes()).is_err());
        assert_eq!(
            MessageKey::from_secret("c2hvcnQ=").map(|_| ()),
            Err(CryptoError::BadKey)
        );
    }
}
