//! The OAuth endpoints (reference §7): the authorize page, the code and client-credentials
//! grants, and refresh with rotation, each checking the app and logging the call.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;

use super::codes::*;
use super::http::{Params, json_response, log_call, parse_params};
use super::variants::RefreshVerbs;
use super::{CallRecord, SimState};
use crate::clock::wall_ms;

/// `/oauth2/access_token`, `/oauth2/refresh_token` and `/oauth/authorize`.
pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/oauth2/access_token", any(access_token))
        .route("/oauth2/refresh_token", any(refresh_token))
        .route("/oauth/authorize", get(authorize))
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
