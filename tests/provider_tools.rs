//! `providerTools`, `providerToolOptions` and `providerSkills`: how a Perstack file declares
//! them, and the exact request body (and headers) each provider then sends.

mod support;

use std::path::Path;
use std::sync::Arc;

use perstack::definition::{ProviderName, ProviderSetting, parse_str};
use perstack::llm::provider_tools::ProviderTool;
use perstack::llm::{LanguageModel, LlmError, Request, build_provider};
use serde_json::{Value, json};
use support::llm_cases::{env, request};

/// Every provider-tool field Perstack has, on one Expert; the options table holds each option.
const EVERY_FIELD: &str = r#"
model = "claude-sonnet-4-5"
[provider]
providerName = "anthropic"

[experts."researcher"]
instruction = "Find and summarise."
providerTools = ["webSearch", "webFetch", "codeExecution"]
providerSkills = [
  { type = "builtin", skillId = "pdf" },
  { type = "custom", name = "house-style", definition = "Write plainly." },
]
[experts."researcher".providerToolOptions]
webSearch = { maxUses = 3, allowedDomains = ["docs.rs", "rust-lang.org"] }
webFetch = { maxUses = 2 }
"#;

fn with_tools(tools: Vec<ProviderTool>) -> Request {
    Request {
        provider_tools: tools,
        ..request()
    }
}

fn tool(name: &str, options: Value) -> ProviderTool {
    ProviderTool {
        name: name.into(),
        options: options.as_object().cloned().unwrap_or_default(),
    }
}

fn model(name: ProviderName, model: &str, pairs: &[(&str, &str)]) -> Arc<dyn LanguageModel> {
    let setting = ProviderSetting {
        base_url: Some("http://127.0.0.1:9/v1".into()),
        ..Default::default()
    };
    build_provider(name, Some(&setting), model, &env(pairs), Path::new(".")).expect("builds")
}

/// The body and beta header as pretty JSON, the form the snapshots hold.
fn pretty_body(model: &dyn LanguageModel, req: &Request) -> String {
    serde_json::to_string_pretty(&body_and_beta(model, req)).expect("json")
}

fn body_and_beta(model: &dyn LanguageModel, req: &Request) -> Value {
    let prepared = model.prepare(req).expect("prepare");
    let body: Value = serde_json::from_slice(prepared.body()).expect("json body");
    json!({"anthropic-beta": prepared.header("anthropic-beta"), "body": body})
}

#[test]
fn a_perstack_file_with_every_field_loads_and_reaches_the_request() {
    let (config, diagnostics) = parse_str(EVERY_FIELD, Path::new("perstack.toml")).expect("loads");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let expert = &config.experts["researcher"];
    let tools = ProviderTool::of_expert(expert);
    assert_eq!(tools.len(), 3);
    assert_eq!(tools[0].options["maxUses"], json!(3));
    let req = Request {
        provider_tools: tools,
        provider_skills: expert.provider_skills.clone().unwrap_or_default(),
        ..request()
    };
    let anthropic = model(
        ProviderName::Anthropic,
        "claude-sonnet-4-5",
        &[("ANTHROPIC_API_KEY", "k")],
    );
    insta::assert_snapshot!(
        "anthropic_every_field",
        pretty_body(anthropic.as_ref(), &req)
    );
}

