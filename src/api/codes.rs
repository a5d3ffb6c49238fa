//! The platform's result and gateway codes (reference §6, §7.4, §12), and their classification.
//! The simulator answers with these same constants, so both sides speak one vocabulary.

use super::error::ErrorClass;

pub const RESULT_OK: i64 = 1;
pub const RESULT_REJECTED: i64 = 21;
pub const RESULT_NO_PERMISSION: i64 = 22;
pub const RESULT_REVOKED: i64 = 24;
pub const RESULT_AUTH_RELATED: i64 = 25;
pub const RESULT_NO_MAIN_ACCOUNT: i64 = 26;
pub const RESULT_BAD_SIGN: i64 = 27;
pub const RESULT_TOKEN: i64 = 28;
pub const RESULT_QPS: i64 = 1016;
pub const RESULT_QUOTA: i64 = 1017;
pub const RESULT_BAD_VALUE: i64 = 2001;

pub const CODE_FLOW_CONTROL: &str = "802000";
pub const SUB_THROTTLED: &str = "802005";
pub const SUB_QUOTA: &str = "802006";
pub const CODE_AUTH_FAILED: &str = "803000";
pub const CODE_BAD_PARAM: &str = "804000";
pub const CODE_UNKNOWN: &str = "805000";
pub const CODE_INTERNAL: &str = "806000";
pub const SUB_INTERNAL_TIMEOUT: &str = "806001";
pub const CODE_BUSINESS: &str = "807000";

pub const REFUND_BAD_TYPE: i64 = 300002;
pub const REFUND_END_BEFORE_BEGIN: i64 = 300003;
pub const REFUND_OVER_7_DAYS: i64 = 300004;
pub const REFUND_OVER_90_DAYS: i64 = 300005;
pub const REFUND_NOT_FOUND: i64 = 300011;
pub const REFUND_NOT_YOURS: i64 = 300012;
pub const REFUND_RANGE_OVER_LIMIT: i64 = 300019;

pub const OAUTH_INVALID_REQUEST: i64 = 100200100;
pub const OAUTH_UNAUTHORIZED_CLIENT: i64 = 100200101;
pub const OAUTH_ACCESS_DENIED: i64 = 100200102;
pub const OAUTH_UNSUPPORTED_GRANT: i64 = 100200104;
pub const OAUTH_INVALID_GRANT: i64 = 100200105;
pub const OAUTH_SERVER_ERROR: i64 = 100200500;

/// Classifies a failed envelope from its `result`, `code`, `sub_code` and messages.
pub fn classify(
    result: Option<i64>,
    code: Option<&str>,
    sub_code: Option<&str>,
    text: &str,
) -> ErrorClass {
    let codes = [code, sub_code];
    let has = |c: &str| codes.iter().any(|x| x.map(str::trim) == Some(c));
    let lower = text.to_ascii_lowercase();
    if has(SUB_QUOTA) || result == Some(RESULT_QUOTA) || lower.contains("exceed quota limit") {
        return ErrorClass::QuotaExhausted;
    }
    if has(SUB_THROTTLED)
        || has(CODE_FLOW_CONTROL)
        || result == Some(RESULT_QPS)
        || lower.contains("exceed qps limit")
    {
        return ErrorClass::Throttled;
    }
    // A missing scope shares result 28 with an expired token, but refreshing cannot fix it.
    if text.contains("token中无scope权限") {
        return ErrorClass::AuthorizationRevoked;
    }
    if matches!(
        result,
        Some(RESULT_REVOKED | RESULT_AUTH_RELATED | RESULT_NO_MAIN_ACCOUNT)
    ) || matches!(
        result,
        Some(OAUTH_ACCESS_DENIED | OAUTH_UNAUTHORIZED_CLIENT)
    ) || text.contains("AUTHORIZATION_REVOKED")
    {
        return ErrorClass::AuthorizationRevoked;
    }
    if result == Some(RESULT_TOKEN)
        || (has(CODE_AUTH_FAILED) && has("28"))
        || text.contains("TOKEN过期")
    {
        return ErrorClass::TokenExpired;
    }
    if has(CODE_INTERNAL)
        || has(SUB_INTERNAL_TIMEOUT)
        || has(CODE_UNKNOWN)
        || result == Some(OAUTH_SERVER_ERROR)
    {
        return ErrorClass::Transient;
    }
    let bad_param = codes.iter().flatten().any(|c| c.trim().starts_with("8040"));
    let oauth_invalid = matches!(result, Some(r) if r == OAUTH_INVALID_REQUEST || (100200103..=100200107).contains(&r));
    let refund_invalid = matches!(result, Some(r) if (REFUND_BAD_TYPE..=REFUND_OVER_90_DAYS).contains(&r) || r == REFUND_RANGE_OVER_LIMIT);
    let sub_invalid = has(CODE_BUSINESS) && (has("2001") || codes.iter().flatten().any(|c| matches!(c.trim().parse::<i64>(), Ok(n) if (300002..=300005).contains(&n) || n == 300019)));
    if result == Some(RESULT_BAD_SIGN)
        || bad_param
        || oauth_invalid
        || refund_invalid
        || sub_invalid
        || result == Some(RESULT_BAD_VALUE)
    {
        return ErrorClass::InvalidRequest;
    }
    ErrorClass::Business
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    /// result, code, sub_code, message, expected class.
    type Case = (
        Option<i64>,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
        ErrorClass,
    );

    #[test]
    fn documented_codes_classify() {
        let cases: &[Case] = &[
            (None, Some("802000"), Some("802005"), "", Throttled),
            (Some(1016), None, None, "", Throttled),
            (
                None,
                None,
                None,
                "Exceed qps limit, KEY [apiId:x]",
                Throttled,
            ),
            (None, Some("802000"), Some("802006"), "", QuotaExhausted),
            (
                Some(1017),
                None,
                None,
                "[1017] exceed quota limit",
                QuotaExhausted,
            ),
            (
                Some(28),
                Some("803000"),
                Some("28"),
                "TOKEN过期",
                TokenExpired,
            ),
            (
                Some(28),
                None,
                None,
                "token中无scope权限",
                AuthorizationRevoked,
            ),
            (
                Some(24),
                None,
                None,
                "AUTHORIZATION_REVOKED",
                AuthorizationRevoked,
            ),
            (Some(26), None, None, "主账号不存在", AuthorizationRevoked),
            (
                Some(100200102),
                None,
                None,
                "refreshToken.discarded",
                AuthorizationRevoked,
            ),
            (Some(27), Some("803000"), None, "sign error", InvalidRequest),
            (
                Some(2001),
                Some("807000"),
                Some("2001"),
                "endTime无效",
                InvalidRequest,
            ),
            (Some(300004), None, None, "", InvalidRequest),
            (Some(300019), None, None, "", InvalidRequest),
            (Some(100200105), None, None, "invalid_grant", InvalidRequest),
            (None, Some("806000"), Some("806001"), "", Transient),
            (Some(100200500), None, None, "", Transient),
            (Some(21), None, None, "order operation reject", Business),
            (Some(300011), None, None, "", Business),
            (Some(1800608), None, None, "", Business),
        ];
        for (result, code, sub, text, want) in cases {
            assert_eq!(
                classify(*result, *code, *sub, text),
                *want,
                "{result:?} {code:?} {sub:?} {text}"
            );
        }
    }
}
