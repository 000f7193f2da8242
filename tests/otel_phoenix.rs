//! Traces read back from Arize Phoenix, a real OTLP backend: a scripted run with a delegate and
//! MCP tool calls, exported live with `--otel` and, separately, later with `export otel`.
//! Phoenix starts once for this file (about 20 s); see tests/support/phoenix.rs.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::phoenix::{Phoenix, epoch_ms, phoenix};

const SCRIPT: &str = r#"
[[responses]]
expert = "lead"
text = "Asking the writer and echoing."
toolCalls = [
  { name = "writer", args = { query = "Draft the SECRET-QUERY note" } },
  { name = "echo", args = { text = "SECRET-ECHO" } },
]
usage = { input = 100, output = 20 }

[[responses]]
expert = "writer"
toolCalls = [{ name = "add", args = { a = 2, b = 3 } }]
usage = { input = 30, output = 5 }

[[responses]]
expert = "writer"
toolCalls = [{ name = "attemptCompletion", args = {} }]
usage = { input = 40, output = 6 }

[[responses]]
expert = "writer"
text = "SECRET-DRAFT"
usage = { input = 50, output = 7 }

[[responses]]
expert = "lead"
toolCalls = [{ name = "attemptCompletion", args = {} }]
usage = { input = 200, output = 10 }

[[responses]]
expert = "lead"
text = "SECRET-ANSWER"
usage = { input = 300, output = 30 }
"#;

/// A project whose lead delegates to a writer; both use the MCP test server.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = support::test_server();
    let mut config = String::from("model = \"model-x\"\n");
    for (key, extra) in [("lead", "delegates = [\"writer\"]\n"), ("writer", "")] {
        config.push_str(&format!(
            r#"
[experts."{key}"]
instruction = "Do the task."
{extra}
[experts."{key}".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
pick = ["attemptCompletion"]
[experts."{key}".skills."tester"]
type = "mcpStdioSkill"
command = "{}"
args = []
"#,
            server.display()
        ));
    }
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    std::fs::write(dir.path().join("script.toml"), SCRIPT).expect("write script");
    dir
}

