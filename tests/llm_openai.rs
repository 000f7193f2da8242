mod support;

use std::sync::Arc;
use std::time::Duration;

use perstack::definition::{ProviderName, ProviderSetting, ReasoningBudget};
use perstack::llm::{
    FinishReason, LanguageModel, Message, Part, REDACTED, Role, StreamChunk, Usage, build_provider,
};
use perstack::tool::ToolContent;
use serde_json::json;
use support::llm_cases::*;
use support::mock_llm::{MockLlm, Reply, openai as o};

const KEY: &str = "sk-openai-test-123";

async fn setup() -> (MockLlm, Arc<dyn LanguageModel>) {
    let mock = MockLlm::start().await;
    let model = provider(
        ProviderName::Openai,
        format!("{}/v1", mock.url()),
        "gpt-test",
        &[("OPENAI_API_KEY", KEY)],
    );
    (mock, model)
}

#[tokio::test]
async fn text_only_with_exact_request() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        o::delta(json!({"role": "assistant", "content": ""}))
            + &o::delta(json!({"content": "Hel"}))
            + &o::delta(json!({"content": "lo"}))
            + &o::finish("stop")
            + &o::usage(11, 2)
            + &o::done(),
    ));
    let (chunks, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "Hello");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(chunks[0], StreamChunk::TextDelta { text: "Hel".into() });
    assert_eq!(
        response.usage,
        Usage {
            input: 11,
            output: 2,
            reasoning: 0,
            cached_input: 0
        }
    );

    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        sent.json(),
        json!({
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "You are a test."},
                {"role": "user", "content": "Say hi"},
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "writeTextFile", "description": "Write a file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
            "max_tokens": 1000,
        })
    );
    let prepared = model.prepare(&request()).unwrap();
    assert!(
        prepared
            .redacted_headers()
            .contains(&("authorization".into(), REDACTED.into()))
    );
    assert!(!serde_json::to_string(&prepared).unwrap().contains(KEY));
}

#[tokio::test]
async fn history_with_tool_results_and_images() {
    let (mock, model) = setup().await;
    mock.push(o::text_reply("ok"));
    let mut req = request();
    req.messages.push(Message {
        role: Role::Assistant,
        parts: vec![
            Part::Thinking {
                text: "hidden".into(),
                signature: None,
            },
            Part::ToolCall {
                id: "c1".into(),
                name: "readImageFile".into(),
                args: json!({"path": "p.png"}),
            },
        ],
    });
    req.messages.push(Message {
        role: Role::User,
        parts: vec![Part::ToolResult {
            tool_call_id: "c1".into(),
            tool_name: "readImageFile".into(),
            contents: vec![
                ToolContent::text("an image"),
                ToolContent::Image {
                    mime_type: "image/png".into(),
                    data: "QUJD".into(),
                },
            ],
            is_error: false,
        }],
    });
    run_ok_with(model.as_ref(), &req).await;
    let messages = &mock.requests()[0].json()["messages"];
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "readImageFile", "arguments": "{\"path\":\"p.png\"}"}}]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "c1", "content": "an image"})
    );
    assert_eq!(
        messages[4],
        json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]})
    );
}

async fn run_ok_with(model: &dyn LanguageModel, req: &perstack::llm::Request) {
    let (_, _, err) = run_with(model, req, &fast_policy()).await;
    assert!(err.is_none(), "{err:?}");
}

#[tokio::test]
async fn reasoning_effort_and_max_completion_tokens_for_openai_reasoning_models() {
    // The dialect follows the real OpenAI URL, so the body is checked through prepare.
    let model = provider(
        ProviderName::Openai,
        "https://api.openai.com/v1".into(),
        "o4-mini",
        &[("OPENAI_API_KEY", KEY)],
    );
    let mut req = request();
    req.reasoning = Some(ReasoningBudget::Medium);
    let body: serde_json::Value =
        serde_json::from_slice(model.prepare(&req).unwrap().body()).unwrap();
    assert_eq!(body["reasoning_effort"], "medium");
    assert_eq!(body["max_completion_tokens"], 1000);
    assert!(body.get("max_tokens").is_none());
}

#[tokio::test]
async fn tool_call_args_split_mid_string_across_network_chunks() {
    let (mock, model) = setup().await;
    // llama.cpp style: the first fragment already carries `{`.
    let stream = o::delta(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "writeTextFile", "arguments": "{"}}]}),
    ) + &o::delta(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"path\": \"dir/fi"}}]}),
    ) + &o::delta(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "le.txt\", \"text\": \"h\u{e9}llo\"}"}}]}),
    ) + &o::finish("tool_calls")
        + &o::usage(3, 4)
        + &o::done();
    mock.push(Reply::sse().chunks_of(stream, 5, Duration::from_millis(1)));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.finish_reason, FinishReason::ToolUse);
    assert_eq!(response.tool_calls[0].id, "call_1");
    assert_eq!(
        response.tool_calls[0].args,
        json!({"path": "dir/file.txt", "text": "héllo"})
    );
}

#[tokio::test]
async fn two_parallel_tool_calls() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        o::delta(json!({"tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "readTextFile", "arguments": ""}},
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "listDirectory", "arguments": ""}}]}))
            + &o::delta(json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"path\":\".\"}"}}]}))
            + &o::delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\":\"a\"}"}}]}))
            + &o::finish("tool_calls")
            + &o::done(),
    ));
    let (chunks, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.tool_calls.len(), 2);
    assert_eq!(response.tool_calls[0].args, json!({"path": "a"}));
    assert_eq!(response.tool_calls[1].name, "listDirectory");
    assert_eq!(response.tool_calls[1].args, json!({"path": "."}));
    assert!(chunks.contains(&StreamChunk::ToolCallArgumentsDelta {
        index: 1,
        delta: "{\"path\":\".\"}".into()
    }));
}

