//! Failure classes of the platform client (design.md "Limits, errors, tokens"; reference §2, §12).
//! Every failure the client returns carries one class, which decides the reaction, and keeps the
//! platform's own codes and message for the logs.

use std::fmt;

/// What kind of failure a call met, and so what the caller should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Over the QPS limit: back off, retry, slow down.
    Throttled,
    /// The daily quota is spent: pause the shop (or app) until the quota resets.
    QuotaExhausted,
    /// The access token expired: refresh once, retry once.
    TokenExpired,
    /// The shop's authorization is gone: mark the shop `needs_reauth`, keep its data.
    AuthorizationRevoked,
    /// The platform rejected the request itself (sign, parameters, window): a bug or bad config.
    InvalidRequest,
    /// Network errors, timeouts, 5xx, internal timeouts: retry with backoff, bounded.
    Transient,
    /// A business refusal (no such refund, someone else's order…): record it, continue.
    Business,
    /// The answer could not be read (wrong types, an unparseable record, an oversized body):
    /// not retried, the unit of work fails and its checkpoint stays.
    Malformed,
}

impl ErrorClass {
    /// Whether the client retries this class by itself (with backoff).
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Throttled | ErrorClass::Transient)
    }

    /// The snake_case name used in logs, metrics and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::QuotaExhausted => "quota_exhausted",
            ErrorClass::TokenExpired => "token_expired",
            ErrorClass::AuthorizationRevoked => "authorization_revoked",
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::Transient => "transient",
            ErrorClass::Business => "business",
            ErrorClass::Malformed => "malformed",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed platform call. Never holds a token, a secret or a URL carrying them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    /// The reaction class.
    pub class: ErrorClass,
    /// The dotted API name (or OAuth endpoint) that failed.
    pub method: String,
    /// The legacy `result` value, when the platform sent one.
    pub result: Option<i64>,
    /// Gateway `code` / `sub_code`, when sent.
    pub code: Option<String>,
    pub sub_code: Option<String>,
    /// The platform's message, or ours for local failures.
    pub message: String,
    /// The platform's request id, for support tickets.
    pub request_id: Option<String>,
    /// For quota exhaustion: when the quota resets (epoch ms).
    pub retry_at_ms: Option<i64>,
    /// The answer was larger than the client reads: a smaller page may pass.
    pub too_large: bool,
    /// No answer came within the request's timeout.
    pub timed_out: bool,
}

impl ApiError {
    /// A failure detected on this side (network, decoding, local limits).
    pub fn local(class: ErrorClass, method: &str, message: impl Into<String>) -> Self {
        Self {
            class,
            method: method.to_string(),
            result: None,
            code: None,
            sub_code: None,
            message: message.into(),
            request_id: None,
            retry_at_ms: None,
            too_large: false,
            timed_out: false,
        }
    }

    /// For a spent quota, the one API it covers, when the platform names it: the per-user,
    /// per-API quota answers `[1017] exceed quota limit,[apiId:<method>;primaryUserId:…]`
    /// (FAQ K1008). `None` for the app's and the test user's daily quota, which cover every API.
    pub fn quota_api(&self) -> Option<super::Method> {
        if self.class != ErrorClass::QuotaExhausted || !self.message.contains("[1017]") {
            return None;
        }
        let after = self.message.split("apiId:").nth(1)?;
        let name = after.split([';', ']', ',', ' ']).next()?.trim();
        super::Method::from_name(name)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed ({}): {}",
            self.method, self.class, self.message
        )?;
        if let Some(r) = self.result {
            write!(f, " [result {r}")?;
            if let Some(c) = &self.code {
                write!(f, ", code {c}")?;
            }
            if let Some(s) = &self.sub_code {
                write!(f, ", sub_code {s}")?;
            }
            f.write_str("]")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " request_id {id}")?;
        }
        Ok(())
    }
}
