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
use support::mock_llm::{MockLlm, Reply, anthropic as a};

const KEY: &str = "sk-ant-test-123";

async fn setup() -> (MockLlm, Arc<dyn LanguageModel>) {
    let mock = MockLlm::start().await;
    let model = provider(
        ProviderName::Anthropic,
        format!("{}/v1", mock.url()),
        "claude-test",
        &[("ANTHROPIC_API_KEY", KEY)],
    );
    (mock, model)
}

#[tokio::test]
async fn text_only_with_exact_request() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        a::message_start(12) + &a::text_block(0, &["Hel", "lo"]) + &a::message_end("end_turn", 3),
    ));
    let (chunks, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "Hello");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(
        chunks[..2],
        [
            StreamChunk::TextDelta { text: "Hel".into() },
            StreamChunk::TextDelta { text: "lo".into() }
        ]
    );

    let sent = &mock.requests()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.json(),
        json!({
            "model": "claude-test",
            "max_tokens": 1000,
            "system": [{"type": "text", "text": "You are a test.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}],
            "stream": true,
            "tools": [{"name": "writeTextFile", "description": "Write a file",
                       "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
            "tool_choice": {"type": "auto"},
        })
    );

    let prepared = model.prepare(&request()).unwrap();
    assert_eq!(prepared.header("x-api-key"), Some(KEY));
    let shown = prepared.redacted_headers();
    assert!(shown.contains(&("x-api-key".to_string(), REDACTED.to_string())));
    assert!(!serde_json::to_string(&prepared).unwrap().contains(KEY));
}

#[tokio::test]
async fn thinking_budget_and_history_shape_the_body() {
    let (mock, model) = setup().await;
    mock.push(a::text_reply("ok"));
    let mut req = request();
    req.reasoning = Some(ReasoningBudget::Low);
    req.messages.push(Message {
        role: Role::Assistant,
        parts: vec![
            Part::Thinking {
                text: "hmm".into(),
                signature: Some("sig1".into()),
            },
            Part::Thinking {
                text: "unsigned".into(),
                signature: None,
            },
            Part::ToolCall {
                id: "t1".into(),
                name: "writeTextFile".into(),
                args: json!({"path": "a"}),
            },
        ],
    });
    req.messages.push(Message {
        role: Role::User,
        parts: vec![Part::ToolResult {
            tool_call_id: "t1".into(),
            tool_name: "writeTextFile".into(),
            contents: vec![ToolContent::text("denied")],
            is_error: true,
        }],
    });
    let prepared = model.prepare(&req).unwrap();
    drop(model.send(prepared).await.unwrap());
    let body = mock.requests()[0].json();
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(
        body["max_tokens"],
        json!(2048 + 8192),
        "max_tokens exceeds the budget"
    );
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "hmm", "signature": "sig1"},
            {"type": "tool_use", "id": "t1", "name": "writeTextFile", "input": {"path": "a"}},
        ])
    );
    assert_eq!(
        body["messages"][2]["content"],
        json!([{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "denied"}], "is_error": true}])
    );
}

#[tokio::test]
async fn tool_call_args_split_mid_string_across_network_chunks() {
    let (mock, model) = setup().await;
    let stream = a::message_start(5)
        + &a::tool_block(
            0,
            "toolu_1",
            "writeTextFile",
            &[r#"{"pa"#, r#"th": "dir/fi"#, r#"le.txt", "text": "héllo"}"#],
        )
        + &a::message_end("tool_use", 9);
    mock.push(Reply::sse().chunks_of(stream, 7, Duration::from_millis(1)));
    let (chunks, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.finish_reason, FinishReason::ToolUse);
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].id, "toolu_1");
    assert_eq!(
        response.tool_calls[0].args,
        json!({"path": "dir/file.txt", "text": "héllo"})
    );
    let deltas = chunks
        .iter()
        .filter(|c| matches!(c, StreamChunk::ToolCallArgumentsDelta { .. }))
        .count();
    assert_eq!(deltas, 3);
}

#[tokio::test]
async fn two_parallel_tool_calls_after_text() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        a::message_start(5)
            + &a::text_block(0, &["Two calls."])
            + &a::tool_block(1, "toolu_a", "readTextFile", &[r#"{"path":"a"}"#])
            + &a::tool_block(2, "toolu_b", "readTextFile", &[r#"{"path":"#, r#""b"}"#])
            + &a::message_end("tool_use", 9),
    ));
    let (chunks, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "Two calls.");
    let ids: Vec<_> = response.tool_calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["toolu_a", "toolu_b"]);
    assert_eq!(response.tool_calls[1].args, json!({"path": "b"}));
    assert!(chunks.contains(&StreamChunk::ToolCallStarted {
        index: 1,
        id: "toolu_b".into(),
        name: "readTextFile".into()
    }));
}

#[tokio::test]
async fn multibyte_char_split_across_network_chunks() {
    let (mock, model) = setup().await;
    let stream = a::text_stream("snow ☃ and 😀!");
    let cut = stream.find('😀').unwrap() + 2; // inside the 4-byte char
    let cut2 = stream.find('☃').unwrap() + 1;
    mock.push(Reply::sse().split_at(&stream, &[cut2, cut], Duration::from_millis(5)));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "snow ☃ and 😀!");
}

