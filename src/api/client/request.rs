//! The call path: retries, a second request beside a slow first, one attempt with its token,
//! pacing, and the signed request on the wire.

use std::sync::Arc;

use backon::{ConstantBuilder, Retryable};
use tracing::{debug, warn};

use super::ApiClient;
use crate::api::Method;
use crate::api::envelope::{self, Success};
use crate::api::error::{ApiError, ErrorClass};
use crate::api::oauth::TokenSet;
use crate::api::retry::Delays;
use crate::api::sign::{self, SignInput};
use crate::api::transport::exchange;
use crate::clock::{hour_start, next_beijing_midnight};

impl ApiClient {
    /// signed byte for byte), with pacing, quota, token refresh and retries.
    pub async fn call(&self, shop: &str, method: Method, param: &str) -> Result<Success, ApiError> {
        let settings = self.settings();
        let policy = &settings.opts.retry;
        // The builder only counts the attempts; each delay is the failure's own (see `Delays`).
        let attempts =
            ConstantBuilder::default().with_max_times(policy.max_attempts.saturating_sub(1));
        let mut delays = Delays::new(policy);
        // After an attempt timed out under the quick timeout, the next ones wait the
        // configured timeout: a platform slower than it was is not failed for that.
        let patient = std::sync::atomic::AtomicBool::new(false);
        (|| {
            let patient = patient.load(std::sync::atomic::Ordering::Relaxed);
            self.hedged(shop, method, param, patient)
        })
        .retry(attempts)
            .sleep(crate::api::retry::wait)
            .when(|e: &ApiError| e.class.is_retryable())
            .adjust(|e: &ApiError, delay| delay.map(|_| delays.after(e.class)))
            .notify(|e: &ApiError, delay| {
                if e.timed_out {
                    patient.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                warn!(shop, method = method.name(), class = %e.class, delay_ms = delay.as_millis() as u64, error = %e, "retrying");
            })
            .await
    }

    /// One attempt, and for a list page a second one beside it when the first is not answered
    /// in a few times the usual answer time after it left (its turn at the limiter does not
    /// count). Every method is a read: sending it twice changes nothing but the quota, so
    /// details, which hold up no window, are sent once; while both are out, the call is known
    /// to be stalled (see `retry::Waiting`). A request the platform holds (a hung connection,
    /// an answer delayed by seconds) then costs its window half a second, not the quick
    /// timeout and a retry. The first answer that is
    /// not a failure wins; the other request is dropped. When the first fails, the second is
    /// waited for; when the second fails, the attempt has failed (the first is overdue). A
    /// patient attempt (after a timeout) is not hedged: the platform may simply be slower now.
    async fn hedged(
        &self,
        shop: &str,
        method: Method,
        param: &str,
        patient: bool,
    ) -> Result<Success, ApiError> {
        let hedge_after =
            (!patient && method.lists()).then(|| self.inner.answer_times.hedge_after(method));
        let Some(after) = hedge_after.flatten() else {
            return self.attempt(shop, method, param, patient, None).await;
        };
        // Counted from when the first request leaves: at the limit, calls wait their turn at
        // the limiter far longer than the platform takes to answer.
        let sent = tokio::sync::Notify::new();
        let first = self.attempt(shop, method, param, patient, Some(&sent));
        tokio::pin!(first);
        let overdue = async {
            sent.notified().await;
            tokio::time::sleep(after).await;
        };
        tokio::select! {
            answer = &mut first => return answer,
            () = overdue => {}
        }
        debug!(
            shop,
            method = method.name(),
            after_ms = after.as_millis() as u64,
            "no answer yet; sending the request a second time"
        );
        let second = self.attempt(shop, method, param, patient, None);
        tokio::pin!(second);
        // Both held, the call may well wait for the second one's timeout: a window read side
        // by side can be read again meanwhile (see `retry::Waiting`).
        let timeout = self.settings().opts.timeout;
        let timeout = self.inner.answer_times.quick_timeout(method, timeout);
        let _stalled = crate::api::retry::stalled_until(tokio::time::Instant::now() + timeout);
        tokio::select! {
            answer = &mut first => match answer {
                Ok(ok) => Ok(ok),
                Err(_) => second.await,
            },
            // The first is long overdue: waiting for it could take its whole timeout, and a
            // retry costs a short delay and one call.
            answer = &mut second => answer,
        }
    }

    /// One attempt: a token, a send, and on an expired token one refresh and one more send.
    async fn attempt(
        &self,
        shop: &str,
        method: Method,
        param: &str,
        patient: bool,
        sent: Option<&tokio::sync::Notify>,
    ) -> Result<Success, ApiError> {
        let token = self.token_for_call(shop, method).await?;
        match self.send(shop, method, param, &token, patient, sent).await {
            Err(e) if e.class == ErrorClass::TokenExpired => {
                let fresh = self.refresh_replacing(shop, &token).await?;
                self.send(shop, method, param, &fresh, patient, sent)
                    .await
                    .map_err(|e| {
                        if e.class == ErrorClass::TokenExpired {
                            ApiError {
                                class: ErrorClass::AuthorizationRevoked,
                                message: format!(
                                    "still rejected after a token refresh: {}",
                                    e.message
                                ),
                                ..e
                            }
                        } else {
                            e
                        }
                    })
            }
            // `auth` may have stored a new authorization since this token was read.
            Err(e) if e.class == ErrorClass::AuthorizationRevoked => {
                match self.read_token(shop, method.name()).await {
                    Ok(stored) if stored.access_token != token.access_token => {
                        self.send(shop, method, param, &stored, patient, sent).await
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Waits for this call's turn under the current limiters. A call that was waiting when they
    /// were replaced (a new share, a reload) waits again under the new ones: the old pace no
    /// longer holds for anyone else.
    async fn pace(&self, method: Method) {
        let mut open = self.inner.calls_open.subscribe();
        // The sender lives as long as this client, so the wait cannot fail.
        let _ = open.wait_for(|open| *open).await;
        loop {
            let limits = self.limits();
            limits.acquire(method).await;
            if Arc::ptr_eq(&limits, &self.limits()) {
                return;
            }
        }
    }

    /// One signed request, paced and counted; `sent` is told when it leaves.
    async fn send(
        &self,
        shop: &str,
        method: Method,
        param: &str,
        token: &TokenSet,
        patient: bool,
        sent: Option<&tokio::sync::Notify>,
    ) -> Result<Success, ApiError> {
        let inner = &self.inner;
        // The quota is counted (a database write) before pacing, so its latency cannot bunch
        // paced requests together on their way to the platform.
        self.count_call(shop, method).await?;
        self.pace(method).await;
        if let Some(sent) = sent {
            sent.notify_one();
        }
        let result = self.wire(shop, method, param, token, patient).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.class.as_str(),
        };
        if let Ok(mut outcomes) = inner.outcomes.lock() {
            *outcomes
                .entry((shop.to_string(), method, outcome))
                .or_insert(0) += 1;
        }
        let hour = hour_start(inner.clock.now_ms());
        inner.hourly.add(shop, hour, method, outcome, 1);
        result
    }

    /// Signs, sends and decodes one request.
    async fn wire(
        &self,
        shop: &str,
        method: Method,
        param: &str,
        token: &TokenSet,
        patient: bool,
    ) -> Result<Success, ApiError> {
        let inner = &self.inner;
        let settings = self.settings();
        let timestamp = inner.clock.now_ms().to_string();
        let input = SignInput {
            access_token: token.access_token.expose(),
            appkey: &settings.app.app_key,
            method: method.name(),
            param: Some(param),
            sign_method: settings.opts.sign_method,
            timestamp: Some(&timestamp),
            version: Some("1"),
        };
        let signature = sign::sign(&input, settings.app.sign_secret.expose());
        let query = serde_urlencoded::to_string([
            ("appkey", input.appkey),
            ("method", input.method),
            ("version", "1"),
            ("param", param),
            ("access_token", input.access_token),
            ("timestamp", &timestamp),
            ("signMethod", settings.opts.sign_method.as_str()),
            ("sign", &signature),
        ])
        .map_err(|e| ApiError::local(ErrorClass::InvalidRequest, method.name(), e.to_string()))?;
        // The URL carries the access token: it is never logged, and errors drop it (without_url).
        let url = format!("{}{}?{}", settings.base_url, method.path(), query);
        debug!(shop, method = method.name(), "calling");
        if let Ok(mut sent) = inner.sent.lock() {
            *sent.entry((shop.to_string(), method)).or_insert(0) += 1;
        }
        let timeout = match patient {
            true => settings.opts.timeout,
            false => inner
                .answer_times
                .quick_timeout(method, settings.opts.timeout),
        };
        let started = std::time::Instant::now();
        let request = inner.http.get(url);
        let max = settings.opts.max_body_bytes;
        let (status, body) = exchange(method.name(), request, timeout, max).await?;
        inner.answer_times.add(method, started.elapsed());
        let outcome = envelope::decode(method.name(), status, &body);
        match outcome {
            Err(mut e) if e.class == ErrorClass::QuotaExhausted => {
                let until = next_beijing_midnight(inner.clock.now_ms());
                match e.quota_api() {
                    // A quota of one API pauses that API only; the shop's others go on.
                    Some(api) => self.pause_api(shop, api, until).await,
                    None => self.pause(shop, until).await,
                }
                e.retry_at_ms = Some(until);
                Err(e)
            }
            other => other,
        }
    }
}
