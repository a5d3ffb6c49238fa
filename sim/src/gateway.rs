//! The simulator's gateway: routes, the request pipeline every API call goes through (faults,
//! system parameters, signature, token, QPS, daily quota), the envelope, and the OAuth endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use rand::Rng;
use serde_json::{Value, json};

use super::codes::*;
use super::faults::Fault;
use super::variants::{ErrorData, RefreshVerbs};
use super::{CallRecord, SimState, admin, apis, sign};
use crate::clock::{beijing_day, wall_ms};
use crate::methods::Method;

/// The platform's routes plus the simulator's own under `/__sim/`.
pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/oauth2/access_token", any(access_token))
        .route("/oauth2/refresh_token", any(refresh_token))
        .route("/oauth/authorize", get(authorize))
        .merge(admin::routes())
        .fallback(api)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            distance,
        ))
        .with_state(state)
}

/// The configured latency around every answer of the platform's routes.
async fn distance(
    State(state): State<Arc<SimState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let latency = state.config.latency;
    if latency == super::Latency::default() || request.uri().path().starts_with("/__sim/") {
        return next.run(request).await;
    }
    tokio::time::sleep(latency.one_way()).await;
    let response = next.run(request).await;
    tokio::time::sleep(latency.one_way()).await;
    response
}

/// Request parameters from the query string and a form body, for any verb (body wins).
pub type Params = HashMap<String, String>;

