//! The simulator's own endpoints, outside the platform's paths, under `/__sim/`: the ground
//! truth and call log for tests and tools, and knobs to act out events (faults, revocation,
//! token expiry, clock jumps, stale pages, ties on a window edge).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::SimState;
use super::apis::shop_truth;
use super::faults::FaultConfig;
use super::model::Doc;

type Q = Query<HashMap<String, String>>;

/// The `/__sim/` routes.
pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/__sim/truth", get(truth))
        .route("/__sim/calls", get(calls))
        .route("/__sim/clock", get(clock))
        .route("/__sim/advance", post(advance_clock))
        .route("/__sim/faults", get(get_faults).post(set_faults))
        .route("/__sim/revoke", post(revoke))
        .route("/__sim/expire", post(expire))
        .route("/__sim/code", post(code))
        .route("/__sim/mutation", post(mutation))
        .route("/__sim/stale", post(stale))
        .route("/__sim/ties", post(ties))
        .route("/__sim/push", get(push_stats))
        .route("/__sim/corrupt", post(corrupt))
        .route("/__sim/nul", post(nul))
        .route("/__sim/versions", post(versions))
}

/// `GET /__sim/push`: the push sender's counters and the acknowledged event ids.
async fn push_stats(State(state): State<Arc<SimState>>) -> Response {
    match &state.pusher {
        Some(pusher) => Json(pusher.stats()).into_response(),
        None => bad("push is off (start with --push-url)"),
    }
}

fn shop_arg(q: &HashMap<String, String>) -> Option<usize> {
    q.get("shop").and_then(|s| s.parse().ok())
}

fn num<T: std::str::FromStr>(q: &HashMap<String, String>, key: &str) -> Option<T> {
    q.get(key).and_then(|s| s.parse().ok())
}

fn bad(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response()
}

/// `GET /__sim/truth[?shop=N]`: every current order, refund and item as the platform holds them.
async fn truth(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let only = shop_arg(&q);
    // Writing out every document is long work: off the threads that answer API calls, which
    // must not stall behind it (their arrival times feed the QPS check).
    let build = {
        let state = state.clone();
        move || -> Option<Vec<String>> {
            let shops = state.shops.read().ok()?;
            Some(
                shops
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| only.is_none_or(|s| s == *i))
                    .map(|(i, s)| shop_truth(i, s, &state.config.variants))
                    .collect(),
            )
        }
    };
    let Ok(Some(list)) = tokio::task::spawn_blocking(build).await else {
        return bad("busy");
    };
    let body = format!(
        r#"{{"now_ms":{},"shops":[{}]}}"#,
        state.clock.now_ms(),
        list.join(",")
    );
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `GET /__sim/calls[?since=SEQ]`: every request with its time, method, shop and outcome.
async fn calls(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let since: u64 = num(&q, "since").unwrap_or(0);
    // A copy under the lock, written out after it: every API call appends to this log.
    let list: Vec<super::CallRecord> = match state.calls.lock() {
        Ok(calls) => calls.iter().filter(|c| c.seq >= since).cloned().collect(),
        Err(_) => return bad("busy"),
    };
    Json(json!({ "calls": list })).into_response()
}

async fn clock(State(state): State<Arc<SimState>>) -> Response {
    let (wall_origin_ms, origin_ms) = state.clock.origin();
    Json(json!({
        "now_ms": state.clock.now_ms(),
        "speed": state.clock.speed(),
        "wall_origin_ms": wall_origin_ms,
        "origin_ms": origin_ms,
    }))
    .into_response()
}

/// `POST /__sim/advance?ms=N`: jumps the simulator's clock forward.
async fn advance_clock(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let Some(ms) = num::<i64>(&q, "ms") else {
        return bad("ms required");
    };
    state.clock.advance(ms);
    Json(json!({ "now_ms": state.clock.now_ms() })).into_response()
}

async fn get_faults(State(state): State<Arc<SimState>>) -> Response {
    let faults = state.faults.read().map(|f| f.clone()).unwrap_or_default();
    Json(faults).into_response()
}

/// `POST /__sim/faults` with a JSON [`FaultConfig`]: replaces the fault shares.
async fn set_faults(
    State(state): State<Arc<SimState>>,
    Json(faults): Json<FaultConfig>,
) -> Response {
    if let Ok(mut f) = state.faults.write() {
        *f = faults.clone();
    }
    Json(faults).into_response()
}

/// `POST /__sim/revoke?shop=N`: the merchant revokes the app's authorization.
async fn revoke(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let Some(shop) = shop_arg(&q) else {
        return bad("shop required");
    };
    if let Ok(mut auth) = state.auth.lock() {
        auth.revoke(shop);
    }
    Json(json!({ "revoked": shop })).into_response()
}

