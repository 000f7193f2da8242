//! The MCP wire, recorded raw: a tee on a stdio server's stdin and stdout that reports each
//! newline-delimited JSON-RPC frame, exactly as its bytes went, with its direction, the time it
//! passed and its size, and says which tool call it belongs to.
//!
//! Nothing is parsed or copied unless tracing was asked for: an untraced skill never builds a
//! [`WireTap`], so the only cost then is the branch that chose not to.
//!
//! Frames are matched to calls by JSON-RPC id: the tool call registered with
//! [`WireTap::expect_call`] is given to the next `tools/call` request that goes out, its
//! response is found by that request's id, and a progress notification by the request's
//! `progressToken`. Other notifications and server requests while exactly one call is in
//! flight (logging, sampling) are given to that call.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::skills::event::{EventSink, SkillEventKind};

/// Which way a frame went, seen from us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// From us to the server.
    Sent,
    /// From the server to us.
    Received,
}

impl Direction {
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::Sent => "→",
            Direction::Received => "←",
        }
    }
}

/// One JSON-RPC message as it crossed the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFrame {
    pub direction: Direction,
    /// When the last byte of the frame passed, in microseconds since the Unix epoch.
    pub at_us: u64,
    /// The frame's size in bytes, without the newline that ends it on stdio.
    pub bytes: u64,
    /// The frame's exact text (bytes that are not UTF-8 are shown as U+FFFD).
    pub frame: String,
    /// The JSON-RPC method of a request or notification, or of the request a response answers.
    pub method: Option<String>,
    /// The tool call this frame belongs to; none for the handshake, listings and pings.
    pub tool_call_id: Option<String>,
}

/// The fields of a frame that say what it is and whose it is; everything else is skipped.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<EnvelopeParams>,
}

#[derive(Deserialize)]
struct EnvelopeParams {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "progressToken")]
    progress_token: Option<Value>,
    #[serde(default, rename = "_meta")]
    meta: Option<EnvelopeMeta>,
}

#[derive(Deserialize)]
struct EnvelopeMeta {
    #[serde(default, rename = "progressToken")]
    progress_token: Option<Value>,
}

/// A request we sent that has not been answered yet.
struct InFlight {
    method: String,
    tool_call_id: Option<String>,
    progress_token: Option<String>,
}

#[derive(Default)]
struct Correlation {
    /// Tool calls about to be sent, oldest first, with their tool names.
    expected: VecDeque<(String, String)>,
    /// Our unanswered requests by JSON-RPC id (as JSON text).
    in_flight: HashMap<String, InFlight>,
    /// Progress tokens of in-flight tool calls.
    progress: HashMap<String, String>,
}

impl Correlation {
    fn sent(&mut self, envelope: &Envelope) -> (Option<String>, Option<String>) {
        let method = envelope.method.clone();
        let (Some(id), Some(name)) = (&envelope.id, &method) else {
            return (method, None);
        };
        let params = envelope.params.as_ref();
        let tool_call_id = if name == "tools/call" {
            let tool = params.and_then(|p| p.name.as_deref()).unwrap_or_default();
            let position = self.expected.iter().position(|(t, _)| t == tool);
            position
                .and_then(|i| self.expected.remove(i))
                .map(|(_, call)| call)
        } else {
            None
        };
        let progress_token = params
            .and_then(|p| p.meta.as_ref())
            .and_then(|m| m.progress_token.as_ref())
            .map(Value::to_string);
        if let (Some(token), Some(call)) = (&progress_token, &tool_call_id) {
            self.progress.insert(token.clone(), call.clone());
        }
        self.in_flight.insert(
            id.to_string(),
            InFlight {
                method: name.clone(),
                tool_call_id: tool_call_id.clone(),
                progress_token,
            },
        );
        (method, tool_call_id)
    }

    fn received(&mut self, envelope: &Envelope) -> (Option<String>, Option<String>) {
        match (&envelope.id, &envelope.method) {
            // A response: it answers one of ours.
            (Some(id), None) => match self.in_flight.remove(&id.to_string()) {
                Some(request) => {
                    if let Some(token) = &request.progress_token {
                        self.progress.remove(token);
                    }
                    (Some(request.method), request.tool_call_id)
                }
                None => (None, None),
            },
            (_, Some(method)) => {
                let token = envelope
                    .params
                    .as_ref()
                    .and_then(|p| p.progress_token.as_ref())
                    .map(Value::to_string);
                let call = match token.and_then(|t| self.progress.get(&t).cloned()) {
                    Some(call) => Some(call),
                    None => self.only_call_in_flight(),
                };
                (Some(method.clone()), call)
            }
            (None, None) => (None, None),
        }
    }

