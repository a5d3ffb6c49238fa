//! The simulator as a platform: OAuth flows, request parsing and verification, and the pusher.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kwaishop_sim::SimConfig;
use kwaishop_sim::push::PushConfig;
use kwaishop_sync::api::sign::{SignInput, SignMethod, sign};
use kwaishop_sync::api::{ErrorClass, Method};
use kwaishop_sync::clock::DAY_MS;
use kwaishop_sync::push::MessageKey;
use serde_json::{Value, json};

fn still() -> SimConfig {
    SimConfig {
        seed: 3,
        shops: 2,
        days: 10,
        orders: 300,
        mutate: false,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn authorize_then_exchange_the_code_then_call() {
    let sim = start_sim(still()).await;
    let creds = sim.credentials().clone();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = kwaishop_sync::api::oauth::authorize_url(
        &format!("{}/oauth/authorize", sim.base_url()),
        &creds.app_key,
        "https://example.invalid/cb",
        &["merchant_order", "merchant_refund", "merchant_item"],
        "xyz",
    );
    let answer = no_redirect
        .get(format!("{url}&shop=1"))
        .send()
        .await
        .expect("authorize");
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("https://example.invalid/cb?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=xyz"));
    let code = location
        .split("code=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("code");
    let code = urlencoding_decode(code);

    let tokens = Arc::new(kwaishop_sync::api::oauth::MemoryTokenStore::default());
    let client = client_with(&sim, fast_options(&sim), tokens.clone());
    let granted = client
        .exchange_code("fresh", &code)
        .await
        .expect("exchange");
    assert_eq!(granted.open_id, creds.shops[1].open_id);
    let page = client
        .item_page("fresh", 1, 10)
        .await
        .expect("the new token works");
    assert!(!page.items.is_empty());
    // The code is single-use.
    let again = client
        .exchange_code("fresh", &code)
        .await
        .expect_err("used code");
    assert_eq!(again.class, ErrorClass::InvalidRequest);
}

fn urlencoding_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}")).expect("decodes")[0]
        .1
        .clone()
}

#[tokio::test]
async fn a_rotated_refresh_token_dies_after_the_grace_period() {
    let sim = start_sim(still()).await;
    let base = sim.base_url();
    let creds = sim.credentials().clone();
    let form = |token: &str| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", token.to_string()),
            ("app_id", creds.app_key.clone()),
            ("app_secret", creds.app_secret.clone()),
        ]
    };
    let http = reqwest::Client::new();
    let first: Value = http
        .post(format!("{base}/oauth2/refresh_token"))
        .form(&form(&creds.shops[0].refresh_token))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    assert_eq!(first["result"], 1);
    // GET with the query works too (reference §7.2).
    let query = serde_urlencoded::to_string(form(&creds.shops[0].refresh_token)).expect("query");
    let within: Value = http
        .get(format!("{base}/oauth2/refresh_token?{query}"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        within["result"], 1,
        "the old token works within the grace: {within}"
    );
    sim.state.clock.advance(6 * 60_000);
    let late: Value = http
        .post(format!("{base}/oauth2/refresh_token"))
        .form(&form(&creds.shops[0].refresh_token))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    assert_eq!(late["result"], 100200102);
    assert_eq!(late["error_msg"], "refreshToken.discarded");
    // The refresh token's expiry is inherited, never extended.
    let remaining = first["refresh_token_expires_in"]
        .as_i64()
        .expect("expires_in");
    assert!(remaining <= 15_552_000 && remaining > 15_552_000 - 60);
}

/// Signs and sends a request by hand, to test what the gateway checks.
async fn raw_call(
    sim: &kwaishop_sim::SimHandle,
    path: &str,
    method: &str,
    version: &str,
    in_body: bool,
) -> Value {
    let param = json!({"pageNumber": 1, "pageSize": 10});
    signed_call(sim, path, method, version, in_body, &param).await
}