#[test]
fn a_tool_the_provider_does_not_offer_is_an_error_at_its_line() {
    let source = EVERY_FIELD.replace("\"anthropic\"", "\"google\"").replace(
        "model = \"claude-sonnet-4-5\"",
        "model = \"gemini-2.5-flash\"",
    );
    let diagnostics = parse_str(&source, Path::new("perstack.toml")).expect_err("refused");
    let unknown: Vec<_> = diagnostics
        .iter()
        .filter(|d| d.code == "unknown-provider-tool")
        .collect();
    assert_eq!(unknown.len(), 2, "{diagnostics:?}");
    let first = unknown[0];
    let at = first.location.as_ref().expect("located");
    assert_eq!((at.line, at.column), (8, 18), "{first:?}");
    assert!(first.message.contains("\"webSearch\""), "{}", first.message);
    assert!(
        first
            .help
            .as_deref()
            .unwrap_or_default()
            .contains("\"googleSearch\""),
        "{first:?}"
    );
    // codeExecution is Google's too: not reported.
    assert!(unknown.iter().all(|d| !d.message.contains("codeExecution")));

    let bedrock = EVERY_FIELD.replace("\"anthropic\"", "\"amazon-bedrock\"");
    let diagnostics = parse_str(&bedrock, Path::new("perstack.toml")).expect_err("refused");
    assert!(
        diagnostics
            .iter()
            .any(|d| d.help.as_deref() == Some("amazon-bedrock runs no provider tools"))
    );
}

#[test]
fn bad_provider_skills_are_reported() {
    let source = EVERY_FIELD.replace("skillId = \"pdf\"", "skillId = \"pfd\"");
    let diagnostics = parse_str(&source, Path::new("perstack.toml")).expect_err("refused");
    let bad = diagnostics
        .iter()
        .find(|d| d.code == "unknown-provider-skill")
        .expect("reported");
    assert!(
        bad.help.as_deref().unwrap_or_default().contains("\"docx\""),
        "{bad:?}"
    );
}

#[test]
fn anthropic_body_per_tool() {
    let anthropic = model(
        ProviderName::Anthropic,
        "claude-sonnet-4-5",
        &[("ANTHROPIC_API_KEY", "k")],
    );
    for (name, options) in [
        (
            "webSearch",
            json!({"maxUses": 5, "allowedDomains": ["example.com"]}),
        ),
        (
            "webFetch",
            json!({"maxUses": 1, "allowedDomains": ["docs.rs"]}),
        ),
        ("codeExecution", json!({})),
    ] {
        let req = with_tools(vec![tool(name, options)]);
        insta::assert_snapshot!(
            format!("anthropic_{name}"),
            pretty_body(anthropic.as_ref(), &req)
        );
    }
}

#[test]
fn google_body_per_tool() {
    let google = model(
        ProviderName::Google,
        "gemini-2.5-flash",
        &[("GOOGLE_GENERATIVE_AI_API_KEY", "k")],
    );
    for (name, options) in [
        ("googleSearch", json!({})),
        ("codeExecution", json!({})),
        ("urlContext", json!({})),
        (
            "fileSearch",
            json!({"vectorStoreIds": ["fileSearchStores/manuals"], "maxNumResults": 4}),
        ),
        ("googleMaps", json!({})),
    ] {
        let req = with_tools(vec![tool(name, options)]);
        insta::assert_snapshot!(format!("google_{name}"), pretty_body(google.as_ref(), &req));
    }
}

#[test]
fn vertex_bodies_follow_the_model_family() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key.json");
    std::fs::write(&key, include_str!("fixtures/vertex/service-account.json")).expect("write");
    let pairs = [(
        "GOOGLE_APPLICATION_CREDENTIALS",
        key.to_str().expect("utf8"),
    )];
    let claude = model(
        ProviderName::GoogleVertex,
        "claude-sonnet-4-5@20250929",
        &pairs,
    );
    let req = with_tools(vec![
        tool("webSearch", json!({"maxUses": 2})),
        tool("codeExecution", json!({})),
    ]);
    insta::assert_snapshot!("vertex_claude_tools", pretty_body(claude.as_ref(), &req));
    let gemini = model(ProviderName::GoogleVertex, "gemini-2.5-pro", &pairs);
    let req = with_tools(vec![
        tool("googleSearch", json!({})),
        tool("urlContext", json!({})),
    ]);
    insta::assert_snapshot!("vertex_gemini_tools", pretty_body(gemini.as_ref(), &req));
}

