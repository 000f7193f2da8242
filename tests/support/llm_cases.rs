//! Checks every wire format must pass, run against the mock server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use perstack::definition::{ProviderName, ProviderSetting, ReasoningBudget};
use perstack::llm::retry::{RetryHook, RetryInfo, RetryPolicy, send_with_retry};
use perstack::llm::{
    ChunkStream, LanguageModel, LlmError, Message, Request, Response, ResponseBuilder, StreamChunk,
    build_provider,
};
use perstack::tool::ToolDefinition;

use super::mock_llm::{MockLlm, Reply};

pub fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn setting(base_url: String) -> ProviderSetting {
    ProviderSetting {
        base_url: Some(base_url),
        ..Default::default()
    }
}

pub fn provider(
    name: ProviderName,
    base_url: String,
    model: &str,
    env_pairs: &[(&str, &str)],
) -> Arc<dyn LanguageModel> {
    build_provider(
        name,
        Some(&setting(base_url)),
        model,
        &env(env_pairs),
        std::path::Path::new("."),
    )
    .expect("provider builds")
}

pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        timeout: Some(Duration::from_secs(10)),
    }
}

/// A small request with one tool and no reasoning.
pub fn request() -> Request {
    Request {
        system: "You are a test.".into(),
        messages: vec![Message::user_text("Say hi")],
        tools: vec![ToolDefinition {
            name: "writeTextFile".into(),
            description: "Write a file".into(),
            input_schema: serde_json::json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        }],
        max_tokens: Some(1000),
        reasoning: Some(ReasoningBudget::None),
        expert_key: "tester".into(),
        ..Default::default()
    }
}

pub async fn drain(mut stream: ChunkStream) -> (Vec<StreamChunk>, Option<LlmError>) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(err) => return (chunks, Some(err)),
        }
    }
    (chunks, None)
}

pub fn assemble(chunks: &[StreamChunk]) -> Response {
    let mut builder = ResponseBuilder::new();
    for chunk in chunks {
        builder.push(chunk);
    }
    builder.finish()
}

/// Sends `req` through the retry driver; returns the chunks, the retries seen, and the error.
pub async fn run_with(
    model: &dyn LanguageModel,
    req: &Request,
    policy: &RetryPolicy,
) -> (Vec<StreamChunk>, Vec<RetryInfo>, Option<LlmError>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let hook: RetryHook = Arc::new(move |info: &RetryInfo| sink.lock().unwrap().push(info.clone()));
    let prepared = model.prepare(req).expect("prepare");
    let (chunks, err) = match send_with_retry(model, prepared, policy, Some(&hook)).await {
        Ok(stream) => drain(stream).await,
        Err(err) => (Vec::new(), Some(err)),
    };
    let retries = seen.lock().unwrap().clone();
    (chunks, retries, err)
}

/// Runs and expects success.
pub async fn run_ok(model: &dyn LanguageModel) -> (Vec<StreamChunk>, Response) {
    let (chunks, _, err) = run_with(model, &request(), &fast_policy()).await;
    if let Some(err) = err {
        panic!("unexpected error: {err}");
    }
    assert!(
        matches!(chunks.last(), Some(StreamChunk::Finish { .. })),
        "stream ends with Finish: {chunks:?}"
    );
    let response = assemble(&chunks);
    (chunks, response)
}

pub async fn run_err(model: &dyn LanguageModel) -> (Vec<StreamChunk>, Vec<RetryInfo>, LlmError) {
    let (chunks, retries, err) = run_with(model, &request(), &fast_policy()).await;
    let err = err.unwrap_or_else(|| panic!("expected an error, got {chunks:?}"));
    (chunks, retries, err)
}

