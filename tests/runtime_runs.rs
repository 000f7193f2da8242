//! Whole runs of the real `perstack run` binary against the mock model server.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, Reply, openai};

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(mock: &MockLlm, experts: &str) -> Project {
        Project::with_settings(mock, "", experts)
    }

    fn with_settings(mock: &MockLlm, settings: &str, experts: &str) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "model = \"gpt-4.1\"\n{settings}\n[provider]\nproviderName = \"openai\"\n[provider.setting]\nbaseUrl = \"{}/v1\"\n\n{experts}",
            mock.url()
        );
        std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    async fn run(&self, args: &[&str]) -> RunResult {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
            .arg("run")
            .args(args)
            .current_dir(self.path())
            .env("OPENAI_API_KEY", "sk-test-key")
            .env("PERSTACK_TEST_SECRET", "parent-only")
            .kill_on_drop(true)
            .output()
            .await
            .expect("binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let events = stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect();
        RunResult {
            code: output.status.code(),
            events,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn checkpoints(&self) -> Vec<Value> {
        let jobs = self.path().join("perstack/jobs");
        let mut out = Vec::new();
        for job in std::fs::read_dir(jobs).expect("jobs dir").flatten() {
            for file in std::fs::read_dir(job.path().join("checkpoints"))
                .expect("checkpoints")
                .flatten()
            {
                let bytes = std::fs::read(file.path()).expect("read");
                out.push(serde_json::from_slice(&bytes).expect("every checkpoint parses"));
            }
        }
        out
    }
}

struct RunResult {
    code: Option<i32>,
    events: Vec<Value>,
    stderr: String,
}

impl RunResult {
    fn types(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn last(&self, kind: &str) -> &Value {
        self.events
            .iter()
            .rev()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event in {:?}\n{}", self.types(), self.stderr))
    }
}

const BASE: &str = r#"
[experts."solo".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
"#;

fn solo() -> String {
    format!("[experts.\"solo\"]\ninstruction = \"Do the task.\"\n{BASE}")
}

#[tokio::test]
async fn a_one_step_answer_completes() {
    let mock = MockLlm::start().await;
    mock.push(openai::text_reply("Hello there."));
    let project = Project::new(&mock, &solo());
    let run = project.run(&["solo", "Say hello"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.last("completeRun")["text"], "Hello there.");
    let types = run.types();
    let position = |t: &str| types.iter().position(|x| x == t).unwrap_or(usize::MAX);
    assert!(position("initializeRuntime") < position("startRun"));
    assert!(position("startRun") < position("startGeneration"));
    assert!(position("startGeneration") < position("completeRun"));
    let request = &mock.requests()[0];
    assert_eq!(request.header("authorization"), Some("Bearer sk-test-key"));
    let body = request.json();
    assert_eq!(body["messages"][1]["content"], "Say hello");
    let shown = run.last("llmRequest");
    let headers = shown["request"]["headers"].to_string();
    assert!(
        headers.contains("[redacted]") && !headers.contains("sk-test-key"),
        "{headers}"
    );
    assert_eq!(
        shown["request"]["body"].as_str().map(|b| b.len()),
        Some(request.body.len())
    );
    let checkpoints = project.checkpoints();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0]["status"], "completed");
}

#[tokio::test]
async fn a_multi_step_run_writes_edits_and_reads_files() {
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply(
        "c1",
        "writeTextFile",
        &json!({"path": "notes/a.txt", "text": "one two"}),
    ));
    mock.push(openai::tool_reply(
        "c2",
        "editTextFile",
        &json!({"path": "notes/a.txt", "oldText": "two", "newText": "three"}),
    ));
    mock.push(openai::tool_reply(
        "c3",
        "readTextFile",
        &json!({"path": "notes/a.txt"}),
    ));
    mock.push(openai::tool_reply("c4", "attemptCompletion", &json!({})));
    mock.push(openai::text_reply("The file says: one three"));
    let project = Project::new(&mock, &solo());
    let run = project.run(&["solo", "Write, edit, read"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(project.path().join("notes/a.txt")).expect("file written"),
        "one three"
    );
    let fourth = mock.requests()[3].json().to_string();
    assert!(
        fourth.contains("one three"),
        "the read result reaches the model: {fourth}"
    );
    assert_eq!(run.last("completeRun")["text"], "The file says: one three");
    assert_eq!(
        run.types()
            .iter()
            .filter(|t| *t == "continueToNextStep")
            .count(),
        3
    );
    let steps: Vec<u64> = project
        .checkpoints()
        .iter()
        .filter_map(|c| c["stepNumber"].as_u64())
        .collect();
    assert_eq!(steps.len(), 4, "one checkpoint per step");
}

#[tokio::test]
async fn completion_with_open_todos_goes_on_until_they_are_done() {
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply(
        "c1",
        "todo",
        &json!({"newTodos": ["check the output"]}),
    ));
    mock.push(openai::tool_reply("c2", "attemptCompletion", &json!({})));
    mock.push(openai::tool_reply(
        "c3",
        "todo",
        &json!({"completedTodos": [0]}),
    ));
    mock.push(openai::tool_reply("c4", "attemptCompletion", &json!({})));
    mock.push(openai::text_reply("Done, and checked."));
    let project = Project::new(&mock, &solo());
    let run = project.run(&["solo", "Work with todos"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let third = mock.requests()[2].json().to_string();
    assert!(
        third.contains("remainingTodos"),
        "open todos are reported: {third}"
    );
    assert_eq!(
        run.types()
            .iter()
            .filter(|t| *t == "attemptCompletion")
            .count(),
        1
    );
}

#[tokio::test]
async fn an_empty_answer_is_retried_with_a_note() {
    let mock = MockLlm::start().await;
    mock.push(openai::text_reply(""));
    mock.push(openai::text_reply("Now with content."));
    let project = Project::new(&mock, &solo());
    let run = project.run(&["solo", "Answer"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.types().contains(&"retry".to_string()));
    let second = mock.requests()[1].json().to_string();
    assert!(second.contains("Your last answer was empty"), "{second}");
}

#[tokio::test]
async fn max_steps_stops_the_job() {
    let mock = MockLlm::start().await;
    mock.set_fallback(openai::tool_reply("c", "healthCheck", &json!({})));
    let project = Project::new(&mock, &solo());
    let run = project.run(&["solo", "Loop", "--max-steps", "2"]).await;
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    run.last("stopRunByExceededMaxSteps");
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn a_model_error_after_retries_stops_with_a_saved_checkpoint() {
    let mock = MockLlm::start().await;
    mock.set_fallback(Reply::status(500).body(r#"{"error":{"message":"upstream exploded"}}"#));
    let project = Project::new(&mock, &solo());
    let run = project.run(&["solo", "Fail", "--max-retries", "1"]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stop = run.last("stopRunByError");
    assert!(
        stop["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("upstream exploded"),
        "{stop}"
    );
    assert_eq!(mock.request_count(), 2, "one try and one retry");
    assert!(run.types().contains(&"retry".to_string()));
    let checkpoints = project.checkpoints();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0]["status"], "stoppedByError");
}

#[tokio::test]
async fn a_rate_limited_generation_is_retried_and_the_retries_are_stored_and_counted() {
    let mock = MockLlm::start().await;
    mock.push(Reply::status(429).header("retry-after", "0"));
    mock.push(Reply::status(429).header("retry-after", "0"));
    mock.push(openai::text_reply("Third time lucky."));
    let project = Project::new(&mock, &solo());
    let run = project.run(&["solo", "Answer"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let on_stdout = run.types().iter().filter(|t| *t == "retry").count();
    assert_eq!(on_stdout, 2, "{:?}", run.types());
    // The same events are in the store, where `perstack log` reads them.
    let log = std::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["log", "--json", "--type", "retry"])
        .current_dir(project.path())
        .output()
        .expect("perstack log runs");
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    let stored: Vec<Value> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event a line"))
        .collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.iter().all(|e| e["type"] == "retry"));
    // The step's checkpoint counts its generation's retries, as Perstack's do.
    let checkpoints = project.checkpoints();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0]["retryCount"], 2, "{}", checkpoints[0]);
}

fn team() -> String {
    format!(
        r#"
[experts."lead"]
instruction = "Coordinate. SECRET-PARENT-CONTEXT"
delegates = ["@team/reader", "writer"]
[experts."lead".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
[experts."lead".skills."ask"]
type = "interactiveSkill"
[experts."lead".skills."ask".tools.askUser]
description = "Ask the user"
inputJsonSchema = '{{"type":"object","properties":{{"question":{{"type":"string"}}}}}}'

[experts."@team/reader"]
description = "Reads things"
instruction = "Read."
delegates = ["deep"]

[experts."writer"]
description = "Writes things"
instruction = "Write."

[experts."deep"]
instruction = "Go deeper."
delegates = ["deepest"]

[experts."deepest"]
instruction = "The bottom."
{}"#,
        BASE.replace("solo", "deepest")
    )
}

#[tokio::test]
async fn delegates_run_in_parallel_and_see_only_their_query() {
    let mock = MockLlm::start().await;
    mock.push(openai::tools_reply(&[
        ("d1", "reader", json!({"query": "read the changelog"})),
        ("d2", "writer", json!({"query": "draft the intro"})),
    ]));
    mock.push(openai::text_reply("delegate answer").delay(Duration::from_millis(400)));
    mock.push(openai::text_reply("delegate answer").delay(Duration::from_millis(400)));
    mock.push(openai::text_reply("Both done."));
    let project = Project::new(&mock, &team());
    let run = project
        .run(&["lead", "Make release notes with SECRET-PARENT-CONTEXT"])
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let requests = mock.requests();
    assert_eq!(requests.len(), 4);
    let (first, second) = (&requests[1], &requests[2]);
    let apart = second.received_at.duration_since(first.received_at);
    assert!(
        apart < Duration::from_millis(300),
        "delegates overlapped ({apart:?} apart)"
    );
    for request in [first, second] {
        let body = request.json();
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 2, "system prompt and query only: {body}");
        assert!(
            !body.to_string().contains("SECRET-PARENT-CONTEXT"),
            "no parent context: {body}"
        );
        let tools: Vec<&str> = body["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["function"]["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !tools.contains(&"askUser"),
            "no interactive tools for delegates: {tools:?}"
        );
    }
    let queries: Vec<String> = [first, second]
        .iter()
        .map(|r| {
            r.json()["messages"][1]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(queries.contains(&"read the changelog".to_string()));
    assert!(queries.contains(&"draft the intro".to_string()));
    let last = mock.requests()[3].json().to_string();
    assert!(
        last.contains("delegate answer"),
        "delegate results return to the parent"
    );
    let delegated: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| e["type"] == "callDelegate")
        .collect();
    assert_eq!(delegated.len(), 2);
    let child_runs: Vec<&str> = delegated
        .iter()
        .filter_map(|e| e["delegateRunId"].as_str())
        .collect();
    for child in child_runs {
        let parent = run
            .events
            .iter()
            .find(|e| e["runId"] == child)
            .and_then(|e| e["parentRunId"].as_str());
        assert_eq!(parent, run.events[0]["runId"].as_str());
    }
}

#[tokio::test]
async fn nested_delegation_three_levels_and_a_failing_delegate() {
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply("d1", "reader", &json!({"query": "go"})));
    mock.push(openai::tool_reply(
        "d2",
        "deep",
        &json!({"query": "deeper"}),
    ));
    mock.push(openai::tool_reply(
        "d3",
        "deepest",
        &json!({"query": "deepest"}),
    ));
    mock.push(Reply::status(400).body(r#"{"error":{"message":"bad request at the bottom"}}"#));
    mock.push(openai::text_reply("deep saw the failure"));
    mock.push(openai::text_reply("reader relays"));
    mock.push(openai::text_reply("lead finishes"));
    let project = Project::new(&mock, &team());
    let run = project.run(&["lead", "Nest"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let fifth = mock.requests()[4].json().to_string();
    assert!(
        fifth.contains("did not complete"),
        "the failure reaches the parent as a result: {fifth}"
    );
    let keys: Vec<&str> = run
        .events
        .iter()
        .filter(|e| e["type"] == "startRun")
        .filter_map(|e| e["expertKey"].as_str())
        .collect();
    assert_eq!(keys, ["lead", "@team/reader", "deep", "deepest"]);
    assert_eq!(run.last("completeRun")["text"], "lead finishes");
}

#[tokio::test]
async fn an_interactive_call_stops_and_resumes_with_the_answer() {
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply(
        "q1",
        "askUser",
        &json!({"question": "Who is it for?"}),
    ));
    let project = Project::new(&mock, &team());
    let run = project.run(&["lead", "Write notes"]).await;
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    run.last("callInteractiveTool");
    run.last("stopRunByInteractiveTool");

    let missing = project.run(&["lead", "--continue"]).await;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("-i"), "{}", missing.stderr);

    mock.push(openai::text_reply("Notes for developers."));
    let resumed = project
        .run(&["lead", "--continue", "-i", "developers"])
        .await;
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert_eq!(resumed.last("completeRun")["text"], "Notes for developers.");
    let body = mock.requests()[1].json();
    let tool_message = body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "tool"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(tool_message["content"], "developers");
    assert_eq!(tool_message["tool_call_id"], "q1");
}

#[tokio::test]
async fn a_completed_job_continues_with_a_follow_up() {
    let mock = MockLlm::start().await;
    mock.push(openai::text_reply("First answer."));
    mock.push(openai::text_reply("Second answer."));
    let project = Project::new(&mock, &solo());
    assert_eq!(project.run(&["solo", "First question"]).await.code, Some(0));
    let follow = project
        .run(&["solo", "Follow-up question", "--continue"])
        .await;
    assert_eq!(follow.code, Some(0), "{}", follow.stderr);
    let body = mock.requests()[1].json().to_string();
    assert!(
        body.contains("First question")
            && body.contains("First answer.")
            && body.contains("Follow-up question")
    );
}

#[tokio::test]
async fn ctrl_c_cancels_the_generation_and_keeps_a_checkpoint() {
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply("c1", "healthCheck", &json!({})));
    mock.push(Reply::sse().stall());
    let project = Project::new(&mock, &solo());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["run", "solo", "Take your time"])
        .current_dir(project.path())
        .env("OPENAI_API_KEY", "sk-test-key")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    for _ in 0..200 {
        if mock.request_count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        mock.request_count(),
        2,
        "the second generation is in flight"
    );
    let pid = child.id().expect("pid") as i32;
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits promptly")
        .expect("output");
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"type\":\"stopRunByCancel\"")),
        "{stdout}"
    );
    let statuses: Vec<Value> = project
        .checkpoints()
        .iter()
        .map(|c| c["status"].clone())
        .collect();
    assert!(statuses.contains(&json!("stoppedByCancel")), "{statuses:?}");
    for _ in 0..100 {
        if mock.hangups() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mock.hangups(), 1, "the HTTP stream was dropped");
}

#[tokio::test]
async fn log_reads_the_stored_events_with_filters() {
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply(
        "c1",
        "readTextFile",
        &json!({"path": "missing.txt"}),
    ));
    mock.push(openai::text_reply("Could not read it."));
    let project = Project::new(&mock, &solo());
    assert_eq!(
        project.run(&["solo", "Read a missing file"]).await.code,
        Some(0)
    );
    let log = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
            .arg("log")
            .args(args)
            .current_dir(project.path())
            .output()
            .expect("log runs");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let all = log(&[]);
    assert!(
        all.contains("startRun") && all.contains("completeRun"),
        "{all}"
    );
    assert!(!all.contains("streamRunResult "), "deltas are not stored");
    let tools = log(&["--tools"]);
    assert!(
        tools.contains("callTools") && tools.contains("readTextFile"),
        "{tools}"
    );
    assert!(!tools.contains("startRun"));
    let errors = log(&["--errors"]);
    assert!(
        errors.contains("toolCallTiming") && errors.contains("(error)"),
        "{errors}"
    );
    let json_lines = log(&["--type", "completeRun", "--json"]);
    let events: Vec<Value> = json_lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["text"], "Could not read it.");
    let step_two = log(&["--step", "2", "--json"]);
    assert!(step_two.lines().all(|l| l.contains("\"stepNumber\":2")));

    let empty = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["log", "--workspace"])
        .arg(empty.path())
        .output()
        .expect("log runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no jobs under"));
}

