//! A refused API call: the envelope's fields and the call log's outcome, for each way the
//! platform refuses (reference §6, §12.2).

use super::codes::*;

/// A refused call: the envelope fields and the call-log outcome.
#[derive(Debug, Clone)]
pub struct Failure {
    pub result: i64,
    pub code: Option<&'static str>,
    pub msg: Option<&'static str>,
    pub sub_code: Option<String>,
    pub error_msg: String,
    pub outcome: &'static str,
}

impl Failure {
    /// A refusal of the request's business (or, for results 24 and 26, of its authorization),
    /// with the legacy `result` and, like every answer of the gateway, a `code` and a `sub_code`.
    pub fn business(result: i64, error_msg: impl Into<String>) -> Self {
        let auth = matches!(result, RESULT_REVOKED | RESULT_NO_MAIN_ACCOUNT);
        Self {
            result,
            code: Some(if auth {
                CODE_AUTH_FAILED
            } else {
                CODE_BUSINESS
            }),
            msg: Some(if auth {
                "鉴权失败"
            } else {
                "业务处理失败"
            }),
            sub_code: Some(result.to_string()),
            error_msg: error_msg.into(),
            outcome: "business",
        }
    }

    /// A parameter the platform would refuse (807000 + the given sub-code).
    pub fn invalid(result: i64, error_msg: impl Into<String>) -> Self {
        Self {
            result,
            code: Some(CODE_BUSINESS),
            msg: Some("业务处理失败"),
            sub_code: Some(result.to_string()),
            error_msg: error_msg.into(),
            outcome: "invalid",
        }
    }

    /// A malformed request (missing or unreadable system parameter).
    pub fn bad_param(error_msg: impl Into<String>) -> Self {
        Self {
            result: RESULT_BAD_VALUE,
            code: Some(CODE_BAD_PARAM),
            msg: Some("参数错误"),
            sub_code: Some(SUB_BAD_PARAM.into()),
            error_msg: error_msg.into(),
            outcome: "invalid",
        }
    }

    pub(crate) fn bad_sign() -> Self {
        Self {
            result: RESULT_BAD_SIGN,
            code: Some(CODE_AUTH_FAILED),
            msg: Some("鉴权失败"),
            sub_code: Some("27".into()),
            error_msg: "签名校验失败".into(),
            outcome: "bad_sign",
        }
    }

    pub(crate) fn token_expired() -> Self {
        Self {
            result: RESULT_TOKEN,
            code: Some(CODE_AUTH_FAILED),
            msg: Some("鉴权失败"),
            sub_code: Some("28".into()),
            error_msg: "TOKEN过期".into(),
            outcome: "token_expired",
        }
    }

    pub(crate) fn throttled(method: &str, app_key: &str, qps: f64) -> Self {
        Self {
            result: RESULT_QPS,
            code: Some(CODE_FLOW_CONTROL),
            msg: Some("限流"),
            sub_code: Some(SUB_THROTTLED.into()),
            error_msg: format!(
                "Exceed qps limit, KEY [apiId:{method};appkey:{app_key}], MAX_QPS [{qps:.1}]"
            ),
            outcome: "throttled",
        }
    }

    pub(crate) fn quota(app_key: &str, seller_id: i64) -> Self {
        Self {
            result: RESULT_QUOTA,
            code: Some(CODE_FLOW_CONTROL),
            msg: Some("限流"),
            sub_code: Some(SUB_QUOTA.into()),
            error_msg: format!(
                "Exceed quota limit, KEY [appkey:{app_key};primaryUserId:{seller_id}]"
            ),
            outcome: "quota_exhausted",
        }
    }

    /// A per-user, per-API daily quota (FAQ K1008's fourth form).
    pub(crate) fn api_quota(method: &str, seller_id: i64) -> Self {
        Self {
            result: RESULT_QUOTA,
            code: Some(CODE_FLOW_CONTROL),
            msg: Some("限流"),
            sub_code: Some(RESULT_QUOTA.to_string()),
            error_msg: format!(
                "[1017] exceed quota limit,[apiId:{method};primaryUserId:{seller_id}]"
            ),
            outcome: "quota_exhausted",
        }
    }

    pub(crate) fn internal_timeout() -> Self {
        Self {
            result: 806001,
            code: Some(CODE_INTERNAL),
            msg: Some("内部错误"),
            sub_code: Some(SUB_INTERNAL_TIMEOUT.into()),
            error_msg: "内部调用超时".into(),
            outcome: "internal_timeout",
        }
    }
}
