//! Errors of the model layer. Each names the provider and, where one exists, the fix.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error(
        "{provider}: no API key: set {env} in the environment or in a .env file, or apiKey in [provider.setting]"
    )]
    MissingApiKey { provider: String, env: String },

    /// A cloud provider (Bedrock, Vertex) found no credentials; `fix` says where to put them.
    #[error("{provider}: no credentials: {fix}")]
    MissingCredentials { provider: String, fix: String },

    #[error(
        "{provider} is not supported yet: choose anthropic, openai, google, ollama, azure-openai, amazon-bedrock, google-vertex, deepseek or replay"
    )]
    Unsupported { provider: String },

    #[error("{provider}: invalid [provider.setting]: {message}")]
    Config { provider: String, message: String },

    #[error("{provider} answered HTTP {status}: {message}{}", fix.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
    Http {
        provider: String,
        status: u16,
        /// The provider's own error message (or the start of the body).
        message: String,
        /// What a `retry-after` / `retry-after-ms` header asked for.
        retry_after: Option<Duration>,
        fix: Option<String>,
    },

    #[error("{provider}: connection failed: {message}")]
    Connection { provider: String, message: String },

    #[error("{provider}: the stream ended before the response was complete{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    StreamCut {
        provider: String,
        detail: Option<String>,
    },

    /// An `error` event inside an otherwise successful stream.
    #[error("{provider} reported an error in the stream: {kind}: {message}")]
    Provider {
        provider: String,
        kind: String,
        message: String,
    },

    /// Bytes that are not the wire format promised: bad SSE, non-JSON data, bad tool JSON.
    #[error("{provider}: malformed response stream: {message}")]
    Protocol { provider: String, message: String },

    #[error("{provider}: generation timed out after {}s", after.as_secs_f64())]
    Timeout { provider: String, after: Duration },

    /// The answer went past a size limit; more of the same would not help, so not retried.
    #[error(
        "{provider}: {what} is larger than the limit of {limit} bytes; if the model is meant to \
         answer this much, raise the limit with {env}=<bytes> in the environment or a .env file"
    )]
    TooLarge {
        provider: String,
        /// What went over: a line of the stream, or the answer.
        what: String,
        limit: usize,
        /// The variable that raises the limit.
        env: &'static str,
    },

    #[error(
        "{env}={value:?} is not a number of bytes: set it to a whole number above 0, e.g. {example}, or unset it"
    )]
    BadLimit {
        env: &'static str,
        value: String,
        example: usize,
    },

    #[error("replay: {message}")]
    Replay { message: String },

    #[error("{provider}: could not build the request: {message}")]
    Request { provider: String, message: String },
}

impl LlmError {
    /// Transient failures worth another attempt.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Http { status, .. } => {
                matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
            }
            LlmError::Connection { .. } | LlmError::StreamCut { .. } => true,
            LlmError::TooLarge { .. } => false,
            LlmError::Provider { kind, message, .. } => {
                let kind = kind.to_ascii_lowercase();
                kind.contains("overloaded")
                    || kind.contains("rate_limit")
                    || kind == "api_error"
                    || kind.contains("unavailable")
                    || kind.contains("resource_exhausted")
                    // Bedrock's in-stream exceptions.
                    || kind.contains("throttling")
                    || kind.contains("internalserver")
                    || message.to_ascii_lowercase().contains("overloaded")
            }
            _ => false,
        }
    }

    /// The wait the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn protocol(provider: &str, message: impl Into<String>) -> Self {
        LlmError::Protocol {
            provider: provider.to_string(),
            message: message.into(),
        }
    }
}
