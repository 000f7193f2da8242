//! The driver: performs the effects of a [`Machine`] (model calls, tools, delegates, disk) and
//! feeds the results back, for one run and, recursively, for the runs it delegates to.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::{BoxFuture, join_all};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::checkpoint::{
    Checkpoint, CheckpointError, CheckpointStatus, DelegatedBy, ExpertRef, Job, JobStatus, Store,
    Usage,
};
use super::event::{EventKind, RunEvent, RunIds, WireRequest};
use super::id::{new_id, now_millis};
use super::machine::{Effect, GeneratedCall, Generation, Input, Machine, ToolKind};
use super::message::{Message, ToolCall, ToolResult};
use super::prompt;
use super::writer::StoreWriter;
use crate::definition::{Config, Expert, ReasoningBudget};
use crate::llm::retry::{RetryHook, RetryPolicy, send_with_retry};
use crate::llm::{self, LanguageModel, ResponseBuilder, StreamChunk};
use crate::skills::base::ATTEMPT_COMPLETION;
use crate::skills::lock::Lock;
use crate::skills::workspace::Workspace;
use crate::skills::{
    SkillEvent, SkillEventKind, SkillManager, SkillManagerOptions, ToolKind as SkillToolKind,
};
use crate::time::rfc3339;
use crate::tool::{ToolDefinition, ToolOutput};

/// Delegation deeper than this is refused: it is almost always a cycle.
pub const MAX_DELEGATION_DEPTH: usize = 16;

/// What every run of one job shares.
pub struct JobContext {
    pub job_id: String,
    pub config: Arc<Config>,
    pub workspace: PathBuf,
    pub model: Arc<dyn LanguageModel>,
    pub store: Store,
    /// Checkpoints and events go to disk through this, off the step's path.
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
    steps_used: AtomicU64,
    cancel: watch::Receiver<bool>,
}

impl JobContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        job_id: String,
        config: Arc<Config>,
        workspace: PathBuf,
        model: Arc<dyn LanguageModel>,
        store: Store,
        events: mpsc::UnboundedSender<RunEvent>,
        cancel: watch::Receiver<bool>,
        steps_already_used: u64,
    ) -> Self {
        JobContext {
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
            steps_used: AtomicU64::new(steps_already_used),
            cancel,
        }
    }

    /// The environment skills draw their `requiredEnv` from, and perstack.lock.
    pub fn with_environment(mut self, env: HashMap<String, String>, lock: Option<Lock>) -> Self {
        self.env = env;
        self.lock = lock;
        self
    }

    pub fn steps_used(&self) -> u64 {
        self.steps_used.load(Ordering::SeqCst)
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
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

/// Run an Expert to its end (completion or a stop), delegates included.
pub fn run_expert(job: Arc<JobContext>, spec: RunSpec) -> BoxFuture<'static, RunOutcome> {
    Box::pin(async move {
        let run_id = spec.run_id.clone().unwrap_or_else(new_id);
        let Some(expert) = job.config.experts.get(&spec.expert_key).cloned() else {
            let known: Vec<&str> = job.config.experts.keys().map(String::as_str).collect();
            return RunOutcome {
                run_id,
                status: CheckpointStatus::StoppedByError,
                text: None,
                checkpoint: None,
                error: Some(format!(
                    "no Expert \"{}\" in perstack.toml; known Experts: {}",
                    spec.expert_key,
                    known.join(", ")
                )),
            };
        };
        let mut driver = Driver::new(job, spec, expert, run_id);
        driver.run().await
    })
}

/// What the concurrent calls of one step report besides their results.
#[derive(Default)]
struct CallsState {
    completion_accepted: Option<bool>,
    delegated_usage: Usage,
}

/// Where delegate calls come from, for the child's `delegatedBy`.
struct Origin {
    expert: ExpertRef,
    checkpoint_id: String,
}

/// Sends a run's events to the UI or JSONL and to the store.
#[derive(Clone)]
struct Emitter {
    job: Arc<JobContext>,
    ids: RunIds,
}

impl Emitter {
    fn emit(&self, step: u64, kind: EventKind) {
        let event = self.ids.event(step, kind);
        self.job.writer.event(&event);
        let _ = self.job.events.send(event);
    }
}

