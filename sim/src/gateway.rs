//! The simulator's gateway: the request pipeline every API call goes through (faults, system
//! parameters, signature, token, QPS, daily quota) and the envelope of its answer.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::Response;
use rand::Rng;
use serde_json::{Value, json};

use super::codes::*;
use super::failure::Failure;
use super::faults::{Fault, FaultConfig};
use super::http::{Params, html_response, json_response, log_call, parse_params};
use super::variants::ErrorData;
use super::{CallRecord, SimState, apis, sign};
use crate::clock::{beijing_day, wall_ms};
use crate::methods::Method;

fn request_id_key(state: &SimState, seq: u64) -> &'static str {
    // Both spellings are seen in the wild (reference §6).
    if state.config.quirks && seq % 2 == 1 {
        "requestId"
    } else {
        "request_id"
    }
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

/// Every platform API path: the pipeline, then the API itself.
pub(crate) async fn api(
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
    let mut record = arrival_record(&state, method, seq, &params, &headers);
    let draw: f64 = state.rng.lock().map(|mut r| r.random()).unwrap_or(1.0);
    let faults = state.faults.read().map(|f| f.clone()).unwrap_or_default();
    let fault = faults.pick(draw);
    record.fault = fault;
    let mut record = match fault_before_api(&state, &faults, draw, record).await {
        ControlFlow::Continue(record) => record,
        ControlFlow::Break(response) => return response,
    };
    let outcome = match fault {
        Some(Fault::Throttle) => Err(Failure::throttled(
            method.name(),
            &state.credentials.app_key,
            state.qps(method),
        )),
        Some(Fault::InternalTimeout) => Err(Failure::internal_timeout()),
        _ => process(&state, method, &params, &mut record, arrived),
    };
    let body = envelope(&state, seq, method, outcome, &mut record);
    if fault == Some(Fault::Cut) {
        record.outcome = "cut".into();
        log_call(&state, record);
        return cut_response(body);
    }
    log_call(&state, record);
    json_response(StatusCode::OK, body)
}

/// The call log's entry for a request as it arrives; its outcome is filled in later.
fn arrival_record(
    state: &SimState,
    method: Method,
    seq: u64,
    params: &Params,
    headers: &axum::http::HeaderMap,
) -> CallRecord {
    CallRecord {
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
    }
}

/// The faults that strike before the API runs: a 5xx page or a hang answer at once (the call
/// is logged); a slow call waits, then goes on.
async fn fault_before_api(
    state: &SimState,
    faults: &FaultConfig,
    draw: f64,
    mut record: CallRecord,
) -> ControlFlow<Response, CallRecord> {
    match record.fault {
        Some(Fault::ServerError) => {
            record.outcome = "server_error".into();
            log_call(state, record);
            let status = if draw < faults.error_5xx / 2.0 {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            ControlFlow::Break(html_response(status))
        }
        Some(Fault::Timeout) => {
            record.outcome = "timeout".into();
            log_call(state, record);
            tokio::time::sleep(Duration::from_millis(faults.timeout_ms())).await;
            ControlFlow::Break(html_response(StatusCode::GATEWAY_TIMEOUT))
        }
        Some(Fault::Slow) => {
            tokio::time::sleep(Duration::from_millis(faults.slow_ms())).await;
            ControlFlow::Continue(record)
        }
        _ => ControlFlow::Continue(record),
    }
}

/// The answer's envelope, with the call log's entry filled in from what the call came to.
fn envelope(
    state: &SimState,
    seq: u64,
    method: Method,
    outcome: Result<apis::Served, Failure>,
    record: &mut CallRecord,
) -> String {
    match outcome {
        Ok(served) => {
            record.outcome = "ok".into();
            record.result = RESULT_OK;
            record.records = served.records;
            record.next_cursor = served.next_cursor;
            render_success(state, seq, &served.data)
        }
        Err(f) => {
            record.outcome = f.outcome.into();
            record.result = f.result;
            record.code = f.code.map(str::to_string);
            record.sub_code = f.sub_code.clone();
            render_failure(state, seq, method, &f)
        }
    }
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
