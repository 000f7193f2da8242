//! Retries with exponential backoff and a deadline for the whole generation.
//!
//! What is retried: HTTP 408, 409, 429, 500, 502, 503, 504, 529, an `overloaded_error` (or
//! similar) event, a failed connection, and a stream cut — but only while no chunk has been
//! handed to the caller. Once the first chunk is out, a later failure is returned as an error:
//! the caller has shown partial output and decides (the runtime retries the whole step).
//! The timeout covers the whole generation: every attempt, the waits between them, and the
//! streaming of the answer. A timeout is not retried.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::stream::{self, Stream, StreamExt};
use reqwest::header::HeaderMap;
use tokio::time::{Instant, Sleep};

use super::{ChunkStream, LanguageModel, LlmError, PreparedRequest, StreamChunk};

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// The first backoff; each retry doubles it (with jitter), up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The whole generation; `None` waits forever.
    pub timeout: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            timeout: Some(Duration::from_millis(crate::definition::DEFAULT_TIMEOUT_MS)),
        }
    }
}

impl RetryPolicy {
    /// From perstack.toml's `maxRetries` and `timeout` (ms; 0 means no timeout).
    pub fn from_config(max_retries: u64, timeout_ms: u64) -> Self {
        RetryPolicy {
            max_retries: u32::try_from(max_retries).unwrap_or(u32::MAX),
            timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms)),
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `attempt` (1-based): the server's `retry-after` if it
    /// gave one, else `base * 2^(attempt-1)`, halved and topped up with random jitter.
    pub fn delay(&self, attempt: u32, err: &LlmError) -> Duration {
        if let Some(after) = err.retry_after() {
            return after.min(self.max_delay);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// One retry, reported before its wait.
#[derive(Debug, Clone)]
pub struct RetryInfo {
    /// 1 for the first retry.
    pub attempt: u32,
    pub delay: Duration,
    pub error: LlmError,
}

pub type RetryHook = Arc<dyn Fn(&RetryInfo) + Send + Sync>;

/// Sends with retries; the returned stream carries the generation deadline.
pub async fn send_with_retry(
    model: &dyn LanguageModel,
    prepared: PreparedRequest,
    policy: &RetryPolicy,
    on_retry: Option<&RetryHook>,
) -> Result<ChunkStream, LlmError> {
    let provider = prepared.provider.clone();
    // A timeout too large to add to the clock means no deadline.
    let deadline = policy
        .timeout
        .and_then(|t| Instant::now().checked_add(t).map(|at| (at, t)));
    let timeout_err = |after| LlmError::Timeout {
        provider: provider.clone(),
        after,
    };
    let mut attempt = 0u32;
    loop {
        let first = async {
            let mut stream = model.send(prepared.clone()).await?;
            match stream.next().await {
                Some(Ok(chunk)) => Ok((chunk, stream)),
                Some(Err(err)) => Err(err),
                None => Err(LlmError::StreamCut {
                    provider: provider.clone(),
                    detail: Some("no data at all".into()),
                }),
            }
        };
        let result = match deadline {
            Some((at, after)) => tokio::time::timeout_at(at, first)
                .await
                .unwrap_or_else(|_| Err(timeout_err(after))),
            None => first.await,
        };
        let err = match result {
            Ok((chunk, rest)) => {
                let stream = stream::once(async move { Ok(chunk) }).chain(rest);
                return Ok(match deadline {
                    Some((at, after)) => Deadline {
                        inner: stream.boxed(),
                        sleep: Box::pin(tokio::time::sleep_until(at)),
                        error: Some(timeout_err(after)),
                    }
                    .boxed(),
                    None => stream.boxed(),
                });
            }
            Err(err) => err,
        };
        if !err.is_retryable() || attempt >= policy.max_retries {
            return Err(err);
        }
        attempt += 1;
        let delay = policy.delay(attempt, &err);
        let outlives = deadline.is_some_and(|(at, _)| {
            Instant::now()
                .checked_add(delay)
                .is_none_or(|end| end >= at)
        });
        if outlives {
            // Waiting would outlive the generation: report the cause, not just the clock.
            return Err(err);
        }
        if let Some(hook) = on_retry {
            hook(&RetryInfo {
                attempt,
                delay,
                error: err,
            });
        }
        tokio::time::sleep(delay).await;
    }
}

/// Ends a stream with a timeout error when the deadline passes.
struct Deadline {
    inner: ChunkStream,
    sleep: Pin<Box<Sleep>>,
    error: Option<LlmError>,
}

impl Stream for Deadline {
    type Item = Result<StreamChunk, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(_) = self.error else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = self.inner.poll_next_unpin(cx) {
            if item.is_none() {
                self.error = None;
            }
            return Poll::Ready(item);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.error.take().map(Err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `retry-after-ms` (milliseconds), else `retry-after` (seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // try_: a peer may send an absurd number; that must not panic.
    let ms = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok());
    if let Some(after) = ms.and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok()) {
        return Some(after);
    }
    get("retry-after").and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// One `retry-after` value: delta-seconds or an HTTP date (a past date means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        // 2015-10-21 07:28:00 is 1445412480.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1e300", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_ms_wins() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "5".parse().unwrap());
        headers.insert("retry-after-ms", "20".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(20)));
        headers.remove("retry-after-ms");
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(5)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            timeout: None,
        };
        let err = LlmError::Connection {
            provider: "p".into(),
            message: "reset".into(),
        };
        for attempt in 1..=10 {
            let d = policy.delay(attempt, &err);
            let full =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}
