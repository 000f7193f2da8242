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

const MAX_STEPS: u64 = 30;

/// Appends line N on step N, forever: only maxSteps ends the job.
fn append_forever(request: &RecordedRequest) -> Reply {
    let body = request.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let results = messages.iter().filter(|m| m["role"] == "tool").count();
    openai::tool_reply(
        &format!("call{results}"),
        "appendTextFile",
        &json!({"path": "log.txt", "text": format!("line {results}\n")}),
    )
    .delay(Duration::from_millis(5))
}

fn limited_project(mock: &MockLlm) -> tempfile::TempDir {
    let dir = project(mock);
    let path = dir.path().join("perstack.toml");
    let config = std::fs::read_to_string(&path).expect("read config");
    std::fs::write(&path, format!("maxSteps = {MAX_STEPS}\n{config}")).expect("write config");
    dir
}

/// The lines of log.txt, each with how many times it was appended.
fn appended(dir: &Path) -> std::collections::BTreeMap<String, usize> {
    let text = std::fs::read_to_string(dir.join("log.txt")).unwrap_or_default();
    let mut counts = std::collections::BTreeMap::new();
    for line in text.lines() {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

/// The lines appended by the steps that stdout reported finished (`continueToNextStep`).
fn reported_lines(stdout: &[String]) -> Vec<String> {
    stdout
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["type"] == "continueToNextStep")
        .flat_map(|event| {
            let calls = event["step"]["toolCalls"].as_array().cloned();
            calls.unwrap_or_default().into_iter().filter_map(|call| {
                let text = call["args"]["text"].as_str()?;
                Some(text.trim_end().to_string())
            })
        })
        .collect()
}

#[tokio::test]
async fn after_sigkill_max_steps_hold_and_no_reported_tool_call_runs_twice() {
    use tokio::io::AsyncBufReadExt as _;

    let mock = MockLlm::start().await;
    mock.set_responder(append_forever);

    // Uninterrupted, the job ends at maxSteps with one line a step.
    let reference = limited_project(&mock);
    let output = command(reference.path(), &["solo", "Append lines"])
        .output()
        .await
        .expect("reference run");
    assert_eq!(appended(reference.path()).len() as u64, MAX_STEPS);
    assert!(appended(reference.path()).values().all(|n| *n == 1));
    let last_step = |dir: &Path| {
        all_checkpoints(dir)
            .iter()
            .filter(|c| c["status"] == "stoppedByExceededMaxSteps")
            .filter_map(|c| c["stepNumber"].as_u64())
            .max()
    };
    let reference_last = last_step(reference.path());
    assert!(reference_last.is_some(), "{output:?}");

    fastrand::seed(11);
    for round in 0..8 {
        let dir = limited_project(&mock);
        let mut child = command(dir.path(), &["solo", "Append lines"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        // Kill somewhere inside the step after `target` finished, 25 in the first round.
        let target = if round == 0 { 25 } else { fastrand::u64(2..28) };
        let mut printed = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.contains("\"continueToNextStep\"")
                && serde_json::from_str::<Value>(&line)
                    .is_ok_and(|e| e["stepNumber"].as_u64() == Some(target));
            printed.push(line);
            if done {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..12))).await;
        child.start_kill().expect("SIGKILL");
        // What was printed before the kill is still in the pipe.
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push(line);
        }
        let _ = child.wait().await;
        let reported = reported_lines(&printed);
        let job = dir.path().join("perstack/jobs");
        let job_json = std::fs::read_dir(&job)
            .expect("a job")
            .flatten()
            .map(|j| std::fs::read_to_string(j.path().join("job.json")).unwrap_or_default())
            .next()
            .unwrap_or_default();
        eprintln!(
            "round {round}: killed after step {target}; {} steps reported; job.json {job_json}",
            reported.len()
        );

        let output = command(dir.path(), &["solo", "--continue"])
            .output()
            .await
            .expect("continue");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            last_step(dir.path()),
            reference_last,
            "round {round}: the continued job must stop where an uninterrupted one does: {stderr}"
        );
        let counts = appended(dir.path());
        assert_eq!(
            counts.len() as u64,
            MAX_STEPS,
            "round {round}: one line a step, maxSteps steps in all: {counts:?}"
        );
        for line in &reported {
            assert_eq!(
                counts.get(line),
                Some(&1),
                "round {round}: `{line}` was reported done on stdout, so it must not run again"
            );
        }
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            repeated.len() <= 1 && repeated.iter().all(|(_, n)| **n == 2),
            "round {round}: only the step in flight may run again: {repeated:?}"
        );
    }
}
