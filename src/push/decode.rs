//! From a push body to a validated message (reference §11): Base64 → AES-CBC → the envelope
//! JSON, whose `info` is JSON inside a string. Heartbeats are recognised; a foreign `appKey`,
//! a missing `eventId` or anything undecodable is rejected with a reason for the logs.

use serde_json::Value;

use super::crypto::{CryptoError, MessageKey};
use crate::api::envelope::{lenient_i64, lenient_text};

/// What kind of record a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Order,
    Refund,
    Item,
    Other,
}

/// A decoded, validated push message.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    pub event_id: String,
    pub msg_id: Option<String>,
    pub app_key: String,
    pub open_id: Option<String>,
    pub user_id: Option<i64>,
    /// The message name, e.g. `kwaishop_order_paySuccess`.
    pub event: String,
    pub kind: MessageKind,
    /// The record to fetch: `oid`, `refundId` or `kwaiItemId`.
    pub biz_id: Option<i64>,
    /// The parsed `info` object, as JSON text.
    pub info: String,
    /// The whole decrypted envelope, verbatim.
    pub raw: String,
    pub update_time: Option<i64>,
}

/// A decoded body.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// `{"test":true}`: acknowledge, store nothing.
    Heartbeat,
    Message(Box<PushMessage>),
}

/// Why a body was refused (logged; the sender only sees a generic answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("empty body")]
    Empty,
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("the plaintext is not a JSON object")]
    NotJson,
    #[error("appKey {0:?} is not this app's")]
    ForeignApp(String),
    #[error("the message has no {0}")]
    Missing(&'static str),
}

/// The record kind a message name is about. Order messages are `kwaishop_order_*`, refund
/// messages `kwaishop_aftersales_*`; no item message name is documented (reference §15), so any
/// `kwaishop_item_*` is taken as an item change.
pub fn kind_of(event: &str) -> MessageKind {
    if event.starts_with("kwaishop_order_") {
        MessageKind::Order
    } else if event.starts_with("kwaishop_aftersales_") {
        MessageKind::Refund
    } else if event.starts_with("kwaishop_item_") {
        MessageKind::Item
    } else {
        MessageKind::Other
    }
}