/// Signs and sends `param` to `path` by hand.
async fn signed_call(
    sim: &kwaishop_sim::SimHandle,
    path: &str,
    method: &str,
    version: &str,
    in_body: bool,
    param: &Value,
) -> Value {
    let creds = sim.credentials();
    let param = param.to_string();
    let timestamp = sim.state.clock.now_ms().to_string();
    let input = SignInput {
        access_token: &creds.shops[0].access_token,
        appkey: &creds.app_key,
        method,
        param: Some(&param),
        sign_method: SignMethod::Md5,
        timestamp: Some(&timestamp),
        version: Some(version),
    };
    let signature = sign(&input, &creds.sign_secret);
    let pairs = vec![
        ("appkey", creds.app_key.clone()),
        ("method", method.to_string()),
        ("version", version.to_string()),
        ("param", param.clone()),
        ("access_token", creds.shops[0].access_token.clone()),
        ("timestamp", timestamp),
        ("signMethod", "MD5".to_string()),
        ("sign", signature),
    ];
    let http = reqwest::Client::new();
    let request = if in_body {
        http.post(format!("{}{path}", sim.base_url())).form(&pairs)
    } else {
        http.get(format!(
            "{}{path}?{}",
            sim.base_url(),
            serde_urlencoded::to_string(&pairs).expect("query")
        ))
    };
    request
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn the_gateway_reads_query_and_form_and_checks_method_and_version() {
    let sim = start_sim(still()).await;
    let path = Method::ItemList.path();
    assert_eq!(
        raw_call(&sim, &path, "open.item.list.get", "1", false).await["result"],
        1
    );
    assert_eq!(
        raw_call(&sim, &path, "open.item.list.get", "1", true).await["result"],
        1,
        "POST form works too"
    );
    let wrong_method = raw_call(&sim, &path, "open.order.detail", "1", false).await;
    assert_ne!(wrong_method["result"], 1, "method must match the path");
    let wrong_version = raw_call(&sim, &path, "open.item.list.get", "2", false).await;
    assert_ne!(wrong_version["result"], 1, "version must be 1");
}

/// The platform declares its parameters' JSON types; the simulator refuses a number sent as a
/// string or a fraction, so a client that drifts from the declared types fails here first.
#[tokio::test]
async fn parameters_are_read_by_their_json_types() {
    let sim = start_sim(still()).await;
    let now = sim.state.clock.now_ms();
    let call = |method: Method, param: Value| {
        let sim = &sim;
        async move { signed_call(sim, &method.path(), method.name(), "1", false, &param).await }
    };
    let order = |over: Value| {
        let mut p = json!({"orderViewStatus": 1, "pageSize": 50, "queryType": 2, "sort": 1,
            "beginTime": now - DAY_MS, "endTime": now, "cursor": ""});
        p.as_object_mut()
            .expect("object")
            .extend(over.as_object().expect("object").clone());
        p
    };
    let refund = |over: Value| {
        let mut p = json!({"type": 9, "pageSize": 100, "currentPage": 1, "queryType": 2,
            "beginTime": now - DAY_MS, "endTime": now, "pcursor": ""});
        p.as_object_mut()
            .expect("object")
            .extend(over.as_object().expect("object").clone());
        p
    };
    assert_eq!(
        call(Method::OrderCursorList, order(json!({}))).await["result"],
        1
    );
    assert_eq!(
        call(Method::RefundList, refund(json!({}))).await["result"],
        1
    );
    let refused = [
        (
            Method::OrderCursorList,
            order(json!({"pageSize": "50"})),
            "pageSize",
        ),
        (
            Method::OrderCursorList,
            order(json!({"beginTime": (now - DAY_MS).to_string()})),
            "beginTime",
        ),
        (
            Method::OrderCursorList,
            order(json!({"endTime": now as f64 + 0.5})),
            "endTime",
        ),
        (
            Method::OrderCursorList,
            order(json!({"queryType": "2"})),
            "queryType",
        ),
        (
            Method::OrderCursorList,
            order(json!({"cursor": 0})),
            "cursor",
        ),
        (Method::RefundList, refund(json!({"type": "9"})), "type"),
        (
            Method::RefundList,
            refund(json!({"currentPage": 1.5})),
            "currentPage",
        ),
        (
            Method::RefundList,
            refund(json!({"pcursor": null})),
            "pcursor",
        ),
        (
            Method::ItemList,
            json!({"pageNumber": "1", "pageSize": 10}),
            "pageNumber",
        ),
        (
            Method::ItemList,
            json!({"pageNumber": 1, "pageSize": 10.0}),
            "pageSize",
        ),
        (Method::OrderDetail, json!({"oid": "123"}), "oid"),
        (Method::RefundDetail, json!({"refundId": true}), "refundId"),
    ];
    for (method, param, key) in refused {
        let answer = call(method, param.clone()).await;
        assert_ne!(answer["result"], 1, "{} accepted {param}", method.name());
        assert_eq!(
            answer["sub_code"],
            "2001",
            "{} {param}: {answer}",
            method.name()
        );
        assert!(
            answer["error_msg"]
                .as_str()
                .is_some_and(|m| m.contains(key)),
            "the answer names {key}: {answer}"
        );
    }
}

/// Every refusal of an `open.*` call carries the gateway's `code` and `sub_code` besides the
/// legacy `result` (the unknown order, the unknown refund, a mistyped parameter, a bad window).
#[tokio::test]
async fn every_refusal_carries_a_code_and_a_sub_code() {
    let sim = start_sim(still()).await;
    let now = sim.state.clock.now_ms();
    let refusals = [
        (Method::OrderDetail, json!({"oid": 1})),
        (Method::RefundDetail, json!({"refundId": 1})),
        (Method::ItemDeletedGet, json!({"itemId": 1})),
        (Method::ItemList, json!({"pageNumber": "x"})),
        (
            Method::OrderCursorList,
            json!({"orderViewStatus": 1, "pageSize": 50, "beginTime": now, "endTime": now - 1,
                "cursor": ""}),
        ),
    ];
    for (method, param) in refusals {
        let answer = signed_call(&sim, &method.path(), method.name(), "1", false, &param).await;
        assert_ne!(answer["result"], 1, "{} {param}", method.name());
        for key in ["code", "sub_code", "msg", "error_msg"] {
            assert!(
                answer[key].as_str().is_some_and(|v| !v.is_empty()),
                "{} {param}: no {key} in {answer}",
                method.name()
            );
        }
    }
}

#[tokio::test]
async fn an_app_token_reads_no_shop() {
    let sim = start_sim(still()).await;
    let creds = sim.credentials();
    let query = serde_urlencoded::to_string([
        ("app_id", creds.app_key.as_str()),
        ("grant_type", "client_credentials"),
        ("app_secret", creds.app_secret.as_str()),
    ])
    .expect("query");
    let v: Value = reqwest::get(format!("{}/oauth2/access_token?{query}", sim.base_url()))
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert_eq!(v["result"], 1);
    assert_eq!(v["expires_in"], 172_800);
    let app_token = kwaishop_sync::api::oauth::TokenSet {
        access_token: kwaishop_sync::Secret::new(v["access_token"].as_str().expect("token")),
        access_expires_at: sim.state.clock.now_ms() + 3_600_000,
        refresh_token: kwaishop_sync::Secret::new("none"),
        refresh_expires_at: sim.state.clock.now_ms() + 3_600_000,
        open_id: String::new(),
        scopes: vec![],
    };
    let store = Arc::new(kwaishop_sync::api::oauth::MemoryTokenStore::with(
        "app", app_token,
    ));
    let err = client_with(&sim, fast_options(&sim), store)
        .item_page("app", 1, 10)
        .await
        .expect_err("no shop");
    assert_eq!(err.class, ErrorClass::AuthorizationRevoked);
    assert_eq!(err.result, Some(26), "主账号不存在: {err}");
}

#[tokio::test]
async fn days_pass_quota_resets_and_tokens_expire_on_the_fast_clock() {
    let sim = start_sim(SimConfig {
        daily_quota: Some(2),
        ..still()
    })
    .await;
    let client = client(&sim);
    client.item_page(&shop_id(0), 1, 10).await.expect("1");
    client.item_page(&shop_id(0), 1, 10).await.expect("2");
    assert_eq!(
        client
            .item_page(&shop_id(0), 1, 10)
            .await
            .expect_err("3")
            .class,
        ErrorClass::QuotaExhausted
    );
    // Two simulated days later the quota has reset and the 48-hour token has expired: the
    // client's pause ends at midnight, the call refreshes the token and succeeds.
    sim.state.clock.advance(2 * DAY_MS + 60_000);
    client
        .item_page(&shop_id(0), 1, 10)
        .await
        .expect("a new day, a refreshed token");
    let log = calls(&sim).await;
    assert!(
        log.iter()
            .any(|c| c.method == "oauth2/refresh_token" && c.outcome == "ok")
    );
}

/// A receiver that decrypts pushes, fails the first `fail_first` deliveries, then acknowledges.
async fn receiver(key: MessageKey, fail_first: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let got = Arc::new(Mutex::new(Vec::<Value>::new()));
    let failures = Arc::new(Mutex::new(fail_first));
    let seen = got.clone();
    let handler = move |body: String| {
        let (key, seen, failures) = (key.clone(), seen.clone(), failures.clone());
        async move {
            let plain = key
                .decrypt(body.as_bytes())
                .expect("the simulator encrypts with the app's key");
            let v: Value = serde_json::from_slice(&plain).expect("JSON envelope");
            let mut left = failures.lock().expect("lock");
            if *left > 0 && v.get("test").is_none() {
                *left -= 1;
                return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new());
            }
            seen.lock().expect("lock").push(v);
            (axum::http::StatusCode::OK, r#"{"result":1}"#.to_string())
        }
    };
    let app = axum::Router::new().route("/push", post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (format!("http://{addr}/push"), got)
}

#[tokio::test]
async fn pushes_are_encrypted_retried_and_carry_the_documented_envelope() {
    // Start once to learn the key, then again with the same seed (same credentials) pushing.
    let probe = start_sim(still()).await;
    let key = MessageKey::from_secret(&probe.credentials().msg_secret).expect("key");
    probe.stop().await;
    let (url, got) = receiver(key, 3).await;
    let push = PushConfig {
        retry_scale: 0.0002,
        heartbeat_ms: 100,
        ..PushConfig::new(url)
    };
    let sim = start_sim(SimConfig {
        mutate: true,
        speed: 2_000.0,
        orders_per_day: Some(2_000.0),
        push: Some(push),
        ..still()
    })
    .await;
    wait_until(
        Duration::from_secs(20),
        "twenty acknowledged messages",
        || async {
            got.lock()
                .expect("lock")
                .iter()
                .filter(|v| v.get("eventId").is_some())
                .count()
                >= 20
        },
    )
    .await;
    let messages: Vec<Value> = got.lock().expect("lock").clone();
    assert!(
        messages.iter().any(|v| v["test"] == true),
        "heartbeats arrive"
    );
    let events: Vec<&Value> = messages
        .iter()
        .filter(|v| v.get("eventId").is_some())
        .collect();
    for e in &events {
        assert_eq!(e["appKey"], sim.credentials().app_key.as_str());
        let info: Value = serde_json::from_str(e["info"].as_str().expect("info is a JSON string"))
            .expect("info parses");
        assert!(info.is_object());
        assert!(e["event"].as_str().expect("event").starts_with("kwaishop_"));
        assert!(e["bizId"].as_i64().is_some() && e["userId"].as_i64().is_some());
    }
    let stats: Value = reqwest::get(format!("{}/__sim/push", sim.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert!(
        stats["failed_attempts"].as_u64().expect("n") >= 3,
        "failures were retried: {stats}"
    );
    assert_eq!(stats["given_up"], 0);
}

/// `--latency-ms`: every API answer comes at least that much later, the simulator's own routes
/// at once, and requests wait side by side — ten at once take about one latency, not ten.
#[tokio::test]
async fn latency_delays_every_answer_without_holding_the_others() {
    const LATENCY: Duration = Duration::from_millis(200);
    let sim = start_sim(SimConfig {
        latency: kwaishop_sim::Latency {
            base: LATENCY,
            jitter: Duration::from_millis(20),
        },
        ..still()
    })
    .await;
    let client = client(&sim);
    let started = std::time::Instant::now();
    client.item_page(&shop_id(0), 1, 10).await.expect("a page");
    assert!(started.elapsed() >= LATENCY, "{:?}", started.elapsed());

    let started = std::time::Instant::now();
    let shops: Vec<String> = (0..10).map(|i| shop_id(i % 2)).collect();
    let pages =
        futures_util::future::join_all(shops.iter().map(|shop| client.item_page(shop, 1, 10)))
            .await;
    assert!(pages.iter().all(Result::is_ok));
    let ten = started.elapsed();
    assert!(ten >= LATENCY, "{ten:?}");
    // Held one behind the other they would take 2 s or more.
    assert!(ten < LATENCY * 6, "ten requests at once took {ten:?}");

    let started = std::time::Instant::now();
    let _ = calls(&sim).await;
    assert!(
        started.elapsed() < LATENCY,
        "the simulator's own routes answer at once"
    );
}