fn perstack(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(args)
        .current_dir(dir)
        .env_remove("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        .envs(env.iter().copied())
        .output()
        .expect("perstack runs");
    assert!(
        output.status.success(),
        "perstack {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn run_job(dir: &Path, job: &str, extra: &[&str], env: &[(&str, &str)]) {
    let mut args = vec![
        "run",
        "lead",
        "Write it",
        "--replay",
        "script.toml",
        "--job-id",
        job,
    ];
    args.extend_from_slice(extra);
    perstack(dir, &args, env);
}

/// Spans as Phoenix stores them: by name (each name unique here except `chat` spans).
struct Tree(Vec<Value>);

impl Tree {
    fn read(phoenix: &Phoenix, project: &str) -> Tree {
        Tree(phoenix.spans(project, 14))
    }

    fn one(&self, name: &str) -> &Value {
        let found: Vec<&Value> = self.0.iter().filter(|s| s["name"] == name).collect();
        assert_eq!(found.len(), 1, "one span {name} in {:#?}", self.names());
        found[0]
    }

    fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|s| s["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn id(span: &Value) -> &str {
        span["context"]["span_id"].as_str().expect("span id")
    }

    fn children(&self, parent: &Value) -> Vec<&Value> {
        let id = Self::id(parent);
        self.0.iter().filter(|s| s["parent_id"] == id).collect()
    }

    fn tokens(&self, run: &Value, key: &str) -> u64 {
        self.children(run)
            .iter()
            .filter(|s| s["span_kind"] == "LLM")
            .map(|s| s["attributes"][key].as_u64().expect("token count"))
            .sum()
    }

    /// The shape every export of the scripted job has.
    fn check_shape(&self, job_id: &str) {
        assert_eq!(self.0.len(), 14, "{:#?}", self.names());
        let trace = perstack::telemetry::trace_id_hex(job_id);
        assert!(
            self.0
                .iter()
                .all(|s| s["context"]["trace_id"] == trace.as_str())
        );
        let job = self.one("job lead");
        assert_eq!(job["parent_id"], Value::Null);
        assert_eq!(job["span_kind"], "CHAIN");
        let lead = self.one("invoke_agent lead");
        assert_eq!(lead["parent_id"], Tree::id(job));
        assert_eq!(lead["span_kind"], "AGENT");
        let delegate_call = self.one("execute_tool writer");
        assert_eq!(delegate_call["parent_id"], Tree::id(lead));
        let writer = self.one("invoke_agent writer");
        assert_eq!(
            writer["parent_id"],
            Tree::id(delegate_call),
            "the delegate sits under its call"
        );
        let echo = self.one("execute_tool echo");
        assert_eq!(echo["parent_id"], Tree::id(lead));
        assert_eq!(echo["span_kind"], "TOOL");
        assert_eq!(echo["attributes"]["gen_ai.tool.name"], "echo");
        assert_eq!(echo["attributes"]["perstack.skill.name"], "tester");
        assert!(echo["attributes"]["gen_ai.tool.call.id"].is_string());
        assert!(echo["attributes"]["mcp.server.name"].is_string());
        assert_eq!(self.one("execute_tool add")["parent_id"], Tree::id(writer));
        let lead_children = self.children(lead);
        assert_eq!(
            lead_children
                .iter()
                .filter(|s| s["span_kind"] == "LLM")
                .count(),
            3
        );
        assert_eq!(
            self.children(writer)
                .iter()
                .filter(|s| s["span_kind"] == "LLM")
                .count(),
            3
        );
        let chat = lead_children
            .iter()
            .find(|s| s["span_kind"] == "LLM")
            .expect("a chat");
        assert_eq!(chat["name"], "chat model-x");
        assert_eq!(chat["attributes"]["gen_ai.request.model"], "model-x");
        assert_eq!(chat["attributes"]["llm.model_name"], "model-x");
        assert_eq!(chat["attributes"]["gen_ai.operation.name"], "chat");
        assert_eq!(chat["attributes"]["gen_ai.provider.name"], "replay");
        assert_eq!(self.tokens(lead, "gen_ai.usage.input_tokens"), 600);
        assert_eq!(self.tokens(lead, "llm.token_count.completion"), 60);
        assert_eq!(self.tokens(writer, "llm.token_count.prompt"), 120);
        assert_eq!(self.tokens(writer, "gen_ai.usage.output_tokens"), 18);
        assert!(self.0.iter().all(|s| s["status_code"] != "ERROR"));
    }

    fn text(&self) -> String {
        serde_json::to_string(&self.0).expect("json")
    }
}

fn trace_id_in_job_record(dir: &Path, job: &str) -> Option<String> {
    let record =
        std::fs::read(dir.join(format!("perstack/jobs/{job}/job.json"))).expect("job.json");
    let record: Value = serde_json::from_slice(&record).expect("job.json is JSON");
    record["traceId"].as_str().map(str::to_string)
}

#[test]
fn a_live_run_reads_back_as_one_tree_without_content() {
    let Some(phoenix) = phoenix() else { return };
    let dir = project();
    let endpoint = phoenix.endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "live"),
    ];
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args([
            "run",
            "lead",
            "Write it",
            "--replay",
            "script.toml",
            "--job-id",
            "live-job",
            "--otel",
        ])
        .current_dir(dir.path())
        .envs(env)
        .env_remove("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        .output()
        .expect("perstack runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("OpenTelemetry"),
        "a reachable collector warns of nothing: {stderr}"
    );
    let tree = Tree::read(phoenix, "live");
    tree.check_shape("live-job");
    assert_eq!(
        trace_id_in_job_record(dir.path(), "live-job"),
        Some(perstack::telemetry::trace_id_hex("live-job")),
        "job.json names the trace"
    );
    let text = tree.text();
    assert!(
        !text.contains("SECRET-"),
        "content is left out by default: {text}"
    );
}

#[test]
fn a_stored_job_exported_later_keeps_its_times_and_carries_content_when_asked() {
    let Some(phoenix) = phoenix() else { return };
    let dir = project();
    run_job(dir.path(), "stored-job", &[], &[]);
    assert_eq!(
        trace_id_in_job_record(dir.path(), "stored-job"),
        None,
        "not traced live"
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let endpoint = phoenix.endpoint();
    let export = perstack(
        dir.path(),
        &["export", "otel", "--job", "stored-job"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "exported"),
            ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true"),
        ],
    );
    let said = String::from_utf8_lossy(&export.stdout);
    assert!(said.contains("14 spans"), "{said}");
    let tree = Tree::read(phoenix, "exported");
    tree.check_shape("stored-job");
    // The original times: the job span starts with the job's first stored event.
    let record: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("perstack/jobs/stored-job/job.json")).expect("job.json"),
    )
    .expect("JSON");
    let started = record["startedAt"].as_u64().expect("startedAt");
    let job_start =
        epoch_ms(tree.one("job lead")["start_time"].as_str().expect("time")).expect("ISO time");
    assert!(
        job_start >= started && job_start < started + 1000,
        "the job span starts at {job_start}, the job at {started}"
    );
    let echo = tree.one("execute_tool echo");
    assert!(
        echo["attributes"]["input.value"]
            .as_str()
            .unwrap_or("")
            .contains("SECRET-ECHO")
    );
    let text = tree.text();
    for secret in ["SECRET-QUERY", "SECRET-DRAFT", "SECRET-ANSWER"] {
        assert!(text.contains(secret), "{secret} is exported when asked");
    }
}
