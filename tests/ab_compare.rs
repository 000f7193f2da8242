//! A/B runs of one checkpoint: two forks with different `--variant model=…` against the mock
//! model, which answers each model differently; `perstack diff` and the workbench's compare view
//! mark the step where their tool calls part.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, RecordedRequest, Reply, openai};

const EXPERTS: &str = r#"
[experts."solo"]
instruction = "Do the task."
[experts."solo".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
"#;

/// The mock's script, by the model asked and the tool results seen so far: every model starts
/// with a health check; then gpt-4.1 checks again and gpt-4.1-mini lists the directory.
fn by_model(request: &RecordedRequest) -> Reply {
    let body = request.json();
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let results = body["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == "tool").count())
        .unwrap_or(0);
    match (model.as_str(), results) {
        (_, 0) => openai::tool_reply("c1", "healthCheck", &json!({})),
        ("gpt-4.1-mini", 1) => openai::tool_reply("c2", "listDirectory", &json!({"path": "."})),
        (_, 1) => openai::tool_reply("c2", "healthCheck", &json!({})),
        ("gpt-4.1-mini", _) => openai::text_reply("The directory holds perstack.toml."),
        _ => openai::text_reply("Healthy, twice over."),
    }
}

struct Runs {
    dir: tempfile::TempDir,
    job_id: String,
    run_a: String,
    run_b: String,
}

async fn perstack(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(args)
        .current_dir(dir)
        .env("OPENAI_API_KEY", "sk-test-key")
        .kill_on_drop(true)
        .output()
        .await
        .expect("binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is an event"))
        .collect()
}

/// One job, then two forks of its first step's checkpoint, one per model.
async fn two_forks(mock: &MockLlm) -> Runs {
    mock.set_responder(by_model);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "model = \"gpt-4.1\"\n[provider]\nproviderName = \"openai\"\n[provider.setting]\nbaseUrl = \"{}/v1\"\n{EXPERTS}",
        mock.url()
    );
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    let (code, stdout, stderr) = perstack(dir.path(), &["run", "solo", "Check health"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let original = events(&stdout);
    let job_id = original[0]["jobId"].as_str().expect("job id").to_string();
    let step_one = original
        .iter()
        .find(|e| e["type"] == "continueToNextStep")
        .expect("a first step");
    let checkpoint = step_one["checkpoint"]["id"]
        .as_str()
        .expect("checkpoint id")
        .to_string();
    let mut runs = Vec::new();
    for model in ["gpt-4.1", "gpt-4.1-mini"] {
        let variant = format!("model={model}");
        let (code, stdout, stderr) = perstack(
            dir.path(),
            &[
                "run",
                "solo",
                "--continue-job",
                &job_id,
                "--resume-from",
                &checkpoint,
                "--fork",
                "--variant",
                &variant,
            ],
        )
        .await;
        assert_eq!(code, Some(0), "{stderr}");
        let fork = events(&stdout);
        let run_id = fork[0]["runId"].as_str().expect("run id").to_string();
        let setting: Value = serde_json::from_slice(
            &std::fs::read(
                dir.path()
                    .join("perstack/jobs")
                    .join(&job_id)
                    .join("runs")
                    .join(&run_id)
                    .join("run-setting.json"),
            )
            .expect("run-setting.json"),
        )
        .expect("parses");
        assert_eq!(setting["variant"], json!({"model": model}), "recorded");
        assert_eq!(setting["model"], model);
        runs.push(run_id);
    }
    let requested: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        requested.iter().any(|m| m == "gpt-4.1-mini"),
        "{requested:?}"
    );
    let run_b = runs.pop().expect("B");
    let run_a = runs.pop().expect("A");
    Runs {
        dir,
        job_id,
        run_a,
        run_b,
    }
}

/// Ids and times vary from run to run; everything else is fixed.
fn stable(text: &str, runs: &Runs) -> String {
    let text = text
        .replace(&runs.run_a, "RUN_A")
        .replace(&runs.run_b, "RUN_B")
        .replace(&runs.job_id, "JOB");
    text.lines()
        .map(|line| without_times(line).trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each `<digits> ms` as `N ms`, padded to the same width so the columns stay put.
fn without_times(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(" ms") {
        let head = &rest[..at];
        let digits = head.len() - head.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        out.push_str(&head[..head.len() - digits]);
        if digits > 0 {
            out.push_str("N ms");
            out.push_str(&" ".repeat(digits - 1));
        } else {
            out.push_str(" ms");
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn perstack_diff_marks_where_two_model_forks_part() {
    let mock = MockLlm::start().await;
    let runs = two_forks(&mock).await;
    let (code, stdout, stderr) =
        perstack(runs.dir.path(), &["diff", &runs.run_a, &runs.run_b]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("▶ step 2"), "{stdout}");
    insta::assert_snapshot!("perstack_diff", stable(&stdout, &runs));

    // A job id stands for its newest top-level run: the second fork.
    let (code, by_job, stderr) =
        perstack(runs.dir.path(), &["diff", &runs.run_a, &runs.job_id]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        by_job.contains(&format!("B  run {}", runs.run_b)),
        "{by_job}"
    );

    let (code, _, stderr) = perstack(runs.dir.path(), &["diff", &runs.run_a, "nosuchrun"]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("nosuchrun is neither a job nor a run"),
        "{stderr}"
    );
}

/// The workbench's compare view of the same two forks: drawn from their stored events through
/// `runtime::compare`, the step where the tool calls part marked.
#[tokio::test]
async fn the_compare_view_marks_the_step_where_the_tool_calls_part() {
    use perstack::runtime::compare::{Comparison, RunFacts};
    use perstack::runtime::variant::Variant;
    use perstack::store::JobStore as _;
    use perstack::tui::panes::Ctx;
    use perstack::tui::panes::compare::{CompareView, draw_comparison};

    let mock = MockLlm::start().await;
    let runs = two_forks(&mock).await;
    let store = perstack::store::FsStore::new(runs.dir.path());
    let side = |run_id: &str| {
        let events = store.run_events(&runs.job_id, run_id);
        let setting: Value = serde_json::from_slice(
            &std::fs::read(
                runs.dir
                    .path()
                    .join("perstack/jobs")
                    .join(&runs.job_id)
                    .join("runs")
                    .join(run_id)
                    .join("run-setting.json"),
            )
            .expect("run-setting.json"),
        )
        .expect("parses");
        let variant: Option<Variant> = serde_json::from_value(setting["variant"].clone()).ok();
        RunFacts::from_events(run_id, &events, variant)
    };
    let comparison = Comparison::new(side(&runs.run_a), side(&runs.run_b));
    assert_eq!(
        comparison.divergence,
        Some(0),
        "the forks part at their first step"
    );
    assert_eq!(comparison.rows[0].step, 2);

    let theme = perstack::tui::theme::Theme::default();
    let highlighter = perstack::tui::highlight::Highlighter::new(&theme.syntax);
    let ctx = Ctx {
        theme: &theme,
        highlighter: &highlighter,
    };
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 24)).expect("terminal");
    let view = CompareView {
        title: "solo step 2".into(),
        cursor: 0,
        whole: false,
        running: false,
    };
    terminal
        .draw(|frame| draw_comparison(frame, frame.area(), &comparison, &view, &ctx))
        .expect("draws");
    let screen = terminal.backend().to_string();
    assert!(screen.contains("▶ step 2  ← first divergence"), "{screen}");
    insta::assert_snapshot!("compare_view", stable(&screen, &runs));
}

/// `--variant instruction=@FILE`: the fork's Expert runs the file's text as its instruction, and
/// the run records it; the original's definitions stay as they are.
#[tokio::test]
async fn an_instruction_variant_runs_the_file_and_is_recorded() {
    let mock = MockLlm::start().await;
    let runs = two_forks(&mock).await;
    let file = runs.dir.path().join("b.md");
    std::fs::write(&file, "Do the task, in French.").expect("write the instruction");
    let step_two = mock.requests().len();
    let checkpoint = {
        let store = perstack::store::FsStore::new(runs.dir.path());
        use perstack::store::JobStore as _;
        store
            .run_events(&runs.job_id, &runs.run_a)
            .iter()
            .find_map(|e| match &e.kind {
                perstack::runtime::event::EventKind::StartRun {
                    initial_checkpoint, ..
                } => initial_checkpoint.forked_from.clone(),
                _ => None,
            })
            .expect("the fork names its checkpoint")
    };
    let variant = format!("instruction=@{}", file.display());
    let (code, stdout, stderr) = perstack(
        runs.dir.path(),
        &[
            "run",
            "solo",
            "--continue-job",
            &runs.job_id,
            "--resume-from",
            &checkpoint,
            "--fork",
            "--variant",
            &variant,
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let sent = mock.requests()[step_two].json();
    let system = sent["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(system.contains("Do the task, in French."), "{system}");
    let run_id = events(&stdout)[0]["runId"]
        .as_str()
        .expect("run id")
        .to_string();
    let (code, diff, stderr) = perstack(runs.dir.path(), &["diff", &runs.run_a, &run_id]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        diff.contains(&format!("instruction=@{}", file.display())),
        "{diff}"
    );
    let config = std::fs::read_to_string(runs.dir.path().join("perstack.toml")).expect("read");
    assert!(config.contains("instruction = \"Do the task.\""));
}
