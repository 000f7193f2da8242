//! The one door into the runtime for every front end: [`Runtime::prepare`] turns loaded
//! definitions and overrides into everything a job needs (provider, workspace, store,
//! environment, lock), and [`Runtime::start`] starts a job and hands back a [`JobHandle`]
//! (its events, cancel, and how it ended). `perstack run`, the workbench and the tests all
//! build jobs this way and no other.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::checkpoint::{Checkpoint, CheckpointStatus, StoreError};
use super::control::Debugger;
use super::event::RunEvent;
use super::id::{InvalidId, check_id, new_id, now_millis};
use super::job::{JobContext, RunOutcome, RunStart, run_job};
use super::message::ToolResult;
use crate::definition::{
    self, Config, Diagnostic, LoadedConfig, ProviderName, ProviderSetting, ReasoningBudget,
};
use crate::llm::{self, LanguageModel, LlmError};
use crate::skills::lock::Lock;
use crate::store::JobStore as _;
use crate::tool::ToolOutput;

/// Settings that override perstack.toml, shared by `run` and `start` (clap reads them from
/// flags; any other front end fills them in).
#[derive(Debug, Clone, Default, clap::Args)]
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
    pub sandbox: Option<crate::sandbox::SandboxSwitch>,
    /// Export the run as an OpenTelemetry trace (OTLP/HTTP; set OTEL_EXPORTER_OTLP_ENDPOINT)
    #[arg(long)]
    pub otel: bool,
    /// Change one thing, to compare the run with a sibling (`perstack diff`): model=NAME,
    /// provider=NAME,model=NAME, or instruction=@FILE (the resumed Expert's instruction)
    #[arg(long, value_name = "KEY=VALUE")]
    pub variant: Option<super::variant::Variant>,
    /// Store jobs here instead of the workspace: s3://bucket/prefix (credentials, region and
    /// AWS_ENDPOINT_URL from the AWS_* variables); overrides `storage` in perstack.toml
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// Record every MCP JSON-RPC frame as an `mcpFrame` event (off for `run`, on for `start`;
    /// `--trace-mcp=false` turns it off)
    #[arg(long, value_name = "true|false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub trace_mcp: Option<bool>,
}

/// Why definitions and overrides could not be made ready to run.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("--reasoning-budget {0}: use none, minimal, low, medium, high or a number of tokens")]
    ReasoningBudget(String),
    #[error("{}", .0.render())]
    EnvFile(Box<Diagnostic>),
    #[error("--provider {name} is not a provider; use one of: {valid}")]
    UnknownProvider { name: String, valid: String },
    #[error(transparent)]
    Provider(#[from] LlmError),
    #[error("--record {}: {source}", path.display())]
    Record { path: PathBuf, source: LlmError },
    #[error("no current directory: {0}")]
    CurrentDir(std::io::Error),
    #[error(transparent)]
    Registry(#[from] crate::registry::ResolveError),
    #[error("workspace {}: {source}; pass an existing directory with --workspace", path.display())]
    Workspace {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--otel: {0}")]
    Otel(#[from] crate::telemetry::OtlpConfigError),
    #[error("{0}; fix --storage or `storage` in perstack.toml")]
    Storage(StoreError),
}

/// Why a job could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    #[error("there is no job to continue yet; run one first")]
    NoJobToContinue,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("job {0} has no checkpoint of its coordinator to continue from")]
    NoCoordinatorCheckpoint(String),
    #[error("the run is waiting for an answer to {}; pass it with -i '<answer>'", .0.join(", "))]
    AnswerNeeded(Vec<String>),
    #[error("the job is complete; give a follow-up query to continue it")]
    FollowUpNeeded,
    #[error("the job's record could not be read: {0}")]
    Background(String),
}

/// Definitions made ready to run: the provider built, the workspace and store found, the
/// environment skills may draw from read. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub config: Arc<Config>,
    pub model: Arc<dyn LanguageModel>,
    pub workspace: PathBuf,
    /// Where jobs are read and written: the workspace's `perstack/jobs`, or a remote store
    /// written through its spool (`--storage`, `storage =`).
    pub store: Arc<dyn crate::store::Store>,
    /// The process environment over the dotenv files: skills take their `requiredEnv` from it.
    pub env: Arc<HashMap<String, String>>,
    /// perstack.lock, when there is one: lazy skills start on their first call.
    pub lock: Option<Lock>,
    /// Said once when the lock could not be read (the run goes on without it).
    pub lock_warning: Option<String>,
    /// Where traces go, when `--otel` or `otel = true` asks for them.
    pub otel: Option<Arc<crate::telemetry::OtlpConfig>>,
    /// What runs started here change against a sibling; recorded in their run-setting.json.
    pub variant: Option<super::variant::Variant>,
    /// MCP frames are recorded as events (`--trace-mcp`; the workbench defaults it on).
    pub trace_mcp: bool,
}