/// `POST /__sim/expire?shop=N`: the shop's access tokens expire now.
async fn expire(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let Some(shop) = shop_arg(&q) else {
        return bad("shop required");
    };
    let now = state.clock.now_ms();
    if let Ok(mut auth) = state.auth.lock() {
        auth.expire_access(shop, now);
    }
    Json(json!({ "expired": shop })).into_response()
}

/// `POST /__sim/code?shop=N`: an authorization code, as if the merchant had just approved.
async fn code(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let Some(shop) = shop_arg(&q).filter(|s| *s < state.credentials.shops.len()) else {
        return bad("shop required");
    };
    let now = state.clock.now_ms();
    match (state.rng.lock(), state.auth.lock()) {
        (Ok(mut rng), Ok(mut auth)) => {
            Json(json!({ "code": auth.new_code(&mut rng, shop, now) })).into_response()
        }
        _ => bad("busy"),
    }
}

/// `POST /__sim/mutation?on=true|false`, or `?now=true` to apply what is due at once.
async fn mutation(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    if let Some(on) = num::<bool>(&q, "on") {
        state.mutating.store(on, Ordering::SeqCst);
    }
    let applied = if num::<bool>(&q, "now") == Some(true) {
        let changes = super::advance(&state);
        let n = changes.len();
        if let Some(pusher) = &state.pusher {
            pusher.enqueue(changes);
        }
        n
    } else {
        0
    };
    Json(json!({ "mutating": state.mutating.load(Ordering::SeqCst), "applied": applied }))
        .into_response()
}

/// `POST /__sim/stale?shop=N&count=K`: the K most recently updated orders are changed once more,
/// and the next list pages that hold them serve their previous (older) versions.
async fn stale(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let Some(shop) = shop_arg(&q) else {
        return bad("shop required");
    };
    let count: usize = num(&q, "count").unwrap_or(10);
    let now = state.clock.now_ms();
    let (Ok(mut shops), Ok(mut stale)) = (state.shops.write(), state.stale_orders.lock()) else {
        return bad("busy");
    };
    let Some(data) = shops.get_mut(shop) else {
        return bad("no such shop");
    };
    let latest: Vec<i64> = data
        .orders
        .time_index(super::model::TimeField::Update)
        .iter()
        .rev()
        .take(count)
        .map(|k| k.1)
        .collect();
    let mut oids = Vec::new();
    for oid in latest {
        let Some(old) = data.orders.get(oid).cloned() else {
            continue;
        };
        let bumped = data.orders.update(oid, now, |v, t| {
            v["orderBaseInfo"]["updateTime"] = json!(t);
            v["orderBaseInfo"]["remark"] = json!(format!("changed at {t}"));
        });
        if bumped.is_some() {
            stale.insert(oid, old);
            oids.push(oid);
        }
    }
    Json(json!({ "oids": oids })).into_response()
}

/// `POST /__sim/ties?shop=N&count=K&update_time=T`: K new orders (copies of existing ones with
/// new ids) that all carry the same `updateTime` T, to test a window edge.
async fn ties(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let (Some(shop), Some(t)) = (shop_arg(&q), num::<i64>(&q, "update_time")) else {
        return bad("shop and update_time required");
    };
    let count: usize = num(&q, "count").unwrap_or(300);
    let Ok(mut shops) = state.shops.write() else {
        return bad("busy");
    };
    let Some(data) = shops.get_mut(shop) else {
        return bad("no such shop");
    };
    let templates: Vec<Doc> = data.orders.iter().take(count.min(50)).cloned().collect();
    if templates.is_empty() {
        return bad("the shop has no orders to copy");
    }
    let base = data.orders.ids_sorted().last().copied().unwrap_or(0) + 1_000_000;
    let mut oids = Vec::with_capacity(count);
    for i in 0..count {
        let template = &templates[i % templates.len()];
        let oid = base + i as i64;
        let mut v = template.value();
        let create = t - 3_600_000;
        v["orderBaseInfo"]["oid"] = json!(oid);
        v["orderBaseInfo"]["createTime"] = json!(create);
        v["orderBaseInfo"]["updateTime"] = json!(t);
        for key in ["payTime", "sendTime", "recvTime", "refundTime"] {
            v["orderBaseInfo"][key] = json!(0);
        }
        v["orderBaseInfo"]["status"] = json!(10);
        v["orderRefundList"] = json!([]);
        v["subOrderInfo"] = json!([]);
        let extra: Value = serde_json::from_str(template.detail_extra.get()).unwrap_or(json!({}));
        data.orders.put(Doc::new(oid, create, t, &v, &extra));
        oids.push(oid);
    }
    Json(json!({ "oids": oids })).into_response()
}