fn skill_event(report: SkillEvent) -> EventKind {
    let skill_name = report.skill_name;
    match report.kind {
        SkillEventKind::Starting => EventKind::SkillStarting { skill_name },
        SkillEventKind::Connected(info) => EventKind::SkillConnected {
            skill_name,
            server_info: Some(json!({"name": info.server_name, "version": info.server_version})),
            spawn_duration_ms: info.spawn_duration_ms,
            handshake_duration_ms: info.handshake_duration_ms,
            connect_duration_ms: info.spawn_duration_ms + info.handshake_duration_ms,
            tool_discovery_duration_ms: info.tool_discovery_duration_ms,
            total_duration_ms: info.total_duration_ms,
        },
        SkillEventKind::Stderr { line } => EventKind::SkillStderr {
            skill_name,
            message: line,
        },
        SkillEventKind::Disconnected { reason } => EventKind::SkillDisconnected {
            skill_name,
            reason: Some(reason),
        },
        SkillEventKind::Warning { message } => EventKind::SkillWarning {
            skill_name,
            message,
        },
    }
}

struct Driver {
    job: Arc<JobContext>,
    spec: RunSpec,
    expert: Expert,
    ids: RunIds,
    skills: Option<SkillManager>,
    /// Forwards skill reports as events until the skills shut down.
    forward: Option<tokio::task::JoinHandle<()>>,
    tools: Vec<ToolDefinition>,
    kinds: HashMap<String, ToolKind>,
}

impl Driver {
    fn new(job: Arc<JobContext>, spec: RunSpec, expert: Expert, new_run_id: String) -> Self {
        let run_id = match &spec.start {
            RunStart::Resume {
                checkpoint,
                fork: false,
                ..
            } => checkpoint.run_id.clone(),
            _ => new_run_id,
        };
        let ids = RunIds {
            job_id: job.job_id.clone(),
            run_id,
            expert_key: spec.expert_key.clone(),
            parent_run_id: spec.parent.as_ref().map(|p| p.run_id.clone()),
        };
        Driver {
            job,
            spec,
            expert,
            ids,
            skills: None,
            forward: None,
            tools: Vec::new(),
            kinds: HashMap::new(),
        }
    }

    fn emit(&self, step: u64, kind: EventKind) {
        self.emitter().emit(step, kind);
    }

    /// Start the Expert's skills (concurrently, through the skill manager), then offer its
    /// delegates as tools. Skill reports become `skill*` events.
    async fn prepare_tools(&mut self) -> Result<(), String> {
        let workspace = Workspace::new(&self.job.workspace)
            .map_err(|err| format!("the workspace cannot be used: {err}"))?;
        let (sender, mut reports) = mpsc::unbounded_channel::<SkillEvent>();
        let options = SkillManagerOptions {
            lock: self
                .job
                .lock
                .as_ref()
                .and_then(|lock| lock.experts.get(&self.spec.expert_key).cloned()),
            ..SkillManagerOptions::default()
        };
        let started =
            SkillManager::start(&self.expert, workspace, &self.job.env, sender, options).await;
        // Start-up reports go out before the run starts, in order; later ones (stderr, a
        // crash) are forwarded as they come.
        let emitter = self.emitter();
        while let Ok(report) = reports.try_recv() {
            emitter.emit(0, skill_event(report));
        }
        let manager = started.map_err(|err| err.to_string())?;
        self.forward = Some(tokio::spawn(async move {
            while let Some(report) = reports.recv().await {
                emitter.emit(0, skill_event(report));
            }
        }));
        // A delegate answers its parent, never a person.
        let is_delegate = self.spec.parent.is_some();
        for tool in manager.tools() {
            let skill_name = manager.skill_of(&tool.name).unwrap_or_default().to_string();
            let kind = match manager.kind_of(&tool.name) {
                Some(SkillToolKind::Interactive) if is_delegate => continue,
                Some(SkillToolKind::Interactive) => ToolKind::Interactive { skill_name },
                _ => ToolKind::Skill { skill_name },
            };
            self.kinds.insert(tool.name.clone(), kind);
            self.tools.push(tool);
        }
        self.skills = Some(manager);
        for key in self.expert.delegates() {
            let description = self
                .job
                .config
                .experts
                .get(key)
                .and_then(|e| e.description.clone());
            let tool = crate::skills::delegate::delegate_tool(key, description.as_deref());
            self.kinds.insert(
                tool.name.clone(),
                ToolKind::Delegate {
                    expert_key: key.clone(),
                },
            );
            self.tools.push(tool);
        }
        Ok(())
    }

