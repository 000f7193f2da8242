mod support;

use std::sync::Arc;
use std::time::Duration;

use perstack::definition::{ProviderName, ReasoningBudget};
use perstack::llm::{
    FinishReason, LanguageModel, Message, Part, REDACTED, Role, StreamChunk, Usage,
};
use perstack::tool::ToolContent;
use serde_json::json;
use support::llm_cases::*;
use support::mock_llm::{MockLlm, Reply, gemini as g};

const KEY: &str = "AIza-test-123";

async fn setup() -> (MockLlm, Arc<dyn LanguageModel>) {
    let mock = MockLlm::start().await;
    let model = provider(
        ProviderName::Google,
        format!("{}/v1beta", mock.url()),
        "gemini-test",
        &[("GOOGLE_GENERATIVE_AI_API_KEY", KEY)],
    );
    (mock, model)
}

#[tokio::test]
async fn text_only_with_exact_request() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        g::parts(json!([{"text": "Hel"}]), None) + &g::parts(json!([{"text": "lo"}]), Some("STOP")),
    ));
    let (chunks, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "Hello");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(chunks[0], StreamChunk::TextDelta { text: "Hel".into() });

    let sent = &mock.requests()[0];
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some(KEY));
    assert_eq!(
        sent.json(),
        json!({
            "systemInstruction": {"parts": [{"text": "You are a test."}]},
            "contents": [{"role": "user", "parts": [{"text": "Say hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "writeTextFile", "description": "Write a file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}]}],
            "generationConfig": {"maxOutputTokens": 1000},
        })
    );
    let prepared = model.prepare(&request()).unwrap();
    assert!(
        prepared
            .redacted_headers()
            .contains(&("x-goog-api-key".into(), REDACTED.into()))
    );
    assert!(!serde_json::to_string(&prepared).unwrap().contains(KEY));
}

#[tokio::test]
async fn thinking_budget_and_function_history() {
    let (mock, model) = setup().await;
    mock.push(g::text_reply("ok"));
    let mut req = request();
    req.reasoning = Some(ReasoningBudget::High);
    req.tools[0].input_schema =
        json!({"$schema": "x", "type": "object", "additionalProperties": false});
    req.messages.push(Message {
        role: Role::Assistant,
        parts: vec![
            Part::Thinking {
                text: String::new(),
                signature: Some("sig".into()),
            },
            Part::ToolCall {
                id: "c1".into(),
                name: "exec".into(),
                args: json!({"command": "ls"}),
            },
        ],
    });
    req.messages.push(Message {
        role: Role::User,
        parts: vec![Part::ToolResult {
            tool_call_id: "c1".into(),
            tool_name: "exec".into(),
            contents: vec![ToolContent::text("a.txt")],
            is_error: false,
        }],
    });
    let (_, _, err) = run_with(model.as_ref(), &req, &fast_policy()).await;
    assert!(err.is_none(), "{err:?}");
    let body = mock.requests()[0].json();
    assert_eq!(
        body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 10000, "includeThoughts": true})
    );
    assert_eq!(
        body["tools"][0]["functionDeclarations"][0]["parameters"],
        json!({"type": "object"})
    );
    assert_eq!(
        body["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "exec", "args": {"command": "ls"}}, "thoughtSignature": "sig"}]})
    );
    assert_eq!(
        body["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "exec", "response": {"content": "a.txt"}}}]})
    );
}

#[tokio::test]
async fn tool_call_args_split_mid_string_across_network_chunks() {
    let (mock, model) = setup().await;
    let stream = g::parts(
        json!([{"functionCall": {"name": "writeTextFile", "args": {"path": "dir/file.txt", "text": "héllo"}}}]),
        Some("STOP"),
    );
    mock.push(Reply::sse().chunks_of(stream, 6, Duration::from_millis(1)));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.finish_reason, FinishReason::ToolUse);
    assert_eq!(response.tool_calls[0].name, "writeTextFile");
    assert_eq!(
        response.tool_calls[0].args,
        json!({"path": "dir/file.txt", "text": "héllo"})
    );
    assert!(!response.tool_calls[0].id.is_empty());
}

