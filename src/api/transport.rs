//! One HTTP exchange with the platform: the request sent, its answer read up to a size, and
//! transport failures reported without the URL (it carries the token or the secrets).

use std::time::Duration;

use super::error::{ApiError, ErrorClass};

/// A transport failure, without the URL (it carries the token).
fn network_error(what: &str, e: reqwest::Error) -> ApiError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    ApiError {
        timed_out: e.is_timeout(),
        ..ApiError::local(
            ErrorClass::Transient,
            what,
            format!("{kind}: {}", e.without_url()),
        )
    }
}

/// Sends `request` and reads its answer (at most `max` bytes): its HTTP status and body. The
/// `timeout` runs from connecting to the body's last byte; errors drop the URL.
pub(super) async fn exchange(
    what: &str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
    max: usize,
) -> Result<(u16, Vec<u8>), ApiError> {
    let response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| network_error(what, e))?;
    let status = response.status().as_u16();
    let body = read_capped(what, response, max).await?;
    Ok((status, body))
}

/// Reads a response body, refusing anything over `max` bytes.
async fn read_capped(
    what: &str,
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, ApiError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large(what, max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| network_error(what, e))? {
        if body.len() + chunk.len() > max {
            return Err(too_large(what, max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large(what: &str, max: usize) -> ApiError {
    ApiError {
        too_large: true,
        timed_out: false,
        ..ApiError::local(
            ErrorClass::Malformed,
            what,
            format!("the answer is larger than {max} bytes"),
        )
    }
}
