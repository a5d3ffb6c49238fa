//! The gateway's own signature check, written from the reference (§5.1) apart from the client's
//! signer, so that a mistake in one cannot pass through the other: the signed parameters as
//! received (form-decoded), sorted by name, joined as `key=value` with `&`, then
//! `&signSecret=` and the secret; `MD5` as lower-case hex, `HMAC_SHA256` keyed with the secret
//! as padded Base64. The public vectors A–C are what ties the two together.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// The system parameters that are signed, when present; `sign` itself never is.
const SIGNED: [&str; 7] = [
    "access_token",
    "appkey",
    "method",
    "param",
    "signMethod",
    "timestamp",
    "version",
];

/// These three are signed only when not blank (the platform's `SignUtils`).
const SKIPPED_WHEN_BLANK: [&str; 3] = ["access_token", "appkey", "method"];

/// The signature the request's parameters call for, or `None` for an unknown `signMethod`.
pub fn expected(params: &HashMap<String, String>, sign_secret: &str) -> Option<String> {
    let signed: BTreeMap<&str, &str> = SIGNED
        .iter()
        .filter_map(|k| params.get(*k).map(|v| (*k, v.as_str())))
        .filter(|(k, v)| !(SKIPPED_WHEN_BLANK.contains(k) && v.trim().is_empty()))
        .collect();
    let mut text = signed
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    text.push_str("&signSecret=");
    text.push_str(sign_secret);
    match params.get("signMethod").map(String::as_str) {
        Some("MD5") => Some(hex::encode(Md5::digest(text.as_bytes()))),
        Some("HMAC_SHA256") => {
            let mut mac = Hmac::<Sha256>::new_from_slice(sign_secret.as_bytes()).ok()?;
            mac.update(text.as_bytes());
            Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
        }
        _ => None,
    }
}

/// Whether `params` carry the right `sign` (compared in constant time).
pub fn verify(params: &HashMap<String, String>, sign_secret: &str) -> bool {
    let (Some(want), Some(got)) = (expected(params, sign_secret), params.get("sign")) else {
        return false;
    };
    let (a, b) = (want.as_bytes(), got.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Vector A of the reference (its staging credentials are long dead).
    fn vector_a(sign_method: &str) -> HashMap<String, String> {
        params(&[
            ("appkey", "ks683702719562282620"),
            ("method", "open.seller.order.refund.pcursor.list"),
            ("version", "1"),
            ("signMethod", sign_method),
            ("timestamp", "1652691410482"),
            (
                "access_token",
                "ChFvYXV0aC5hY2Nlc3NUb2tlbhJQR0DhKq37uZEXa5vVPsltqIMkm9CAY89zVHxJNG8RJ6znH2oX56s3PY8o49BZIkA9JP9-WuWn6CvzXl64zeEhYbsXh-wCpjxyGi9LmWLMWTEaEu874KGvz723CPikM0lrNGlXMyIgaoY9PaVA3FZ9q_vNvX6kVlTDAP-_IZp-lEazzjM9XsgoDzAB",
            ),
            (
                "param",
                r#"{"beginTime":1650844800000,"endTime":1650931200000,"type":9,"pageSize":10,"currentPage":1,"queryType":1,"negotiateStatus":0,"pcursor":" "}"#,
            ),
        ])
    }

    fn vector_c(sign_method: &str) -> HashMap<String, String> {
        params(&[
            ("access_token", "TEST_ACCESS_TOKEN"),
            ("appkey", "ks000000000000000001"),
            ("method", "open.order.cursor.list"),
            (
                "param",
                r#"{"orderViewStatus":1,"pageSize":50,"sort":1,"queryType":2,"beginTime":1700000000000,"endTime":1700086400000,"cursor":""}"#,
            ),
            ("signMethod", sign_method),
            ("timestamp", "1700000000123"),
            ("version", "1"),
        ])
    }

    #[test]
    fn the_reference_vectors() {
        let a_secret = "7482bac6555ee7a3184bcc48f4ef05cd";
        assert_eq!(
            expected(&vector_a("MD5"), a_secret).as_deref(),
            Some("27b2ddec3ab555c1edaf9fd902948321")
        );
        assert_eq!(
            expected(&vector_a("HMAC_SHA256"), a_secret).as_deref(),
            Some("kVow+B40y4W8zE41oWGUkSIGhF4OreqCtdyedlf+hBc=")
        );
        assert_eq!(
            expected(&vector_c("MD5"), "testSignSecret123").as_deref(),
            Some("69ce733ce12a56f38f18f1c927993284")
        );
        assert_eq!(
            expected(&vector_c("HMAC_SHA256"), "testSignSecret123").as_deref(),
            Some("pI0TkdOg1Cncq2d6a0eKVnTgZ4JzR3WCSr3wYYfJ3mY=")
        );
    }

    #[test]
    fn a_changed_byte_or_an_unknown_method_fails() {
        let mut p = vector_c("HMAC_SHA256");
        p.insert(
            "sign".into(),
            "pI0TkdOg1Cncq2d6a0eKVnTgZ4JzR3WCSr3wYYfJ3mY=".into(),
        );
        assert!(verify(&p, "testSignSecret123"));
        assert!(!verify(&p, "testSignSecret124"));
        p.insert("timestamp".into(), "1700000000124".into());
        assert!(!verify(&p, "testSignSecret123"));
        p.insert("signMethod".into(), "SHA1".into());
        assert!(!verify(&p, "testSignSecret123"));
        // An unsigned business field outside `param` changes nothing.
        let mut q = vector_c("MD5");
        q.insert("sign".into(), "69ce733ce12a56f38f18f1c927993284".into());
        q.insert("extra".into(), "x".into());
        assert!(verify(&q, "testSignSecret123"));
    }
}
