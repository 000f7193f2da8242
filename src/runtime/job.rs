//! What the runs of one job share, how a run is asked for, and how it ended.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::checkpoint::{Checkpoint, CheckpointStatus, DelegatedBy, Job, JobStatus, Usage};
use super::control::Debugger;
use super::event::RunEvent;
use super::id::{Clock, SystemClock, now_millis};
use super::message::ToolResult;
use super::writer::StoreWriter;
use crate::definition::{Config, ReasoningBudget};
use crate::llm::LanguageModel;
use crate::llm::retry::RetryPolicy;
use crate::skills::lock::Lock;
use crate::store::{JobStore as _, Store};

/// Delegation deeper than this is refused: it is almost always a cycle.
pub const MAX_DELEGATION_DEPTH: usize = 16;

/// What every run of one job shares.
pub struct JobContext {
    pub job_id: String,
    pub config: Arc<Config>,
    pub workspace: PathBuf,
    pub model: Arc<dyn LanguageModel>,
    pub store: Arc<dyn Store>,
    /// Checkpoints and events go to the store through this, off the step's path.
    pub writer: StoreWriter,
    pub events: mpsc::UnboundedSender<RunEvent>,
    pub retry: RetryPolicy,
    pub reasoning: ReasoningBudget,
    pub max_steps: u64,
    pub max_retries: u64,
    /// What skill processes may see of the environment (each only its `requiredEnv`).
    pub env: HashMap<String, String>,
    /// perstack.lock, when there is one: lazy skills start on their first call.
    pub lock: Option<Lock>,
    /// Breakpoints and the controls that answer pauses; a workbench shares one across jobs.
    pub debugger: Arc<Debugger>,
    /// Step times and the ids the run machine makes.
    pub clock: Arc<dyn Clock>,
    /// How skill processes are confined: from perstack.toml's `runtime`, unless overridden.
    pub sandbox: crate::sandbox::Sandbox,
    /// The OpenTelemetry trace id recorded in job.json, when the job is traced.
    pub trace_id: Option<String>,
    /// What the job's top-level run changes against a sibling (A/B), for its run-setting.json.
    pub variant: Option<super::variant::Variant>,
    /// MCP servers' JSON-RPC frames become `mcpFrame` events (`--trace-mcp`).
    pub trace_mcp: bool,
    pub(super) steps_used: AtomicU64,
    pub(super) cancel: watch::Receiver<bool>,
    /// The number of the last event emitted (see [`crate::store::refs`]).
    pub(super) sequence: Mutex<u64>,
    /// What job.json says while the job runs; `None` for a job that keeps no record (a fork).
    progress: Mutex<Option<Job>>,
    /// Failed uploads of a store that uploads in the background, to be said as events.
    upload_retries: Mutex<Option<std::sync::mpsc::Receiver<crate::store::UploadRetry>>>,
}

impl JobContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        job_id: String,
        config: Arc<Config>,
        workspace: PathBuf,
        model: Arc<dyn LanguageModel>,
        store: impl Store + 'static,
        events: mpsc::UnboundedSender<RunEvent>,
        cancel: watch::Receiver<bool>,
        steps_already_used: u64,
    ) -> Self {
        let sandbox = crate::sandbox::Sandbox::from_config(&config);
        let store: Arc<dyn Store> = Arc::new(store);
        let upload_retries = Mutex::new(store.retries());
        JobContext {
            upload_retries,
            job_id,
            retry: RetryPolicy::from_config(config.max_retries(), config.timeout_ms()),
            reasoning: config.reasoning_budget(),
            max_steps: config.max_steps(),
            max_retries: config.max_retries(),
            config,
            workspace,
            model,
            writer: StoreWriter::start(store.clone()),
            store,
            events,
            env: HashMap::new(),
            lock: None,
            debugger: Arc::new(Debugger::default()),
            clock: Arc::new(SystemClock),
            sandbox,
            trace_id: None,
            variant: None,
            trace_mcp: false,
            steps_used: AtomicU64::new(steps_already_used),
            cancel,
            sequence: Mutex::new(crate::store::refs::sequence_start(now_millis())),
            progress: Mutex::new(None),
        }
    }

    /// The environment skills draw their `requiredEnv` from, and perstack.lock.
    pub fn with_environment(mut self, env: HashMap<String, String>, lock: Option<Lock>) -> Self {
        self.env = env;
        self.lock = lock;
        self
    }

    /// Breakpoints for every run of this job (see [`Debugger::new`] for the control sender).
    pub fn with_debugger(mut self, debugger: Arc<Debugger>) -> Self {
        self.debugger = debugger;
        self
    }

    /// Confines (or not) the skill processes of every run of this job.
    pub fn with_sandbox(mut self, sandbox: crate::sandbox::Sandbox) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Records this trace id in job.json.
    pub fn with_trace_id(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self
    }

    /// Records `variant` in the run-setting.json of the job's top-level run.
    pub fn with_variant(mut self, variant: Option<super::variant::Variant>) -> Self {
        self.variant = variant;
        self
    }

    /// Records the MCP wire of every skill of this job as events.
    pub fn with_trace_mcp(mut self, trace_mcp: bool) -> Self {
        self.trace_mcp = trace_mcp;
        self
    }

    pub fn steps_used(&self) -> u64 {
        self.steps_used.load(Ordering::SeqCst)
    }

    /// The failed uploads since the last call, as `storageRetry` events.
    pub(super) fn storage_retries(&self) -> Vec<super::event::EventKind> {
        let Ok(receiver) = self.upload_retries.lock() else {
            return Vec::new();
        };
        let Some(receiver) = receiver.as_ref() else {
            return Vec::new();
        };
        receiver
            .try_iter()
            .map(|retry| super::event::EventKind::StorageRetry {
                key: retry.key,
                attempt: retry.attempt,
                error: retry.error,
                spooled: retry.spooled,
            })
            .collect()
    }

    pub(super) fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Saves `checkpoint` and returns once it is in the store (job.json's step count follows
    /// it): the step's events that follow report a step a crash cannot lose, and the next
    /// step's tool calls start only then.
    pub async fn save_checkpoint(&self, checkpoint: Arc<Checkpoint>) {
        let record = self.progress_with(&checkpoint);
        self.writer.save_checkpoint(checkpoint, record).await;
    }

    fn progress_with(&self, checkpoint: &Checkpoint) -> Option<Job> {
        let mut progress = self.progress.lock().ok()?;
        let record = progress.as_mut()?;
        record.total_steps = self.steps_used();
        if checkpoint.delegated_by.is_none() {
            record.usage = checkpoint.usage;
        }
        Some(record.clone())
    }
}