pub async fn check_429_then_success(mock: &MockLlm, model: &dyn LanguageModel, ok: Reply) {
    mock.push(
        Reply::status(429)
            .header("retry-after", "0")
            .body(r#"{"error":{"type":"rate_limit_error","message":"slow down"}}"#),
    );
    mock.push(
        Reply::status(529)
            .header("retry-after-ms", "5")
            .body(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
    );
    mock.push(ok);
    let (chunks, retries, err) = run_with(model, &request(), &fast_policy()).await;
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(chunks.last(), Some(StreamChunk::Finish { .. })));
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert_eq!(retries[0].attempt, 1);
    assert_eq!(
        retries[0].delay,
        Duration::ZERO,
        "retry-after: 0 is honoured"
    );
    assert_eq!(retries[0].error.status(), Some(429));
    assert!(retries[0].error.to_string().contains("slow down"));
    assert_eq!(retries[1].delay, Duration::from_millis(5), "retry-after-ms");
    assert_eq!(mock.request_count(), 3);
}

pub async fn check_500_exhausts(mock: &MockLlm, model: &dyn LanguageModel) {
    mock.set_fallback(Reply::status(500).body(r#"{"error":{"message":"internal boom"}}"#));
    let (_, retries, err) = run_err(model).await;
    assert_eq!(err.status(), Some(500));
    assert!(err.to_string().contains("internal boom"), "{err}");
    assert_eq!(retries.len(), 2);
    assert_eq!(mock.request_count(), 3, "first try + max_retries");
}

pub async fn check_400_not_retried(mock: &MockLlm, model: &dyn LanguageModel) {
    mock.push(Reply::status(400).body(r#"{"error":{"message":"bad field"}}"#));
    let (_, retries, err) = run_err(model).await;
    assert_eq!(err.status(), Some(400));
    assert!(retries.is_empty());
    assert_eq!(mock.request_count(), 1);
}

pub async fn check_401_names_env(mock: &MockLlm, model: &dyn LanguageModel, env_var: &str) {
    mock.push(Reply::status(401).body(r#"{"error":{"message":"invalid x-api-key"}}"#));
    let (_, retries, err) = run_err(model).await;
    let text = err.to_string();
    assert!(text.contains("401"), "{text}");
    assert!(text.contains("invalid x-api-key"), "{text}");
    assert!(text.contains(env_var), "{text}");
    assert!(text.contains(model.provider()), "{text}");
    assert!(retries.is_empty());
}

pub async fn check_malformed_sse(mock: &MockLlm, model: &dyn LanguageModel) {
    mock.push(Reply::sse().body("<html>bad gateway</html>\n\n"));
    let (_, retries, err) = run_err(model).await;
    assert!(matches!(err, LlmError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("not an SSE field"), "{err}");
    assert!(retries.is_empty());
}

pub async fn check_non_json_data(mock: &MockLlm, model: &dyn LanguageModel) {
    mock.push(Reply::sse().body("data: {this is not json\n\n"));
    let (_, _, err) = run_err(model).await;
    assert!(matches!(err, LlmError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("{this is not json"), "{err}");
}

/// `partial` must decode to at least one chunk.
pub async fn check_dropped_mid_stream(mock: &MockLlm, model: &dyn LanguageModel, partial: &str) {
    mock.push(
        Reply::sse()
            .chunk(partial)
            .delay(Duration::from_millis(20))
            .drop_connection(),
    );
    let (chunks, retries, err) = run_err(model).await;
    assert!(!chunks.is_empty(), "chunks before the cut are handed out");
    assert!(matches!(err, LlmError::StreamCut { .. }), "{err:?}");
    assert!(retries.is_empty(), "no retry once a chunk was handed out");
    assert_eq!(mock.request_count(), 1);
}

pub async fn check_drop_before_first_chunk_is_retried(
    mock: &MockLlm,
    model: &dyn LanguageModel,
    ok: Reply,
) {
    mock.push(Reply::sse().drop_connection());
    mock.push(ok);
    let (chunks, retries, err) = run_with(model, &request(), &fast_policy()).await;
    assert!(err.is_none(), "{err:?}");
    assert!(!chunks.is_empty());
    assert_eq!(retries.len(), 1);
    assert!(
        matches!(retries[0].error, LlmError::StreamCut { .. }),
        "{:?}",
        retries[0].error
    );
}

pub async fn check_timeout(mock: &MockLlm, model: &dyn LanguageModel, partial: &str) {
    mock.push(Reply::sse().chunk(partial).stall());
    let policy = RetryPolicy {
        timeout: Some(Duration::from_millis(300)),
        ..fast_policy()
    };
    let started = std::time::Instant::now();
    let (chunks, _, err) = run_with(model, &request(), &policy).await;
    let err = err.expect("timeout error");
    assert!(matches!(err, LlmError::Timeout { .. }), "{err:?}");
    assert!(!chunks.is_empty());
    assert!(started.elapsed() < Duration::from_secs(3));
}
