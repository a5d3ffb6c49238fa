//! The response envelope (reference §6): success only when `result == 1`; everything else becomes
//! a classified [`ApiError`] that keeps the platform's codes and message.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::codes::{RESULT_OK, classify};
use super::error::{ApiError, ErrorClass};

/// A decoded envelope whose `result` was 1.
#[derive(Debug)]
pub struct Success {
    /// The `data` payload, byte for byte as received (`null` when absent).
    pub data: Box<RawValue>,
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_msg: Option<Value>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    msg: Option<Value>,
    #[serde(default)]
    sub_code: Option<Value>,
    #[serde(default)]
    sub_msg: Option<Value>,
    #[serde(default)]
    request_id: Option<Value>,
    #[serde(default, rename = "requestId")]
    request_id_camel: Option<Value>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

/// A JSON number or a numeric string as an i64; the platform sends codes both ways.
pub fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON string or number as text; `null` and empty strings are `None`.
pub fn lenient_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Decodes a response body. `http_status` matters only when the body is not an envelope.
pub fn decode(method: &str, http_status: u16, body: &[u8]) -> Result<Success, ApiError> {
    let env: RawEnvelope = match serde_json::from_slice(body) {
        // serde would also read a JSON array positionally into the struct: only objects count.
        Ok(_) if body.trim_ascii_start().first() != Some(&b'{') => {
            return Err(ApiError::local(
                ErrorClass::Malformed,
                method,
                "the answer is JSON but not an object",
            ));
        }
        Ok(env) => env,
        Err(e) => return Err(undecodable(method, http_status, body, &e)),
    };
    let text = |v: &Option<Value>| v.as_ref().and_then(lenient_text);
    let request_id = text(&env.request_id).or_else(|| text(&env.request_id_camel));
    let result = match env.result.as_ref() {
        Some(v) => match lenient_i64(v) {
            Some(r) => Some(r),
            None => {
                return Err(ApiError::local(
                    ErrorClass::Malformed,
                    method,
                    format!(
                        "the envelope's result is not a number: {}",
                        short(&v.to_string())
                    ),
                ));
            }
        },
        None => None,
    };
    if result == Some(RESULT_OK) {
        let data = env
            .data
            .unwrap_or_else(|| RawValue::from_string("null".into()).expect("null is JSON"));
        return Ok(Success { data, request_id });
    }
    if result.is_none() && http_status >= 500 {
        return Err(ApiError::local(
            ErrorClass::Transient,
            method,
            format!("HTTP {http_status}"),
        ));
    }
    let code = text(&env.code);
    let sub_code = text(&env.sub_code);
    let message = [text(&env.error_msg), text(&env.sub_msg), text(&env.msg)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" / ");
    let class = if result.is_none() && code.is_none() && sub_code.is_none() {
        // JSON, but not an envelope at all.
        ErrorClass::Malformed
    } else {
        classify(result, code.as_deref(), sub_code.as_deref(), &message)
    };
    Err(ApiError {
        class,
        method: method.to_string(),
        result,
        code,
        sub_code,
        message: if message.is_empty() {
            "no message".into()
        } else {
            short(&message)
        },
        request_id,
        retry_at_ms: None,
        too_large: false,
        timed_out: false,
    })
}

/// The error for a body that is not JSON: truncated, HTML, empty or broken.
pub(crate) fn undecodable(
    method: &str,
    http_status: u16,
    body: &[u8],
    e: &serde_json::Error,
) -> ApiError {
    let looks_like_html = body.trim_ascii_start().first() == Some(&b'<');
    // A cut connection ends early (EOF); a proxy or gateway answers with an HTML page; a 5xx is
    // the server's trouble. All three are worth another try. Anything else is a broken answer.
    let class = if e.is_eof() || looks_like_html || http_status >= 500 || body.is_empty() {
        ErrorClass::Transient
    } else {
        ErrorClass::Malformed
    };
    let what = if looks_like_html {
        "an HTML page".to_string()
    } else if body.is_empty() {
        "an empty body".to_string()
    } else {
        format!("invalid JSON ({e})")
    };
    ApiError::local(class, method, format!("HTTP {http_status} with {what}"))
}

fn short(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_keeps_data_verbatim() {
        let body = br#"{"result":1,"error_msg":"","requestId":"r1","data":{"cursor":"nomore", "orderList":[]}}"#;
        let ok = decode("m", 200, body).expect("success");
        assert_eq!(ok.data.get(), r#"{"cursor":"nomore", "orderList":[]}"#);
        assert_eq!(ok.request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn failures_are_classified_with_codes() {
        let body = r#"{"result":28,"code":"803000","msg":"鉴权失败","error_msg":"TOKEN过期","sub_code":"28","sub_msg":"TOKEN过期","request_id":"704352221454586928"}"#;
        let err = decode("m", 200, body.as_bytes()).expect_err("token expired");
        assert_eq!(err.class, ErrorClass::TokenExpired);
        assert_eq!(err.code.as_deref(), Some("803000"));
        assert_eq!(err.request_id.as_deref(), Some("704352221454586928"));
        let err = decode(
            "m",
            200,
            br#"{"result":"21","error_msg":"order operation reject"}"#,
        )
        .expect_err("business");
        assert_eq!(err.class, ErrorClass::Business);
    }

    #[test]
    fn garbage_is_classified_not_panicking() {
        let cases: &[(&[u8], u16, ErrorClass)] = &[
            (
                b"<html><body>502 Bad Gateway</body></html>",
                200,
                ErrorClass::Transient,
            ),
            (
                br#"{"result":1,"data":{"orderList":[{"oid":1"#,
                200,
                ErrorClass::Transient,
            ),
            (b"", 200, ErrorClass::Transient),
            (br#"{"result":{"nested":true}}"#, 200, ErrorClass::Malformed),
            (br#"[1,2,3]"#, 200, ErrorClass::Malformed),
            (br#"{"hello":"world"}"#, 200, ErrorClass::Malformed),
            (br#"{"hello":"world"}"#, 503, ErrorClass::Transient),
            (b"\xff\xfe\x00garbage", 200, ErrorClass::Malformed),
        ];
        for (body, status, want) in cases {
            let err = decode("m", *status, body).expect_err("must fail");
            assert_eq!(err.class, *want, "{:?}", String::from_utf8_lossy(body));
        }
    }
}