/// Where a job starts.
#[derive(Debug, Clone)]
pub enum JobStart {
    /// A new job answering `query`, under `job_id` or a fresh id.
    New {
        query: String,
        job_id: Option<String>,
    },
    /// Continue a stored job (the latest when `job_id` is None) from its coordinator's latest
    /// checkpoint or from `resume_from`. `query` is a follow-up for a completed job; `answer`
    /// answers the interactive tool calls it waits for.
    Continue {
        job_id: Option<String>,
        resume_from: Option<String>,
        query: Option<String>,
        answer: Option<String>,
        fork: bool,
    },
    /// Continue from a checkpoint already in hand (the workbench has it loaded).
    Checkpoint {
        checkpoint: Arc<Checkpoint>,
        query: Option<String>,
        answers: Vec<ToolResult>,
        fork: bool,
    },
}

/// A job that is running: its events, a way to cancel it, and its end.
pub struct JobHandle {
    pub job_id: String,
    /// Every event of the job, in order; closed when the job has ended.
    pub events: mpsc::UnboundedReceiver<RunEvent>,
    cancel: Arc<watch::Sender<bool>>,
    outcome: JoinHandle<RunOutcome>,
    /// The trace export and where it goes, when the job is traced.
    telemetry: Option<(JoinHandle<crate::telemetry::ExportReport>, String)>,
}

/// Cancels a job from anywhere (a signal handler, a key).
#[derive(Clone)]
pub struct Canceller(Arc<watch::Sender<bool>>);

impl Canceller {
    pub fn cancel(&self) {
        let _ = self.0.send(true);
    }
}

impl JobHandle {
    pub fn canceller(&self) -> Canceller {
        Canceller(self.cancel.clone())
    }

    /// Waits for the job's end. Every checkpoint and event is in the store by then.
    /// A traced job's last spans are sent by then, and a failed export said once, as a warning.
    pub async fn outcome(self) -> RunOutcome {
        let job_id = self.job_id;
        let outcome = self.outcome.await.unwrap_or_else(|err| RunOutcome {
            run_id: String::new(),
            status: CheckpointStatus::StoppedByError,
            text: None,
            checkpoint: None,
            error: Some(format!("job {job_id} stopped unexpectedly: {err}")),
        });
        if let Some((export, traces_url)) = self.telemetry {
            let warning = match export.await {
                Ok(report) => report.warning(&traces_url),
                Err(err) => Some(format!("OpenTelemetry export stopped: {err}")),
            };
            if let Some(warning) = warning {
                tracing::warn!("{warning}");
            }
        }
        outcome
    }
}

impl Runtime {
    /// Applies `overrides` to the loaded definitions and builds the provider. Reads dotenv
    /// files and perstack.lock: call it off any thread that must not block.
    pub fn prepare(loaded: &LoadedConfig, overrides: &Overrides) -> Result<Runtime, PrepareError> {
        let overrides = &with_variant_model(overrides);
        let mut config = apply_overrides(loaded.config.clone(), overrides)?;
        let env =
            definition::load_env(loaded, &overrides.env_path).map_err(PrepareError::EnvFile)?;
        let (name, setting) = provider_choice(&config, overrides)?;
        let model_name = overrides
            .model
            .clone()
            .or_else(|| config.model.clone())
            .unwrap_or_else(|| llm::providers::info(name).default_model.to_string());
        let mut model =
            llm::build_provider(name, setting.as_ref(), &model_name, &env, &loaded.dir)?;
        if let Some(path) = &overrides.record {
            let recorder =
                llm::replay::Recorder::new(model, path).map_err(|source| PrepareError::Record {
                    path: path.clone(),
                    source,
                })?;
            model = Arc::new(recorder);
        }
        let workspace = match &overrides.workspace {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().map_err(PrepareError::CurrentDir)?,
        };
        let workspace = workspace
            .canonicalize()
            .map_err(|source| PrepareError::Workspace {
                path: workspace.clone(),
                source,
            })?;
        // Like the original, jobs live under the workspace (`perstack/jobs` next to the work)
        // unless a remote store is named.
        let storage = overrides.storage.as_deref().or(config.storage.as_deref());
        let store =
            crate::store::open_for_writing(storage, &workspace).map_err(PrepareError::Storage)?;
        let lock_path = crate::skills::lock::lock_path(&loaded.path);
        let (lock, mut lock_warning) = match crate::skills::lock::read_lock(&lock_path) {
            Ok(lock) => (lock, None),
            Err(err) => (
                None,
                Some(format!("{err}; starting every skill at run start instead")),
            ),
        };
        // Registry Experts become ordinary entries of the config, from the lock and the cache.
        let pinned = crate::skills::lock::read_registry(&lock_path).unwrap_or_default();
        let registry_warnings = crate::registry::attach(&mut config, &pinned)?;
        if !registry_warnings.is_empty() {
            let mut warnings = lock_warning.into_iter().collect::<Vec<_>>();
            warnings.extend(registry_warnings);
            lock_warning = Some(warnings.join("; "));
        }
        let otel = if overrides.otel || config.otel == Some(true) {
            Some(Arc::new(crate::telemetry::OtlpConfig::from_env(&env)?))
        } else {
            None
        };
        Ok(Runtime {
            otel,
            trace_mcp: overrides.trace_mcp.unwrap_or(false),
            config: Arc::new(config),
            model,
            workspace,
            store,
            env: Arc::new(env),
            lock,
            lock_warning,
            variant: overrides.variant.clone(),
        })
    }

