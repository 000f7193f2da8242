//! OpenAI's Responses API, spoken when an OpenAI Expert has `providerTools`: against the mock
//! server in the real Responses SSE shape.

mod support;

use std::sync::Arc;
use std::time::Duration;

use perstack::definition::ProviderName;
use perstack::llm::provider_tools::ProviderTool;
use perstack::llm::{FinishReason, LanguageModel, LlmError, Request, StreamChunk, Usage};
use serde_json::{Value, json};
use support::llm_cases::*;
use support::mock_llm::{MockLlm, Reply, responses as r};

async fn setup() -> (MockLlm, Arc<dyn LanguageModel>) {
    let mock = MockLlm::start().await;
    let model = provider(
        ProviderName::Openai,
        format!("{}/v1", mock.url()),
        "gpt-4.1",
        &[("OPENAI_API_KEY", "sk-test")],
    );
    (mock, model)
}

fn with_web_search() -> Request {
    Request {
        provider_tools: vec![ProviderTool {
            name: "webSearch".into(),
            options: Default::default(),
        }],
        ..request()
    }
}

async fn run(model: &dyn LanguageModel) -> (Vec<StreamChunk>, Option<LlmError>) {
    let (chunks, _, err) = run_with(model, &with_web_search(), &fast_policy()).await;
    (chunks, err)
}

#[tokio::test]
async fn text_streams_with_usage_and_the_exact_request() {
    let (mock, model) = setup().await;
    mock.push(
        Reply::sse().body(r::created() + &r::message(0, &["Hel", "lo"]) + &r::completed(12, 4)),
    );
    let (chunks, err) = run(model.as_ref()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks[0], StreamChunk::TextDelta { text: "Hel".into() });
    let response = assemble(&chunks);
    assert_eq!(response.text, "Hello");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Usage {
            input: 12,
            output: 4,
            reasoning: 0,
            cached_input: 2
        }
    );
    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(
        sent.json(),
        json!({
            "model": "gpt-4.1",
            "instructions": "You are a test.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hi"}]}],
            "stream": true,
            "store": false,
            "tools": [
                {"type": "function", "name": "writeTextFile", "description": "Write a file",
                 "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
                 "strict": false},
                {"type": "web_search"},
            ],
            "tool_choice": "auto",
            "max_output_tokens": 1000,
        })
    );
}

#[tokio::test]
async fn a_function_call_split_across_deltas_is_one_call() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        r::created()
            + &r::function_call(
                0,
                "call_7",
                "writeTextFile",
                &["{\"pa", "th\": \"a", ".txt\"}"],
            )
            + &r::completed(20, 9),
    ));
    let (chunks, err) = run(model.as_ref()).await;
    assert!(err.is_none(), "{err:?}");
    let deltas: Vec<&StreamChunk> = chunks
        .iter()
        .filter(|c| matches!(c, StreamChunk::ToolCallArgumentsDelta { .. }))
        .collect();
    assert_eq!(deltas.len(), 3);
    let response = assemble(&chunks);
    assert_eq!(response.finish_reason, FinishReason::ToolUse);
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].id, "call_7");
    assert_eq!(response.tool_calls[0].args, json!({"path": "a.txt"}));
}

#[tokio::test]
async fn a_web_search_call_item_is_a_provider_tool_call_and_not_sent_back() {
    let (mock, model) = setup().await;
    let (search, item) = r::web_search(0, "rust 1.90");
    mock.push(Reply::sse().body(
        r::created() + &search + &r::message(1, &["Rust 1.90 is out."]) + &r::completed(30, 8),
    ));
    let (chunks, err) = run(model.as_ref()).await;
    assert!(err.is_none(), "{err:?}");
    let response = assemble(&chunks);
    assert!(response.tool_calls.is_empty(), "run by OpenAI, not here");
    assert_eq!(response.provider_tools.len(), 1);
    let used = &response.provider_tools[0];
    assert_eq!(used.name, "web_search");
    assert_eq!(used.args, json!({"type": "search", "query": "rust 1.90"}));
    assert_eq!(used.result.as_ref(), Some(&item));
    assert_eq!(
        perstack::llm::provider_tools::describe_result(used.result.as_ref()).0,
        "searched: rust 1.90"
    );
    // The next request carries the answer's text; the search item stays with OpenAI.
    let mut next = with_web_search();
    next.messages.push(response.to_message());
    let prepared = model.prepare(&next).expect("prepare");
    let body: Value = serde_json::from_slice(prepared.body()).expect("json");
    assert_eq!(
        body["input"][1],
        json!({"role": "assistant", "content": [{"type": "output_text", "text": "Rust 1.90 is out."}]})
    );
    assert_eq!(body["input"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn an_error_event_is_a_provider_error() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        r::created()
            + &r::event(json!({"type": "error", "code": "server_error",
                "message": "The server had an error", "param": null, "sequence_number": 2})),
    ));
    mock.set_fallback(Reply::status(400).body(r#"{"error":{"message":"stop"}}"#));
    let (_, err) = run(model.as_ref()).await;
    let err = err.expect("an error");
    assert!(
        matches!(&err, LlmError::Provider { kind, message, .. }
            if kind == "server_error" && message == "The server had an error"),
        "{err}"
    );
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let (mock, model) = setup().await;
    mock.push(Reply::status(429).header("retry-after", "0").body(
        r#"{"error":{"type":"requests","code":"rate_limit_exceeded","message":"slow down"}}"#,
    ));
    mock.push(r::text_reply("ok"));
    let (chunks, retries, err) = run_with(model.as_ref(), &with_web_search(), &fast_policy()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(assemble(&chunks).text, "ok");
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(
        retries[0].delay,
        Duration::ZERO,
        "retry-after: 0 is honoured"
    );
    assert_eq!(retries[0].error.status(), Some(429));
    assert_eq!(mock.request_count(), 2);
    assert!(mock.requests().iter().all(|q| q.path == "/v1/responses"));
}
