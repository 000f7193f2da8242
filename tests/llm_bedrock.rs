//! Amazon Bedrock ConverseStream against a local server that checks every SigV4 signature
//! with botocore and answers in AWS event-stream frames.

mod support;

use std::sync::Arc;

use perstack::definition::{ProviderName, ProviderSetting};
use perstack::llm::{FinishReason, LanguageModel, LlmError, StreamChunk, Usage, build_provider};
use serde_json::json;
use support::bedrock::{self as b, SigningServer};
use support::llm_cases::*;

const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn bedrock(
    env_pairs: &[(&str, &str)],
    setting: Option<ProviderSetting>,
) -> Result<Arc<dyn LanguageModel>, LlmError> {
    build_provider(
        ProviderName::AmazonBedrock,
        setting.as_ref(),
        MODEL,
        &env(env_pairs),
        std::path::Path::new("."),
    )
}

/// A client pointed at `server` through AWS_ENDPOINT_URL_BEDROCK_RUNTIME, with keys (and a
/// session token) from the standard variables.
fn client(server: &SigningServer) -> Arc<dyn LanguageModel> {
    let url = server.mock.url();
    bedrock(
        &[
            ("AWS_ACCESS_KEY_ID", b::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", b::SECRET_KEY),
            ("AWS_SESSION_TOKEN", b::SESSION_TOKEN),
            ("AWS_REGION", b::REGION),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &url),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ],
        None,
    )
    .expect("bedrock builds")
}

#[tokio::test]
async fn text_with_a_signature_botocore_reproduces() {
    if !b::botocore_available() {
        return;
    }
    let server = SigningServer::start(Some(b::SESSION_TOKEN)).await;
    server.push(b::stream_reply(&b::text_frames(&["Hel", "lo"])));
    let model = client(&server);
    let (chunks, response) = run_ok(model.as_ref()).await;
    assert_eq!(server.refusals.lock().unwrap().as_slice(), &[] as &[String]);
    assert_eq!(server.verified(), 1);
    assert_eq!(response.text, "Hello");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(chunks.contains(&StreamChunk::Usage(Usage {
        input: 20,
        output: 4,
        reasoning: 0,
        cached_input: 0
    })));

    let sent = &server.mock.requests()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.path,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    );
    assert_eq!(
        sent.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
    assert_eq!(sent.header("x-amz-security-token"), Some(b::SESSION_TOKEN));
    assert_eq!(
        sent.json(),
        json!({
            "messages": [{"role": "user", "content": [{"text": "Say hi"}]}],
            "system": [{"text": "You are a test."}],
            "inferenceConfig": {"maxTokens": 1000},
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "writeTextFile", "description": "Write a file",
                    "inputSchema": {"json": {"type": "object", "properties": {"path": {"type": "string"}}}}}}],
                "toolChoice": {"auto": {}},
            },
        })
    );
    // The request shown before sending carries no signature and no secret.
    let prepared = model.prepare(&request()).expect("prepare");
    assert_eq!(prepared.header("authorization"), None);
    assert!(
        !serde_json::to_string(&prepared)
            .expect("json")
            .contains(b::SECRET_KEY)
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_independent_check() {
    if !b::botocore_available() {
        return;
    }
    let server = SigningServer::start(None).await;
    let url = server.mock.url();
    let model = bedrock(
        &[
            ("AWS_ACCESS_KEY_ID", b::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
            ("AWS_REGION", b::REGION),
            ("AWS_ENDPOINT_URL", &url),
        ],
        None,
    )
    .expect("builds");
    let (_, _, err) = run_err(model.as_ref()).await;
    assert!(
        matches!(&err, LlmError::Http { status: 403, message, .. } if message.contains("botocore computes")),
        "{err}"
    );
    assert_eq!(server.verified(), 0);
}

#[tokio::test]
async fn tool_use_split_across_frames_and_network_chunks() {
    if !b::botocore_available() {
        return;
    }
    let server = SigningServer::start(Some(b::SESSION_TOKEN)).await;
    let frames = [
        b::event("messageStart", json!({"role": "assistant"})),
        b::event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Writing."}}),
        ),
        b::event("contentBlockStop", json!({"contentBlockIndex": 0})),
        b::event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_abc", "name": "writeTextFile"}}}),
        ),
        b::event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"pa"}}}),
        ),
        b::event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "th\": \"a.md\"}"}}}),
        ),
        b::event("contentBlockStop", json!({"contentBlockIndex": 1})),
        b::event("messageStop", json!({"stopReason": "tool_use"})),
        b::event(
            "metadata",
            json!({"usage": {"inputTokens": 5, "outputTokens": 7}}),
        ),
    ];
    // The bytes also reach the client cut mid-frame, 7 bytes at a time.
    let bytes: Vec<u8> = frames.concat();
    let mut reply = b::stream_reply(&[]);
    reply = reply.chunks_of(&bytes, 7, std::time::Duration::ZERO);
    server.push(reply);
    let (chunks, response) = run_ok(client(&server).as_ref()).await;
    assert_eq!(response.finish_reason, FinishReason::ToolUse);
    assert_eq!(response.text, "Writing.");
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].id, "tooluse_abc");
    assert_eq!(response.tool_calls[0].name, "writeTextFile");
    assert_eq!(response.tool_calls[0].args, json!({"path": "a.md"}));
    assert!(chunks.contains(&StreamChunk::ToolCallArgumentsDelta {
        index: 0,
        delta: "{\"pa".into()
    }));
}