/// Where a run starts from.
#[derive(Debug, Clone)]
pub enum RunStart {
    /// A new run answering this query.
    Query(String),
    /// Continue a stored checkpoint. `query` adds a new user message (continuing a completed
    /// job); `answers` answer pending interactive tool calls.
    Resume {
        checkpoint: Box<Checkpoint>,
        query: Option<String>,
        answers: Vec<ToolResult>,
        /// A fork gets a new run id, and its checkpoints never overwrite the original's.
        fork: bool,
    },
}

#[derive(Debug, Clone)]
pub struct RunSpec {
    pub expert_key: String,
    /// The new run's id; one is made when absent.
    pub run_id: Option<String>,
    pub start: RunStart,
    pub parent: Option<Parent>,
}

#[derive(Debug, Clone)]
pub struct Parent {
    pub run_id: String,
    pub delegated_by: DelegatedBy,
    pub depth: usize,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: CheckpointStatus,
    pub text: Option<String>,
    pub checkpoint: Option<Box<Checkpoint>>,
    pub error: Option<String>,
}

/// Records the job's state in job.json.
pub fn write_job_record(
    job: &JobContext,
    coordinator: &str,
    status: JobStatus,
    usage: Usage,
    started_at: u64,
) {
    let record = Job {
        id: job.job_id.clone(),
        status,
        coordinator_expert_key: coordinator.to_string(),
        total_steps: job.steps_used(),
        max_steps: job.max_steps,
        usage,
        started_at,
        finished_at: (status != JobStatus::Running).then(now_millis),
        trace_id: job.trace_id.clone(),
    };
    if let Ok(mut progress) = job.progress.lock() {
        *progress = (status == JobStatus::Running).then(|| record.clone());
    }
    if let Err(err) = job.store.write_job(&record) {
        tracing::warn!("job record not saved: {err}");
    }
}

/// Runs a job's coordinator to its end and keeps job.json up to date: the one way a job runs,
/// headless or in the workbench. `record` is false for a fork, which leaves the original job's
/// files as they were.
pub async fn run_job(
    job: Arc<JobContext>,
    expert_key: &str,
    start: RunStart,
    started_at: u64,
    record: bool,
) -> RunOutcome {
    if record {
        write_job_record(
            &job,
            expert_key,
            JobStatus::Running,
            Usage::default(),
            started_at,
        );
    }
    let spec = RunSpec {
        expert_key: expert_key.to_string(),
        run_id: None,
        start,
        parent: None,
    };
    let outcome = super::run::run_expert(job.clone(), spec).await;
    let usage = outcome
        .checkpoint
        .as_ref()
        .map(|c| c.usage)
        .unwrap_or_default();
    let status = match outcome.status {
        CheckpointStatus::Completed => JobStatus::Completed,
        CheckpointStatus::StoppedByError => JobStatus::Failed,
        _ => JobStatus::Stopped,
    };
    // Every checkpoint and event is on disk before the job says it has ended.
    job.writer.flush();
    if record {
        write_job_record(&job, expert_key, status, usage, started_at);
    }
    outcome
}
