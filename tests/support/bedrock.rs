//! A Bedrock stand-in: the mock server, with every request's SigV4 signature recomputed by
//! botocore (PyPI, in `target/venv-botocore`; `.ci/run` creates it) before it answers, and
//! answers framed as AWS event-stream messages by `aws-smithy-eventstream`, not by our encoder.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use serde_json::{Value, json};

use super::mock_llm::{MockLlm, RecordedRequest, Reply};

pub const ACCESS_KEY: &str = "AKIDEXAMPLE";
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLETOKEN";
pub const REGION: &str = "eu-central-1";

fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv-botocore/bin/python")
}

/// Whether botocore is there; under CI its absence fails the test.
pub fn botocore_available() -> bool {
    if python().exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is missing: create it with `python3 -m venv target/venv-botocore && target/venv-botocore/bin/pip install botocore` (.ci/run does)",
            python().display()
        );
    }
    eprintln!(
        "skipped: no botocore venv at {} (python3 -m venv target/venv-botocore && target/venv-botocore/bin/pip install botocore)",
        python().display()
    );
    false
}

/// Recomputes the signature of `req` with botocore; Err says what differs.
pub fn check_signature(req: &RecordedRequest, token: Option<&str>) -> Result<(), String> {
    let host = req.header("host").unwrap_or_default();
    let input = json!({
        "method": req.method,
        "url": format!("http://{host}{}", req.path),
        "headers": req.headers,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(&req.body),
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "token": token,
        "region": REGION,
        "service": "bedrock",
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/sigv4_check.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run botocore check: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The mock server, refusing (403, with botocore's reason) any request whose signature
/// botocore does not reproduce, answering the others from a queue.
pub struct SigningServer {
    pub mock: MockLlm,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    /// Requests whose signature botocore confirmed.
    pub verified: Arc<AtomicUsize>,
    pub refusals: Arc<Mutex<Vec<String>>>,
}

impl SigningServer {
    pub async fn start(token: Option<&'static str>) -> SigningServer {
        let mock = MockLlm::start().await;
        let replies: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let verified = Arc::new(AtomicUsize::new(0));
        let refusals: Arc<Mutex<Vec<String>>> = Arc::default();
        let (queue, count, refused) = (replies.clone(), verified.clone(), refusals.clone());
        mock.set_responder(move |req| match check_signature(req, token) {
            Ok(()) => {
                count.fetch_add(1, Ordering::SeqCst);
                queue
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or_else(|| Reply::status(500).body(r#"{"message":"nothing scripted"}"#))
            }
            Err(reason) => {
                refused.lock().unwrap().push(reason.clone());
                Reply::status(403)
                    .header("x-amzn-errortype", "InvalidSignatureException")
                    .body(json!({ "message": reason }).to_string())
            }
        });
        SigningServer {
            mock,
            replies,
            verified,
            refusals,
        }
    }

    pub fn push(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    pub fn verified(&self) -> usize {
        self.verified.load(Ordering::SeqCst)
    }
}

fn frame(headers: Vec<Header>, payload: &[u8]) -> Vec<u8> {
    let mut message = Message::new(payload.to_vec());
    for header in headers {
        message = message.add_header(header);
    }
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).expect("encode frame");
    out
}

fn string(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_string().into()))
}

/// One `event` message, as Bedrock frames it.
pub fn event(event_type: &str, payload: Value) -> Vec<u8> {
    frame(
        vec![
            string(":event-type", event_type),
            string(":content-type", "application/json"),
            string(":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// An `exception` message (e.g. `throttlingException`).
pub fn exception(kind: &str, message: &str) -> Vec<u8> {
    frame(
        vec![
            string(":exception-type", kind),
            string(":content-type", "application/json"),
            string(":message-type", "exception"),
        ],
        json!({ "message": message }).to_string().as_bytes(),
    )
}

pub fn stream_reply(frames: &[Vec<u8>]) -> Reply {
    let mut reply = Reply::status(200);
    reply.headers = vec![(
        "content-type".into(),
        "application/vnd.amazon.eventstream".into(),
    )];
    for f in frames {
        reply = reply.chunk(f);
    }
    reply
}

pub fn text_frames(pieces: &[&str]) -> Vec<Vec<u8>> {
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    for piece in pieces {
        frames.push(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
        ));
    }
    frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
    frames.push(event("messageStop", json!({"stopReason": "end_turn"})));
    frames.push(event(
        "metadata",
        json!({"usage": {"inputTokens": 20, "outputTokens": 4, "totalTokens": 24}, "metrics": {"latencyMs": 9}}),
    ));
    frames
}
