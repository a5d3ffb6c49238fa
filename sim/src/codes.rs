//! The codes the simulated platform answers with, from the reference (§6, §7.4, §9.1, §12) and
//! kept apart from the client's table on purpose: the client classifies what the platform says,
//! and a mistake in its table must show up against this one, not agree with itself.

/// `result` of a success.
pub const RESULT_OK: i64 = 1;
/// Another merchant's resource, or a refused operation (FAQ K1006).
pub const RESULT_REJECTED: i64 = 21;
/// `AUTHORIZATION_REVOKED` (FAQ K0006).
pub const RESULT_REVOKED: i64 = 24;
/// `主账号不存在`: a token of the wrong type or of a deleted sub-account (FAQ K0005).
pub const RESULT_NO_MAIN_ACCOUNT: i64 = 26;
/// A failed signature check (exact code unconfirmed; reference §14.3 suggests 27).
pub const RESULT_BAD_SIGN: i64 = 27;
/// `TOKEN过期`.
pub const RESULT_TOKEN: i64 = 28;
/// QPS exceeded (SDK claim).
pub const RESULT_QPS: i64 = 1016;
/// Daily quota exceeded (`[1017] exceed quota limit`).
pub const RESULT_QUOTA: i64 = 1017;
/// A business parameter the platform refuses, e.g. `endTime无效`.
pub const RESULT_BAD_VALUE: i64 = 2001;

/// Gateway `code` classes.
pub const CODE_FLOW_CONTROL: &str = "802000";
pub const SUB_THROTTLED: &str = "802005";
pub const SUB_QUOTA: &str = "802006";
pub const CODE_AUTH_FAILED: &str = "803000";
pub const CODE_BAD_PARAM: &str = "804000";
pub const SUB_BAD_PARAM: &str = "804001";
pub const CODE_INTERNAL: &str = "806000";
pub const SUB_INTERNAL_TIMEOUT: &str = "806001";
pub const CODE_BUSINESS: &str = "807000";

/// The refund list's codes (返回码说明).
pub const REFUND_BAD_TYPE: i64 = 300002;
pub const REFUND_END_BEFORE_BEGIN: i64 = 300003;
pub const REFUND_OVER_7_DAYS: i64 = 300004;
pub const REFUND_OVER_90_DAYS: i64 = 300005;
pub const REFUND_NOT_FOUND: i64 = 300011;
pub const REFUND_NOT_YOURS: i64 = 300012;
pub const REFUND_RANGE_OVER_LIMIT: i64 = 300019;

/// OAuth `result` values (§7.4).
pub const OAUTH_INVALID_REQUEST: i64 = 100200100;
pub const OAUTH_UNAUTHORIZED_CLIENT: i64 = 100200101;
pub const OAUTH_ACCESS_DENIED: i64 = 100200102;
pub const OAUTH_UNSUPPORTED_GRANT: i64 = 100200104;
pub const OAUTH_INVALID_GRANT: i64 = 100200105;
pub const OAUTH_SERVER_ERROR: i64 = 100200500;
