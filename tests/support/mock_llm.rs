//! A scripted LLM HTTP server on 127.0.0.1 for tests.
//!
//! Each request takes the next queued [`Reply`] (or the fallback, or a 500 saying nothing was
//! scripted). A reply is a status, headers and steps: raw byte chunks (each written and flushed
//! as its own HTTP chunk), delays, a dropped connection, or a stall. Every request is recorded
//! (method, path with query, headers, body) for assertions.
//!
//! ```ignore
//! let mock = MockLlm::start().await;
//! mock.push(Reply::status(429).header("retry-after", "0"));
//! mock.push(anthropic::text_reply("Hello"));
//! // point a provider at mock.url() + "/v1" ...
//! assert_eq!(mock.requests()[0].path, "/v1/messages");
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub enum Step {
    Bytes(Vec<u8>),
    Delay(Duration),
    /// Close the socket without ending the chunked body: the client sees a broken stream.
    Drop,
    /// Send nothing more, keep the connection open.
    Stall,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub steps: Vec<Step>,
}

impl Reply {
    /// 200 with `content-type: text/event-stream`.
    pub fn sse() -> Self {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            steps: Vec::new(),
        }
    }

    /// A status with a JSON content type and no body yet.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            steps: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// One network chunk.
    pub fn chunk(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.steps.push(Step::Bytes(bytes.as_ref().to_vec()));
        self
    }

    /// The whole body as one chunk.
    pub fn body(self, bytes: impl AsRef<[u8]>) -> Self {
        self.chunk(bytes)
    }

    /// `bytes` cut every `size` bytes (mid-character, mid-JSON), `pause` between pieces.
    pub fn chunks_of(mut self, bytes: impl AsRef<[u8]>, size: usize, pause: Duration) -> Self {
        for piece in bytes.as_ref().chunks(size.max(1)) {
            self.steps.push(Step::Bytes(piece.to_vec()));
            if !pause.is_zero() {
                self.steps.push(Step::Delay(pause));
            }
        }
        self
    }

    /// `bytes` cut at the given offsets, `pause` between pieces.
    pub fn split_at(mut self, bytes: impl AsRef<[u8]>, cuts: &[usize], pause: Duration) -> Self {
        let bytes = bytes.as_ref();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            self.steps.push(Step::Bytes(bytes[start..cut].to_vec()));
            self.steps.push(Step::Delay(pause));
            start = cut;
        }
        self
    }

    pub fn delay(mut self, pause: Duration) -> Self {
        self.steps.push(Step::Delay(pause));
        self
    }

    pub fn drop_connection(mut self) -> Self {
        self.steps.push(Step::Drop);
        self
    }

    pub fn stall(mut self) -> Self {
        self.steps.push(Step::Stall);
        self
    }
}

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the whole request had arrived: lets tests prove that calls overlapped.
    pub received_at: std::time::Instant,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Answers from the request itself, so a client that repeats a request gets the same reply.
pub type Responder = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

#[derive(Default)]
struct State {
    replies: VecDeque<Reply>,
    fallback: Option<Reply>,
    responder: Option<Responder>,
    requests: Vec<RecordedRequest>,
    /// Stalled replies whose client went away.
    hangups: usize,
}

