//! `perstack run`: one job, headless, every event as one JSON line on stdout.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio::sync::{mpsc, watch};

use super::ConfigArgs;
use crate::definition::{
    self, Config, LoadedConfig, ProviderName, ProviderSetting, ReasoningBudget,
};
use crate::llm::{self, LanguageModel};
use crate::runtime::checkpoint::{Checkpoint, CheckpointStatus, Store};
use crate::runtime::control::{Breakpoint, Control, Debugger};
use crate::runtime::event::{EventKind, RunEvent};
use crate::runtime::id::{new_id, now_millis};
use crate::runtime::message::ToolResult;
use crate::runtime::run::{JobContext, RunStart};
use crate::tool::ToolOutput;

/// Exit codes of `perstack run`, one per way a run can end.
pub mod code {
    pub const COMPLETED: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const MAX_STEPS: u8 = 3;
    pub const WAITING_FOR_INPUT: u8 = 4;
    pub const CANCELLED: u8 = 130;
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Expert to run (a key of [experts] in perstack.toml)
    pub expert_key: String,
    /// The task; with --continue, the follow-up question
    pub query: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overrides: Overrides,
    /// Continue the latest job (or, with --continue-job, that job)
    #[arg(long = "continue")]
    pub continue_latest: bool,
    /// Continue this job
    #[arg(long, value_name = "JOB_ID")]
    pub continue_job: Option<String>,
    /// Resume from this checkpoint of the continued job
    #[arg(long, value_name = "CHECKPOINT_ID")]
    pub resume_from: Option<String>,
    /// The answer to the interactive tool call the run stopped at (text or JSON)
    #[arg(
        short = 'i',
        long = "interactive-tool-call-result",
        value_name = "ANSWER"
    )]
    pub interactive_answer: Option<String>,
    /// Pause at: before-llm, before-tool[=SKILL/TOOL or =TOOL], after-step, on-error; add
    /// @EXPERT for one Expert (repeatable). A paused run emits `paused` and reads `step`,
    /// `continue` or `abort` as lines on stdin; before a model call also `edit` (the request
    /// body in $EDITOR) or `edit FILE` (the body from a file).
    #[arg(long = "break", value_name = "POINT")]
    pub breakpoints: Vec<Breakpoint>,
    /// Start a new run from the checkpoint given by --resume-from, leaving the original as it is
    #[arg(long, requires = "resume_from")]
    pub fork: bool,
}

/// Settings shared by `run` and `start` that override perstack.toml.
#[derive(Debug, Clone, Default, Args)]
pub struct Overrides {
    /// Provider to use instead of [provider] (anthropic, openai, google, ollama, ..., replay)
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Model to use instead of `model`
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// none, minimal, low, medium, high, or a number of tokens
    #[arg(long, value_name = "BUDGET")]
    pub reasoning_budget: Option<String>,
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u64>,
    /// Milliseconds per generation
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Id of the new job (default: a fresh one)
    #[arg(long, value_name = "JOB_ID")]
    pub job_id: Option<String>,
    /// A dotenv file to read after those of `envPath` (repeatable)
    #[arg(long, value_name = "FILE")]
    pub env_path: Vec<PathBuf>,
    /// Answer from this replay script or recording instead of a model: no key, no network
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Record every model answer to this file (the replay format), to replay the run offline later
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// The directory the Experts' file and exec tools work in (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Confine skill processes (on, the default) or not (off, as runtime = "local")
    #[arg(long, value_name = "on|off")]
    pub sandbox: Option<super::sandbox::SandboxSwitch>,
}

/// Everything a job needs, resolved from the file, the flags and the environment.
pub struct Prepared {
    pub loaded: LoadedConfig,
    /// The process environment over the dotenv files: skills take their `requiredEnv` from it.
    pub env: std::collections::HashMap<String, String>,
    pub lock: Option<crate::skills::lock::Lock>,
    pub config: Arc<Config>,
    pub model: Arc<dyn LanguageModel>,
    pub workspace: PathBuf,
    pub store: Store,
}