    /// Starts a job of `expert_key` on the current tokio runtime. `debugger` holds the
    /// breakpoints and receives the controls that answer pauses (a workbench keeps one for all
    /// its jobs).
    pub async fn start(
        &self,
        expert_key: &str,
        start: JobStart,
        debugger: Arc<Debugger>,
    ) -> Result<JobHandle, StartError> {
        let store = self.store.clone();
        // Continuing reads the store: off the async workers.
        let resolved = tokio::task::spawn_blocking(move || resolve(&store, start))
            .await
            .map_err(|err| StartError::Background(err.to_string()))??;
        Ok(self.spawn(expert_key, resolved, debugger))
    }

    fn spawn(&self, expert_key: &str, resolved: Resolved, debugger: Arc<Debugger>) -> JobHandle {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        // Tracing reads the events on their way to the front end; the job runs as it would.
        let poster = self.otel.as_ref().and_then(|config| {
            crate::telemetry::Poster::new(config.clone())
                .inspect_err(|err| tracing::warn!("OpenTelemetry export is off: {err}"))
                .ok()
        });
        let mut telemetry = None;
        if let Some(poster) = poster {
            let traces_url = poster.config().shown_url.clone();
            let (teed, export) = crate::telemetry::tee(events, &resolved.job_id, poster);
            events = teed;
            telemetry = Some((export, traces_url));
        }
        let trace_id = telemetry
            .as_ref()
            .map(|_| crate::telemetry::trace_id_hex(&resolved.job_id));
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let job_id = resolved.job_id.clone();
        let job = Arc::new(
            JobContext::new(
                resolved.job_id,
                self.config_for(expert_key),
                self.workspace.clone(),
                self.model.clone(),
                self.store.clone(),
                events_tx,
                cancel_rx,
                resolved.steps_used,
            )
            .with_environment((*self.env).clone(), self.lock.clone())
            .with_debugger(debugger)
            .with_trace_id(trace_id)
            .with_variant(self.variant.clone())
            .with_trace_mcp(self.trace_mcp),
        );
        let expert_key = expert_key.to_string();
        let outcome = tokio::spawn(async move {
            // A fork adds a run to the job and leaves every file of the original as it was.
            run_job(
                job,
                &expert_key,
                resolved.start,
                resolved.started_at,
                !resolved.fork,
            )
            .await
        });
        JobHandle {
            job_id,
            events,
            cancel: Arc::new(cancel_tx),
            outcome,
            telemetry,
        }
    }
}

impl Runtime {
    /// The definitions a job of `expert_key` runs under: an instruction variant replaces that
    /// Expert's instruction, and nothing else.
    fn config_for(&self, expert_key: &str) -> Arc<Config> {
        let instruction = self.variant.as_ref().and_then(|v| v.instruction.as_ref());
        match instruction {
            Some(text) if self.config.experts.contains_key(expert_key) => {
                let mut config = (*self.config).clone();
                if let Some(expert) = config.experts.get_mut(expert_key) {
                    expert.instruction = text.clone();
                }
                Arc::new(config)
            }
            _ => self.config.clone(),
        }
    }
}

/// `overrides` with the variant's provider and model in force (they win over --provider and
/// --model: the variant is the one thing the run changes).
fn with_variant_model(overrides: &Overrides) -> Overrides {
    let mut overrides = overrides.clone();
    if let Some(variant) = &overrides.variant {
        if let Some(provider) = &variant.provider {
            overrides.provider = Some(provider.clone());
        }
        if let Some(model) = &variant.model {
            overrides.model = Some(model.clone());
        }
    }
    overrides
}