/// `POST /__sim/nul?shop=N&count=K`: K orders, spread over the shop's ids, get a U+0000 inside
/// their remark and their item title (as the JSON escape `\u0000`), as a buyer's paste or a
/// seller's tool may leave one; they change now.
async fn nul(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let Some(shop) = shop_arg(&q) else {
        return bad("shop required");
    };
    let count: usize = num(&q, "count").unwrap_or(20);
    let now = state.clock.now_ms();
    let Ok(mut shops) = state.shops.write() else {
        return bad("busy");
    };
    let Some(data) = shops.get_mut(shop) else {
        return bad("no such shop");
    };
    let ids = data.orders.ids_sorted();
    let step = (ids.len() / count.max(1)).max(1);
    let mut oids = Vec::new();
    for oid in ids.into_iter().step_by(step).take(count) {
        let changed = data.orders.update(oid, now, |v, t| {
            v["orderBaseInfo"]["updateTime"] = json!(t);
            v["orderBaseInfo"]["remark"] = json!(format!("gift wrap\u{0}please {oid}"));
            if let Some(title) = v["orderItemInfo"]["itemTitle"].as_str() {
                v["orderItemInfo"]["itemTitle"] = json!(format!("{title}\u{0}"));
            }
        });
        if changed.is_some() {
            oids.push(oid);
        }
    }
    Json(json!({ "oids": oids })).into_response()
}

/// `POST /__sim/corrupt?shop=N&oid=X`: the order's `updateTime` becomes a string that is not a
/// number, so the order cannot be read (`&undo=true` restores a number). The order changes now;
/// with `&in_place=true` it keeps its place in history (listed where it was, in the middle of a
/// backfill), as a record broken at the source from the start would be.
async fn corrupt(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let (Some(shop), Some(oid)) = (shop_arg(&q), num::<i64>(&q, "oid")) else {
        return bad("shop and oid required");
    };
    let undo = num::<bool>(&q, "undo") == Some(true);
    let now = state.clock.now_ms();
    let Ok(mut shops) = state.shops.write() else {
        return bad("busy");
    };
    let Some(data) = shops.get_mut(shop) else {
        return bad("no such shop");
    };
    if num::<bool>(&q, "in_place") == Some(true) {
        let Some(doc) = data.orders.get(oid).cloned() else {
            return bad("no such order");
        };
        let mut v = doc.value();
        let t = doc.update_time;
        v["orderBaseInfo"]["updateTime"] = if undo {
            json!(t)
        } else {
            json!(format!("not-a-time-{t}"))
        };
        let extra: Value = serde_json::from_str(doc.detail_extra.get()).unwrap_or(json!({}));
        data.orders
            .put(Doc::new(oid, doc.create_time, t, &v, &extra));
        return Json(json!({ "oid": oid, "update_time": t, "corrupt": !undo })).into_response();
    }
    let stamped = data.orders.update(oid, now, |v, t| {
        v["orderBaseInfo"]["updateTime"] = if undo {
            json!(t)
        } else {
            json!(format!("not-a-time-{t}"))
        };
    });
    match stamped {
        Some(t) => Json(json!({ "oid": oid, "update_time": t, "corrupt": !undo })).into_response(),
        None => bad("no such order"),
    }
}

/// `POST /__sim/versions?shop=N&oid=X&serve=3,1,2`: the order changes three times (v1, v2, v3,
/// each newer), and the next detail calls for it serve those versions in the order given, as a
/// lagging replica might; afterwards the current version again.
async fn versions(State(state): State<Arc<SimState>>, Query(q): Q) -> Response {
    let (Some(shop), Some(oid)) = (shop_arg(&q), num::<i64>(&q, "oid")) else {
        return bad("shop and oid required");
    };
    let order: Vec<usize> = q
        .get("serve")
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![3, 1, 2]);
    let now = state.clock.now_ms();
    let (Ok(mut shops), Ok(mut script)) = (state.shops.write(), state.detail_script.lock()) else {
        return bad("busy");
    };
    let Some(data) = shops.get_mut(shop) else {
        return bad("no such shop");
    };
    let mut made = vec![];
    for v in 1..=order.iter().copied().max().unwrap_or(3) {
        let stamped = data.orders.update(oid, now + v as i64, |doc, t| {
            doc["orderBaseInfo"]["updateTime"] = json!(t);
            doc["orderBaseInfo"]["remark"] = json!(format!("version {v}"));
        });
        match (stamped, data.orders.get(oid)) {
            (Some(_), Some(doc)) => made.push(doc.clone()),
            _ => return bad("no such order"),
        }
    }
    let times: Vec<i64> = made.iter().map(|d| d.update_time).collect();
    let queue = order
        .iter()
        .filter_map(|v| made.get(v.wrapping_sub(1)).cloned())
        .collect();
    script.insert(oid, queue);
    Json(json!({ "oid": oid, "versions": times, "serve": order })).into_response()
}
