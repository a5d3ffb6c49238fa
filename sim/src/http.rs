//! What every route of the simulated platform shares: the distance to the caller, request
//! parameters read from the query and the form alike, the plain answers, and the call log.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{CallRecord, Latency, SimState};

/// The configured latency around every answer of the platform's routes.
pub(crate) async fn distance(
    State(state): State<Arc<SimState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let latency = state.config.latency;
    if latency == Latency::default() || request.uri().path().starts_with("/__sim/") {
        return next.run(request).await;
    }
    tokio::time::sleep(latency.one_way()).await;
    let response = next.run(request).await;
    tokio::time::sleep(latency.one_way()).await;
    response
}

/// Request parameters from the query string and a form body, for any verb (body wins).
pub type Params = HashMap<String, String>;

pub(crate) fn parse_params(query: Option<&str>, body: &[u8]) -> Params {
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

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

pub(crate) fn html_response(status: StatusCode) -> Response {
    let page = format!(
        "<html><head><title>{status}</title></head><body><h1>{status}</h1><hr>gateway</body></html>"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

pub(crate) fn log_call(state: &SimState, record: CallRecord) {
    if let Ok(mut calls) = state.calls.lock() {
        calls.push(record);
    }
}