#[test]
fn openai_body_per_tool_goes_to_the_responses_api() {
    let openai = model(ProviderName::Openai, "gpt-4.1", &[("OPENAI_API_KEY", "k")]);
    let cases = [
        ("webSearch", json!({})),
        (
            "fileSearch",
            json!({"vectorStoreIds": ["vs_68a1"], "maxNumResults": 4}),
        ),
        ("codeInterpreter", json!({})),
        ("imageGeneration", json!({})),
    ];
    for (name, options) in cases {
        let prepared = openai
            .prepare(&with_tools(vec![tool(name, options)]))
            .expect("prepares");
        assert_eq!(prepared.url, "http://127.0.0.1:9/v1/responses");
        let body: Value = serde_json::from_slice(prepared.body()).expect("json body");
        insta::assert_snapshot!(
            format!("openai_{name}"),
            serde_json::to_string_pretty(&body).expect("json")
        );
    }
    // Without provider tools OpenAI keeps Chat Completions.
    let plain = openai.prepare(&request()).expect("prepares");
    assert_eq!(plain.url, "http://127.0.0.1:9/v1/chat/completions");
}

#[test]
fn an_openai_compatible_provider_refuses_provider_tools_instead_of_dropping_them() {
    let deepseek = model(
        ProviderName::Deepseek,
        "deepseek-chat",
        &[("DEEPSEEK_API_KEY", "k")],
    );
    let err = deepseek
        .prepare(&with_tools(vec![tool("webSearch", json!({}))]))
        .expect_err("refused");
    assert!(
        matches!(&err, LlmError::Config { message, .. } if message.contains("Responses API")),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_side_web_search_streams_as_provider_tool_chunks_and_is_not_run_here() {
    use perstack::llm::StreamChunk;
    use support::mock_llm::{MockLlm, Reply, anthropic as a};

    let mock = MockLlm::start().await;
    let results = json!([{"type": "web_search_result", "url": "https://docs.rs/tokio",
        "title": "tokio - Rust", "encrypted_content": "EqQBCioIAhgB", "page_age": null}]);
    let stream = a::message_start(40)
        + &a::event(
            json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {}}}),
        )
        + &a::event(json!({"type": "content_block_delta", "index": 0, "delta":
            {"type": "input_json_delta", "partial_json": "{\"query\": \"tok"}}))
        + &a::event(json!({"type": "content_block_delta", "index": 0, "delta":
            {"type": "input_json_delta", "partial_json": "io docs\"}"}}))
        + &a::event(json!({"type": "content_block_stop", "index": 0}))
        + &a::event(
            json!({"type": "content_block_start", "index": 1, "content_block":
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": results}}),
        )
        + &a::event(json!({"type": "content_block_stop", "index": 1}))
        + &a::text_block(2, &["Tokio is documented on docs.rs."])
        + &a::message_end("end_turn", 12);
    mock.push(Reply::sse().body(stream));
    let anthropic = build_provider(
        ProviderName::Anthropic,
        Some(&ProviderSetting {
            base_url: Some(format!("{}/v1", mock.url())),
            ..Default::default()
        }),
        "claude-sonnet-4-5",
        &env(&[("ANTHROPIC_API_KEY", "k")]),
        Path::new("."),
    )
    .expect("builds");
    let req = with_tools(vec![tool("webSearch", json!({"maxUses": 1}))]);
    let (chunks, _, err) =
        support::llm_cases::run_with(anthropic.as_ref(), &req, &support::llm_cases::fast_policy())
            .await;
    assert!(err.is_none(), "{err:?}");
    assert!(chunks.contains(&StreamChunk::ProviderToolCall {
        id: "srvtoolu_01".into(),
        name: "web_search".into(),
        args: json!({"query": "tokio docs"}),
    }));
    let response = support::llm_cases::assemble(&chunks);
    assert!(
        response.tool_calls.is_empty(),
        "run by the provider, not here: {:?}",
        response.tool_calls
    );
    assert_eq!(response.provider_tools.len(), 1);
    assert_eq!(
        response.provider_tools[0].result,
        Some(
            json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": results})
        )
    );
    assert_eq!(response.text, "Tokio is documented on docs.rs.");
    let sent = &mock.requests()[0];
    assert_eq!(
        sent.json()["tools"][1],
        json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 1})
    );
}

