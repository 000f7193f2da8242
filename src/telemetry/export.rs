//! Where spans go and how: the standard `OTEL_*` variables, and a task that batches spans and
//! posts them as OTLP/HTTP protobuf, off the step's path, through a bounded queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::span::Span;

/// Spans waiting to be sent; past this they are dropped (and counted), never waited for.
pub const QUEUE_SPANS: usize = 4096;
/// Spans per request.
const BATCH_SPANS: usize = 512;
/// A partial batch goes out after this long.
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// One request may take this long; a collector that hangs must not hold the end of a run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the OTLP settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OtlpConfigError {
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL={0} is not supported; use http/protobuf (the default) or unset it"
    )]
    Protocol(String),
    #[error("{var}={value} is not a URL ({reason}); use e.g. http://localhost:4318")]
    Endpoint {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "OTEL_EXPORTER_OTLP_HEADERS: \"{0}\" is not key=value; write them as key1=value1,key2=value2"
    )]
    Header(String),
}

/// The OTLP settings, from the standard variables.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// The full URL spans are posted to (…/v1/traces).
    pub traces_url: String,
    /// The same without `user:password@`, for messages.
    pub shown_url: String,
    /// Sent with every request (authentication for hosted collectors). Never logged.
    pub headers: Vec<(String, String)>,
    pub service_name: String,
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`: prompts, answers and tool
    /// arguments and results go into spans. Off by default.
    pub capture_content: bool,
}

impl OtlpConfig {
    /// Reads `OTEL_EXPORTER_OTLP_ENDPOINT` (default http://localhost:4318, `/v1/traces` added),
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), `OTEL_EXPORTER_OTLP_HEADERS`,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (http/protobuf), `OTEL_SERVICE_NAME` (default perstack) and
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`.
    pub fn from_env(env: &HashMap<String, String>) -> Result<OtlpConfig, OtlpConfigError> {
        let get = |key: &str| env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = get(var) {
                if protocol != "http/protobuf" {
                    return Err(OtlpConfigError::Protocol(protocol.to_string()));
                }
                break;
            }
        }
        let (var, traces_url) = match get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.to_string()),
            None => {
                let base = get("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or("http://localhost:4318");
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("{}/v1/traces", base.trim_end_matches('/')),
                )
            }
        };
        let parsed = url::Url::parse(&traces_url).map_err(|err| OtlpConfigError::Endpoint {
            var,
            value: traces_url.clone(),
            reason: err.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OtlpConfigError::Endpoint {
                var,
                value: without_credentials(parsed),
                reason: "the scheme must be http or https".into(),
            });
        }
        let mut headers = Vec::new();
        for pair in get("OTEL_EXPORTER_OTLP_HEADERS")
            .into_iter()
            .flat_map(|all| all.split(','))
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| OtlpConfigError::Header(key_only(pair)))?;
            headers.push((percent_decode(key.trim()), percent_decode(value.trim())));
        }
        Ok(OtlpConfig {
            shown_url: without_credentials(parsed),
            traces_url,
            headers,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or("perstack").to_string(),
            capture_content: get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }
}

fn without_credentials(mut url: url::Url) -> String {
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    url.to_string()
}