    fn emitter(&self) -> Emitter {
        Emitter {
            job: self.job.clone(),
            ids: self.ids.clone(),
        }
    }

    fn initial_checkpoint(&self) -> (Checkpoint, Vec<Message>, Vec<ToolResult>) {
        match &self.spec.start {
            RunStart::Query(query) => {
                let delegates: Vec<(String, Option<String>)> = self
                    .expert
                    .delegates()
                    .iter()
                    .map(|key| {
                        let description = self
                            .job
                            .config
                            .experts
                            .get(key)
                            .and_then(|e| e.description.clone());
                        (key.clone(), description)
                    })
                    .collect();
                let system = prompt::system_prompt(
                    &self.spec.expert_key,
                    &self.expert,
                    &delegates,
                    &self.job.workspace,
                    &rfc3339(now_millis()),
                );
                let expert = ExpertRef {
                    key: self.spec.expert_key.clone(),
                    name: self.spec.expert_key.clone(),
                    version: self.expert.version().to_string(),
                };
                let mut checkpoint = Checkpoint::new(
                    &self.job.job_id,
                    &self.ids.run_id,
                    expert,
                    vec![Message::instruction(system)],
                );
                checkpoint.delegated_by = self.spec.parent.as_ref().map(|p| p.delegated_by.clone());
                (checkpoint, vec![Message::user(query.clone())], Vec::new())
            }
            RunStart::Resume {
                checkpoint,
                query,
                answers,
                fork,
            } => {
                let mut checkpoint = (**checkpoint).clone();
                if *fork {
                    checkpoint.forked_from = Some(checkpoint.id.clone());
                    checkpoint.run_id = self.ids.run_id.clone();
                }
                checkpoint.job_id = self.job.job_id.clone();
                // Continue on a new checkpoint: the stored one stays as it was.
                checkpoint.id = new_id();
                checkpoint.error = None;
                // A stored `proceeding` checkpoint is a finished step, and a completed one a
                // finished run: the work goes on in the next step. Any other stop is mid-step.
                if matches!(
                    checkpoint.status,
                    CheckpointStatus::Proceeding | CheckpointStatus::Completed
                ) {
                    checkpoint.step_number += 1;
                }
                if checkpoint.pending_tool_calls.is_none() {
                    drop_unanswered_calls(&mut checkpoint.messages);
                }
                let input = query.iter().map(|q| Message::user(q.clone())).collect();
                (checkpoint, input, answers.clone())
            }
        }
    }

    async fn run(&mut self) -> RunOutcome {
        let outcome = self.run_to_end().await;
        self.shutdown().await;
        outcome
    }

    /// Every skill process is gone when a run ends, however it ends.
    async fn shutdown(&mut self) {
        if let Some(skills) = self.skills.take() {
            skills.shutdown().await;
        }
        if let Some(forward) = self.forward.take() {
            let _ = forward.await;
        }
    }

