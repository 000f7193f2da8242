//! Runs of the real `perstack run` binary against a workspace and a configuration built to
//! hang it or leak from it: a FIFO where a file is expected, a tool call that never returns,
//! a password in the base URL.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, openai};

const SOLO: &str = "[experts.\"solo\"]\ninstruction = \"Do the task.\"\n";

/// A project whose model is the mock server, reached through `base_url` from the environment.
fn project(experts: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!("model = \"gpt-4.1\"\n[provider]\nproviderName = \"openai\"\n\n{experts}");
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    dir
}

fn perstack(dir: &Path, base_url: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"));
    command
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env("OPENAI_API_KEY", "sk-test-key")
        .env("OPENAI_BASE_URL", base_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn has_event(events: &[Value], kind: &str) -> bool {
    events.iter().any(|e| e["type"] == kind)
}

#[tokio::test]
async fn file_tools_refuse_a_fifo_and_the_run_goes_on() {
    let mock = MockLlm::start().await;
    mock.push(openai::tools_reply(&[
        ("c1", "appendTextFile", json!({"path": "fifo", "text": "x"})),
        ("c2", "writeTextFile", json!({"path": "fifo", "text": "x"})),
        (
            "c3",
            "editTextFile",
            json!({"path": "fifo", "oldText": "a", "newText": "b"}),
        ),
    ]));
    mock.push(openai::text_reply("The fifo is not a file."));
    let dir = project(SOLO);
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("fifo"))
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let child = perstack(
        dir.path(),
        &format!("{}/v1", mock.url()),
        &["solo", "Write to fifo"],
    )
    .spawn()
    .expect("spawn");
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the run does not wait on the FIFO")
        .expect("output");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body = mock.requests()[1].json();
    let results: Vec<&Value> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(results.len(), 3, "{body}");
    for result in results {
        let content = result["content"].to_string();
        assert!(content.contains("fifo is not a regular file"), "{content}");
    }
}

#[tokio::test]
async fn ctrl_c_abandons_a_tool_call_that_never_returns() {
    let server = support::test_server();
    let experts = format!(
        "{SOLO}[experts.\"solo\".skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\n\
         command = \"npx\"\npackageName = \"@perstack/base\"\n\
         [experts.\"solo\".skills.slow]\ntype = \"mcpStdioSkill\"\ncommand = {:?}\nargs = []\n",
        server.display().to_string()
    );
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply("c1", "sleep", &json!({"ms": 600_000})));
    let dir = project(&experts);
    let mut child = perstack(dir.path(), &format!("{}/v1", mock.url()), &["solo", "Wait"])
        .spawn()
        .expect("spawn");
    // Wait until the call is in flight: its callTools event is on stdout.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let in_flight = tokio::time::timeout(Duration::from_secs(20), async {
        use tokio::io::AsyncReadExt;
        let mut buffer = [0u8; 8192];
        loop {
            let n = stdout.read(&mut buffer).await.expect("read stdout");
            assert!(
                n > 0,
                "the run ended early: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buffer[..n]);
            if String::from_utf8_lossy(&seen).contains("\"type\":\"callTools\"") {
                break;
            }
        }
    })
    .await;
    assert!(in_flight.is_ok(), "{}", String::from_utf8_lossy(&seen));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = child.id().expect("pid") as i32;
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let rest = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest).await;
        rest
    });
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the process exits though the tool call never returns")
        .expect("status");
    assert_eq!(status.code(), Some(130));
    seen.extend(rest.await.expect("stdout"));
    let events = events(&seen);
    assert!(has_event(&events, "stopRunByCancel"), "{events:?}");
    let checkpoints = dir.path().join("perstack/jobs");
    let statuses: Vec<Value> = std::fs::read_dir(checkpoints)
        .expect("jobs")
        .flatten()
        .flat_map(|job| std::fs::read_dir(job.path().join("checkpoints")).expect("checkpoints"))
        .flatten()
        .map(|f| {
            serde_json::from_slice::<Value>(&std::fs::read(f.path()).expect("read")).expect("JSON")
        })
        .map(|c| c["status"].clone())
        .collect();
    assert!(statuses.contains(&json!("stoppedByCancel")), "{statuses:?}");
}

/// Every file under `dir`, as text.
fn all_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
            out.push((path.display().to_string(), text));
        }
    }
}

#[tokio::test]
async fn a_password_in_the_base_url_is_not_written_out() {
    let mock = MockLlm::start().await;
    mock.push(openai::text_reply("Hello."));
    let dir = project(SOLO);
    let base = mock.url().replacen("http://", "http://user:SECRET-PW@", 1) + "/v1";
    let output = perstack(dir.path(), &base, &["solo", "Say hello"])
        .output()
        .await
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The server still got the credentials (as basic auth).
    assert!(mock.requests()[0].header("authorization").is_some());
    let events = events(&output.stdout);
    let request = events
        .iter()
        .find(|e| e["type"] == "llmRequest")
        .expect("llmRequest event");
    assert_eq!(
        request["request"]["url"],
        format!(
            "http://[redacted]@{}/v1/chat/completions",
            mock.url().trim_start_matches("http://")
        )
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stdout.contains("SECRET-PW") && !stderr.contains("SECRET-PW"));
    let mut files = Vec::new();
    all_files(&dir.path().join("perstack"), &mut files);
    assert!(!files.is_empty());
    for (path, text) in files {
        assert!(!text.contains("SECRET-PW"), "{path} holds the password");
    }
}
