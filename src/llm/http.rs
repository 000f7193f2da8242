//! What the HTTP providers share: the client, sending a prepared request, error bodies, and
//! turning an SSE byte stream into neutral chunks through a per-format decoder.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};

use super::eventstream::EventStreamParser;
use super::sse::{SseError, SseEvent, SseParser};
use super::{ChunkStream, LlmError, PreparedRequest, StreamChunk};

/// Raises the longest line of an answer stream (and the most data of one event), in bytes.
pub const MAX_SSE_LINE_ENV: &str = "PERSTACK_MAX_SSE_LINE_BYTES";
/// Raises the most text, thinking and tool arguments one answer may hold, in bytes.
pub const MAX_ANSWER_ENV: &str = "PERSTACK_MAX_ANSWER_BYTES";
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// How much of an answer is taken before the generation ends with [`LlmError::TooLarge`]:
/// a server that never ends a line, or never stops answering, must not exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub max_line_bytes: usize,
    pub max_answer_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_line_bytes: super::sse::DEFAULT_MAX_LINE_BYTES,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
        }
    }
}

impl StreamLimits {
    /// The defaults, with [`MAX_SSE_LINE_ENV`] and [`MAX_ANSWER_ENV`] from `env` where set.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, LlmError> {
        let read = |name: &'static str, default: usize| match env.get(name).map(|v| v.trim()) {
            None | Some("") => Ok(default),
            Some(value) => value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| LlmError::BadLimit {
                    env: name,
                    value: value.to_string(),
                    example: default,
                }),
        };
        let defaults = StreamLimits::default();
        Ok(StreamLimits {
            max_line_bytes: read(MAX_SSE_LINE_ENV, defaults.max_line_bytes)?,
            max_answer_bytes: read(MAX_ANSWER_ENV, defaults.max_answer_bytes)?,
        })
    }
}

/// Turns the SSE events of one wire format into neutral chunks.
pub trait ChunkDecoder: Send + Unpin + 'static {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError>;
    /// The byte stream ended: emit what is left, or say the response is incomplete.
    fn end(&mut self, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError>;
    /// True once the format's own end marker arrived; later bytes are ignored.
    fn done(&self) -> bool;
}

/// Splits a byte stream into events: SSE lines, or AWS event-stream frames.
pub trait FrameParser: Send + Unpin + 'static {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError>;
    fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError>;
}

impl FrameParser for SseParser {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        SseParser::feed(self, bytes, out)
    }
    fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        SseParser::finish(self, out)
    }
}

impl FrameParser for EventStreamParser {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        EventStreamParser::feed(self, bytes, out)
    }
    fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        EventStreamParser::finish(self, out)
    }
}

/// Decodes a whole in-memory stream (tests, benchmarks, and recorded bytes).
pub fn decode_all<D: ChunkDecoder>(
    provider: &str,
    decoder: D,
    chunks: &[&[u8]],
) -> Result<Vec<StreamChunk>, LlmError> {
    decode_all_with(provider, SseParser::new(), decoder, chunks)
}

/// [`decode_all`] with the framing given.
pub fn decode_all_with<P: FrameParser, D: ChunkDecoder>(
    provider: &str,
    mut parser: P,
    mut decoder: D,
    chunks: &[&[u8]],
) -> Result<Vec<StreamChunk>, LlmError> {
    let mut events = Vec::new();
    let mut out = VecDeque::new();
    for chunk in chunks {
        parser
            .feed(chunk, &mut events)
            .map_err(|e| LlmError::protocol(provider, e.to_string()))?;
        for event in events.drain(..) {
            decoder.event(event, &mut out)?;
        }
    }
    parser
        .finish(&mut events)
        .map_err(|e| LlmError::protocol(provider, e.to_string()))?;
    for event in events.drain(..) {
        decoder.event(event, &mut out)?;
    }
    decoder.end(&mut out)?;
    Ok(out.into())
}

/// Builds the shared client. rustls needs its crypto provider installed once per process.
pub fn client() -> Result<reqwest::Client, LlmError> {
    crate::http::client_builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| LlmError::Request {
            provider: "http".into(),
            message: e.to_string(),
        })
}

/// What a provider says about its own errors.
pub struct ErrorContext<'a> {
    pub provider: &'a str,
    /// The env var holding the key, named in the fix for 401/403.
    pub key_env: Option<&'a str>,
}

