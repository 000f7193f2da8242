//! The stored form of a job: events refer to checkpoints instead of repeating the conversation,
//! and reading them back (`perstack log`, the library the workbench loads with) gives exactly
//! what `perstack run` printed, in the order it printed it.

mod support;

use std::path::Path;

use perstack::runtime::checkpoint::Store;
use perstack::runtime::event::RunEvent;
use perstack::store::JobStore as _;
use serde_json::{Value, json};
use support::mock_llm::{MockLlm, RecordedRequest, Reply, openai};

const STEPS: usize = 30;

/// Appends a line on each of STEPS steps, then completes.
fn respond(request: &RecordedRequest) -> Reply {
    let body = request.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let results = messages.iter().filter(|m| m["role"] == "tool").count();
    if body.get("tools").is_none() {
        openai::text_reply("Done.")
    } else if results < STEPS {
        openai::tool_reply(
            &format!("call{results}"),
            "appendTextFile",
            &json!({"path": "log.txt", "text": format!("line {results} {}\n", "x".repeat(300))}),
        )
    } else {
        openai::tool_reply(&format!("call{results}"), "attemptCompletion", &json!({}))
    }
}

fn project(mock: &MockLlm) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "model = \"gpt-4.1\"\n[provider]\nproviderName = \"openai\"\n[provider.setting]\nbaseUrl = \"{}/v1\"\n[experts.\"solo\"]\ninstruction = \"Append the lines.\"\n",
        mock.url()
    );
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    dir
}

async fn perstack(dir: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(args)
        .current_dir(dir)
        .env("OPENAI_API_KEY", "sk-test")
        .kill_on_drop(true)
        .output()
        .await
        .expect("binary runs")
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn event_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let jobs = dir.join("perstack/jobs");
    for job in std::fs::read_dir(jobs).expect("jobs").flatten() {
        for run in std::fs::read_dir(job.path().join("runs"))
            .expect("runs")
            .flatten()
        {
            for file in std::fs::read_dir(run.path()).expect("run").flatten() {
                if file.file_name().to_string_lossy().starts_with("event-") {
                    files.push(file.path());
                }
            }
        }
    }
    files
}

#[tokio::test]
async fn stored_events_refer_to_checkpoints_and_read_back_as_printed() {
    let mock = MockLlm::start().await;
    mock.set_responder(respond);
    let dir = project(&mock);
    let run = perstack(dir.path(), &["run", "solo", "Append the lines"]).await;
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed: Vec<Value> = json_lines(&run.stdout)
        .into_iter()
        .filter(|e| {
            !matches!(
                e["type"].as_str(),
                Some("streamRunResult" | "streamReasoning")
            )
        })
        .collect();
    assert!(
        printed.len() > 5 * STEPS,
        "{} events printed",
        printed.len()
    );

    // `perstack log --json` gives back every stored event exactly, in the printed order.
    let log = perstack(dir.path(), &["log", "--json"]).await;
    assert!(log.status.success());
    let logged = json_lines(&log.stdout);
    assert_eq!(logged.len(), printed.len());
    for (n, (logged, printed)) in logged.iter().zip(&printed).enumerate() {
        assert_eq!(
            logged, printed,
            "event {n} ({}) differs from what was printed",
            printed["type"]
        );
    }

    // The library the workbench loads a job with gives the same events.
    let store = Store::new(&dir.path().canonicalize().expect("path"));
    let job_id = printed[0]["jobId"].as_str().expect("job id");
    assert_eq!(store.job_events(job_id, None), printed);
    let run_id = printed[0]["runId"].as_str().expect("run id");
    let typed: Vec<RunEvent> = printed
        .iter()
        .map(|e| serde_json::from_value(e.clone()).expect("an event"))
        .collect();
    assert_eq!(store.run_events(job_id, run_id), typed);

    // On disk, late events hold a reference, not the conversation.
    let last_step = printed
        .iter()
        .rfind(|e| e["type"] == "continueToNextStep")
        .expect("a finished step");
    let file = event_files(dir.path())
        .into_iter()
        .find(|f| {
            let stored: Value =
                serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json");
            stored["id"] == last_step["id"]
        })
        .expect("the last step's event is stored");
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert!(
        stored["checkpoint"]["messages"]["ref"].is_string(),
        "{stored}"
    );
    let stored_len = std::fs::metadata(&file).expect("stat").len() as usize;
    let printed_len = last_step.to_string().len();
    assert!(
        stored_len * 10 < printed_len,
        "the last step's event is {stored_len} bytes on disk, {printed_len} printed"
    );
    // Per type: what the store keeps against what was printed.
    let mut sizes: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for file in event_files(dir.path()) {
        let stored: Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        let kind = stored["type"].as_str().unwrap_or_default().to_string();
        sizes.entry(kind).or_default().0 += std::fs::metadata(&file).expect("stat").len();
    }
    for event in &printed {
        let kind = event["type"].as_str().unwrap_or_default().to_string();
        sizes.entry(kind).or_default().1 += event.to_string().len() as u64;
    }
    eprintln!("{sizes:?}");
    for kind in ["startGeneration", "continueToNextStep", "completeRun"] {
        let (stored, printed) = sizes[kind];
        assert!(
            stored * 10 < printed,
            "{kind}: {stored} bytes stored, {printed} printed"
        );
    }
    // A request also repeats the tool definitions, which are new bytes each time: what is kept
    // grows with the steps, what was printed with their square.
    let (stored, printed) = sizes["llmRequest"];
    assert!(
        stored * 2 < printed,
        "llmRequest: {stored} bytes stored, {printed} printed"
    );
}
