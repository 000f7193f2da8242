//! `perstack run`: one job, headless, every event as one JSON line on stdout.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio::sync::mpsc;

use super::ConfigArgs;
use crate::runtime::checkpoint::CheckpointStatus;
use crate::runtime::control::{Breakpoint, Control, Debugger};
use crate::runtime::event::EventKind;
use crate::runtime::{JobStart, Overrides, Runtime};

/// Exit codes of `perstack run`, one per way a run can end.
pub mod code {
    pub const COMPLETED: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const MAX_STEPS: u8 = 3;
    pub const WAITING_FOR_INPUT: u8 = 4;
    /// The run ended, but not all of it reached the remote store: the rest is in the spool.
    pub const NOT_STORED: u8 = 5;
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
    let Ok(loaded) = super::load_or_report(&args.config) else {
        return ExitCode::from(code::ERROR);
    };
    let runtime = match Runtime::prepare(&loaded, &args.overrides) {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(code::ERROR);
        }
    };
    if let Some(warning) = &runtime.lock_warning {
        tracing::warn!("{warning}");
    }
    let tokio = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(tokio) => tokio,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(code::ERROR);
        }
    };
    let result = tokio.block_on(run_job(args, runtime));
    // A tool still blocked in the OS (a FIFO, a hung disk) must not keep the process alive:
    // everything that matters is stored by now.
    tokio.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok((status, Err(unsettled))) => {
            eprintln!("perstack: run ended ({status:?}), but {unsettled}");
            ExitCode::from(code::NOT_STORED)
        }
        Ok((status, Ok(()))) => ExitCode::from(exit_code(status)),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(code::ERROR)
        }
    }
}

fn job_start(args: &RunArgs) -> Result<JobStart, &'static str> {
    if args.continue_latest || args.continue_job.is_some() {
        return Ok(JobStart::Continue {
            job_id: args.continue_job.clone(),
            resume_from: args.resume_from.clone(),
            query: args.query.clone(),
            answer: args.interactive_answer.clone(),
            fork: args.fork,
        });
    }
    let query = args
        .query
        .clone()
        .ok_or("give the task as the second argument: perstack run <expertKey> \"<query>\"")?;
    Ok(JobStart::New {
        query,
        job_id: args.overrides.job_id.clone(),
    })
}

/// How long the end of a run waits for its objects to reach a remote store:
/// `PERSTACK_STORAGE_WAIT_MS`, default 30 s.
fn upload_wait() -> std::time::Duration {
    crate::store::spool::env_millis("PERSTACK_STORAGE_WAIT_MS")
        .unwrap_or(std::time::Duration::from_secs(30))
}

/// Ends the run: its status, and whether everything reached the store.
type Ended = (CheckpointStatus, Result<(), crate::store::Unsettled>);

async fn run_job(args: &RunArgs, runtime: Runtime) -> Result<Ended, String> {
    let start = job_start(args)?;
    let (debugger, controls) = Debugger::new(args.breakpoints.clone());
    let pending_body = PendingBody::default();
    if !args.breakpoints.is_empty() {
        let edit_dir = runtime.workspace.join("perstack").join("requests");
        read_controls_from_stdin(controls, pending_body.clone(), edit_dir);
    }
    let mut job = runtime
        .start(&args.expert_key, start, Arc::new(debugger))
        .await
        .map_err(|err| err.to_string())?;
    let canceller = job.canceller();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("perstack: cancelling; the last checkpoint is kept");
            canceller.cancel();
        }
    });
    // One line buffer for the whole run: late events are large, and growing a fresh buffer
    // for each costs about as much as filling it.
    let mut line = Vec::new();
    while let Some(event) = job.events.recv().await {
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
    let outcome = job.outcome().await;
    if let Some(error) = &outcome.error {
        eprintln!("perstack: the run stopped: {error}");
    }
    let store = runtime.store.clone();
    let settled = tokio::task::spawn_blocking(move || store.settle(upload_wait()))
        .await
        .map_err(|err| format!("the wait for uploads stopped: {err}"))?;
    Ok((outcome.status, settled))
}