    async fn run_to_end(&mut self) -> RunOutcome {
        let (checkpoint, input_messages, answers) = self.initial_checkpoint();
        if self.spec.parent.is_none() {
            self.emit(
                0,
                EventKind::InitializeRuntime {
                    runtime_version: env!("CARGO_PKG_VERSION").to_string(),
                    runtime: "local".into(),
                    expert_name: self.spec.expert_key.clone(),
                    experts: self.job.config.experts.keys().cloned().collect(),
                    model: self.job.model.model().to_string(),
                    max_steps: self.job.max_steps,
                    max_retries: self.job.max_retries,
                    timeout: self
                        .job
                        .retry
                        .timeout
                        .map(|t| t.as_millis() as u64)
                        .unwrap_or(0),
                    query: match &self.spec.start {
                        RunStart::Query(q) => q.clone(),
                        RunStart::Resume { query, .. } => query.clone().unwrap_or_default(),
                    },
                },
            );
        }
        if let Err(message) = self.prepare_tools().await {
            self.shutdown().await;
            return RunOutcome {
                run_id: self.ids.run_id.clone(),
                status: CheckpointStatus::StoppedByError,
                text: None,
                checkpoint: None,
                error: Some(message),
            };
        }
        if let Some(skills) = &self.skills {
            skills.base().restore_todos(checkpoint.todos.clone());
        }
        let _ = self.job.store.write_run_setting(
            &self.job.job_id,
            &self.ids.run_id,
            &json!({
                "jobId": self.job.job_id,
                "runId": self.ids.run_id,
                "expertKey": self.spec.expert_key,
                "model": self.job.model.model(),
                "providerName": self.job.model.provider(),
                "maxSteps": self.job.max_steps,
                "maxRetries": self.job.max_retries,
                "parentRunId": self.ids.parent_run_id,
                "tools": self.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
            }),
        );
        let mut machine = Machine::new(checkpoint, self.job.max_retries, self.kinds.clone());
        // Each effect keeps the step it was produced in: a finished step's events carry its
        // number even though the machine has already moved on to the next one.
        let step = machine.checkpoint().step_number;
        let mut queue: VecDeque<(u64, Effect)> = machine
            .start(input_messages)
            .into_iter()
            .map(|e| (step, e))
            .collect();
        if !answers.is_empty() {
            queue.extend(
                machine
                    .handle(Input::InteractiveAnswered(answers))
                    .into_iter()
                    .map(|e| (step, e)),
            );
        }
        let mut text = None;
        loop {
            let Some((step, effect)) = queue.pop_front() else {
                break;
            };
            let input = match effect {
                Effect::Emit(kind) => {
                    if let EventKind::CompleteRun { text: t, .. } = &kind {
                        text = Some(t.clone());
                    }
                    self.emit(step, kind);
                    continue;
                }
                Effect::SaveCheckpoint(checkpoint) => {
                    self.job.writer.checkpoint(checkpoint);
                    continue;
                }
                Effect::Finish(status) => {
                    return RunOutcome {
                        run_id: self.ids.run_id.clone(),
                        status,
                        text,
                        checkpoint: Some(Box::new(machine.checkpoint().clone())),
                        error: machine
                            .checkpoint()
                            .error
                            .as_ref()
                            .map(|e| e.message.clone()),
                    };
                }
                Effect::ReserveStep => {
                    let used = self.job.steps_used.fetch_add(1, Ordering::SeqCst);
                    if self.job.cancelled() {
                        Input::Cancelled
                    } else {
                        Input::StepReserved(used < self.job.max_steps)
                    }
                }
                Effect::Generate {
                    messages,
                    run_result,
                } => {
                    self.cancellable(self.generate(step, &messages, run_result))
                        .await
                }
                Effect::CallTools(calls) => {
                    let at = Origin {
                        expert: machine.checkpoint().expert.clone(),
                        checkpoint_id: machine.checkpoint().id.clone(),
                    };
                    self.cancellable(self.call_tools(step, calls, at)).await
                }
            };
            if let Some(skills) = &self.skills {
                machine.set_todos(skills.base().todos());
            }
            let step = machine.checkpoint().step_number;
            queue.extend(machine.handle(input).into_iter().map(|e| (step, e)));
        }
        RunOutcome {
            run_id: self.ids.run_id.clone(),
            status: machine.checkpoint().status,
            text,
            checkpoint: Some(Box::new(machine.checkpoint().clone())),
            error: None,
        }
    }

    /// Runs `work` unless the job is cancelled first; cancelling drops it (and so the HTTP
    /// stream or the tool calls in flight).
    async fn cancellable(&self, work: impl std::future::Future<Output = Input>) -> Input {
        let mut cancel = self.job.cancel.clone();
        if *cancel.borrow() {
            return Input::Cancelled;
        }
        tokio::select! {
            input = work => input,
            _ = cancel.wait_for(|c| *c) => Input::Cancelled,
        }
    }

