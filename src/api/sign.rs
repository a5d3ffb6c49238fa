//! Request signing (reference §5): the sorted system parameters, `&signSecret=…` appended, then
//! MD5 (lower-case hex) or HMAC-SHA256 keyed with the sign secret (standard padded Base64).
//!
//! The `param` JSON is signed as opaque bytes: the caller signs exactly the string it sends.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// The two signature methods the platform accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
pub enum SignMethod {
    /// `MD5`: lower-case hex MD5 of the sign string.
    #[serde(rename = "MD5")]
    Md5,
    /// `HMAC_SHA256`: Base64 HMAC-SHA256 of the sign string keyed with the sign secret.
    #[default]
    #[serde(rename = "HMAC_SHA256")]
    HmacSha256,
}

impl SignMethod {
    /// The value of the `signMethod` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            SignMethod::Md5 => "MD5",
            SignMethod::HmacSha256 => "HMAC_SHA256",
        }
    }

    /// Parses a `signMethod` value as the platform spells it.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "MD5" => Some(SignMethod::Md5),
            "HMAC_SHA256" => Some(SignMethod::HmacSha256),
            _ => None,
        }
    }
}

/// The signed system parameters of one request (decoded values, exactly as sent).
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    pub access_token: &'a str,
    pub appkey: &'a str,
    pub method: &'a str,
    pub param: Option<&'a str>,
    pub sign_method: SignMethod,
    pub timestamp: Option<&'a str>,
    pub version: Option<&'a str>,
}

/// The string that is hashed: keys in ascending order, raw values, then `&signSecret=`.
pub fn sign_string(input: &SignInput<'_>, sign_secret: &str) -> String {
    // The keys below are already in ascending byte order (what the platform's TreeMap yields).
    let pairs: [(&str, Option<&str>); 7] = [
        ("access_token", Some(input.access_token)),
        ("appkey", Some(input.appkey)),
        ("method", Some(input.method)),
        ("param", input.param),
        ("signMethod", Some(input.sign_method.as_str())),
        ("timestamp", input.timestamp),
        ("version", input.version),
    ];
    let mut out = String::with_capacity(256 + input.param.map_or(0, str::len));
    for (key, value) in pairs {
        let Some(value) = value else { continue };
        // access_token, appkey and method are signed only when non-blank.
        if value.trim().is_empty() && matches!(key, "access_token" | "appkey" | "method") {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out.push_str("&signSecret=");
    out.push_str(sign_secret);
    out
}

/// The `sign` value for a request.
pub fn sign(input: &SignInput<'_>, sign_secret: &str) -> String {
    let text = sign_string(input, sign_secret);
    match input.sign_method {
        SignMethod::Md5 => hex::encode(Md5::digest(text.as_bytes())),
        SignMethod::HmacSha256 => {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(sign_secret.as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(text.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
    }
}

/// Compares a received signature with the expected one in constant time.
pub fn verify(input: &SignInput<'_>, sign_secret: &str, received: &str) -> bool {
    let expected = sign(input, sign_secret);
    let (a, b) = (expected.as_bytes(), received.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_TOKEN: &str = "ChFvYXV0aC5hY2Nlc3NUb2tlbhJQR0DhKq37uZEXa5vVPsltqIMkm9CAY89zVHxJNG8RJ6znH2oX56s3PY8o49BZIkA9JP9-WuWn6CvzXl64zeEhYbsXh-wCpjxyGi9LmWLMWTEaEu874KGvz723CPikM0lrNGlXMyIgaoY9PaVA3FZ9q_vNvX6kVlTDAP-_IZp-lEazzjM9XsgoDzAB";
    const A_PARAM: &str = r#"{"beginTime":1650844800000,"endTime":1650931200000,"type":9,"pageSize":10,"currentPage":1,"queryType":1,"negotiateStatus":0,"pcursor":" "}"#;

    fn vector_a(method: SignMethod) -> SignInput<'static> {
        SignInput {
            access_token: A_TOKEN,
            appkey: "ks683702719562282620",
            method: "open.seller.order.refund.pcursor.list",
            param: Some(A_PARAM),
            sign_method: method,
            timestamp: Some("1652691410482"),
            version: Some("1"),
        }
    }

    const C_PARAM: &str = r#"{"orderViewStatus":1,"pageSize":50,"sort":1,"queryType":2,"beginTime":1700000000000,"endTime":1700086400000,"cursor":""}"#;

    fn vector_c(method: SignMethod) -> SignInput<'static> {
        SignInput {
            access_token: "TEST_ACCESS_TOKEN",
            appkey: "ks000000000000000001",
            method: "open.order.cursor.list",
            param: Some(C_PARAM),
            sign_method: method,
            timestamp: Some("1700000000123"),
            version: Some("1"),
        }
    }

    #[test]
    fn vector_a_md5() {
        let secret = "7482bac6555ee7a3184bcc48f4ef05cd";
        assert_eq!(
            sign(&vector_a(SignMethod::Md5), secret),
            "27b2ddec3ab555c1edaf9fd902948321"
        );
    }

    #[test]
    fn vector_b_hmac() {
        let secret = "7482bac6555ee7a3184bcc48f4ef05cd";
        assert_eq!(
            sign(&vector_a(SignMethod::HmacSha256), secret),
            "kVow+B40y4W8zE41oWGUkSIGhF4OreqCtdyedlf+hBc="
        );
    }

    #[test]
    fn vector_c_both_methods() {
        let secret = "testSignSecret123";
        let md5 = vector_c(SignMethod::Md5);
        assert_eq!(
            sign_string(&md5, secret),
            format!(
                "access_token=TEST_ACCESS_TOKEN&appkey=ks000000000000000001&method=open.order.cursor.list&param={C_PARAM}&signMethod=MD5&timestamp=1700000000123&version=1&signSecret=testSignSecret123"
            )
        );
        assert_eq!(sign(&md5, secret), "69ce733ce12a56f38f18f1c927993284");
        assert_eq!(
            sign(&vector_c(SignMethod::HmacSha256), secret),
            "pI0TkdOg1Cncq2d6a0eKVnTgZ4JzR3WCSr3wYYfJ3mY="
        );
    }

    #[test]
    fn verify_rejects_a_changed_byte() {
        let input = vector_c(SignMethod::HmacSha256);
        let good = sign(&input, "testSignSecret123");
        assert!(verify(&input, "testSignSecret123", &good));
        assert!(!verify(&input, "testSignSecret124", &good));
        let mut other = input;
        other.param = Some(r#"{"orderViewStatus":1}"#);
        assert!(!verify(&other, "testSignSecret123", &good));
    }
}
