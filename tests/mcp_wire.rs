//! The MCP wire, traced: each JSON-RPC frame of a stdio server reported with its direction, time
//! and size, matched to its tool call, and byte for byte what crossed the pipe. Each server runs
//! under `sh -c 'tee sent | SERVER | tee received'`, so the test can compare the recorded frames
//! with the bytes the server really read and wrote.

mod support;

use std::path::Path;
use std::time::Duration;

use perstack::sandbox::Sandbox;
use perstack::skills::mcp::wire::{Direction, WireFrame};
use perstack::skills::{SkillEventKind, SkillManagerOptions};
use serde_json::{Value, json};
use support::mock_llm::{MockLlm, openai};
use support::*;

fn traced(trace: bool) -> SkillManagerOptions {
    let mut options = SkillManagerOptions::default();
    options.mcp.init_timeout = Duration::from_secs(60);
    options.mcp.trace = trace;
    // The tee files are written next to the server; no confinement to reason about here.
    options.sandbox = Sandbox::off();
    options
}

/// A stdio skill running `command` between two `tee`s into `dir/sent` and `dir/received`.
fn teed_skill(name: &str, dir: &Path, command: &str) -> String {
    let script = format!(
        "tee {sent} | {command} | tee {received}",
        sent = dir.join("sent").display(),
        received = dir.join("received").display(),
    );
    format!(
        "[experts.t.skills.{name}]\ntype = \"mcpStdioSkill\"\ncommand = \"sh\"\n\
         args = [\"-c\", {script:?}]\n"
    )
}