#[tokio::test]
async fn throttling_is_retried_with_a_fresh_signature() {
    if !b::botocore_available() {
        return;
    }
    let policy = perstack::llm::retry::RetryPolicy {
        max_retries: 5,
        ..fast_policy()
    };
    let server = SigningServer::start(Some(b::SESSION_TOKEN)).await;
    let mut throttled = b::stream_reply(&[]);
    throttled.status = 429;
    server.push(
        throttled.body(r#"{"message":"Too many requests, please wait before trying again."}"#),
    );
    server.push(b::stream_reply(&[b::exception(
        "throttlingException",
        "Rate exceeded",
    )]));
    server.push(b::stream_reply(&b::text_frames(&["ok"])));
    let model = client(&server);
    let (chunks, retries, err) = run_with(model.as_ref(), &request(), &policy).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(
        matches!(retries[0].error, LlmError::Http { status: 429, .. }),
        "{}",
        retries[0].error
    );
    assert!(
        matches!(&retries[1].error, LlmError::Provider { kind, message, .. }
            if kind == "throttlingException" && message == "Rate exceeded"),
        "{}",
        retries[1].error
    );
    assert_eq!(assemble(&chunks).text, "ok");
    assert_eq!(server.verified(), 3);
}

#[tokio::test]
async fn a_malformed_frame_is_a_protocol_error() {
    if !b::botocore_available() {
        return;
    }
    let server = SigningServer::start(Some(b::SESSION_TOKEN)).await;
    let mut frames = b::text_frames(&["Hi"]);
    let broken = frames[1].len() - 6;
    frames[1][broken] ^= 0x20;
    server.push(b::stream_reply(&frames));
    let model = client(&server);
    let (_, _, err) = run_with(
        model.as_ref(),
        &request(),
        &perstack::llm::retry::RetryPolicy {
            max_retries: 0,
            ..fast_policy()
        },
    )
    .await;
    let err = err.expect("malformed frame fails");
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn region_and_credentials_come_from_settings_env_or_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        "[team]\naws_access_key_id = AKIDTEAM\naws_secret_access_key = t\n",
    )
    .expect("write");
    let config = dir.path().join("config");
    std::fs::write(&config, "[profile team]\nregion = ap-northeast-1\n").expect("write");
    let files = [
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().expect("utf8")),
        ("AWS_CONFIG_FILE", config.to_str().expect("utf8")),
        ("AWS_PROFILE", "team"),
    ];
    let model = bedrock(&files, None).expect("profile is enough");
    let prepared = model.prepare(&request()).expect("prepare");
    assert_eq!(
        prepared.url,
        "https://bedrock-runtime.ap-northeast-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    );

    let mut setting = ProviderSetting::default();
    setting
        .extra
        .insert("region".into(), toml::Value::String("us-west-2".into()));
    let model = bedrock(&files, Some(setting)).expect("setting region");
    assert!(
        model
            .prepare(&request())
            .expect("prepare")
            .url
            .starts_with("https://bedrock-runtime.us-west-2.")
    );

    let home = dir.path().join("empty-home");
    let err = bedrock(
        &[
            ("HOME", home.to_str().expect("utf8")),
            ("AWS_REGION", "us-east-1"),
        ],
        None,
    )
    .err()
    .expect("no credentials");
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    let err = bedrock(
        &[
            ("HOME", home.to_str().expect("utf8")),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
        ],
        None,
    )
    .err()
    .expect("no region");
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
}