/// A project whose one Expert has `providerTools` on `provider`, answered by `mock` at
/// `base_url`, with one skill tool (`healthCheck`) beside them.
fn provider_tool_project(
    provider: &str,
    model: &str,
    base_url: &str,
    tools: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        r#"model = "{model}"
reasoningBudget = "none"
[provider]
providerName = "{provider}"
[provider.setting]
baseUrl = "{base_url}"

[experts."researcher"]
instruction = "Find out and answer."
providerTools = [{tools}]
[experts."researcher".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
pick = ["healthCheck"]
"#
    );
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    dir
}

/// `perstack run researcher` in `dir` with `key` set: its events, after a clean exit.
async fn run_researcher(dir: &Path, key: (&str, &str)) -> Vec<Value> {
    run_perstack(dir, &["run", "researcher", "What is new?"], key).await
}

/// `perstack <args>` in `dir` with `key` set: its events, after a clean exit.
async fn run_perstack(dir: &Path, args: &[&str], key: (&str, &str)) -> Vec<Value> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(args)
        .current_dir(dir)
        .env(key.0, key.1)
        .kill_on_drop(true)
        .output()
        .await
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event a line"))
        .collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// The names of the tools called here (not by the provider).
fn local_calls(events: &[Value]) -> Vec<Value> {
    of_type(events, "callTools")
        .iter()
        .flat_map(|e| e["toolCalls"].as_array().cloned().unwrap_or_default())
        .map(|c| c["toolName"].clone())
        .collect()
}