fn frames_of(events: Vec<perstack::skills::SkillEvent>) -> Vec<WireFrame> {
    events
        .into_iter()
        .filter_map(|e| match e.kind {
            SkillEventKind::Frame(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

/// The frames of one direction, each ended by its newline, are exactly the bytes in `file`.
fn assert_exact(frames: &[WireFrame], direction: Direction, file: &Path) {
    let on_wire = std::fs::read(file).expect("tee file");
    let recorded: Vec<u8> = frames
        .iter()
        .filter(|f| f.direction == direction)
        .flat_map(|f| {
            assert_eq!(f.bytes, f.frame.len() as u64, "size of {}", f.frame);
            let mut bytes = f.frame.clone().into_bytes();
            bytes.push(b'\n');
            bytes
        })
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&recorded),
        String::from_utf8_lossy(&on_wire),
        "{direction:?} frames differ from the bytes on the wire"
    );
}

/// The frames of `call`: request, at least one progress notification, then the response, in
/// time order.
fn assert_call_exchange(frames: &[WireFrame], call: &str) {
    let of_call: Vec<&WireFrame> = frames
        .iter()
        .filter(|f| f.tool_call_id.as_deref() == Some(call))
        .collect();
    let shape: Vec<(Direction, Option<&str>)> = of_call
        .iter()
        .map(|f| (f.direction, f.method.as_deref()))
        .collect();
    assert!(of_call.len() >= 3, "{shape:?}");
    assert_eq!(shape[0], (Direction::Sent, Some("tools/call")), "{shape:?}");
    assert_eq!(
        shape[1],
        (Direction::Received, Some("notifications/progress")),
        "{shape:?}"
    );
    assert_eq!(
        shape.last().copied(),
        Some((Direction::Received, Some("tools/call"))),
        "the response comes last and names the request's method: {shape:?}"
    );
    let request: Value = serde_json::from_str(&of_call[0].frame).expect("request is JSON");
    let response: Value = serde_json::from_str(&of_call[of_call.len() - 1].frame).expect("JSON");
    assert_eq!(request["id"], response["id"]);
    let token = &request["params"]["_meta"]["progressToken"];
    assert!(!token.is_null(), "the request carries a progressToken");
    let progress: Value = serde_json::from_str(&of_call[1].frame).expect("JSON");
    assert_eq!(&progress["params"]["progressToken"], token);
    assert!(
        of_call.windows(2).all(|w| w[0].at_us <= w[1].at_us),
        "timestamps in order"
    );
    assert!(
        of_call[0].at_us > 1_600_000_000_000_000,
        "epoch microseconds"
    );
}

/// The handshake and listing belong to no call.
fn assert_handshake(frames: &[WireFrame]) {
    let unowned: Vec<(Direction, Option<&str>)> = frames
        .iter()
        .filter(|f| f.tool_call_id.is_none())
        .map(|f| (f.direction, f.method.as_deref()))
        .collect();
    for expected in [
        (Direction::Sent, Some("initialize")),
        (Direction::Received, Some("initialize")),
        (Direction::Sent, Some("notifications/initialized")),
        (Direction::Sent, Some("tools/list")),
        (Direction::Received, Some("tools/list")),
    ] {
        assert!(unowned.contains(&expected), "{expected:?} in {unowned:?}");
    }
}

#[tokio::test]
async fn the_test_server_wire_shows_request_progress_and_response_exactly() {
    let wire = tempfile::tempdir().expect("temp dir");
    let server = test_server().display().to_string();
    let skill = teed_skill("test", wire.path(), &server);
    let mut s = start_with(&expert(&skill), &env_with(&[]), traced(true))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = s
        .manager
        .call_as(Some("call-1"), "sleep", json!({"ms": 40}))
        .await;
    assert!(!out.is_error, "{out:?}");
    let untraced = s.manager.call("echo", json!({"text": "no id"})).await;
    assert!(!untraced.is_error, "{untraced:?}");
    s.manager.shutdown().await;
    let frames = frames_of(drain(&mut s.events));
    assert_handshake(&frames);
    assert_call_exchange(&frames, "call-1");
    assert!(
        frames
            .iter()
            .any(|f| f.frame.contains("no id") && f.tool_call_id.is_none()),
        "a call without an id is recorded but belongs to none"
    );
    assert_exact(&frames, Direction::Sent, &wire.path().join("sent"));
    assert_exact(&frames, Direction::Received, &wire.path().join("received"));
}

#[tokio::test]
async fn server_everything_long_running_operation_shows_its_progress() {
    ensure_third_party_servers();
    let script = third_party_dir()
        .join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(script.is_file(), "{} is missing", script.display());
    let wire = tempfile::tempdir().expect("temp dir");
    let command = format!("node {} stdio", script.display());
    let skill = teed_skill("everything", wire.path(), &command);
    let mut s = start_with(&expert(&skill), &env_with(&[]), traced(true))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = s
        .manager
        .call_as(
            Some("call-long"),
            "trigger-long-running-operation",
            json!({"duration": 0.3, "steps": 3}),
        )
        .await;
    assert!(!out.is_error, "{out:?}");
    assert!(out.joined_text().contains("completed"), "{out:?}");
    s.manager.shutdown().await;
    let frames = frames_of(drain(&mut s.events));
    assert_handshake(&frames);
    assert_call_exchange(&frames, "call-long");
    let progress = frames
        .iter()
        .filter(|f| {
            f.tool_call_id.as_deref() == Some("call-long")
                && f.method.as_deref() == Some("notifications/progress")
        })
        .count();
    assert_eq!(progress, 3, "one notification a step");
    assert_exact(&frames, Direction::Sent, &wire.path().join("sent"));
    assert_exact(&frames, Direction::Received, &wire.path().join("received"));
}

#[tokio::test]
async fn untraced_skills_report_no_frames() {
    let skill = server_skill("test", &[], "");
    let mut s = start_with(&expert(&skill), &env_with(&[]), traced(false))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = s
        .manager
        .call_as(Some("call-1"), "sleep", json!({"ms": 10}))
        .await;
    assert!(!out.is_error, "{out:?}");
    s.manager.shutdown().await;
    let events = drain(&mut s.events);
    assert!(!events.is_empty(), "the skill reported its start");
    assert!(frames_of(events).is_empty());
}

/// `perstack run` writes `mcpFrame` events only with `--trace-mcp`, each naming its call.
#[tokio::test]
async fn headless_jsonl_has_frames_only_with_trace_mcp() {
    let server = test_server();
    let experts = format!(
        "[experts.solo]\ninstruction = \"Use the tools.\"\n\
         [experts.solo.skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\n\
         command = \"npx\"\npackageName = \"@perstack/base\"\n\
         [experts.solo.skills.tester]\ntype = \"mcpStdioSkill\"\ncommand = {:?}\nargs = []\n",
        server.display().to_string()
    );
    for trace in [false, true] {
        let mock = MockLlm::start().await;
        mock.push(openai::tools_reply(&[(
            "c1",
            "echo",
            json!({"text": "traced"}),
        )]));
        mock.push(openai::text_reply("Done."));
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "model = \"gpt-4.1\"\n[provider]\nproviderName = \"openai\"\n\
             [provider.setting]\nbaseUrl = \"{}/v1\"\n\n{experts}",
            mock.url()
        );
        std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"));
        command.args(["run", "solo", "Echo something"]);
        if trace {
            command.arg("--trace-mcp");
        }
        let output = command
            .current_dir(dir.path())
            .env("OPENAI_API_KEY", "sk-test-key")
            .kill_on_drop(true)
            .output()
            .await
            .expect("binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let events: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSONL"))
            .collect();
        let frames: Vec<&Value> = events.iter().filter(|e| e["type"] == "mcpFrame").collect();
        if !trace {
            assert!(frames.is_empty(), "no frames without --trace-mcp");
            continue;
        }
        let of_call: Vec<&&Value> = frames.iter().filter(|f| f["toolCallId"] == "c1").collect();
        assert_eq!(of_call.len(), 2, "request and response of c1: {frames:?}");
        assert_eq!(of_call[0]["direction"], "sent");
        assert_eq!(of_call[1]["direction"], "received");
        for frame in &frames {
            let text = frame["frame"].as_str().expect("frame text");
            assert_eq!(frame["bytes"], text.len() as u64);
            assert_eq!(frame["skillName"], "tester");
        }
        assert!(
            frames.iter().any(|f| f["method"] == "initialize"),
            "the handshake is traced too"
        );
    }
}