/// Sends the prepared bytes; a non-2xx status becomes an [`LlmError::Http`]. The answer is
/// cut off with [`LlmError::TooLarge`] past `limits`.
pub async fn send_sse<D: ChunkDecoder>(
    client: &reqwest::Client,
    prepared: PreparedRequest,
    ctx: ErrorContext<'_>,
    decoder: D,
    limits: StreamLimits,
) -> Result<ChunkStream, LlmError> {
    let parser = SseParser::with_max_line(limits.max_line_bytes);
    send_framed(client, prepared, ctx, parser, decoder, limits).await
}

/// [`send_sse`] for an AWS event-stream answer; `max_line_bytes` caps one message.
pub async fn send_event_stream<D: ChunkDecoder>(
    client: &reqwest::Client,
    prepared: PreparedRequest,
    ctx: ErrorContext<'_>,
    decoder: D,
    limits: StreamLimits,
) -> Result<ChunkStream, LlmError> {
    let parser = EventStreamParser::with_max_message(limits.max_line_bytes);
    send_framed(client, prepared, ctx, parser, decoder, limits).await
}

async fn send_framed<P: FrameParser, D: ChunkDecoder>(
    client: &reqwest::Client,
    prepared: PreparedRequest,
    ctx: ErrorContext<'_>,
    parser: P,
    decoder: D,
    limits: StreamLimits,
) -> Result<ChunkStream, LlmError> {
    let provider = ctx.provider.to_string();
    let method =
        reqwest::Method::from_bytes(prepared.method.as_bytes()).map_err(|_| LlmError::Request {
            provider: provider.clone(),
            message: format!("bad method {:?}", prepared.method),
        })?;
    let mut builder = client.request(method, &prepared.url);
    for (name, value) in prepared.headers() {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder
        .body(prepared.body().clone())
        .send()
        .await
        .map_err(|e| LlmError::Connection {
            provider: provider.clone(),
            // reqwest names the URL, query and all: name it redacted instead.
            message: format!(
                "{}: {}",
                prepared.redacted_url(),
                error_chain(&e.without_url())
            ),
        })?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = super::retry::retry_after(response.headers());
        // Bounded: an error page is read for its message only.
        let body = tokio::time::timeout(Duration::from_secs(10), response.bytes())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        return Err(http_error(&ctx, status.as_u16(), &body, retry_after));
    }
    let bytes: BoxStream<'static, reqwest::Result<Bytes>> = response.bytes_stream().boxed();
    Ok(DecodeStream {
        provider,
        bytes,
        parser,
        events: Vec::new(),
        decoder,
        pending: VecDeque::new(),
        state: State::Streaming,
        max_answer_bytes: limits.max_answer_bytes,
        answer_bytes: 0,
    }
    .boxed())
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Builds the error for a non-2xx answer, with the provider's own message and a fix.
pub fn http_error(
    ctx: &ErrorContext<'_>,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> LlmError {
    let message = error_message(body);
    let fix = match status {
        401 | 403 => Some(match ctx.key_env {
            Some(env) => format!("check the API key: set {env} or apiKey in [provider.setting]"),
            None => "check the credentials the server expects".to_string(),
        }),
        404 => Some(
            "check the model name and the baseUrl (it should end with the API version, e.g. /v1)"
                .to_string(),
        ),
        429 => Some("rate limited: wait or lower the request rate".to_string()),
        _ => None,
    };
    LlmError::Http {
        provider: ctx.provider.to_string(),
        status,
        message,
        retry_after,
        fix,
    }
}

/// `{"error":{"message"}}`, `{"error":"..."}`, `{"message"}`, a JSON array of those (Gemini),
/// or the start of the body as text.
pub fn error_message(body: &[u8]) -> String {
    fn from_value(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::Array(items) => items.iter().find_map(from_value),
            serde_json::Value::Object(map) => match map.get("error") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(inner @ serde_json::Value::Object(_)) => from_value(inner),
                _ => map
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string),
            },
            _ => None,
        }
    }
    if let Some(message) = serde_json::from_slice(body)
        .ok()
        .as_ref()
        .and_then(from_value)
    {
        return message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text.chars().take(500).collect()
    }
}

enum State {
    Streaming,
    /// Chunks decoded before the failure are handed out first, then the error.
    Failing(LlmError),
    Ended,
}