/// The `providerToolPart`s of the completed run's checkpoint.
fn checkpoint_provider_parts(events: &[Value]) -> Vec<Value> {
    let done = of_type(events, "completeRun");
    let done = done.first().expect("completed");
    done["checkpoint"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["contents"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == "providerToolPart")
        .collect()
}

/// The whole road of a server-side web search: streamed by the mock in Anthropic's own shape,
/// it is a `providerToolCall` event of `perstack run`, a `providerToolPart` of the checkpoint,
/// a call marked "run by the provider" in the Tool calls pane, and it goes back verbatim in
/// the next request, never run here.
#[tokio::test]
async fn a_web_search_run_keeps_the_call_in_events_checkpoint_pane_and_the_next_request() {
    use support::mock_llm::{MockLlm, Reply, anthropic as a};

    let mock = MockLlm::start().await;
    let results = json!([{"type": "web_search_result", "url": "https://blog.rust-lang.org/",
        "title": "Rust Blog", "encrypted_content": "EqQBCioIAhgB", "page_age": null}]);
    let result_block =
        json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": results});
    let first = a::message_start(40)
        + &a::event(
            json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {}}}),
        )
        + &a::event(json!({"type": "content_block_delta", "index": 0, "delta":
            {"type": "input_json_delta", "partial_json": "{\"query\": \"rust release\"}"}}))
        + &a::event(json!({"type": "content_block_stop", "index": 0}))
        + &a::event(
            json!({"type": "content_block_start", "index": 1, "content_block": result_block}),
        )
        + &a::event(json!({"type": "content_block_stop", "index": 1}))
        + &a::text_block(2, &["The Rust blog has the news."])
        + &a::tool_block(3, "toolu_02", "healthCheck", &["{}"])
        + &a::message_end("tool_use", 20);
    mock.push(Reply::sse().body(first));
    mock.push(a::text_reply("Rust 1.90 is out."));
    let project = provider_tool_project(
        "anthropic",
        "claude-sonnet-4-5",
        &format!("{}/v1", mock.url()),
        "\"webSearch\"",
    );
    let events = run_researcher(project.path(), ("ANTHROPIC_API_KEY", "sk-ant-test")).await;

    // Events: the call and its result, under the provider's name; no local call of it.
    let provider_calls = of_type(&events, "providerToolCall");
    assert_eq!(provider_calls.len(), 1, "{events:?}");
    let event = provider_calls[0];
    assert_eq!(event["toolCall"]["skillName"], "anthropic");
    assert_eq!(event["toolCall"]["toolName"], "web_search");
    assert_eq!(event["toolCall"]["args"], json!({"query": "rust release"}));
    assert_eq!(
        event["toolResult"]["result"]["contents"][0]["text"],
        "Rust Blog — https://blog.rust-lang.org/"
    );
    assert_eq!(event["rawResult"], result_block);
    assert_eq!(
        local_calls(&events),
        vec![json!("healthCheck")],
        "only the skill's tool ran here"
    );

    // Checkpoint: the expert message keeps the part with the result as sent.
    let parts = checkpoint_provider_parts(&events);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let part = &parts[0];
    assert_eq!(part["toolCallId"], "srvtoolu_01");
    assert_eq!(part["result"], result_block);

    // The next request sends the server tool use and its result back verbatim, in order.
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let second = requests[1].json();
    let assistant = second["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["role"] == "assistant")
        .expect("the answer goes back")
        .clone();
    assert_eq!(
        assistant["content"],
        json!([
            {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search",
             "input": {"query": "rust release"}},
            result_block,
            {"type": "text", "text": "The Rust blog has the news."},
            {"type": "tool_use", "id": "toolu_02", "name": "healthCheck", "input": {}},
        ])
    );

    // `perstack log --tools` reads it back from the store, marked as the provider's.
    let log = std::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["log", "--tools"])
        .current_dir(project.path())
        .output()
        .expect("perstack log runs");
    let log = String::from_utf8_lossy(&log.stdout);
    let line = log
        .lines()
        .find(|l| l.contains("providerToolCall"))
        .unwrap_or_else(|| panic!("no providerToolCall line: {log}"));
    assert!(
        line.contains(
            "anthropic/web_search({\"query\":\"rust release\"}) run by the provider → Rust Blog — https://blog.rust-lang.org/"
        ),
        "{line}"
    );

    // The Tool calls pane shows it beside the skill's call, marked as run by the provider.
    let screen = tool_calls_pane(&events);
    insta::assert_snapshot!("tool_calls_pane_with_a_provider_web_search", screen);
    assert!(
        screen.contains("anthropic/web_search run by the provider"),
        "{screen}"
    );
}

/// The Tool calls pane after `events`, with the first call expanded, as text.
fn tool_calls_pane(events: &[Value]) -> String {
    use perstack::runtime::event::RunEvent;
    use perstack::tui::app::{AppState, Msg};
    use perstack::tui::highlight::Highlighter;
    use perstack::tui::keymap::PaneId;
    use perstack::tui::panes::Ctx;
    use perstack::tui::theme::Theme;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    let (config, _) = parse_str(
        "[experts.researcher]\ninstruction = \"x\"\n",
        Path::new("perstack.toml"),
    )
    .expect("loads");
    let mut state = AppState::new(&config, "claude-sonnet-4-5".into());
    state.update(Msg::Resize {
        width: 80,
        height: 24,
    });
    for event in events {
        let event: RunEvent = serde_json::from_value(event.clone()).expect("a run event");
        state.update(Msg::Run(Box::new(event)));
    }
    state.focus = PaneId::ToolCalls;
    state.update(Msg::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Enter,
        crossterm::event::KeyModifiers::NONE,
    )));
    let theme = Theme::default();
    let highlighter = Highlighter::new(&theme.syntax);
    let ctx = Ctx {
        theme: &theme,
        highlighter: &highlighter,
    };
    let mut terminal = Terminal::new(TestBackend::new(72, 20)).expect("terminal");
    terminal
        .draw(|f| {
            let area = f.area();
            state.panes.draw(PaneId::ToolCalls, f, area, &state, &ctx)
        })
        .expect("draws");
    let buffer = terminal.backend().buffer();
    let mut screen = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        // The skill's call took however long it took: its timing is not part of the picture.
        let line = match line.find("healthCheck") {
            Some(at) => line[..at + "healthCheck".len()].to_string(),
            None => line,
        };
        screen.push_str(line.trim_end());
        screen.push('\n');
    }
    screen
}