pub fn prepare(config_args: &ConfigArgs, overrides: &Overrides) -> Result<Prepared, String> {
    let loaded = super::load_or_report(config_args).map_err(|_| String::new())?;
    prepare_loaded(loaded, overrides)
}

/// [`prepare`] for a config already loaded (the workbench loads it once, then may switch
/// providers without reloading).
pub fn prepare_loaded(loaded: LoadedConfig, overrides: &Overrides) -> Result<Prepared, String> {
    let mut config = loaded.config.clone();
    if let Some(n) = overrides.max_steps {
        config.max_steps = Some(n.max(1));
    }
    if let Some(n) = overrides.max_retries {
        config.max_retries = Some(n);
    }
    if let Some(ms) = overrides.timeout {
        config.timeout = Some(ms.max(1));
    }
    if let Some(switch) = overrides.sandbox {
        config.runtime = Some(toml::Value::String(switch.runtime().into()));
    }
    if let Some(budget) = &overrides.reasoning_budget {
        config.reasoning_budget = Some(
            ReasoningBudget::from_name(budget)
                .or_else(|| budget.parse().ok().map(ReasoningBudget::Tokens))
                .ok_or_else(|| {
                    format!("--reasoning-budget {budget}: use none, minimal, low, medium, high or a number of tokens")
                })?,
        );
    }
    let env = definition::load_env(&loaded, &overrides.env_path).map_err(|d| d.render())?;
    let (name, setting) = provider_choice(&config, overrides)?;
    let model_name = overrides
        .model
        .clone()
        .or_else(|| config.model.clone())
        .unwrap_or_else(|| default_model(name).to_string());
    let mut model = llm::build_provider(name, setting.as_ref(), &model_name, &env, &loaded.dir)
        .map_err(|err| format!("error: {err}"))?;
    if let Some(path) = &overrides.record {
        let recorder = llm::replay::Recorder::new(model, path)
            .map_err(|err| format!("error: --record: {err}"))?;
        model = Arc::new(recorder);
    }
    let workspace = match &overrides.workspace {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().map_err(|e| format!("error: no current directory: {e}"))?,
    };
    let workspace = workspace
        .canonicalize()
        .map_err(|e| format!("error: workspace {}: {e}", workspace.display()))?;
    // Like the original, jobs live under the workspace: `perstack/jobs` next to the work they did.
    let store = Store::new(&workspace);
    let lock_path = crate::skills::lock::lock_path(&loaded.path);
    let lock = crate::skills::lock::read_lock(&lock_path).unwrap_or_else(|err| {
        eprintln!("perstack: {err}; starting every skill at run start instead");
        None
    });
    Ok(Prepared {
        env,
        lock,
        config: Arc::new(config),
        loaded,
        model,
        workspace,
        store,
    })
}

fn provider_choice(
    config: &Config,
    overrides: &Overrides,
) -> Result<(ProviderName, Option<ProviderSetting>), String> {
    if let Some(script) = &overrides.replay {
        let mut setting = ProviderSetting::default();
        let absolute = std::env::current_dir()
            .map(|cwd| cwd.join(script))
            .unwrap_or(script.clone());
        setting.extra.insert(
            "script".into(),
            toml::Value::String(absolute.to_string_lossy().into_owned()),
        );
        return Ok((ProviderName::Replay, Some(setting)));
    }
    let file_setting = config.provider.as_ref().and_then(|p| p.setting.clone());
    match &overrides.provider {
        Some(name) => {
            let provider = ProviderName::from_name(name).ok_or_else(|| {
                let valid: Vec<&str> = ProviderName::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "error: --provider {name} is not a provider; use one of: {}",
                    valid.join(", ")
                )
            })?;
            let same = config.provider_name() == provider;
            Ok((provider, if same { file_setting } else { None }))
        }
        None => Ok((config.provider_name(), file_setting)),
    }
}