#[tokio::test]
async fn two_parallel_tool_calls() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        g::parts(json!([{"text": "Both."}]), None)
            + &g::parts(
                json!([
                {"functionCall": {"name": "readTextFile", "args": {"path": "a"}}},
                {"functionCall": {"name": "readTextFile", "args": {"path": "b"}}}]),
                Some("STOP"),
            ),
    ));
    let (chunks, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "Both.");
    assert_eq!(response.tool_calls.len(), 2);
    assert_eq!(response.tool_calls[1].args, json!({"path": "b"}));
    assert_ne!(response.tool_calls[0].id, response.tool_calls[1].id);
    assert!(
        chunks
            .iter()
            .any(|c| matches!(c, StreamChunk::ToolCallFinished { index: 1, .. }))
    );
}

#[tokio::test]
async fn multibyte_char_split_across_network_chunks() {
    let (mock, model) = setup().await;
    let stream = g::text_stream("snow ☃ and 😀!");
    let cut = stream.find('😀').unwrap() + 3;
    let cut2 = stream.find('☃').unwrap() + 1;
    mock.push(Reply::sse().split_at(&stream, &[cut2, cut], Duration::from_millis(5)));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "snow ☃ and 😀!");
}

#[tokio::test]
async fn thoughts_and_usage() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        g::parts(json!([{"text": "Pondering.", "thought": true}]), None)
            + &g::chunk(json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Yes"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 3, "thoughtsTokenCount": 12, "cachedContentTokenCount": 8}})),
    ));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.thinking, "Pondering.");
    assert_eq!(response.text, "Yes");
    assert_eq!(
        response.usage,
        Usage {
            input: 40,
            output: 15,
            reasoning: 12,
            cached_input: 8
        }
    );
}

#[tokio::test]
async fn safety_block_is_a_content_filter_finish() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(g::chunk(
        json!({"candidates": [{"finishReason": "SAFETY"}]}),
    )));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.finish_reason, FinishReason::ContentFilter);
}

#[tokio::test]
async fn gemini_error_array_body_gives_its_message() {
    let (mock, model) = setup().await;
    mock.push(Reply::status(400).body(
        r#"[{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}]"#,
    ));
    let (_, _, err) = run_err(model.as_ref()).await;
    assert!(err.to_string().contains("API key not valid"), "{err}");
}

#[tokio::test]
async fn retries_429_and_529_honouring_retry_after() {
    let (mock, model) = setup().await;
    check_429_then_success(&mock, model.as_ref(), g::text_reply("ok")).await;
}

#[tokio::test]
async fn gives_up_after_max_retries_of_500() {
    let (mock, model) = setup().await;
    check_500_exhausts(&mock, model.as_ref()).await;
}

#[tokio::test]
async fn bad_request_is_not_retried() {
    let (mock, model) = setup().await;
    check_400_not_retried(&mock, model.as_ref()).await;
}

#[tokio::test]
async fn unauthorized_names_the_env_var() {
    let (mock, model) = setup().await;
    check_401_names_env(&mock, model.as_ref(), "GOOGLE_GENERATIVE_AI_API_KEY").await;
}

#[tokio::test]
async fn malformed_sse_line_is_a_clear_error() {
    let (mock, model) = setup().await;
    check_malformed_sse(&mock, model.as_ref()).await;
}

#[tokio::test]
async fn non_json_data_is_a_clear_error() {
    let (mock, model) = setup().await;
    check_non_json_data(&mock, model.as_ref()).await;
}

#[tokio::test]
async fn connection_dropped_mid_stream() {
    let (mock, model) = setup().await;
    check_dropped_mid_stream(
        &mock,
        model.as_ref(),
        &g::parts(json!([{"text": "partial"}]), None),
    )
    .await;
}

#[tokio::test]
async fn connection_dropped_before_any_chunk_is_retried() {
    let (mock, model) = setup().await;
    check_drop_before_first_chunk_is_retried(&mock, model.as_ref(), g::text_reply("ok")).await;
}

#[tokio::test]
async fn stream_slower_than_the_timeout() {
    let (mock, model) = setup().await;
    check_timeout(
        &mock,
        model.as_ref(),
        &g::parts(json!([{"text": "slow"}]), None),
    )
    .await;
}