/// The answers a waiting run gets: `answer` for each interactive call it stopped at.
pub fn answers_for(checkpoint: &Checkpoint, answer: &str) -> Vec<ToolResult> {
    checkpoint
        .pending_tool_calls
        .iter()
        .flatten()
        .map(|call| ToolResult {
            id: call.id.clone(),
            skill_name: call.skill_name.clone(),
            tool_name: call.tool_name.clone(),
            result: ToolOutput::text(answer),
        })
        .collect()
}

/// A job start with everything read from the store.
struct Resolved {
    job_id: String,
    start: RunStart,
    steps_used: u64,
    started_at: u64,
    fork: bool,
}

fn resolve(store: &dyn crate::store::Store, start: JobStart) -> Result<Resolved, StartError> {
    match start {
        JobStart::New { query, job_id } => {
            let job_id = match job_id {
                Some(id) => {
                    check_id("--job-id", &id)?;
                    id
                }
                None => new_id(),
            };
            Ok(Resolved {
                job_id,
                start: RunStart::Query(query),
                steps_used: 0,
                started_at: now_millis(),
                fork: false,
            })
        }
        JobStart::Continue {
            job_id,
            resume_from,
            query,
            answer,
            fork,
        } => {
            let job_id = match job_id {
                Some(id) => {
                    check_id("--continue-job", &id)?;
                    id
                }
                None => store
                    .job_ids()
                    .into_iter()
                    .next()
                    .ok_or(StartError::NoJobToContinue)?,
            };
            if let Some(id) = &resume_from {
                check_id("--resume-from", id)?;
            }
            let job = store.read_job(&job_id)?;
            let checkpoint = resume_point(store, &job_id, resume_from.as_deref())?;
            let answers = match (&checkpoint.pending_tool_calls, answer) {
                (None, _) => Vec::new(),
                (Some(_), Some(answer)) => answers_for(&checkpoint, &answer),
                (Some(pending), None) => {
                    return Err(StartError::AnswerNeeded(
                        pending.iter().map(|c| c.tool_name.clone()).collect(),
                    ));
                }
            };
            let query = match (checkpoint.status, query) {
                (CheckpointStatus::Completed, None) => return Err(StartError::FollowUpNeeded),
                (CheckpointStatus::Completed, query) => query,
                _ => None,
            };
            // job.json can lag the checkpoints after a crash; the checkpoints cannot.
            let steps_used = job.total_steps.max(store.steps_used(&job_id));
            Ok(Resolved {
                job_id,
                start: RunStart::Resume {
                    checkpoint: Box::new(checkpoint),
                    query,
                    answers,
                    fork,
                },
                steps_used,
                started_at: job.started_at,
                fork,
            })
        }
        JobStart::Checkpoint {
            checkpoint,
            query,
            answers,
            fork,
        } => {
            let job_id = checkpoint.job_id.clone();
            // The job record keeps the steps already used and the start time.
            let (steps_used, started_at) = store
                .read_job(&job_id)
                .map(|job| {
                    (
                        job.total_steps.max(store.steps_used(&job_id)),
                        job.started_at,
                    )
                })
                .unwrap_or((0, now_millis()));
            Ok(Resolved {
                job_id,
                start: RunStart::Resume {
                    checkpoint: Box::new((*checkpoint).clone()),
                    query,
                    answers,
                    fork,
                },
                steps_used,
                started_at,
                fork,
            })
        }
    }
}

/// The checkpoint a continued job resumes from: the one named, or the coordinator's latest.
fn resume_point(
    store: &dyn crate::store::Store,
    job_id: &str,
    resume_from: Option<&str>,
) -> Result<Checkpoint, StartError> {
    if let Some(id) = resume_from {
        return Ok(store.read_checkpoint(job_id, id)?);
    }
    store
        .checkpoints(job_id)
        .into_iter()
        .rev()
        .find(|c| c.delegated_by.is_none())
        .ok_or_else(|| StartError::NoCoordinatorCheckpoint(job_id.to_string()))
}

fn apply_overrides(mut config: Config, overrides: &Overrides) -> Result<Config, PrepareError> {
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
                .ok_or_else(|| PrepareError::ReasoningBudget(budget.clone()))?,
        );
    }
    Ok(config)
}

fn provider_choice(
    config: &Config,
    overrides: &Overrides,
) -> Result<(ProviderName, Option<ProviderSetting>), PrepareError> {
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
            let provider =
                ProviderName::from_name(name).ok_or_else(|| PrepareError::UnknownProvider {
                    name: name.clone(),
                    valid: ProviderName::ALL
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let same = config.provider_name() == provider;
            Ok((provider, if same { file_setting } else { None }))
        }
        None => Ok((config.provider_name(), file_setting)),
    }
}