fn default_model(provider: ProviderName) -> &'static str {
    match provider {
        ProviderName::Anthropic => "claude-sonnet-4-5",
        ProviderName::Openai | ProviderName::AzureOpenai => "gpt-4.1",
        ProviderName::Google | ProviderName::GoogleVertex => "gemini-2.5-flash",
        ProviderName::Ollama => "qwen3:8b",
        ProviderName::Deepseek => "deepseek-chat",
        ProviderName::AmazonBedrock => "anthropic.claude-sonnet-4-5",
        ProviderName::Replay => "replay",
    }
}

/// The checkpoint a continued job resumes from: the one named, or the coordinator's latest.
fn resume_point(
    store: &Store,
    job_id: &str,
    resume_from: Option<&str>,
) -> Result<Checkpoint, String> {
    if let Some(id) = resume_from {
        return store
            .read_checkpoint(job_id, id)
            .map_err(|e| format!("error: {e}"));
    }
    store
        .checkpoints(job_id)
        .into_iter()
        .rev()
        .find(|c| c.delegated_by.is_none())
        .ok_or_else(|| {
            format!("error: job {job_id} has no checkpoint of its coordinator to continue from")
        })
}

fn answers_for(checkpoint: &Checkpoint, answer: Option<&str>) -> Result<Vec<ToolResult>, String> {
    let Some(pending) = &checkpoint.pending_tool_calls else {
        return Ok(Vec::new());
    };
    let answer = answer.ok_or_else(|| {
        let tools: Vec<&str> = pending.iter().map(|c| c.tool_name.as_str()).collect();
        format!(
            "error: the run is waiting for an answer to {}; pass it with -i '<answer>'",
            tools.join(", ")
        )
    })?;
    Ok(pending
        .iter()
        .map(|call| ToolResult {
            id: call.id.clone(),
            skill_name: call.skill_name.clone(),
            tool_name: call.tool_name.clone(),
            result: ToolOutput::text(answer),
        })
        .collect())
}

/// The body of the newest model request, for `edit` on stdin.
type PendingBody = Arc<std::sync::Mutex<Option<String>>>;

/// Controls for paused runs, one a line: `step`, `continue`, `abort`, `edit` (the pending request
/// in $EDITOR) or `edit FILE` (its body replaced by the file's). Stdin closing lets paused runs
/// continue.
fn read_controls_from_stdin(
    controls: mpsc::UnboundedSender<Control>,
    pending: PendingBody,
    edit_dir: PathBuf,
) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let control = match line.strip_prefix("edit") {
                Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
                    edit_control(rest.trim(), &pending, &edit_dir)
                }
                _ => line.parse::<Control>(),
            };
            match control {
                Ok(control) => {
                    if controls.send(control).is_err() {
                        break;
                    }
                }
                Err(message) => eprintln!("perstack: {message}"),
            }
        }
    });
}

/// `edit` opens the pending request in the editor; `edit FILE` takes the body from a file.
fn edit_control(file: &str, pending: &PendingBody, edit_dir: &Path) -> Result<Control, String> {
    if !file.is_empty() {
        return std::fs::read_to_string(file)
            .map(|body| Control::Edit { body })
            .map_err(|e| format!("cannot read {file}: {e}"));
    }
    let body = pending
        .lock()
        .ok()
        .and_then(|p| p.clone())
        .ok_or("nothing to edit yet: `edit` works while paused before a model call")?;
    match crate::editor::edit_text(&crate::editor::pretty_json(&body), edit_dir, "json") {
        Ok(crate::editor::Edited::Changed(body)) => Ok(Control::Edit { body }),
        Ok(crate::editor::Edited::Unchanged) => {
            Err("the request was not changed; still paused".to_string())
        }
        Err(err) => Err(format!("cannot edit the request: {err}")),
    }
}

pub fn exit_code(status: CheckpointStatus) -> u8 {
    match status {
        CheckpointStatus::Completed => code::COMPLETED,
        CheckpointStatus::StoppedByExceededMaxSteps => code::MAX_STEPS,
        CheckpointStatus::StoppedByInteractiveTool => code::WAITING_FOR_INPUT,
        CheckpointStatus::StoppedByCancel => code::CANCELLED,
        _ => code::ERROR,
    }
}