    fn only_call_in_flight(&self) -> Option<String> {
        let mut calls = self
            .in_flight
            .values()
            .filter_map(|r| r.tool_call_id.as_ref());
        match (calls.next(), calls.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }
}

/// Records the frames of one connection and reports each as a skill event.
pub(crate) struct WireTap {
    sink: EventSink,
    correlation: Mutex<Correlation>,
}

impl WireTap {
    pub(crate) fn new(sink: EventSink) -> Self {
        WireTap {
            sink,
            correlation: Mutex::default(),
        }
    }

    /// The next `tools/call` of `tool` that goes out belongs to `tool_call_id`.
    pub(crate) fn expect_call(&self, tool: &str, tool_call_id: &str) {
        self.lock()
            .expected
            .push_back((tool.to_string(), tool_call_id.to_string()));
    }

    /// A new connection: nothing of the old one is in flight any more.
    pub(crate) fn reset(&self) {
        let mut correlation = self.lock();
        correlation.in_flight.clear();
        correlation.progress.clear();
    }

    /// Forgets a call that was registered but never sent (its skill could not be reached).
    pub(crate) fn forget_call(&self, tool_call_id: &str) {
        self.lock().expected.retain(|(_, id)| id != tool_call_id);
    }

    fn record(&self, direction: Direction, frame: &[u8]) {
        let at_us = now_micros();
        let (method, tool_call_id) = match serde_json::from_slice::<Envelope>(frame) {
            Ok(envelope) => {
                let mut correlation = self.lock();
                match direction {
                    Direction::Sent => correlation.sent(&envelope),
                    Direction::Received => correlation.received(&envelope),
                }
            }
            Err(_) => (None, None),
        };
        self.sink.send(SkillEventKind::Frame(WireFrame {
            direction,
            at_us,
            bytes: frame.len() as u64,
            frame: String::from_utf8_lossy(frame).into_owned(),
            method,
            tool_call_id,
        }));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Correlation> {
        self.correlation.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A frame longer than this is not kept (rmcp drops such a line too); a warning says so.
const MAX_FRAME: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;

/// Cuts a byte stream into newline-ended frames for a tap; bytes pass on untouched.
struct Splitter {
    direction: Direction,
    partial: Vec<u8>,
    /// Bytes of an over-long frame seen so far, while it is being skipped.
    skipped: usize,
}

impl Splitter {
    fn new(direction: Direction) -> Self {
        Splitter {
            direction,
            partial: Vec::new(),
            skipped: 0,
        }
    }

    fn feed(&mut self, tap: &WireTap, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(end);
            if self.partial.is_empty() && self.skipped == 0 {
                tap.record(self.direction, line);
            } else if self.keep(line) {
                tap.record(self.direction, &self.partial);
                self.partial.clear();
            } else {
                let size = self.skipped;
                self.skipped = 0;
                tap.sink.warn(format!(
                    "a {size}-byte MCP frame {} was not traced: frames over {MAX_FRAME} bytes are not kept",
                    match self.direction {
                        Direction::Sent => "to the server",
                        Direction::Received => "from the server",
                    }
                ));
            }
            bytes = &rest[1..];
        }
        self.keep(bytes);
    }

    /// Adds to the frame being read, or counts it once it is over [`MAX_FRAME`]; false while
    /// it is being skipped.
    fn keep(&mut self, bytes: &[u8]) -> bool {
        if self.skipped == 0 && self.partial.len() + bytes.len() <= MAX_FRAME {
            self.partial.extend_from_slice(bytes);
            return true;
        }
        self.skipped += self.partial.len() + bytes.len();
        self.partial = Vec::new();
        false
    }
}

/// A server's stdout, recorded as it is read.
pub(crate) struct TeeReader<R> {
    inner: R,
    tap: std::sync::Arc<WireTap>,
    splitter: Splitter,
}

impl<R> TeeReader<R> {
    pub(crate) fn new(inner: R, tap: std::sync::Arc<WireTap>) -> Self {
        TeeReader {
            inner,
            tap,
            splitter: Splitter::new(Direction::Received),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for TeeReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.splitter.feed(&this.tap, &buf.filled()[before..]);
        }
        polled
    }
}

/// A server's stdin, recorded as it is written.
pub(crate) struct TeeWriter<W> {
    inner: W,
    tap: std::sync::Arc<WireTap>,
    splitter: Splitter,
}

impl<W> TeeWriter<W> {
    pub(crate) fn new(inner: W, tap: std::sync::Arc<WireTap>) -> Self {
        TeeWriter {
            inner,
            tap,
            splitter: Splitter::new(Direction::Sent),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for TeeWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            this.splitter
                .feed(&this.tap, &buf[..written.min(buf.len())]);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc::unbounded_channel;

    use super::*;
    use crate::skills::event::SkillEvent;

    fn frames(events: &mut tokio::sync::mpsc::UnboundedReceiver<SkillEvent>) -> Vec<WireFrame> {
        let mut out = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let SkillEventKind::Frame(frame) = event.kind {
                out.push(frame);
            }
        }
        out
    }

    #[tokio::test]
    async fn frames_are_recorded_exactly_and_matched_to_their_call() {
        let (sender, mut events) = unbounded_channel();
        let tap = Arc::new(WireTap::new(EventSink::new("s", Some(sender))));
        tap.expect_call("echo", "call-1");

        let mut sent = Vec::new();
        let mut writer = TeeWriter::new(&mut sent, tap.clone());
        let request = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":{"progressToken":3},"name":"echo","arguments":{"text":"é"}}}"#;
        // Written in two pieces, as a writer may: the frame is still one.
        let (first, second) = request.split_at(20);
        writer.write_all(first.as_bytes()).await.expect("write");
        writer.write_all(second.as_bytes()).await.expect("write");
        writer.write_all(b"\n").await.expect("write");
        assert_eq!(
            sent,
            format!("{request}\n").into_bytes(),
            "bytes pass untouched"
        );

        let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":3,"progress":1}}"#;
        let log = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
        let response = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;
        let incoming = format!("{progress}\n{log}\n{response}\nnot json\n");
        let mut reader = TeeReader::new(incoming.as_bytes(), tap.clone());
        let mut read = String::new();
        reader.read_to_string(&mut read).await.expect("read");
        assert_eq!(read, incoming);

        let frames = frames(&mut events);
        let texts: Vec<&str> = frames.iter().map(|f| f.frame.as_str()).collect();
        assert_eq!(texts, [request, progress, log, response, "not json"]);
        assert_eq!(frames[0].bytes, request.len() as u64);
        assert_eq!(frames[0].direction, Direction::Sent);
        assert_eq!(frames[1].direction, Direction::Received);
        let calls: Vec<Option<&str>> = frames.iter().map(|f| f.tool_call_id.as_deref()).collect();
        assert_eq!(
            calls,
            [
                Some("call-1"),
                Some("call-1"),
                Some("call-1"),
                Some("call-1"),
                None
            ]
        );
        assert_eq!(frames[3].method.as_deref(), Some("tools/call"));
        assert!(frames.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    }

    #[tokio::test]
    async fn the_handshake_belongs_to_no_call_and_a_stray_notification_to_none_of_two() {
        let (sender, mut events) = unbounded_channel();
        let tap = Arc::new(WireTap::new(EventSink::new("s", Some(sender))));
        tap.expect_call("a", "call-a");
        tap.expect_call("b", "call-b");
        let mut sent = Vec::new();
        let mut writer = TeeWriter::new(&mut sent, tap.clone());
        for line in [
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a"}}"#,
        ] {
            writer
                .write_all(format!("{line}\n").as_bytes())
                .await
                .expect("write");
        }
        let incoming = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n";
        let mut reader = TeeReader::new(incoming.as_bytes(), tap.clone());
        reader.read_to_end(&mut Vec::new()).await.expect("read");
        let frames = frames(&mut events);
        let calls: Vec<Option<&str>> = frames.iter().map(|f| f.tool_call_id.as_deref()).collect();
        assert_eq!(calls, [None, Some("call-b"), Some("call-a"), None]);
        assert_eq!(frames[0].method.as_deref(), Some("initialize"));
    }

    #[test]
    fn a_frame_over_the_limit_is_not_kept_and_a_warning_says_so() {
        let (sender, mut events) = unbounded_channel();
        let tap = WireTap::new(EventSink::new("s", Some(sender)));
        let mut splitter = Splitter::new(Direction::Received);
        let chunk = vec![b'x'; MAX_FRAME / 2 + 1];
        splitter.feed(&tap, &chunk);
        splitter.feed(&tap, &chunk);
        splitter.feed(&tap, b"tail\n{}\n");
        let kinds: Vec<SkillEventKind> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| e.kind)
            .collect();
        let size = 2 * chunk.len() + 4;
        assert_eq!(kinds.len(), 2, "a warning, then the next frame");
        assert!(
            matches!(&kinds[0], SkillEventKind::Warning { message } if message.contains(&format!("a {size}-byte MCP frame from the server"))),
            "{:?}",
            kinds[0]
        );
        assert!(matches!(&kinds[1], SkillEventKind::Frame(f) if f.frame == "{}"));
    }
}