/// Decodes and validates one body against the app's key and app key.
pub fn decode(body: &[u8], key: &MessageKey, app_key: &str) -> Result<Decoded, Rejection> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(Rejection::Empty);
    }
    let plaintext = match key.decrypt(trimmed) {
        Ok(p) => p,
        // Whether heartbeats are encrypted is not documented: a plaintext one is accepted.
        Err(e) => match serde_json::from_slice::<Value>(trimmed) {
            Ok(v) if v.get("test") == Some(&Value::Bool(true)) => return Ok(Decoded::Heartbeat),
            _ => return Err(e.into()),
        },
    };
    let envelope: Value = serde_json::from_slice(&plaintext).map_err(|_| Rejection::NotJson)?;
    let Some(obj) = envelope.as_object() else {
        return Err(Rejection::NotJson);
    };
    if obj.get("test") == Some(&Value::Bool(true)) {
        return Ok(Decoded::Heartbeat);
    }
    let text = |k: &str| obj.get(k).and_then(lenient_text);
    let int = |k: &str| obj.get(k).and_then(lenient_i64);
    let app = text("appKey").ok_or(Rejection::Missing("appKey"))?;
    if app != app_key {
        return Err(Rejection::ForeignApp(app));
    }
    let event_id = text("eventId").ok_or(Rejection::Missing("eventId"))?;
    let event = text("event").ok_or(Rejection::Missing("event"))?;
    // `info` is a JSON string holding JSON (reference §11.3); an object is accepted too.
    let info = match obj.get("info") {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
        Some(v @ Value::Object(_)) => v.clone(),
        _ => Value::Null,
    };
    let info_int = |k: &str| info.get(k).and_then(lenient_i64);
    let kind = kind_of(&event);
    let biz_id = match kind {
        MessageKind::Order => info_int("oid").or_else(|| int("bizId")),
        MessageKind::Refund => info_int("refundId").or_else(|| int("bizId")),
        MessageKind::Item => info_int("kwaiItemId").or_else(|| int("bizId")),
        MessageKind::Other => int("bizId"),
    };
    Ok(Decoded::Message(Box::new(PushMessage {
        event_id,
        msg_id: text("msgId"),
        app_key: app,
        open_id: text("openId"),
        user_id: int("userId")
            .or_else(|| info_int("sellerId"))
            .or_else(|| info_int("seller_id")),
        event,
        kind,
        biz_id,
        info: info.to_string(),
        raw: String::from_utf8_lossy(&plaintext).into_owned(),
        update_time: int("updateTime").or_else(|| info_int("updateTime")),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZg==";
    const APP: &str = "ks699183844582124027";
    const ORDER_BODY: &str = "bR+wF2nPNNun2sKB6x5rQnSOliMjne23/WFmr6v2ghrdBZJ8S9amUgGSkiIuXbAFl94+pyGSBeUBuv+osWjoIgMVPg5WLqoqROhAwK1irqNpH1Wvd7Mu/mfFXVDmhAQ7TeXMCZXtdMsBjEkRdJ+Ldr7crf91mAnTojplkmQ8iG51aFK1l2vOx54ezQWdWf4vwxGb0R8oUu/yIxXzrDVnO5T3dxkxzSJHdTvYCH4uKpoq1vLdq4QpagQkNcnVHAK1jpE6gwRTmpo5tiDaPeBFHBqPlH2XcflLzBum8p+M8r/nPrDLGxS2S7IEPfxl4cRXuC3vkNq1rt3GLTEum97zRvYtVUHUEJmmyLLfd/lDTlMWTv7rga4EpOsaDkfM1FxTQziLiTDMpuAVrs+nHC0Jw1oB83hwvCH+LG8CnqnaHpjvIPl/6Zk95JaX34C94ZllXUVO3CHVcZgViEnP9rZ5K+Y/nXAUCg7AagPRlbjBUARA8as79w95R+eyJ9Mupzag9XXP8mcjQ+vsLmbQK9u4Hg==";

    fn key() -> MessageKey {
        MessageKey::from_secret(SECRET).expect("key")
    }

    #[test]
    fn the_reference_order_message_decodes() {
        let Decoded::Message(m) = decode(ORDER_BODY.as_bytes(), &key(), APP).expect("decodes")
        else {
            panic!("not a heartbeat")
        };
        assert_eq!(m.event_id, "243_4027_2375715766426");
        assert_eq!(m.kind, MessageKind::Order);
        assert_eq!(m.biz_id, Some(2607602240240301));
        assert_eq!(m.user_id, Some(2161524184));
        assert_eq!(m.update_time, Some(1773750945776));
        assert!(m.info.contains("\"status\":30"));
    }

    #[test]
    fn heartbeats_encrypted_or_plain() {
        assert_eq!(
            decode(b"watm3Pt/wCJGbPJJXW0XpA==", &key(), APP),
            Ok(Decoded::Heartbeat)
        );
        assert_eq!(
            decode(br#"{"test":true}"#, &key(), APP),
            Ok(Decoded::Heartbeat)
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(decode(b"", &key(), APP), Err(Rejection::Empty));
        assert!(matches!(
            decode(ORDER_BODY.as_bytes(), &key(), "ks1"),
            Err(Rejection::ForeignApp(_))
        ));
        assert!(matches!(
            decode(b"%%%", &key(), APP),
            Err(Rejection::Crypto(_))
        ));
        let not_json = key().encrypt(b"hello");
        assert_eq!(
            decode(not_json.as_bytes(), &key(), APP),
            Err(Rejection::NotJson)
        );
        let no_id = key().encrypt(
            format!(r#"{{"appKey":"{APP}","event":"kwaishop_order_addOrder"}}"#).as_bytes(),
        );
        assert_eq!(
            decode(no_id.as_bytes(), &key(), APP),
            Err(Rejection::Missing("eventId"))
        );
        assert!(matches!(
            decode(br#"{"test":false}"#, &key(), APP),
            Err(Rejection::Crypto(_))
        ));
    }

    #[test]
    fn kinds_follow_the_message_names() {
        assert_eq!(
            kind_of("kwaishop_aftersales_updateRefund"),
            MessageKind::Refund
        );
        assert_eq!(kind_of("kwaishop_item_change"), MessageKind::Item);
        assert_eq!(kind_of("kwaishop_order_addNote"), MessageKind::Order);
        assert_eq!(kind_of("something_else"), MessageKind::Other);
    }
}