/// Gemini's `codeExecution` parts and `googleSearch` grounding are provider tool calls too:
/// events, checkpoint and pane have them; the code and its result go back to Gemini as the
/// parts it sent; grounding, being answer metadata, does not.
#[tokio::test]
async fn gemini_code_execution_and_search_grounding_are_provider_tool_calls() {
    use support::mock_llm::{MockLlm, Reply, gemini as g};

    let mock = MockLlm::start().await;
    let code = json!({"language": "PYTHON", "code": "print(6 * 7)"});
    let ran = json!({"outcome": "OUTCOME_OK", "output": "42\n"});
    let grounding = json!({
        "webSearchQueries": ["rust 1.90 release"],
        "groundingChunks": [{"web": {"uri": "https://blog.rust-lang.org/", "title": "rust-lang.org"}}],
        "searchEntryPoint": {"renderedContent": "<div></div>"}
    });
    let first = g::parts(json!([{"executableCode": code}]), None)
        + &g::parts(json!([{"codeExecutionResult": ran}]), None)
        + &g::chunk(json!({"candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "It is 42; the blog has the release."},
                {"functionCall": {"name": "healthCheck", "args": {}}}]},
            "finishReason": "STOP", "index": 0, "groundingMetadata": grounding}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5}}));
    mock.push(Reply::sse().body(first));
    mock.push(g::text_reply("Done."));
    let project = provider_tool_project(
        "google",
        "gemini-2.5-flash",
        &format!("{}/v1beta", mock.url()),
        "\"codeExecution\", \"googleSearch\"",
    );
    let events = run_researcher(project.path(), ("GOOGLE_GENERATIVE_AI_API_KEY", "g-key")).await;

    let calls = of_type(&events, "providerToolCall");
    let names: Vec<&Value> = calls.iter().map(|e| &e["toolCall"]["toolName"]).collect();
    assert_eq!(names, vec!["codeExecution", "googleSearch"], "{events:?}");
    assert_eq!(calls[0]["toolCall"]["skillName"], "google");
    assert_eq!(calls[0]["toolCall"]["args"], code);
    assert_eq!(
        calls[0]["toolResult"]["result"]["contents"][0]["text"],
        "outcome: OUTCOME_OK\n42"
    );
    assert_eq!(
        calls[1]["toolCall"]["args"],
        json!({"queries": ["rust 1.90 release"]})
    );
    assert_eq!(
        calls[1]["toolResult"]["result"]["contents"][0]["text"],
        "searched: rust 1.90 release\nrust-lang.org — https://blog.rust-lang.org/"
    );
    assert_eq!(local_calls(&events), vec![json!("healthCheck")]);

    let parts = checkpoint_provider_parts(&events);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_eq!(parts[0]["result"], json!({"codeExecutionResult": ran}));
    assert_eq!(parts[1]["result"], json!({"groundingMetadata": grounding}));

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let second = requests[1].json();
    let model_turn = second["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .find(|c| c["role"] == "model")
        .expect("the answer goes back")
        .clone();
    assert_eq!(
        model_turn["parts"],
        json!([
            {"executableCode": code},
            {"codeExecutionResult": ran},
            {"text": "It is 42; the blog has the release."},
            {"functionCall": {"name": "healthCheck", "args": {}}},
        ])
    );

    let screen = tool_calls_pane(&events);
    assert!(
        screen.contains("google/codeExecution run by the provider"),
        "{screen}"
    );
    assert!(
        screen.contains("google/googleSearch run by the provider"),
        "{screen}"
    );
}

