mod support;

use std::sync::Arc;

use perstack::definition::{ProviderName, ProviderSetting};
use perstack::llm::replay::{Recorder, Replay};
use perstack::llm::{
    FinishReason, LanguageModel, LlmError, Request, Response, StreamChunk, build_provider, collect,
};
use serde_json::json;
use support::llm_cases::*;
use support::mock_llm::{MockLlm, Reply, anthropic as a, openai as o};

const SCRIPT: &str = r#"
[[responses]]
expert = "writer"
thinking = "The user wants a greeting in a file."
text = "Writing the file now."
toolCalls = [{ name = "writeTextFile", args = { path = "hello.txt", text = "Hello, world" } }]

[[responses]]
expert = "researcher"
text = "Facts."

[[responses]]
expert = "writer"
text = "Done: hello.txt holds the greeting."
usage = { input = 30, output = 8 }
"#;

fn req(expert: &str) -> Request {
    Request {
        expert_key: expert.into(),
        ..request()
    }
}

async fn answer(
    model: &dyn LanguageModel,
    expert: &str,
) -> Result<(Vec<StreamChunk>, Response), LlmError> {
    answer_at(model, expert, 0).await
}

/// The request of `expert`'s run after it has had `answered` answers (the replay provider
/// reads its place in the script from the conversation).
async fn answer_at(
    model: &dyn LanguageModel,
    expert: &str,
    answered: usize,
) -> Result<(Vec<StreamChunk>, Response), LlmError> {
    let mut request = req(expert);
    for n in 0..answered {
        request
            .messages
            .push(perstack::llm::Message::assistant_text(format!(
                "answer {n}"
            )));
        request
            .messages
            .push(perstack::llm::Message::user_text("go on"));
    }
    let prepared = model.prepare(&request)?;
    let (chunks, err) = drain(model.send(prepared).await?).await;
    if let Some(err) = err {
        return Err(err);
    }
    let response = assemble(&chunks);
    Ok((chunks, response))
}

fn write_script(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn script_replays_per_expert_in_order_and_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_script(&dir, "demo.toml", SCRIPT);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let model = Replay::from_file(&path, "replay-model").unwrap();
        let (chunks1, first) = answer(&model, "writer").await.unwrap();
        let (_, other) = answer(&model, "researcher").await.unwrap();
        let (_, second) = answer_at(&model, "writer", 1).await.unwrap();
        assert_eq!(first.thinking, "The user wants a greeting in a file.");
        assert_eq!(first.text, "Writing the file now.");
        assert_eq!(first.tool_calls[0].name, "writeTextFile");
        assert_eq!(first.tool_calls[0].id, "replay_0_0");
        assert_eq!(
            first.tool_calls[0].args,
            json!({"path": "hello.txt", "text": "Hello, world"})
        );
        assert_eq!(first.finish_reason, FinishReason::ToolUse);
        let text_deltas = chunks1
            .iter()
            .filter(|c| matches!(c, StreamChunk::TextDelta { .. }))
            .count();
        assert!(text_deltas > 1, "text streams in pieces");
        assert_eq!(other.text, "Facts.");
        assert_eq!(second.text, "Done: hello.txt holds the greeting.");
        assert_eq!(second.usage.input, 30);
        assert_eq!(second.finish_reason, FinishReason::Stop);

        let err = answer_at(&model, "writer", 2).await.expect_err("ran out");
        let text = err.to_string();
        assert!(
            text.contains("demo.toml")
                && text.contains("\"writer\"")
                && text.contains("response 3"),
            "{text}"
        );
        runs.push(chunks1);
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn json_scripts_work_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_script(
        &dir,
        "s.json",
        r#"{"responses": [{"expert": "e", "text": "from json", "toolCalls": [{"name": "t", "argsJson": "{\"x\": null}"}]}]}"#,
    );
    let model = Replay::from_file(&path, "m").unwrap();
    let (_, response) = answer(&model, "e").await.unwrap();
    assert_eq!(response.text, "from json");
    assert_eq!(response.tool_calls[0].args, json!({"x": null}));
}