/// What an error may show of a malformed header: never a value that could be a key.
fn key_only(pair: &str) -> String {
    pair.chars().take(40).collect::<String>()
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("k={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

/// How an export went, said once at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    pub exported: u64,
    /// Spans that did not fit in the queue.
    pub dropped: u64,
    /// Spans whose request failed.
    pub failed: u64,
    /// The first failure, for the one warning.
    pub first_error: Option<String>,
}

impl ExportReport {
    /// The warning a person should see, if any: one line for everything that went wrong.
    pub fn warning(&self, traces_url: &str) -> Option<String> {
        if self.failed == 0 && self.dropped == 0 {
            return None;
        }
        let mut parts = Vec::new();
        if self.failed > 0 {
            parts.push(format!(
                "{} spans not sent to {traces_url}: {}",
                self.failed,
                self.first_error.as_deref().unwrap_or("unknown error")
            ));
        }
        if self.dropped > 0 {
            parts.push(format!(
                "{} spans dropped because the export queue was full",
                self.dropped
            ));
        }
        Some(format!(
            "OpenTelemetry export: {} (the run itself is unaffected)",
            parts.join("; ")
        ))
    }
}

/// Posts batches of spans to the collector.
#[derive(Clone)]
pub struct Poster {
    client: reqwest::Client,
    config: Arc<OtlpConfig>,
}

impl Poster {
    pub fn new(config: Arc<OtlpConfig>) -> Result<Poster, String> {
        let client = crate::http::client_builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        Ok(Poster { client, config })
    }

    pub fn config(&self) -> &OtlpConfig {
        &self.config
    }

    /// Sends one batch; the error says what the collector or the network answered.
    pub async fn post(&self, spans: &[Span]) -> Result<(), String> {
        let body = super::proto::encode(&self.config.service_name, spans);
        let mut request = self
            .client
            .post(&self.config.traces_url)
            .header("content-type", "application/x-protobuf")
            .body(body);
        for (key, value) in &self.config.headers {
            request = request.header(key.as_str(), value.as_str());
        }
        // The URL may hold credentials: the message names it through `shown_url` only.
        let response = request
            .send()
            .await
            .map_err(|err| describe(&err.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(format!(
            "the collector answered {status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }

    /// Sends spans in batches; keeps going after a failed batch and reports all of it.
    pub async fn post_all(&self, spans: &[Span]) -> ExportReport {
        let mut report = ExportReport::default();
        for batch in spans.chunks(BATCH_SPANS) {
            record(&mut report, batch.len(), self.post(batch).await);
        }
        report
    }
}

fn record(report: &mut ExportReport, spans: usize, result: Result<(), String>) {
    match result {
        Ok(()) => report.exported += spans as u64,
        Err(err) => {
            report.failed += spans as u64;
            report.first_error.get_or_insert(err);
        }
    }
}

/// reqwest's own message hides the cause ("error sending request"); the source chain has it.
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The sending side of a running export: never blocks, drops (and counts) when full.
#[derive(Clone)]
pub struct SpanQueue {
    sender: mpsc::Sender<Span>,
    dropped: Arc<AtomicU64>,
}

impl SpanQueue {
    pub fn send(&self, span: Span) {
        if self.sender.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the task that batches and posts spans; it ends (and reports) once every
/// [`SpanQueue`] is dropped and the last batch is sent.
pub fn spawn_exporter(poster: Poster, capacity: usize) -> (SpanQueue, JoinHandle<ExportReport>) {
    let (sender, mut receiver) = mpsc::channel::<Span>(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let queue = SpanQueue {
        sender,
        dropped: dropped.clone(),
    };
    let task = tokio::spawn(async move {
        let mut report = ExportReport::default();
        let mut batch: Vec<Span> = Vec::with_capacity(BATCH_SPANS);
        loop {
            let deadline = tokio::time::sleep(BATCH_DELAY);
            tokio::pin!(deadline);
            let open = loop {
                tokio::select! {
                    span = receiver.recv() => match span {
                        Some(span) => {
                            batch.push(span);
                            if batch.len() >= BATCH_SPANS {
                                break true;
                            }
                        }
                        None => break false,
                    },
                    () = &mut deadline => break true,
                }
            };
            if !batch.is_empty() {
                // After a failure the collector is not asked again for the rest of the run:
                // one warning, and no run end held by a collector that is down.
                if report.first_error.is_some() {
                    report.failed += batch.len() as u64;
                } else {
                    let result = poster.post(&batch).await;
                    record(&mut report, batch.len(), result);
                }
                batch.clear();
            }
            if !open {
                break;
            }
        }
        report.dropped = dropped.load(Ordering::Relaxed);
        report
    });
    (queue, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_standard_variables() {
        let config = OtlpConfig::from_env(&env(&[])).expect("defaults");
        assert_eq!(config.traces_url, "http://localhost:4318/v1/traces");
        assert_eq!(config.service_name, "perstack");
        assert!(!config.capture_content);
        let config = OtlpConfig::from_env(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:6006/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc, x-team=a=b",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "agents"),
            ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "TRUE"),
        ]))
        .expect("valid");
        assert_eq!(config.traces_url, "http://127.0.0.1:6006/v1/traces");
        assert_eq!(
            config.headers,
            vec![
                ("authorization".to_string(), "Bearer abc".to_string()),
                ("x-team".to_string(), "a=b".to_string())
            ]
        );
        assert_eq!(config.service_name, "agents");
        assert!(config.capture_content);
        let config = OtlpConfig::from_env(&env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://collector.example/custom",
        )]))
        .expect("valid");
        assert_eq!(config.traces_url, "https://collector.example/custom");
        let config = OtlpConfig::from_env(&env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://user:pw@collector.example",
        )]))
        .expect("valid");
        assert_eq!(
            config.traces_url,
            "https://user:pw@collector.example/v1/traces"
        );
        assert_eq!(config.shown_url, "https://collector.example/v1/traces");
    }

    #[test]
    fn refuses_what_it_cannot_send_and_says_how_to_fix_it() {
        let err = OtlpConfig::from_env(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]))
            .expect_err("grpc");
        assert!(err.to_string().contains("http/protobuf"), "{err}");
        let err = OtlpConfig::from_env(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost")]))
            .expect_err("no scheme");
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "{err}"
        );
        let err = OtlpConfig::from_env(&env(&[("OTEL_EXPORTER_OTLP_HEADERS", "secretvalue")]))
            .expect_err("no =");
        assert!(err.to_string().contains("key1=value1"), "{err}");
    }

    #[test]
    fn a_report_warns_once_for_failures_and_drops() {
        let clean = ExportReport {
            exported: 3,
            ..ExportReport::default()
        };
        assert_eq!(clean.warning("u"), None);
        let bad = ExportReport {
            exported: 0,
            dropped: 2,
            failed: 5,
            first_error: Some("connection refused".into()),
        };
        let warning = bad.warning("http://x/v1/traces").expect("a warning");
        assert!(warning.contains("5 spans not sent to http://x/v1/traces: connection refused"));
        assert!(warning.contains("2 spans dropped"));
    }
}
