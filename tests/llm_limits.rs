//! A model server that never ends a line, or never stops answering, ends the generation with a
//! clear error at a configured limit instead of growing memory until the timeout.

mod support;

use std::time::Duration;

use perstack::definition::ProviderName;
use perstack::llm::http::{MAX_ANSWER_ENV, MAX_SSE_LINE_ENV};
use perstack::llm::{LlmError, build_provider};
use serde_json::json;
use support::llm_cases::*;
use support::mock_llm::{MockLlm, Reply, anthropic as a, gemini as g, openai as o};

const KEY: &str = "sk-test";

fn openai_with(
    mock: &MockLlm,
    limits: &[(&str, &str)],
) -> std::sync::Arc<dyn perstack::llm::LanguageModel> {
    let mut env = vec![("OPENAI_API_KEY", KEY)];
    env.extend_from_slice(limits);
    provider(
        ProviderName::Openai,
        format!("{}/v1", mock.url()),
        "gpt-test",
        &env,
    )
}

fn assert_too_large(err: &LlmError, env_var: &str, limit: usize) {
    assert!(
        matches!(err, LlmError::TooLarge { env, limit: l, .. } if *env == env_var && *l == limit),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("limit of {limit} bytes")) && message.contains(env_var),
        "{message}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_line_that_never_ends_stops_at_the_line_limit() {
    let mock = MockLlm::start().await;
    // 64 KiB of one `data:` line, then the server keeps the connection open forever.
    mock.push(
        Reply::sse()
            .chunk(o::delta(json!({"content": "Hi"})))
            .chunks_of(
                format!("data: {{\"x\":\"{}", "y".repeat(64 * 1024)),
                4096,
                Duration::ZERO,
            )
            .stall(),
    );
    let model = openai_with(&mock, &[(MAX_SSE_LINE_ENV, "16384")]);
    let (chunks, retries, err) =
        tokio::time::timeout(Duration::from_secs(5), run_err(model.as_ref()))
            .await
            .expect("ends at the limit, long before the timeout");
    assert_too_large(&err, MAX_SSE_LINE_ENV, 16384);
    assert!(
        err.to_string().contains("line 3 of the answer stream"),
        "{err}"
    );
    assert!(retries.is_empty(), "not retried: {retries:?}");
    assert_eq!(mock.request_count(), 1);
    assert_eq!(assemble(&chunks).text, "Hi", "what came before is kept");
}

#[tokio::test]
async fn an_answer_over_the_limit_ends_the_generation() {
    let mock = MockLlm::start().await;
    let mut body = String::new();
    for _ in 0..100 {
        body.push_str(&o::delta(json!({"content": "x".repeat(100)})));
    }
    body.push_str(&o::finish("stop"));
    body.push_str(&o::done());
    mock.push(Reply::sse().body(body));
    let model = openai_with(&mock, &[(MAX_ANSWER_ENV, "5000")]);
    let (chunks, retries, err) = run_err(model.as_ref()).await;
    assert_too_large(&err, MAX_ANSWER_ENV, 5000);
    assert!(retries.is_empty());
    let text = assemble(&chunks).text;
    assert!(text.len() <= 5000, "{}", text.len());
}

#[tokio::test]
async fn tool_arguments_count_toward_the_answer_limit() {
    let mock = MockLlm::start().await;
    let big = "z".repeat(3000);
    mock.push(a::tool_reply("t1", "writeTextFile", &json!({"path": big})));
    let model = provider(
        ProviderName::Anthropic,
        mock.url(),
        "claude-test",
        &[("ANTHROPIC_API_KEY", KEY), (MAX_ANSWER_ENV, "2000")],
    );
    let (_, _, err) = run_err(model.as_ref()).await;
    assert_too_large(&err, MAX_ANSWER_ENV, 2000);

    let mock = MockLlm::start().await;
    mock.push(g::tool_reply("writeTextFile", &json!({"path": big})));
    let model = provider(
        ProviderName::Google,
        mock.url(),
        "gemini-test",
        &[
            ("GOOGLE_GENERATIVE_AI_API_KEY", KEY),
            (MAX_ANSWER_ENV, "2000"),
        ],
    );
    let (_, _, err) = run_err(model.as_ref()).await;
    assert_too_large(&err, MAX_ANSWER_ENV, 2000);
}

#[tokio::test]
async fn answers_within_the_limits_are_untouched() {
    let mock = MockLlm::start().await;
    mock.push(o::text_reply("Hello there"));
    let model = openai_with(&mock, &[(MAX_SSE_LINE_ENV, "4096"), (MAX_ANSWER_ENV, "11")]);
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "Hello there");
}

#[test]
fn a_limit_that_is_not_a_byte_count_names_the_variable() {
    for value in ["lots", "0", "-5", "1.5"] {
        let err = build_provider(
            ProviderName::Openai,
            Some(&setting("http://127.0.0.1:9/v1".into())),
            "gpt-test",
            &env(&[("OPENAI_API_KEY", KEY), (MAX_ANSWER_ENV, value)]),
            std::path::Path::new("."),
        )
        .err()
        .unwrap_or_else(|| panic!("{value} accepted"));
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "{MAX_ANSWER_ENV}=\"{value}\" is not a number of bytes"
            )),
            "{message}"
        );
    }
}
