//! Crash safety: a real `perstack run` killed with SIGKILL at random moments leaves every
//! checkpoint loadable, and `--continue` finishes the run with the same conversation as a run
//! that was never interrupted.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, RecordedRequest, Reply, openai};

const FILES: usize = 6;

/// The answer depends only on the conversation so far, so a repeated request gets the same
/// answer: write FILES files one step each, then attemptCompletion, then the final text.
fn respond(request: &RecordedRequest) -> Reply {
    let body = request.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let results = messages.iter().filter(|m| m["role"] == "tool").count();
    let reply = if body.get("tools").is_none() {
        openai::text_reply("All files are written.")
    } else if results < FILES {
        openai::tool_reply(
            &format!("call{results}"),
            "writeTextFile",
            &json!({"path": format!("f{results}.txt"), "text": format!("file {results}")}),
        )
    } else {
        openai::tool_reply(&format!("call{results}"), "attemptCompletion", &json!({}))
    };
    reply.delay(Duration::from_millis(15))
}

fn project(mock: &MockLlm) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        r#"model = "gpt-4.1"
[provider]
providerName = "openai"
[provider.setting]
baseUrl = "{}/v1"
[experts."solo"]
instruction = "Write the files."
"#,
        mock.url()
    );
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    dir
}

fn command(dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"));
    command
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env("OPENAI_API_KEY", "sk-test")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

fn all_checkpoints(dir: &Path) -> Vec<Value> {
    let Ok(jobs) = std::fs::read_dir(dir.join("perstack/jobs")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for job in jobs.flatten() {
        let Ok(files) = std::fs::read_dir(job.path().join("checkpoints")) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // a temp file the kill interrupted: never read as a checkpoint
            }
            let bytes = std::fs::read(file.path()).expect("read checkpoint");
            let value: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("checkpoint {name} does not parse after a kill: {e}"));
            out.push(value);
        }
    }
    out
}

/// The conversation without ids, and with the time in the system prompt masked.
fn conversation(dir: &Path) -> Vec<Value> {
    let mut checkpoints = all_checkpoints(dir);
    checkpoints.retain(|c| c["status"] == "completed");
    assert_eq!(checkpoints.len(), 1, "one completed checkpoint");
    let mut messages = checkpoints[0]["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for message in &mut messages {
        strip(message);
    }
    messages
}

fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("id");
            for (key, v) in map.iter_mut() {
                if key == "text" {
                    if let Some(text) = v.as_str() {
                        let masked: Vec<String> = text
                            .lines()
                            .map(|l| {
                                if l.starts_with("Current time:")
                                    || l.starts_with("Working directory:")
                                {
                                    "<masked>".to_string()
                                } else {
                                    l.to_string()
                                }
                            })
                            .collect();
                        *v = Value::String(masked.join("\n"));
                    }
                } else {
                    strip(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

#[tokio::test]
async fn sigkill_at_random_moments_never_loses_a_checkpoint() {
    let mock = MockLlm::start().await;
    mock.set_responder(respond);

    let reference = project(&mock);
    let started = std::time::Instant::now();
    let status = command(reference.path(), &["solo", "Write the files"])
        .status()
        .await
        .expect("reference run");
    assert!(status.success());
    let full_run = started.elapsed();
    let expected = conversation(reference.path());
    assert_eq!(
        expected.len(),
        2 + 2 * (FILES + 1) + 1,
        "system, query, steps, answer"
    );

    fastrand::seed(7);
    for round in 0..20 {
        let dir = project(&mock);
        let mut child = command(dir.path(), &["solo", "Write the files"])
            .spawn()
            .expect("spawn");
        let delay = full_run.mul_f64(fastrand::f64() * 0.9);
        tokio::time::sleep(delay).await;
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;

        let stored = all_checkpoints(dir.path());
        let job_exists = dir.path().join("perstack/jobs").is_dir() && !stored.is_empty();
        let mut finished = stored.iter().any(|c| c["status"] == "completed");
        let steps: Vec<u64> = stored
            .iter()
            .filter_map(|c| c["stepNumber"].as_u64())
            .collect();
        eprintln!("round {round}: killed after {delay:?}; checkpoints at steps {steps:?}");
        while !finished {
            let args: &[&str] = if job_exists {
                &["solo", "--continue"]
            } else {
                &["solo", "Write the files"]
            };
            let output = command(dir.path(), args).output().await.expect("continue");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success(),
                "round {round} (killed after {delay:?}): continuing failed: {stderr}"
            );
            finished = true;
        }
        assert_eq!(
            conversation(dir.path()),
            expected,
            "round {round} (killed after {delay:?}) ends with a different conversation"
        );
        for i in 0..FILES {
            assert_eq!(
                std::fs::read_to_string(dir.path().join(format!("f{i}.txt")))
                    .ok()
                    .as_deref(),
                Some(format!("file {i}").as_str())
            );
        }
    }
}