#[tokio::test]
async fn a_recorded_run_replays_offline() {
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply(
        "c1",
        "writeTextFile",
        &json!({"path": "out.txt", "text": "hi"}),
    ));
    mock.push(openai::text_reply("Wrote out.txt."));
    let project = Project::new(&mock, &solo());
    let recorded = project
        .run(&["solo", "Write a file", "--record", "run.replay.toml"])
        .await;
    assert_eq!(recorded.code, Some(0), "{}", recorded.stderr);
    assert!(project.path().join("run.replay.toml").is_file());
    std::fs::remove_file(project.path().join("out.txt")).expect("remove");
    drop(mock);
    let replayed = project
        .run(&["solo", "Write a file", "--replay", "run.replay.toml"])
        .await;
    assert_eq!(replayed.code, Some(0), "{}", replayed.stderr);
    assert_eq!(replayed.last("completeRun")["text"], "Wrote out.txt.");
    assert_eq!(
        std::fs::read_to_string(project.path().join("out.txt"))
            .ok()
            .as_deref(),
        Some("hi")
    );
}

#[tokio::test]
async fn a_run_calls_a_real_mcp_server_that_sees_only_its_declared_env() {
    let mock = MockLlm::start().await;
    mock.push(openai::tools_reply(&[
        ("c1", "echo", json!({"text": "over stdio"})),
        ("c2", "env", json!({})),
    ]));
    mock.push(openai::text_reply("Checked."));
    let server = support::test_server();
    let experts = format!(
        r#"{}
[experts."solo".skills."tester"]
type = "mcpStdioSkill"
command = "{}"
args = []
requiredEnv = ["OPENAI_API_KEY"]
"#,
        solo(),
        server.display()
    );
    let project = Project::new(&mock, &experts);
    let run = project.run(&["solo", "Use the test server"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let connected: Vec<&str> = run
        .events
        .iter()
        .filter(|e| e["type"] == "skillConnected")
        .filter_map(|e| e["skillName"].as_str())
        .collect();
    assert!(connected.contains(&"tester"), "{connected:?}");
    run.last("skillDisconnected");
    let second = mock.requests()[1].json().to_string();
    assert!(
        second.contains("over stdio"),
        "echo result reaches the model: {second}"
    );
    assert!(
        second.contains("OPENAI_API_KEY"),
        "a declared variable is visible"
    );
    assert!(
        !second.contains("PERSTACK_TEST_SECRET"),
        "an undeclared one is not: {second}"
    );
}

#[tokio::test]
async fn headless_breakpoints_pause_and_obey_controls_on_stdin() {
    use tokio::io::AsyncWriteExt;
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply("c1", "healthCheck", &json!({})));
    mock.push(openai::tool_reply("c2", "healthCheck", &json!({})));
    mock.push(openai::tool_reply("c3", "healthCheck", &json!({})));
    mock.push(openai::text_reply("never reached"));
    let project = Project::new(&mock, &solo());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["run", "solo", "Check", "--break", "before-tool"])
        .current_dir(project.path())
        .env("OPENAI_API_KEY", "sk-test-key")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    // First tool call: continue. Second: `step`, so the run pauses again at the next point
    // (the end of that step) though no breakpoint is there. Then abort.
    for control in ["continue\n", "step\n", "abort\n"] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stdin
            .write_all(control.as_bytes())
            .await
            .expect("write control");
    }
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let pauses: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "paused")
        .map(|e| {
            format!(
                "{}:{}",
                e["point"].as_str().unwrap_or(""),
                e["toolName"].as_str().unwrap_or("")
            )
        })
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        pauses,
        [
            "beforeTool:healthCheck",
            "beforeTool:healthCheck",
            "afterStep:"
        ],
        "{kinds:?}"
    );
    let resumed: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "resumed")
        .filter_map(|e| e["control"].as_str())
        .collect();
    assert_eq!(resumed, ["continue", "step", "abort"]);
    assert_eq!(output.status.code(), Some(130), "abort stops like a cancel");
    assert!(events.iter().any(|e| e["type"] == "stopRunByCancel"));
    assert_eq!(mock.request_count(), 2, "nothing was sent after the abort");
}

fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_fork_runs_from_a_checkpoint_under_new_definitions_and_leaves_the_original() {
    let mock = MockLlm::start().await;
    mock.push(openai::tool_reply("c1", "healthCheck", &json!({})));
    mock.push(openai::text_reply("Original answer."));
    let project = Project::new(&mock, &solo());
    let first = project.run(&["solo", "Check health"]).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let job_id = first.events[0]["jobId"]
        .as_str()
        .expect("job id")
        .to_string();
    let step_one = first.last("continueToNextStep")["checkpoint"].clone();
    let checkpoint_id = step_one["id"].as_str().expect("checkpoint id").to_string();
    let before = files_under(&project.path().join("perstack/jobs").join(&job_id));

    let config = std::fs::read_to_string(project.path().join("perstack.toml")).expect("read");
    std::fs::write(
        project.path().join("perstack.toml"),
        config.replace("Do the task.", "Do the task, in French."),
    )
    .expect("edit definitions");
    mock.push(openai::text_reply("Réponse."));
    let fork = project
        .run(&[
            "solo",
            "--continue-job",
            &job_id,
            "--resume-from",
            &checkpoint_id,
            "--fork",
        ])
        .await;
    assert_eq!(fork.code, Some(0), "{}", fork.stderr);
    assert_ne!(
        fork.events[0]["runId"], first.events[0]["runId"],
        "a fork is a new run"
    );

    let sent = mock.requests()[2].json();
    let messages = sent["messages"].as_array().expect("messages");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Do the task, in French.")
    );
    let original = mock.requests()[1].json();
    assert_eq!(
        &messages[1..],
        &original["messages"].as_array().expect("messages")[1..],
        "the fork continues from the checkpoint's conversation"
    );
    let after = files_under(&project.path().join("perstack/jobs").join(&job_id));
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
    }
    let forked: Vec<&Value> = fork
        .events
        .iter()
        .filter(|e| e["type"] == "completeRun")
        .collect();
    assert_eq!(
        forked[0]["checkpoint"]["forkedFrom"],
        checkpoint_id.as_str()
    );
}
