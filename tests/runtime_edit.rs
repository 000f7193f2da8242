//! Editing the request of a run paused before its model call, headless: `edit` on stdin opens
//! $EDITOR (here a script), `edit FILE` takes the body from a file. What the mock server
//! receives is the edited body, byte for byte; an edit that is not valid for the provider is
//! refused and nothing is sent.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::editor_script;
use support::mock_llm::{MockLlm, openai};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BASE: &str = "[experts.\"solo\".skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\ncommand = \"npx\"\npackageName = \"@perstack/base\"\n";

fn project(mock: &MockLlm) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "model = \"gpt-4.1\"\n[provider]\nproviderName = \"openai\"\n[provider.setting]\nbaseUrl = \"{}/v1\"\n\n[experts.\"solo\"]\ninstruction = \"Do the task.\"\n{BASE}",
        mock.url()
    );
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    dir
}

/// Runs `perstack run solo Check --break before-llm`, answering each `paused` with the next
/// line of `controls`. Returns the events and the exit code.
async fn run_paused(dir: &Path, editor: &str, controls: &[&str]) -> (Vec<Value>, Option<i32>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["run", "solo", "Check", "--break", "before-llm"])
        .current_dir(dir)
        .env("OPENAI_API_KEY", "sk-test-key")
        .env("EDITOR", editor)
        .env_remove("VISUAL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut events = Vec::new();
    let mut controls = controls.iter();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            let event: Value = serde_json::from_str(&line).expect("JSON");
            // A pause, or a refused edit (the run stays paused): the next control.
            if event["type"] == "paused" || event["type"] == "requestEditRefused" {
                // An edit keeps the run paused; the controls up to the next one that
                // resumes are written together.
                for control in controls.by_ref() {
                    stdin
                        .write_all(format!("{control}\n").as_bytes())
                        .await
                        .expect("write control");
                    if !control.starts_with("edit") {
                        break;
                    }
                }
            }
            events.push(event);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the run ends");
    let status = child.wait().await.expect("exit");
    (events, status.code())
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn the_edited_body_is_what_the_server_receives() {
    let mock = MockLlm::start().await;
    mock.push(openai::text_reply("Done."));
    let dir = project(&mock);
    let editor = editor_script(dir.path(), "sed -i 's/\"Check\"/\"Check twice\"/' \"$1\"");
    let (events, code) = run_paused(dir.path(), &editor, &["edit", "continue"]).await;
    assert_eq!(code, Some(0), "{events:?}");
    let requests = of_type(&events, "llmRequest");
    assert_eq!(requests.len(), 2, "the original, then the edit");
    assert_ne!(requests[0]["request"]["edited"], true);
    assert_eq!(requests[1]["request"]["edited"], true);
    // The editor was given the body pretty-printed; the server got exactly what it saved.
    let original: Value =
        serde_json::from_str(requests[0]["request"]["body"].as_str().expect("body"))
            .expect("JSON body");
    let expected = serde_json::to_string_pretty(&original)
        .expect("pretty")
        .replace("\"Check\"", "\"Check twice\"");
    let received = mock.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(String::from_utf8_lossy(&received[0].body), expected);
    assert_eq!(
        requests[1]["request"]["body"].as_str(),
        Some(expected.as_str())
    );
    // The checkpoints say so too.
    let jobs = dir.path().join("perstack/jobs");
    let job = std::fs::read_dir(&jobs)
        .expect("jobs")
        .flatten()
        .next()
        .expect("a job");
    let last = std::fs::read_dir(job.path().join("checkpoints"))
        .expect("checkpoints")
        .flatten()
        .map(|f| {
            serde_json::from_slice::<Value>(&std::fs::read(f.path()).expect("read"))
                .expect("parses")
        })
        .find(|c| c["status"] == "completed")
        .expect("the completed checkpoint");
    assert_eq!(last["editedRequests"], serde_json::json!([1]));
}

#[tokio::test]
async fn an_invalid_edit_is_refused_and_nothing_is_sent() {
    let mock = MockLlm::start().await;
    mock.push(openai::text_reply("Done."));
    let dir = project(&mock);
    let editor = editor_script(
        dir.path(),
        "printf '{\"model\": \"gpt-4.1\",\\n  oops' > \"$1\"",
    );
    let missing = dir.path().join("missing-messages.json");
    std::fs::write(&missing, r#"{"model": "gpt-4.1"}"#).expect("write");
    let edit_file = format!("edit {}", missing.display());
    let (events, code) = run_paused(dir.path(), &editor, &["edit", &edit_file, "continue"]).await;
    assert_eq!(code, Some(0), "{events:?}");
    let refused: Vec<&str> = of_type(&events, "requestEditRefused")
        .iter()
        .filter_map(|e| e["error"].as_str())
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].contains("not valid JSON") && refused[0].contains("line 2"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains("`messages` as an array"),
        "{}",
        refused[1]
    );
    // Only the original request went out, unedited.
    let received = mock.requests();
    assert_eq!(received.len(), 1);
    assert!(String::from_utf8_lossy(&received[0].body).contains("Check"));
    assert!(
        of_type(&events, "llmRequest")
            .iter()
            .all(|e| e["request"]["edited"] != true)
    );
    assert_eq!(of_type(&events, "resumed").len(), 1);
}