pub fn run(args: &RunArgs) -> ExitCode {
    let prepared = match prepare(&args.config, &args.overrides) {
        Ok(prepared) => prepared,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{message}");
            }
            return ExitCode::from(code::ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(code::ERROR);
        }
    };
    match runtime.block_on(run_job(args, prepared)) {
        Ok(status) => ExitCode::from(exit_code(status)),
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(code::ERROR)
        }
    }
}

async fn run_job(args: &RunArgs, prepared: Prepared) -> Result<CheckpointStatus, String> {
    let store = prepared.store.clone();
    let continuing = args.continue_latest || args.continue_job.is_some();
    let (job_id, start, steps_used, started_at) = if continuing {
        let job_id = match &args.continue_job {
            Some(id) => id.clone(),
            None => store
                .job_ids()
                .into_iter()
                .next()
                .ok_or("error: there is no job to continue yet; run one first")?,
        };
        let job = store.read_job(&job_id).map_err(|e| format!("error: {e}"))?;
        let checkpoint = resume_point(&store, &job_id, args.resume_from.as_deref())?;
        let answers = answers_for(&checkpoint, args.interactive_answer.as_deref())?;
        let query = match (checkpoint.status, &args.query) {
            (CheckpointStatus::Completed, Some(q)) => Some(q.clone()),
            (CheckpointStatus::Completed, None) => {
                return Err(
                    "error: the job is complete; give a follow-up query to continue it".into(),
                );
            }
            _ => None,
        };
        let start = RunStart::Resume {
            checkpoint: Box::new(checkpoint),
            query,
            answers,
            fork: args.fork,
        };
        (job_id, start, job.total_steps, job.started_at)
    } else {
        let query = args.query.clone().ok_or(
            "error: give the task as the second argument: perstack run <expertKey> \"<query>\"",
        )?;
        let job_id = args.overrides.job_id.clone().unwrap_or_else(new_id);
        (job_id, RunStart::Query(query), 0, now_millis())
    };
    let (debugger, controls) = Debugger::new(args.breakpoints.clone());
    let pending_body = PendingBody::default();
    if !args.breakpoints.is_empty() {
        let edit_dir = prepared.workspace.join("perstack").join("requests");
        read_controls_from_stdin(controls, pending_body.clone(), edit_dir);
    }
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<RunEvent>();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let job = Arc::new(
        JobContext::new(
            job_id,
            prepared.config.clone(),
            prepared.workspace.clone(),
            prepared.model.clone(),
            store,
            events_tx,
            cancel_rx,
            steps_used,
        )
        .with_environment(prepared.env.clone(), prepared.lock.clone())
        .with_debugger(Arc::new(debugger)),
    );
    let printer = tokio::spawn(async move {
        // One line buffer for the whole run: late events are large, and growing a fresh buffer
        // for each costs about as much as filling it.
        let mut line = Vec::new();
        while let Some(event) = events_rx.recv().await {
            if let EventKind::LlmRequest { request, .. } = &event.kind {
                if let Ok(mut pending) = pending_body.lock() {
                    *pending = Some(request.body.clone());
                }
            }
            line.clear();
            match serde_json::to_writer(&mut line, &event) {
                Ok(()) => {
                    line.push(b'\n');
                    // A closed stdout (a pipe to `head`) must not stop the run.
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(&line).and_then(|_| stdout.flush());
                }
                Err(err) => eprintln!("perstack: event not printed: {err}"),
            }
        }
    });
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("perstack: cancelling; the last checkpoint is kept");
            let _ = cancel_tx.send(true);
        }
    });
    // A fork adds a run to the job and leaves every file of the original as it was.
    let outcome =
        crate::runtime::job::run_job(job.clone(), &args.expert_key, start, started_at, !args.fork)
            .await;
    if let Some(error) = &outcome.error {
        eprintln!("perstack: the run stopped: {error}");
    }
    drop(job);
    let _ = printer.await;
    Ok(outcome.status)
}