fn parse_params(query: Option<&str>, body: &[u8]) -> Params {
    let mut params: Params = HashMap::new();
    if let Some(q) = query
        && let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(q)
    {
        params.extend(pairs);
    }
    if !body.is_empty()
        && let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
    {
        params.extend(pairs);
    }
    params
}

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

    fn bad_sign() -> Self {
        Self {
            result: RESULT_BAD_SIGN,
            code: Some(CODE_AUTH_FAILED),
            msg: Some("鉴权失败"),
            sub_code: Some("27".into()),
            error_msg: "签名校验失败".into(),
            outcome: "bad_sign",
        }
    }

    fn token_expired() -> Self {
        Self {
            result: RESULT_TOKEN,
            code: Some(CODE_AUTH_FAILED),
            msg: Some("鉴权失败"),
            sub_code: Some("28".into()),
            error_msg: "TOKEN过期".into(),
            outcome: "token_expired",
        }
    }

    fn throttled(method: &str, app_key: &str, qps: f64) -> Self {
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

    fn quota(app_key: &str, seller_id: i64) -> Self {
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
    fn api_quota(method: &str, seller_id: i64) -> Self {
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

    fn internal_timeout() -> Self {
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

fn request_id_key(state: &SimState, seq: u64) -> &'static str {
    // Both spellings are seen in the wild (reference §6).
    if state.config.quirks && seq % 2 == 1 {
        "requestId"
    } else {
        "request_id"
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

fn html_response(status: StatusCode) -> Response {
    let page = format!(
        "<html><head><title>{status}</title></head><body><h1>{status}</h1><hr>gateway</body></html>"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

/// Sends the first half of a body, then breaks the connection.
fn cut_response(body: String) -> Response {
    let half = Bytes::from(body.into_bytes()).slice(..);
    let first = half.slice(..half.len() / 2);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(first),
        Err(std::io::Error::other("connection cut by the simulator")),
    ];
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap_or_else(|_| html_response(StatusCode::INTERNAL_SERVER_ERROR))
}

/// The empty page some error answers carry as `data` (a variant; reference §6).
fn skeleton(method: Method) -> Value {
    match method {
        Method::OrderCursorList => json!({"pageSize": 0, "cursor": "", "orderList": []}),
        Method::RefundList => json!({"currentPage": 0, "pageSize": 0, "totalPage": 0,
            "totalSize": 0, "pcursor": "", "refundOrderInfoList": []}),
        Method::ItemList => json!({"totalItemCount": 0, "currentPageItemCount": 0,
            "currentPageNumber": 0, "totalPage": 0, "items": []}),
        _ => Value::Null,
    }
}

fn render_failure(state: &SimState, seq: u64, method: Method, f: &Failure) -> String {
    let mut v = json!({ "result": f.result, "error_msg": f.error_msg });
    if state.config.variants.error_data == ErrorData::Skeleton {
        v["data"] = skeleton(method);
    }
    if let Some(code) = f.code {
        v["code"] = json!(code);
        v["msg"] = json!(f.msg.unwrap_or(""));
        v["sub_code"] = json!(f.sub_code.clone().unwrap_or_default());
        v["sub_msg"] = json!(f.error_msg);
    }
    v[request_id_key(state, seq)] = json!(format!("{}", 700_000_000_000_000_000u64 + seq));
    v.to_string()
}

fn render_success(state: &SimState, seq: u64, data: &str) -> String {
    format!(
        r#"{{"result":1,"error_msg":"","{}":"{}","data":{}}}"#,
        request_id_key(state, seq),
        700_000_000_000_000_000u64 + seq,
        data
    )
}

fn log_call(state: &SimState, record: CallRecord) {
    if let Ok(mut calls) = state.calls.lock() {
        calls.push(record);
    }
}

/// Every platform API path: the pipeline, then the API itself.
async fn api(
    State(state): State<Arc<SimState>>,
    headers: axum::http::HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let Some(method) = Method::ALL.into_iter().find(|m| m.path() == uri.path()) else {
        return json_response(
            StatusCode::NOT_FOUND,
            r#"{"result":404,"error_msg":"no such API"}"#.into(),
        );
    };
    // The platform counts a call when it arrives, whatever its own handling waits for later.
    let arrived = Instant::now();
    let params = parse_params(uri.query(), &body);
    let seq = state.seq.fetch_add(1, Ordering::SeqCst);
    let mut record = CallRecord {
        seq,
        wall_ms: wall_ms(),
        sim_ms: state.clock.now_ms(),
        method: method.name().to_string(),
        shop: None,
        outcome: String::new(),
        result: 0,
        code: None,
        sub_code: None,
        token_seq: None,
        param: params.get("param").cloned(),
        fault: None,
        records: 0,
        next_cursor: None,
        agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let draw: f64 = state.rng.lock().map(|mut r| r.random()).unwrap_or(1.0);
    let faults = state.faults.read().map(|f| f.clone()).unwrap_or_default();
    let fault = faults.pick(draw);
    record.fault = fault;
    match fault {
        Some(Fault::ServerError) => {
            record.outcome = "server_error".into();
            log_call(&state, record);
            let status = if draw < faults.error_5xx / 2.0 {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return html_response(status);
        }
        Some(Fault::Timeout) => {
            record.outcome = "timeout".into();
            log_call(&state, record);
            tokio::time::sleep(Duration::from_millis(faults.timeout_ms())).await;
            return html_response(StatusCode::GATEWAY_TIMEOUT);
        }
        Some(Fault::Slow) => tokio::time::sleep(Duration::from_millis(faults.slow_ms())).await,
        _ => {}
    }
    let outcome = match fault {
        Some(Fault::Throttle) => Err(Failure::throttled(
            method.name(),
            &state.credentials.app_key,
            state.qps(method),
        )),
        Some(Fault::InternalTimeout) => Err(Failure::internal_timeout()),
        _ => process(&state, method, &params, &mut record, arrived),
    };
    let body = match outcome {
        Ok(served) => {
            record.outcome = "ok".into();
            record.result = RESULT_OK;
            record.records = served.records;
            record.next_cursor = served.next_cursor;
            render_success(&state, seq, &served.data)
        }
        Err(f) => {
            record.outcome = f.outcome.into();
            record.result = f.result;
            record.code = f.code.map(str::to_string);
            record.sub_code = f.sub_code.clone();
            render_failure(&state, seq, method, &f)
        }
    };
    if fault == Some(Fault::Cut) {
        record.outcome = "cut".into();
        log_call(&state, record);
        return cut_response(body);
    }
    log_call(&state, record);
    json_response(StatusCode::OK, body)
}

/// Checks in the platform's order, then runs the API. Returns the `data` JSON and its record count.
fn process(
    state: &SimState,
    method: Method,
    params: &Params,
    record: &mut CallRecord,
    arrived: Instant,
) -> Result<apis::Served, Failure> {
    verify_system(state, method, params)?;
    let (shop, token_seq) = check_token(
        state,
        params.get("access_token").map(String::as_str).unwrap_or(""),
    )?;
    record.shop = Some(shop);
    record.token_seq = Some(token_seq);
    check_qps(state, method, arrived)?;
    check_quota(state, shop)?;
    check_api_quota(state, method, shop)?;
    let param = params
        .get("param")
        .ok_or_else(|| Failure::bad_param("param缺失"))?;
    let value: Value =
        serde_json::from_str(param).map_err(|_| Failure::bad_param("param不是合法的JSON"))?;
    if !value.is_object() {
        return Err(Failure::bad_param("param必须是JSON对象"));
    }
    apis::dispatch(state, method, shop, &value)
}

/// appkey, method, version, timestamp, signMethod and the signature (reference §4, §5).
fn verify_system(state: &SimState, method: Method, params: &Params) -> Result<(), Failure> {
    let get = |k: &str| params.get(k).map(String::as_str);
    let appkey = get("appkey").ok_or_else(|| Failure::bad_param("appkey缺失"))?;
    if appkey != state.credentials.app_key {
        return Err(Failure {
            outcome: "invalid",
            ..Failure::bad_param("appkey无效")
        });
    }
    if get("method") != Some(method.name()) {
        return Err(Failure::bad_param("method与请求路径不一致"));
    }
    if get("version") != Some("1") {
        return Err(Failure::bad_param("version无效"));
    }
    let timestamp = get("timestamp").ok_or_else(|| Failure::bad_param("timestamp缺失"))?;
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| Failure::bad_param("timestamp无效"))?;
    if let Some(tolerance) = state.config.timestamp_tolerance_ms
        && (ts - state.clock.now_ms()).abs() > tolerance
    {
        return Err(Failure::bad_param("timestamp超出允许范围"));
    }
    if !matches!(get("signMethod"), Some("MD5" | "HMAC_SHA256")) {
        return Err(Failure::bad_param("signMethod无效"));
    }
    if get("sign").is_none() || !sign::verify(params, &state.credentials.sign_secret) {
        return Err(Failure::bad_sign());
    }
    Ok(())
}

fn check_token(state: &SimState, token: &str) -> Result<(usize, u64), Failure> {
    let auth = state.auth.lock().map_err(|_| Failure::internal_timeout())?;
    let info = auth.access(token).ok_or_else(Failure::token_expired)?;
    let Some(shop) = info.shop else {
        return Err(Failure {
            outcome: "revoked",
            ..Failure::business(RESULT_NO_MAIN_ACCOUNT, "主账号不存在")
        });
    };
    if auth.is_revoked(shop) {
        return Err(Failure {
            outcome: "revoked",
            ..Failure::business(RESULT_REVOKED, "AUTHORIZATION_REVOKED")
        });
    }
    if state.clock.now_ms() >= info.expires_at {
        return Err(Failure::token_expired());
    }
    Ok((shop, info.seq))
}

/// A sliding one-second window per (app, method): at most `qps` arrivals pass in any second.
/// Arrivals are kept in order of their arrival instant, which handlers may reach out of order.
fn check_qps(state: &SimState, method: Method, arrived: Instant) -> Result<(), Failure> {
    let limit = state.qps(method).floor().max(1.0) as usize;
    let second = Duration::from_secs(1);
    let mut windows = state
        .windows
        .lock()
        .map_err(|_| Failure::internal_timeout())?;
    let window = windows.entry(method.name().to_string()).or_default();
    // Forget what no window around this arrival can hold any more.
    while window
        .front()
        .is_some_and(|t| arrived.saturating_duration_since(*t) >= 2 * second)
    {
        window.pop_front();
    }
    let before = window.partition_point(|t| *t <= arrived);
    let in_last_second = window
        .iter()
        .take(before)
        .filter(|t| arrived.duration_since(**t) < second)
        .count();
    if in_last_second >= limit {
        return Err(Failure::throttled(
            method.name(),
            &state.credentials.app_key,
            state.qps(method),
        ));
    }
    window.insert(before, arrived);
    Ok(())
}

/// The shop's calls this China-time day (simulator clock) against the daily quota.
fn check_quota(state: &SimState, shop: usize) -> Result<(), Failure> {
    let Some(limit) = state.config.daily_quota else {
        return Ok(());
    };
    let day = beijing_day(state.clock.now_ms());
    let mut usage = state
        .usage
        .lock()
        .map_err(|_| Failure::internal_timeout())?;
    let used = usage.entry((shop, day)).or_insert(0);
    if *used >= limit {
        let seller = state
            .credentials
            .shops
            .get(shop)
            .map(|s| s.seller_id)
            .unwrap_or(0);
        return Err(Failure::quota(&state.credentials.app_key, seller));
    }
    *used += 1;
    Ok(())
}

/// The per-API quota of the config, counted per (shop, method, China-time day).
fn check_api_quota(state: &SimState, method: Method, shop: usize) -> Result<(), Failure> {
    let Some((limited, limit)) = state.config.api_quota.filter(|(m, _)| *m == method) else {
        return Ok(());
    };
    let day = beijing_day(state.clock.now_ms());
    let mut usage = state
        .api_usage
        .lock()
        .map_err(|_| Failure::internal_timeout())?;
    let used = usage.entry((shop, limited.name(), day)).or_insert(0);
    if *used >= limit {
        let seller = state
            .credentials
            .shops
            .get(shop)
            .map(|s| s.seller_id)
            .unwrap_or(0);
        return Err(Failure::api_quota(method.name(), seller));
    }
    *used += 1;
    Ok(())
}

fn oauth_error(result: i64, error: &str, message: &str) -> Response {
    json_response(
        StatusCode::OK,
        json!({ "result": result, "error": error, "error_msg": message }).to_string(),
    )
}

fn log_oauth(state: &SimState, endpoint: &str, shop: Option<usize>, result: i64, seq: Option<u64>) {
    log_call(
        state,
        CallRecord {
            seq: state.seq.fetch_add(1, Ordering::SeqCst),
            wall_ms: wall_ms(),
            sim_ms: state.clock.now_ms(),
            method: endpoint.into(),
            shop,
            outcome: if result == RESULT_OK {
                "ok".into()
            } else {
                "refused".into()
            },
            result,
            code: None,
            sub_code: None,
            token_seq: seq,
            param: None,
            fault: None,
            records: 0,
            next_cursor: None,
            agent: None,
        },
    );
}

fn check_app(state: &SimState, params: &Params) -> Result<(), Response> {
    if params.get("app_id").map(String::as_str) != Some(state.credentials.app_key.as_str()) {
        return Err(oauth_error(
            OAUTH_UNAUTHORIZED_CLIENT,
            "unauthorized_client",
            "app_id invalid",
        ));
    }
    if params.get("app_secret").map(String::as_str) != Some(state.credentials.app_secret.as_str()) {
        return Err(oauth_error(
            OAUTH_UNAUTHORIZED_CLIENT,
            "unauthorized_client",
            "app_secret invalid",
        ));
    }
    Ok(())
}

/// A grant's answer; the refresh answer carries no `open_id` (APP授权说明 §2.4).
fn grant_body(grant: &super::auth::Grant, open_id: Option<&str>) -> Response {
    let mut body = json!({
        "result": 1,
        "access_token": grant.access_token,
        "refresh_token": grant.refresh_token,
        "expires_in": grant.access_expires_in_s,
        "refresh_token_expires_in": grant.refresh_expires_in_s,
        "scopes": ["merchant_order", "merchant_refund", "merchant_item", "user_info"],
    });
    if let Some(open_id) = open_id {
        body["open_id"] = json!(open_id);
    }
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /oauth2/access_token`: grant types `code` and `client_credentials`.
async fn access_token(State(state): State<Arc<SimState>>, uri: Uri, body: Bytes) -> Response {
    let params = parse_params(uri.query(), &body);
    if let Err(refusal) = check_app(&state, &params) {
        log_oauth(
            &state,
            "oauth2/access_token",
            None,
            OAUTH_UNAUTHORIZED_CLIENT,
            None,
        );
        return refusal;
    }
    let now = state.clock.now_ms();
    let Ok(mut rng) = state.rng.lock() else {
        return oauth_error(OAUTH_SERVER_ERROR, "server_error", "busy");
    };
    let Ok(mut auth) = state.auth.lock() else {
        return oauth_error(OAUTH_SERVER_ERROR, "server_error", "busy");
    };
    match params.get("grant_type").map(String::as_str) {
        Some("code") => {
            let Some(code) = params.get("code") else {
                return oauth_error(OAUTH_INVALID_REQUEST, "invalid_request", "code missing");
            };
            match auth.exchange(&mut rng, code, now) {
                Ok(grant) => {
                    log_oauth(
                        &state,
                        "oauth2/access_token",
                        Some(grant.shop),
                        RESULT_OK,
                        Some(grant.seq),
                    );
                    let open_id = state
                        .credentials
                        .shops
                        .get(grant.shop)
                        .map(|s| s.open_id.clone())
                        .unwrap_or_default();
                    grant_body(&grant, Some(&open_id))
                }
                Err(r) => {
                    log_oauth(&state, "oauth2/access_token", None, r.result, None);
                    oauth_error(r.result, r.error, r.message)
                }
            }
        }
        Some("client_credentials") => {
            let (token, expires_in) = auth.app_token(&mut rng, now);
            log_oauth(&state, "oauth2/access_token", None, RESULT_OK, None);
            let body = json!({ "result": 1, "access_token": token, "token_type": "bearer", "expires_in": expires_in });
            json_response(StatusCode::OK, body.to_string())
        }
        _ => oauth_error(
            OAUTH_UNSUPPORTED_GRANT,
            "unsupported_grant_type",
            "grant_type invalid",
        ),
    }
}

/// `/oauth2/refresh_token` (POST form or GET query, or only one of them as a variant):
/// rotates the refresh token.
async fn refresh_token(
    State(state): State<Arc<SimState>>,
    verb: axum::http::Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let refused = match state.config.variants.refresh_verbs {
        RefreshVerbs::Both => false,
        RefreshVerbs::GetOnly => verb != axum::http::Method::GET,
        RefreshVerbs::PostOnly => verb != axum::http::Method::POST,
    };
    if refused {
        log_oauth(
            &state,
            "oauth2/refresh_token",
            None,
            OAUTH_INVALID_REQUEST,
            None,
        );
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"result": OAUTH_INVALID_REQUEST, "error": "invalid_request",
                "error_msg": format!("Request method '{verb}' not supported")})
            .to_string(),
        );
    }
    let params = parse_params(uri.query(), &body);
    if let Err(refusal) = check_app(&state, &params) {
        log_oauth(
            &state,
            "oauth2/refresh_token",
            None,
            OAUTH_UNAUTHORIZED_CLIENT,
            None,
        );
        return refusal;
    }
    if params.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return oauth_error(
            OAUTH_UNSUPPORTED_GRANT,
            "unsupported_grant_type",
            "grant_type invalid",
        );
    }
    let Some(token) = params.get("refresh_token") else {
        return oauth_error(
            OAUTH_INVALID_REQUEST,
            "invalid_request",
            "refresh_token missing",
        );
    };
    let now = state.clock.now_ms();
    let Ok(mut rng) = state.rng.lock() else {
        return oauth_error(OAUTH_SERVER_ERROR, "server_error", "busy");
    };
    let Ok(mut auth) = state.auth.lock() else {
        return oauth_error(OAUTH_SERVER_ERROR, "server_error", "busy");
    };
    match auth.refresh(&mut rng, token, now) {
        Ok(grant) => {
            log_oauth(
                &state,
                "oauth2/refresh_token",
                Some(grant.shop),
                RESULT_OK,
                Some(grant.seq),
            );
            grant_body(&grant, None)
        }
        Err(r) => {
            log_oauth(&state, "oauth2/refresh_token", None, r.result, None);
            oauth_error(r.result, r.error, r.message)
        }
    }
}

/// `GET /oauth/authorize`: the merchant approves at once and is sent back with a code. The
/// simulator-only `shop` parameter (an index, default 0) says which merchant is approving.
async fn authorize(State(state): State<Arc<SimState>>, uri: Uri) -> Response {
    let params = parse_params(uri.query(), &[]);
    if params.get("app_id").map(String::as_str) != Some(state.credentials.app_key.as_str()) {
        return oauth_error(
            OAUTH_UNAUTHORIZED_CLIENT,
            "unauthorized_client",
            "app_id invalid",
        );
    }
    if params.get("response_type").map(String::as_str) != Some("code") {
        return oauth_error(
            100200103,
            "unsupported_response_type",
            "response_type must be code",
        );
    }
    let Some(redirect) = params.get("redirect_uri") else {
        return oauth_error(
            OAUTH_INVALID_REQUEST,
            "invalid_request",
            "redirect_uri missing",
        );
    };
    let shop: usize = params.get("shop").and_then(|s| s.parse().ok()).unwrap_or(0);
    if shop >= state.credentials.shops.len() {
        return oauth_error(100200107, "invalid_openid", "no such merchant");
    }
    let now = state.clock.now_ms();
    let code = match (state.rng.lock(), state.auth.lock()) {
        (Ok(mut rng), Ok(mut auth)) => auth.new_code(&mut rng, shop, now),
        _ => return oauth_error(OAUTH_SERVER_ERROR, "server_error", "busy"),
    };
    let query = serde_urlencoded::to_string([
        ("code", code.as_str()),
        (
            "state",
            params.get("state").map(String::as_str).unwrap_or(""),
        ),
    ])
    .unwrap_or_default();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{redirect}{sep}{query}"))],
    )
        .into_response()
}