/// A custom Agent Skill is uploaded once (`POST /v1/skills`, multipart, skills beta), its id
/// goes in the container, the id is cached so the next run does not upload it again, and the
/// files the skill's code wrote are listed in the result a person reads.
#[tokio::test]
async fn a_custom_agent_skill_is_uploaded_once_and_its_files_are_listed() {
    use support::mock_llm::{MockLlm, Reply, anthropic as a};

    let mock = MockLlm::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        r#"model = "claude-sonnet-4-5"
reasoningBudget = "none"
[provider]
providerName = "anthropic"
[provider.setting]
baseUrl = "{}/v1"

[experts."researcher"]
instruction = "Write the report."
providerSkills = [{{ type = "custom", name = "house-style", definition = "Write plainly." }}]
[experts."researcher".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
pick = ["healthCheck"]
"#,
        mock.url()
    );
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    mock.push(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(
                json!({"type": "skill", "id": "skill_01HouseStyle", "display_title": "house-style",
            "latest_version": "1759178010641129", "source": "custom",
            "created_at": "2025-10-30T23:58:27Z", "updated_at": "2025-10-30T23:58:27Z"})
                .to_string(),
            ),
    );
    let result_block = json!({"type": "bash_code_execution_tool_result", "tool_use_id": "srvtoolu_9",
        "content": {"type": "bash_code_execution_result", "stdout": "wrote report.docx\n",
            "stderr": "", "return_code": 0,
            "content": [{"type": "bash_code_execution_output", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}]}});
    let answer = a::message_start(40)
        + &a::event(
            json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "server_tool_use", "id": "srvtoolu_9", "name": "bash_code_execution",
             "input": {"command": "python make_report.py"}}}),
        )
        + &a::event(json!({"type": "content_block_stop", "index": 0}))
        + &a::event(
            json!({"type": "content_block_start", "index": 1, "content_block": result_block}),
        )
        + &a::event(json!({"type": "content_block_stop", "index": 1}))
        + &a::text_block(2, &["The report is in report.docx."])
        + &a::message_end("end_turn", 20);
    mock.push(Reply::sse().body(answer.clone()));

    let events = run_researcher(dir.path(), ("ANTHROPIC_API_KEY", "sk-ant-test")).await;
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let upload = &requests[0];
    assert_eq!(
        (upload.method.as_str(), upload.path.as_str()),
        ("POST", "/v1/skills")
    );
    assert_eq!(upload.header("anthropic-beta"), Some("skills-2025-10-02"));
    assert_eq!(upload.header("x-api-key"), Some("sk-ant-test"));
    assert!(
        upload
            .header("content-type")
            .is_some_and(|c| c.starts_with("multipart/form-data; boundary=")),
        "{:?}",
        upload.header("content-type")
    );
    let form = String::from_utf8_lossy(&upload.body);
    assert!(form.contains("filename=\"house-style/SKILL.md\""), "{form}");
    assert!(form.contains("name: house-style\n"), "{form}");
    assert!(form.contains("Write plainly."), "{form}");
    let sent = requests[1].json();
    assert_eq!(
        sent["container"],
        json!({"skills": [{"type": "custom", "skill_id": "skill_01HouseStyle", "version": "latest"}]})
    );
    let betas = requests[1].header("anthropic-beta").unwrap_or_default();
    assert!(betas.contains("skills-2025-10-02"), "{betas}");

    let calls = of_type(&events, "providerToolCall");
    assert_eq!(calls.len(), 1, "{events:?}");
    assert_eq!(
        calls[0]["toolResult"]["result"]["contents"][0]["text"],
        "wrote report.docx\nreturn code 0\nfiles: file_011CNha8iCJcU1wXNR6q4V8w"
    );

    // The id is cached per definition: the next run uploads nothing.
    let cache = dir.path().join("perstack/provider-skills.json");
    let cached: Value =
        serde_json::from_slice(&std::fs::read(&cache).expect("cache written")).expect("json");
    assert_eq!(
        cached
            .as_object()
            .map(|m| m.values().cloned().collect::<Vec<_>>()),
        Some(vec![json!("skill_01HouseStyle")])
    );
    mock.push(Reply::sse().body(answer));
    run_researcher(dir.path(), ("ANTHROPIC_API_KEY", "sk-ant-test")).await;
    let requests = mock.requests();
    assert_eq!(requests.len(), 3, "no second upload");
    assert_eq!(requests[2].path, "/v1/messages");
    assert_eq!(
        requests[2].json()["container"]["skills"][0]["skill_id"],
        "skill_01HouseStyle"
    );
}