pub struct MockLlm {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl MockLlm {
    pub async fn start() -> MockLlm {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().expect("mock addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = serve(socket, state).await;
                });
            }
        });
        MockLlm { addr, state, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a reply for the next request.
    pub fn push(&self, reply: Reply) -> &Self {
        self.state.lock().unwrap().replies.push_back(reply);
        self
    }

    /// Consulted when the queue is empty, before the fallback.
    pub fn set_responder(
        &self,
        responder: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) {
        self.state.lock().unwrap().responder = Some(Arc::new(responder));
    }

    /// Served whenever the queue is empty.
    pub fn set_fallback(&self, reply: Reply) {
        self.state.lock().unwrap().fallback = Some(reply);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    /// How many stalled replies saw their client close the connection.
    pub fn hangups(&self) -> usize {
        self.state.lock().unwrap().hangups
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let Some(request) = read_request(&mut socket).await? else {
        return Ok(());
    };
    let reply = {
        let mut state = state.lock().unwrap();
        let from_responder = state.responder.as_ref().map(|respond| respond(&request));
        state.requests.push(request);
        let queued = state.replies.pop_front();
        match queued.or(from_responder).or_else(|| state.fallback.clone()) {
            Some(reply) => reply,
            None => Reply::status(500).body(r#"{"error":{"message":"mock: no reply scripted"}}"#),
        }
    };
    let mut head = format!("HTTP/1.1 {} Mock\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.flush().await?;
    for step in reply.steps {
        match step {
            Step::Bytes(bytes) => {
                if bytes.is_empty() {
                    continue;
                }
                let mut frame = format!("{:x}\r\n", bytes.len()).into_bytes();
                frame.extend_from_slice(&bytes);
                frame.extend_from_slice(b"\r\n");
                socket.write_all(&frame).await?;
                socket.flush().await?;
            }
            Step::Delay(pause) => tokio::time::sleep(pause).await,
            Step::Drop => return Ok(()),
            Step::Stall => {
                // Until the client goes away (a read returns) or an hour passes.
                let mut buf = [0u8; 64];
                let read =
                    tokio::time::timeout(Duration::from_secs(3600), socket.read(&mut buf)).await;
                if let Ok(Ok(0) | Err(_)) = read {
                    state.lock().unwrap().hangups += 1;
                }
                return Ok(());
            }
        }
    }
    socket.write_all(b"0\r\n\r\n").await?;
    socket.shutdown().await
}

async fn read_request(socket: &mut TcpStream) -> std::io::Result<Option<RecordedRequest>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = socket.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    body.truncate(length);
    Ok(Some(RecordedRequest {
        method,
        path,
        headers,
        body,
        received_at: std::time::Instant::now(),
    }))
}

/// One SSE event: `event: <name>` (if any) and a `data:` line.
pub fn sse_event(name: Option<&str>, data: &str) -> String {
    match name {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// Anthropic Messages stream pieces.
pub mod anthropic {
    use super::{Reply, sse_event};
    use serde_json::{Value, json};

    pub fn event(data: Value) -> String {
        let name = data["type"].as_str().unwrap_or("message").to_string();
        sse_event(Some(&name), &data.to_string())
    }

    pub fn message_start(input_tokens: u64) -> String {
        event(json!({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [], "stop_reason": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}))
    }

    pub fn text_block(index: usize, deltas: &[&str]) -> String {
        let mut s = event(
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        );
        for d in deltas {
            s += &event(
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": d}}),
            );
        }
        s + &event(json!({"type": "content_block_stop", "index": index}))
    }

    pub fn tool_block(index: usize, id: &str, name: &str, json_pieces: &[&str]) -> String {
        let mut s = event(
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        );
        for p in json_pieces {
            s += &event(
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}}),
            );
        }
        s + &event(json!({"type": "content_block_stop", "index": index}))
    }

    pub fn message_end(stop_reason: &str, output_tokens: u64) -> String {
        event(
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}}),
        ) + &event(json!({"type": "message_stop"}))
    }

    pub fn text_stream(text: &str) -> String {
        message_start(10) + &text_block(0, &[text]) + &message_end("end_turn", 5)
    }

    pub fn text_reply(text: &str) -> Reply {
        Reply::sse().body(text_stream(text))
    }

    pub fn tool_reply(id: &str, name: &str, args: &Value) -> Reply {
        let args = args.to_string();
        Reply::sse().body(
            message_start(10) + &tool_block(0, id, name, &[&args]) + &message_end("tool_use", 5),
        )
    }
}

/// OpenAI Chat Completions stream pieces.
pub mod openai {
    use super::{Reply, sse_event};
    use serde_json::{Value, json};

    pub fn chunk(data: Value) -> String {
        sse_event(None, &data.to_string())
    }

    pub fn delta(delta: Value) -> String {
        chunk(
            json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}),
        )
    }

    pub fn finish(reason: &str) -> String {
        chunk(
            json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}),
        )
    }

    pub fn usage(prompt: u64, completion: u64) -> String {
        chunk(
            json!({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}),
        )
    }

    pub fn done() -> String {
        sse_event(None, "[DONE]")
    }

    pub fn text_stream(text: &str) -> String {
        delta(json!({"role": "assistant", "content": text}))
            + &finish("stop")
            + &usage(10, 5)
            + &done()
    }

    pub fn text_reply(text: &str) -> Reply {
        Reply::sse().body(text_stream(text))
    }

    pub fn tool_reply(id: &str, name: &str, args: &Value) -> Reply {
        tools_reply(&[(id, name, args.clone())])
    }

    /// Several tool calls in one answer, as parallel calls arrive.
    pub fn tools_reply(calls: &[(&str, &str, Value)]) -> Reply {
        let mut body = String::new();
        for (index, (id, name, args)) in calls.iter().enumerate() {
            body += &delta(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}),
            );
        }
        Reply::sse().body(body + &finish("tool_calls") + &usage(10, 5) + &done())
    }
}

/// Gemini streamGenerateContent (alt=sse) pieces.
pub mod gemini {
    use super::{Reply, sse_event};
    use serde_json::{Value, json};