    async fn generate(&self, step: u64, messages: &[Message], run_result: bool) -> Input {
        let (system, llm_messages) = prompt::to_llm_messages(messages);
        let request = llm::Request {
            system,
            messages: llm_messages,
            tools: if run_result {
                Vec::new()
            } else {
                self.tools.clone()
            },
            max_tokens: None,
            reasoning: Some(self.job.reasoning),
            expert_key: self.spec.expert_key.clone(),
        };
        let model = &self.job.model;
        let prepared = match model.prepare(&request) {
            Ok(prepared) => prepared,
            Err(err) => return Input::GenerationFailed(llm_error(&err)),
        };
        self.emit(
            step,
            EventKind::LlmRequest {
                request: WireRequest {
                    provider: model.provider().to_string(),
                    model: model.model().to_string(),
                    method: prepared.method.clone(),
                    url: prepared.url.clone(),
                    headers: prepared.redacted_headers(),
                    body: prepared.body_text(),
                    edited: false,
                },
                attempt: 1,
            },
        );
        let ids = self.ids.clone();
        let events = self.job.events.clone();
        let hook: RetryHook = Arc::new(move |info| {
            let _ = events.send(ids.event(
                step,
                EventKind::Retry {
                    reason: info.error.to_string(),
                    attempt: u64::from(info.attempt),
                    delay_ms: Some(info.delay.as_millis() as u64),
                },
            ));
        });
        let mut stream =
            match send_with_retry(model.as_ref(), prepared, &self.job.retry, Some(&hook)).await {
                Ok(stream) => stream,
                Err(err) => return Input::GenerationFailed(llm_error(&err)),
            };
        let mut builder = ResponseBuilder::new();
        let (mut text_started, mut reasoning_started) = (false, false);
        let (mut streamed_text, mut streamed_reasoning) = (String::new(), String::new());
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => return Input::GenerationFailed(llm_error(&err)),
            };
            match &chunk {
                StreamChunk::TextDelta { text } if !text.is_empty() => {
                    if !text_started {
                        text_started = true;
                        self.emit(step, EventKind::StartStreamingRunResult);
                    }
                    streamed_text.push_str(text);
                    self.emit(
                        step,
                        EventKind::StreamRunResult {
                            delta: text.clone(),
                        },
                    );
                }
                StreamChunk::ReasoningDelta { text, .. } if !text.is_empty() => {
                    if !reasoning_started {
                        reasoning_started = true;
                        self.emit(step, EventKind::StartStreamingReasoning);
                    }
                    streamed_reasoning.push_str(text);
                    self.emit(
                        step,
                        EventKind::StreamReasoning {
                            delta: text.clone(),
                        },
                    );
                }
                _ => {}
            }
            builder.push(&chunk);
        }
        if reasoning_started {
            self.emit(
                step,
                EventKind::CompleteStreamingReasoning {
                    text: streamed_reasoning,
                },
            );
        }
        if text_started {
            self.emit(
                step,
                EventKind::CompleteStreamingRunResult {
                    text: streamed_text,
                },
            );
        }
        if !builder.is_finished() {
            return Input::GenerationFailed(CheckpointError {
                name: "StreamCut".into(),
                message: format!(
                    "{}: the answer stream ended before its finish",
                    model.provider()
                ),
                status_code: None,
                is_retryable: true,
            });
        }
        let response = builder.finish();
        Input::Generated(Generation {
            text: response.text.clone(),
            thinking: if response.thinking.is_empty() {
                Vec::new()
            } else {
                vec![(
                    response.thinking.clone(),
                    response.thinking_signature.clone(),
                )]
            },
            tool_calls: response
                .tool_calls
                .iter()
                .map(|call| GeneratedCall {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    args: call.args.clone(),
                })
                .collect(),
            usage: Usage {
                input_tokens: response.usage.input,
                output_tokens: response.usage.output,
                reasoning_tokens: response.usage.reasoning,
                total_tokens: response.usage.input + response.usage.output,
                cached_input_tokens: response.usage.cached_input,
            },
            truncated: response.finish_reason == llm::FinishReason::Length,
        })
    }

    async fn call_tools(&self, step: u64, calls: Vec<ToolCall>, origin: Origin) -> Input {
        let shared = std::sync::Mutex::new(CallsState::default());
        let futures = calls.into_iter().map(|call| {
            let origin = &origin;
            let shared = &shared;
            async move {
                let started_at = now_millis();
                let clock = Instant::now();
                let output = self.call_one(step, &call, origin, shared).await;
                self.emit(
                    step,
                    EventKind::ToolCallTiming {
                        tool_call_id: call.id.clone(),
                        skill_name: call.skill_name.clone(),
                        tool_name: call.tool_name.clone(),
                        started_at,
                        duration_ms: clock.elapsed().as_millis() as u64,
                        is_error: output.is_error,
                    },
                );
                ToolResult {
                    id: call.id,
                    skill_name: call.skill_name,
                    tool_name: call.tool_name,
                    result: output,
                }
            }
        });
        let results = join_all(futures).await;
        let state = shared.into_inner().unwrap_or_else(|e| e.into_inner());
        Input::ToolsDone {
            results,
            completion_accepted: state.completion_accepted,
            delegated_usage: state.delegated_usage,
        }
    }

    async fn call_one(
        &self,
        step: u64,
        call: &ToolCall,
        origin: &Origin,
        shared: &std::sync::Mutex<CallsState>,
    ) -> ToolOutput {
        match self.kinds.get(&call.tool_name) {
            Some(ToolKind::Skill { .. }) => {
                let Some(skills) = &self.skills else {
                    return ToolOutput::error(format!(
                        "the skill of tool `{}` is not available",
                        call.tool_name
                    ));
                };
                if call.tool_name == ATTEMPT_COMPLETION {
                    let completion = skills.base().attempt_completion();
                    if let Ok(mut state) = shared.lock() {
                        state.completion_accepted = Some(completion.is_accepted());
                    }
                    return completion.into_output();
                }
                skills.call(&call.tool_name, call.args.clone()).await
            }
            Some(ToolKind::Delegate { expert_key }) => {
                let (output, usage) = self.delegate(step, call, expert_key, origin).await;
                if let Ok(mut state) = shared.lock() {
                    state.delegated_usage.add(&usage);
                }
                output
            }
            Some(ToolKind::Interactive { .. }) => ToolOutput::error(format!(
                "`{}` is answered by a person, not called",
                call.tool_name
            )),
            None => {
                let mut names: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
                names.sort();
                ToolOutput::error(format!(
                    "there is no tool named `{}`; the tools are: {}",
                    call.tool_name,
                    names.join(", ")
                ))
            }
        }
    }

    async fn delegate(
        &self,
        step: u64,
        call: &ToolCall,
        expert_key: &str,
        origin: &Origin,
    ) -> (ToolOutput, Usage) {
        let depth = self.spec.parent.as_ref().map_or(0, |p| p.depth) + 1;
        if depth > MAX_DELEGATION_DEPTH {
            let message = format!(
                "delegation is nested more than {MAX_DELEGATION_DEPTH} levels deep; answer without delegating further"
            );
            return (ToolOutput::error(message), Usage::default());
        }
        let Some(query) = call.args.get("query").and_then(Value::as_str) else {
            let message = format!(
                "`{}` takes {{\"query\": \"...\"}}: a string saying what to do",
                call.tool_name
            );
            return (ToolOutput::error(message), Usage::default());
        };
        let child_run_id = new_id();
        let spec = RunSpec {
            expert_key: expert_key.to_string(),
            run_id: Some(child_run_id.clone()),
            start: RunStart::Query(query.to_string()),
            parent: Some(Parent {
                run_id: self.ids.run_id.clone(),
                depth,
                delegated_by: DelegatedBy {
                    expert: origin.expert.clone(),
                    tool_call_id: call.id.clone(),
                    tool_name: call.tool_name.clone(),
                    checkpoint_id: origin.checkpoint_id.clone(),
                    run_id: self.ids.run_id.clone(),
                },
            }),
        };
        let child = run_expert(self.job.clone(), spec);
        self.emit(
            step,
            EventKind::CallDelegate {
                tool_call: call.clone(),
                delegate_run_id: child_run_id,
                delegate_expert_key: expert_key.to_string(),
                query: query.to_string(),
            },
        );
        let outcome = child.await;
        let usage = outcome
            .checkpoint
            .as_ref()
            .map(|c| c.usage)
            .unwrap_or_default();
        let output = match (outcome.status, outcome.text) {
            (CheckpointStatus::Completed, Some(text)) => ToolOutput::text(text),
            (status, _) => ToolOutput::error(format!(
                "the Expert \"{expert_key}\" did not complete ({status:?}){}",
                outcome.error.map(|e| format!(": {e}")).unwrap_or_default()
            )),
        };
        (output, usage)
    }
}

/// A run stopped between a model's tool calls and their results (killed, cancelled) cannot send
/// that conversation again: providers refuse calls without results. The answer is asked anew.
fn drop_unanswered_calls(messages: &mut Vec<Message>) {
    let unanswered = matches!(
        messages.last(),
        Some(Message::ExpertMessage { contents, .. })
            if contents.iter().any(|p| matches!(p, super::message::Part::ToolCallPart { .. }))
    );
    if unanswered {
        messages.pop();
    }
}

fn llm_error(err: &llm::LlmError) -> CheckpointError {
    CheckpointError {
        name: "ModelError".into(),
        message: err.to_string(),
        status_code: err.status(),
        is_retryable: err.is_retryable(),
    }
}

fn tracing_warn(message: &str) {
    eprintln!("perstack: {message}");
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
    };
    if let Err(err) = job.store.write_job(&record) {
        tracing_warn(&format!("job record not saved: {err}"));
    }
}