/// A recorded web search replays offline with the same call and result, and a fork from the
/// finished checkpoint sends the search back to the provider verbatim.
#[tokio::test]
async fn a_recorded_web_search_replays_and_a_fork_sends_it_back() {
    use support::mock_llm::{MockLlm, Reply, anthropic as a};

    let mock = MockLlm::start().await;
    let result_block = json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_05",
        "content": [{"type": "web_search_result", "url": "https://docs.rs/", "title": "Docs.rs",
            "encrypted_content": "Eq", "page_age": null}]});
    let server_use = json!({"type": "server_tool_use", "id": "srvtoolu_05", "name": "web_search",
        "input": {"query": "docs.rs"}});
    mock.push(Reply::sse().body(
        a::message_start(40)
            + &a::event(
                json!({"type": "content_block_start", "index": 0, "content_block": server_use}),
            )
            + &a::event(json!({"type": "content_block_stop", "index": 0}))
            + &a::event(
                json!({"type": "content_block_start", "index": 1, "content_block": result_block}),
            )
            + &a::event(json!({"type": "content_block_stop", "index": 1}))
            + &a::text_block(2, &["Docs are on docs.rs."])
            + &a::message_end("end_turn", 10),
    ));
    let project = provider_tool_project(
        "anthropic",
        "claude-sonnet-4-5",
        &format!("{}/v1", mock.url()),
        "\"webSearch\"",
    );
    let key = ("ANTHROPIC_API_KEY", "sk-ant-test");
    let recorded = run_perstack(
        project.path(),
        &[
            "run",
            "researcher",
            "Where are docs?",
            "--record",
            "rec.toml",
        ],
        key,
    )
    .await;
    let first = of_type(&recorded, "providerToolCall");
    assert_eq!(first.len(), 1);

    // Replayed offline: the same call and the same raw result.
    let replayed = run_perstack(
        project.path(),
        &[
            "run",
            "researcher",
            "Where are docs?",
            "--replay",
            "rec.toml",
        ],
        key,
    )
    .await;
    let again = of_type(&replayed, "providerToolCall");
    assert_eq!(again.len(), 1, "{replayed:?}");
    for key in ["id", "toolName", "args"] {
        assert_eq!(
            again[0]["toolCall"][key], first[0]["toolCall"][key],
            "{key}"
        );
    }
    // The replay provider answered, so the call is shown under its name.
    assert_eq!(again[0]["toolCall"]["skillName"], "replay");
    assert_eq!(again[0]["rawResult"], result_block);
    assert_eq!(mock.request_count(), 1, "the replay used no network");

    // Forked from the recorded run's last checkpoint with a follow-up question.
    let done = of_type(&recorded, "completeRun");
    let checkpoint = &done[0]["checkpoint"];
    let job = checkpoint["jobId"].as_str().expect("job id");
    let id = checkpoint["id"].as_str().expect("checkpoint id");
    mock.push(a::text_reply("Also on crates.io."));
    run_perstack(
        project.path(),
        &[
            "run",
            "researcher",
            "And crates?",
            "--continue-job",
            job,
            "--resume-from",
            id,
            "--fork",
        ],
        key,
    )
    .await;
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let body = requests[1].json();
    let assistant = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["role"] == "assistant")
        .expect("the earlier answer")
        .clone();
    assert_eq!(assistant["content"][0], server_use);
    assert_eq!(assistant["content"][1], result_block);
}