    pub fn chunk(data: Value) -> String {
        sse_event(None, &data.to_string())
    }

    pub fn parts(parts: Value, finish: Option<&str>) -> String {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(reason) = finish {
            candidate["finishReason"] = json!(reason);
        }
        chunk(
            json!({"candidates": [candidate], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}}),
        )
    }

    pub fn text_stream(text: &str) -> String {
        parts(json!([{"text": text}]), Some("STOP"))
    }

    pub fn text_reply(text: &str) -> Reply {
        Reply::sse().body(text_stream(text))
    }

    pub fn tool_reply(name: &str, args: &Value) -> Reply {
        Reply::sse().body(parts(
            json!([{"functionCall": {"name": name, "args": args}}]),
            Some("STOP"),
        ))
    }
}

/// OpenAI Responses API stream pieces (`POST /v1/responses`, `stream: true`): each SSE event
/// is named after its `type`, as OpenAI sends them.
pub mod responses {
    use super::{Reply, sse_event};
    use serde_json::{Value, json};

    pub fn event(data: Value) -> String {
        let name = data["type"].as_str().unwrap_or("message").to_string();
        sse_event(Some(&name), &data.to_string())
    }

    pub fn created() -> String {
        event(json!({"type": "response.created", "sequence_number": 0,
            "response": {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}}))
    }

    /// A message item whose text arrives in `deltas`.
    pub fn message(output_index: usize, deltas: &[&str]) -> String {
        let text: String = deltas.concat();
        let mut s = event(
            json!({"type": "response.output_item.added", "output_index": output_index,
            "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        );
        s += &event(
            json!({"type": "response.content_part.added", "item_id": "msg_1",
            "output_index": output_index, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []}}),
        );
        for d in deltas {
            s += &event(
                json!({"type": "response.output_text.delta", "item_id": "msg_1",
                "output_index": output_index, "content_index": 0, "delta": d}),
            );
        }
        s += &event(
            json!({"type": "response.output_text.done", "item_id": "msg_1",
            "output_index": output_index, "content_index": 0, "text": text}),
        );
        s + &event(
            json!({"type": "response.output_item.done", "output_index": output_index,
            "item": {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}}),
        )
    }

    /// A function call whose arguments arrive in `pieces`.
    pub fn function_call(
        output_index: usize,
        call_id: &str,
        name: &str,
        pieces: &[&str],
    ) -> String {
        let args: String = pieces.concat();
        let item_id = format!("fc_{output_index}");
        let mut s = event(
            json!({"type": "response.output_item.added", "output_index": output_index,
            "item": {"id": item_id, "type": "function_call", "status": "in_progress",
                "call_id": call_id, "name": name, "arguments": ""}}),
        );
        for p in pieces {
            s += &event(json!({"type": "response.function_call_arguments.delta",
                "item_id": item_id, "output_index": output_index, "delta": p}));
        }
        s += &event(json!({"type": "response.function_call_arguments.done",
            "item_id": item_id, "output_index": output_index, "arguments": args}));
        s + &event(
            json!({"type": "response.output_item.done", "output_index": output_index,
            "item": {"id": item_id, "type": "function_call", "status": "completed",
                "call_id": call_id, "name": name, "arguments": args}}),
        )
    }

    /// A web search OpenAI ran itself, as its `web_search_call` item.
    pub fn web_search(output_index: usize, query: &str) -> (String, Value) {
        let item = json!({"id": "ws_1", "type": "web_search_call", "status": "completed",
            "action": {"type": "search", "query": query}});
        let s = event(
            json!({"type": "response.output_item.added", "output_index": output_index,
            "item": {"id": "ws_1", "type": "web_search_call", "status": "in_progress"}}),
        ) + &event(
            json!({"type": "response.web_search_call.in_progress", "item_id": "ws_1", "output_index": output_index}),
        ) + &event(
            json!({"type": "response.web_search_call.searching", "item_id": "ws_1", "output_index": output_index}),
        ) + &event(
            json!({"type": "response.web_search_call.completed", "item_id": "ws_1", "output_index": output_index}),
        ) + &event(
            json!({"type": "response.output_item.done", "output_index": output_index, "item": item}),
        );
        (s, item)
    }

    pub fn completed(input: u64, output: u64) -> String {
        event(
            json!({"type": "response.completed", "response": {"id": "resp_1", "object": "response",
            "status": "completed", "output": [],
            "usage": {"input_tokens": input, "input_tokens_details": {"cached_tokens": 2},
                "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input + output}}}),
        )
    }

    pub fn text_reply(text: &str) -> Reply {
        Reply::sse().body(created() + &message(0, &[text]) + &completed(10, 3))
    }
}