struct DecodeStream<P, D> {
    provider: String,
    bytes: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: P,
    events: Vec<SseEvent>,
    decoder: D,
    pending: VecDeque<StreamChunk>,
    state: State,
    max_answer_bytes: usize,
    /// Text, thinking and tool arguments decoded so far.
    answer_bytes: usize,
}

impl<P: FrameParser, D: ChunkDecoder> DecodeStream<P, D> {
    fn run_events(&mut self) -> Result<(), LlmError> {
        for event in self.events.drain(..) {
            if self.decoder.done() {
                break;
            }
            let before = self.pending.len();
            self.decoder.event(event, &mut self.pending)?;
            self.answer_bytes += self
                .pending
                .range(before..)
                .map(content_bytes)
                .sum::<usize>();
            if self.answer_bytes > self.max_answer_bytes {
                // The event that went over is not handed out: the answer stays within the limit.
                self.pending.truncate(before);
                return Err(LlmError::TooLarge {
                    provider: self.provider.clone(),
                    what: "the answer (text, thinking and tool arguments)".into(),
                    limit: self.max_answer_bytes,
                    env: MAX_ANSWER_ENV,
                });
            }
        }
        Ok(())
    }

    fn sse_error(&self, error: SseError) -> LlmError {
        match error {
            SseError::TooLong { what, limit } => LlmError::TooLarge {
                provider: self.provider.clone(),
                what: format!("{what} of the answer stream"),
                limit,
                env: MAX_SSE_LINE_ENV,
            },
            other => LlmError::protocol(&self.provider, other.to_string()),
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), LlmError> {
        if let Err(error) = self.parser.feed(bytes, &mut self.events) {
            return Err(self.sse_error(error));
        }
        self.run_events()
    }

    fn on_end(&mut self) -> Result<(), LlmError> {
        if let Err(error) = self.parser.finish(&mut self.events) {
            return Err(self.sse_error(error));
        }
        self.run_events()?;
        self.decoder.end(&mut self.pending)
    }
}

impl<P: FrameParser, D: ChunkDecoder> Stream for DecodeStream<P, D> {
    type Item = Result<StreamChunk, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            match std::mem::replace(&mut this.state, State::Ended) {
                State::Ended => return Poll::Ready(None),
                State::Failing(err) => return Poll::Ready(Some(Err(err))),
                State::Streaming => this.state = State::Streaming,
            }
            if this.decoder.done() {
                // The end marker arrived: stop reading (dropping the body ends the request).
                this.state = State::Ended;
                continue;
            }
            let result = match this.bytes.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => this.on_bytes(&bytes),
                Poll::Ready(Some(Err(e))) => Err(LlmError::StreamCut {
                    provider: this.provider.clone(),
                    detail: Some(error_chain(&e.without_url())),
                }),
                Poll::Ready(None) => {
                    let result = this.on_end();
                    if result.is_ok() {
                        this.state = State::Ended;
                    }
                    result
                }
            };
            if let Err(err) = result {
                this.state = State::Failing(err);
            }
        }
    }
}

/// The bytes of answer a chunk carries: what a response accumulates.
fn content_bytes(chunk: &StreamChunk) -> usize {
    match chunk {
        StreamChunk::TextDelta { text } => text.len(),
        StreamChunk::ReasoningDelta { text, signature } => {
            text.len() + signature.as_ref().map_or(0, String::len)
        }
        StreamChunk::ToolCallArgumentsDelta { delta, .. } => delta.len(),
        _ => 0,
    }
}

/// Parses one SSE `data` payload as JSON, with a clear error naming the provider.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(
    provider: &str,
    data: &'a str,
) -> Result<T, LlmError> {
    serde_json::from_str(data).map_err(|e| {
        let shown: String = data.chars().take(200).collect();
        LlmError::protocol(
            provider,
            format!("data is not the expected JSON ({e}): {shown}"),
        )
    })
}

/// Tool-call arguments: empty means `{}`; anything else must be JSON.
pub fn parse_args(provider: &str, name: &str, raw: &str) -> Result<serde_json::Value, LlmError> {
    if raw.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_str(raw).map_err(|e| {
        let shown: String = raw.chars().take(200).collect();
        LlmError::protocol(
            provider,
            format!("arguments of tool call {name:?} are not valid JSON ({e}): {shown}"),
        )
    })
}