#[tokio::test]
async fn thinking_signature_and_usage() {
    let (mock, model) = setup().await;
    let thinking = a::event(
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
    ) + &a::event(
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me "}}),
    ) + &a::event(
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "think."}}),
    ) + &a::event(
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBsig"}}),
    ) + &a::event(json!({"type": "content_block_stop", "index": 0}));
    let start = a::event(
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 3, "output_tokens": 1}}}),
    );
    mock.push(Reply::sse().body(
        start
            + ": a comment\n\n"
            + &a::event(json!({"type": "ping"}))
            + &thinking
            + &a::text_block(1, &["Done"])
            + &a::message_end("end_turn", 42),
    ));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.thinking, "Let me think.");
    assert_eq!(response.thinking_signature.as_deref(), Some("EqQBsig"));
    assert_eq!(response.text, "Done");
    assert_eq!(
        response.usage,
        Usage {
            input: 110,
            output: 42,
            reasoning: 0,
            cached_input: 100
        }
    );
    let message = response.to_message();
    assert!(
        matches!(&message.parts[0], Part::Thinking { signature: Some(s), .. } if s == "EqQBsig")
    );
}

#[tokio::test]
async fn tool_use_start_without_input_and_no_ping_is_accepted() {
    let (mock, model) = setup().await;
    let start = a::event(
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "x", "name": "todo"}}),
    );
    mock.push(Reply::sse().body(
        a::message_start(1)
            + &start
            + &a::event(json!({"type": "content_block_stop", "index": 0}))
            + &a::message_end("tool_use", 1),
    ));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.tool_calls[0].args, json!({}));
}

#[tokio::test]
async fn error_event_in_stream_is_reported() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        a::message_start(1) + &a::event(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt too long"}})),
    ));
    let (_, retries, err) = run_err(model.as_ref()).await;
    assert!(err.to_string().contains("prompt too long"), "{err}");
    assert!(retries.is_empty());
}

#[tokio::test]
async fn overloaded_event_before_any_chunk_is_retried() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(a::event(
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )));
    mock.push(a::text_reply("fine"));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "fine");
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn retries_429_and_529_honouring_retry_after() {
    let (mock, model) = setup().await;
    check_429_then_success(&mock, model.as_ref(), a::text_reply("ok")).await;
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
    check_401_names_env(&mock, model.as_ref(), "ANTHROPIC_API_KEY").await;
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
        &(a::message_start(1) + &a::text_block(0, &["partial"])),
    )
    .await;
}

#[tokio::test]
async fn connection_dropped_before_any_chunk_is_retried() {
    let (mock, model) = setup().await;
    check_drop_before_first_chunk_is_retried(&mock, model.as_ref(), a::text_reply("ok")).await;
}

#[tokio::test]
async fn stream_slower_than_the_timeout() {
    let (mock, model) = setup().await;
    check_timeout(
        &mock,
        model.as_ref(),
        &(a::message_start(1) + &a::text_block(0, &["slow"])),
    )
    .await;
}

#[tokio::test]
async fn missing_key_fails_before_any_request() {
    let err = perstack::llm::build_provider(
        ProviderName::Anthropic,
        None,
        "m",
        &env(&[]),
        std::path::Path::new("."),
    )
    .err()
    .expect("error");
    assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
}

#[tokio::test]
async fn file_settings_win_over_env_and_headers_are_added() {
    let mock = MockLlm::start().await;
    mock.push(a::text_reply("ok"));
    let mut setting = setting(format!("{}/v1", mock.url()));
    setting
        .extra
        .insert("apiKey".into(), toml::Value::String("from-file".into()));
    setting.headers = Some(
        [("x-team".to_string(), "qa".to_string())]
            .into_iter()
            .collect(),
    );
    let model = perstack::llm::build_provider(
        ProviderName::Anthropic,
        Some(&setting),
        "m",
        &env(&[
            ("ANTHROPIC_API_KEY", "from-env"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:1/v1"),
        ]),
        std::path::Path::new("."),
    )
    .unwrap();
    run_ok(model.as_ref()).await;
    let sent = &mock.requests()[0];
    assert_eq!(sent.header("x-api-key"), Some("from-file"));
    assert_eq!(sent.header("x-team"), Some("qa"));
}

#[tokio::test]
async fn edited_body_is_sent_byte_for_byte() {
    let (mock, model) = setup().await;
    mock.push(a::text_reply("edited"));
    let prepared = model.prepare(&request()).unwrap();
    let edited = br#"{"model":"claude-test","max_tokens":5,"messages":[{"role":"user","content":"edited by hand"}],"stream":true}"#;
    let response =
        perstack::llm::collect(model.send(prepared.with_body(&edited[..])).await.unwrap())
            .await
            .unwrap();
    assert_eq!(response.text, "edited");
    let sent = &mock.requests()[0];
    assert_eq!(sent.body, edited);
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(
        sent.header("content-length"),
        Some(edited.len().to_string().as_str())
    );
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_request() {
    use futures_util::StreamExt;
    let (mock, model) = setup().await;
    mock.push(
        Reply::sse()
            .chunk(a::message_start(1) + &a::text_block(0, &["first"]))
            .stall(),
    );
    let mut stream = model
        .send(model.prepare(&request()).unwrap())
        .await
        .unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream);
    for _ in 0..100 {
        if mock.hangups() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never saw the connection close");
}