#[tokio::test]
async fn multibyte_char_split_across_network_chunks() {
    let (mock, model) = setup().await;
    let stream = o::text_stream("snow ☃ and 😀!");
    let cut = stream.find('😀').unwrap() + 1;
    let cut2 = stream.find('☃').unwrap() + 2;
    mock.push(Reply::sse().split_at(&stream, &[cut2, cut], Duration::from_millis(5)));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "snow ☃ and 😀!");
}

#[tokio::test]
async fn reasoning_deltas_and_detailed_usage() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(
        o::delta(json!({"reasoning_content": "Thinking "}))
            + &o::delta(json!({"reasoning": "hard."}))
            + &o::delta(json!({"content": "Answer"}))
            + &o::finish("stop")
            + &o::chunk(json!({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 30,
                "prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 20}}}))
            + &o::done(),
    ));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.thinking, "Thinking hard.");
    assert_eq!(response.text, "Answer");
    assert_eq!(
        response.usage,
        Usage {
            input: 100,
            output: 30,
            reasoning: 20,
            cached_input: 64
        }
    );
}

#[tokio::test]
async fn no_usage_and_no_done_is_still_a_complete_answer() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(o::delta(json!({"content": "hi"})) + &o::finish("length")));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "hi");
    assert_eq!(response.finish_reason, FinishReason::Length);
    assert_eq!(response.usage, Usage::default());
}

#[tokio::test]
async fn ollama_needs_no_key_and_deepseek_uses_its_own() {
    let mock = MockLlm::start().await;
    mock.push(o::text_reply("local"));
    mock.push(o::text_reply("deep"));
    let ollama = provider(
        ProviderName::Ollama,
        format!("{}/v1", mock.url()),
        "llama3",
        &[],
    );
    assert_eq!(run_ok(ollama.as_ref()).await.1.text, "local");
    let deepseek = provider(
        ProviderName::Deepseek,
        format!("{}/v1", mock.url()),
        "deepseek-chat",
        &[("DEEPSEEK_API_KEY", "ds-key")],
    );
    assert_eq!(run_ok(deepseek.as_ref()).await.1.text, "deep");
    let sent = mock.requests();
    assert_eq!(sent[0].header("authorization"), None);
    assert_eq!(sent[1].header("authorization"), Some("Bearer ds-key"));
}

#[tokio::test]
async fn azure_deployment_url_and_api_key_header() {
    let mock = MockLlm::start().await;
    mock.push(o::text_reply("azure"));
    let mut setting = ProviderSetting {
        base_url: Some(format!("{}/openai", mock.url())),
        ..Default::default()
    };
    setting
        .extra
        .insert("deployment".into(), toml::Value::String("my-gpt".into()));
    setting.extra.insert(
        "apiVersion".into(),
        toml::Value::String("2025-01-01-preview".into()),
    );
    let model = build_provider(
        ProviderName::AzureOpenai,
        Some(&setting),
        "gpt-4o",
        &env(&[("AZURE_API_KEY", "az-key")]),
        std::path::Path::new("."),
    )
    .unwrap();
    assert_eq!(run_ok(model.as_ref()).await.1.text, "azure");
    let sent = &mock.requests()[0];
    assert_eq!(
        sent.path,
        "/openai/deployments/my-gpt/chat/completions?api-version=2025-01-01-preview"
    );
    assert_eq!(sent.header("api-key"), Some("az-key"));
    assert!(
        model
            .prepare(&request())
            .unwrap()
            .redacted_headers()
            .contains(&("api-key".into(), REDACTED.into()))
    );
}

#[tokio::test]
async fn cloud_providers_without_credentials_say_what_they_need() {
    let home = tempfile::tempdir().expect("tempdir");
    let env = env(&[
        ("HOME", home.path().to_str().expect("utf8")),
        ("AWS_REGION", "us-east-1"),
    ]);
    for (name, needed) in [
        (ProviderName::AmazonBedrock, "AWS_ACCESS_KEY_ID"),
        (ProviderName::GoogleVertex, "GOOGLE_APPLICATION_CREDENTIALS"),
    ] {
        let err = build_provider(name, None, "m", &env, std::path::Path::new("."))
            .err()
            .expect("refused");
        assert!(err.to_string().contains(needed), "{err}");
    }
}

#[tokio::test]
async fn error_object_in_stream_is_reported() {
    let (mock, model) = setup().await;
    mock.push(Reply::sse().body(o::chunk(
        json!({"error": {"message": "context length exceeded", "type": "invalid_request_error"}}),
    )));
    let (_, _, err) = run_err(model.as_ref()).await;
    assert!(err.to_string().contains("context length exceeded"), "{err}");
}

#[tokio::test]
async fn retries_429_and_529_honouring_retry_after() {
    let (mock, model) = setup().await;
    check_429_then_success(&mock, model.as_ref(), o::text_reply("ok")).await;
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
    check_401_names_env(&mock, model.as_ref(), "OPENAI_API_KEY").await;
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
        &o::delta(json!({"content": "partial"})),
    )
    .await;
}

#[tokio::test]
async fn connection_dropped_before_any_chunk_is_retried() {
    let (mock, model) = setup().await;
    check_drop_before_first_chunk_is_retried(&mock, model.as_ref(), o::text_reply("ok")).await;
}

#[tokio::test]
async fn stream_slower_than_the_timeout() {
    let (mock, model) = setup().await;
    check_timeout(&mock, model.as_ref(), &o::delta(json!({"content": "slow"}))).await;
}