#[tokio::test]
async fn prepare_shows_the_neutral_request_and_an_edited_body_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_script(&dir, "demo.toml", SCRIPT);
    let model = Replay::from_file(&path, "m").unwrap();
    let prepared = model.prepare(&req("writer")).unwrap();
    assert_eq!(prepared.url, format!("replay:{}", path.display()));
    let body: serde_json::Value = serde_json::from_slice(prepared.body()).unwrap();
    assert_eq!(body["expertKey"], "writer");
    assert_eq!(body["system"], "You are a test.");
    // A human edits the body to ask as the researcher.
    let edited = serde_json::to_vec(&json!({"expertKey": "researcher"})).unwrap();
    let response = collect(model.send(prepared.with_body(edited)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(response.text, "Facts.");
}

#[tokio::test]
async fn factory_resolves_the_script_relative_to_the_project() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    write_script(&dir, "assets/demo.toml", SCRIPT);
    let mut setting = ProviderSetting::default();
    setting.extra.insert(
        "script".into(),
        toml::Value::String("assets/demo.toml".into()),
    );
    let model = build_provider(
        ProviderName::Replay,
        Some(&setting),
        "m",
        &env(&[]),
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        answer(model.as_ref(), "researcher").await.unwrap().1.text,
        "Facts."
    );

    let err = build_provider(ProviderName::Replay, None, "m", &env(&[]), dir.path())
        .err()
        .expect("needs script");
    assert!(err.to_string().contains("script"), "{err}");
    setting
        .extra
        .insert("script".into(), toml::Value::String("missing.toml".into()));
    let err = build_provider(
        ProviderName::Replay,
        Some(&setting),
        "m",
        &env(&[]),
        dir.path(),
    )
    .err()
    .expect("missing file");
    assert!(err.to_string().contains("missing.toml"), "{err}");
}

#[tokio::test]
async fn recording_against_the_mock_replays_to_the_same_answers() {
    let mock = MockLlm::start().await;
    let thinking = a::event(
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
    ) + &a::event(
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Plan: write."}}),
    ) + &a::event(
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig-1"}}),
    ) + &a::event(json!({"type": "content_block_stop", "index": 0}));
    mock.push(Reply::sse().body(
        a::message_start(20)
            + &thinking
            + &a::text_block(1, &["Writing ", "ünïcode."])
            + &a::tool_block(
                2,
                "toolu_9",
                "writeTextFile",
                &[r#"{"path":"a.txt","#, r#""text":"hi","mode":null}"#],
            )
            + &a::message_end("tool_use", 7),
    ));
    mock.push(a::text_reply("All done."));
    let live = provider(
        ProviderName::Anthropic,
        format!("{}/v1", mock.url()),
        "claude-test",
        &[("ANTHROPIC_API_KEY", "k")],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recorded.toml");
    let recorder = Recorder::new(live, &path).unwrap();
    let (_, live1) = answer(&recorder, "writer").await.unwrap();
    let (_, live2) = answer(&recorder, "writer").await.unwrap();
    assert_eq!(
        live1.tool_calls[0].args,
        json!({"path": "a.txt", "text": "hi", "mode": null})
    );

    let replay = Replay::from_file(&path, "claude-test").unwrap();
    let (_, replayed1) = answer(&replay, "writer").await.unwrap();
    let (_, replayed2) = answer_at(&replay, "writer", 1).await.unwrap();
    assert_eq!(replayed1, live1);
    assert_eq!(replayed2, live2);
    assert_eq!(mock.request_count(), 2, "replay needs no network");
}

#[tokio::test]
async fn recording_appends_to_an_existing_file() {
    let mock = MockLlm::start().await;
    mock.push(o::text_reply("second"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_script(
        &dir,
        "rec.toml",
        "[[responses]]\nexpert = \"e\"\ntext = \"first\"\n",
    );
    let live: Arc<dyn LanguageModel> = provider(
        ProviderName::Ollama,
        format!("{}/v1", mock.url()),
        "llama",
        &[],
    );
    let recorder = Recorder::new(live, &path).unwrap();
    answer(&recorder, "e").await.unwrap();
    let replay = Replay::from_file(&path, "m").unwrap();
    assert_eq!(answer(&replay, "e").await.unwrap().1.text, "first");
    assert_eq!(answer_at(&replay, "e", 1).await.unwrap().1.text, "second");
}
