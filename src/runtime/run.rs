//! The driver: performs the effects of a [`Machine`] (model calls, tools, delegates, disk) and
//! feeds the results back, for one run and, recursively, for the runs it delegates to.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::sync::mpsc;

use super::calls::Origin;
use super::checkpoint::{Checkpoint, CheckpointStatus, ExpertRef};
use super::control::{Control, PausePoint};
use super::emitter::Emitter;
use super::event::{EventKind, RunIds};
use super::frozen::Frozen;
use super::generate::PendingRequest;
use super::id::{new_id, now_millis};
use super::machine::{Effect, Input, Machine, ToolKind};
use super::message::{Message, ToolResult};
use super::prompt;
use super::request::RunRequest;
use crate::definition::Expert;
use crate::skills::workspace::Workspace;
use crate::skills::{SkillEvent, SkillEventKind, SkillManager, SkillManagerOptions};
use crate::time::rfc3339;
use crate::tool::ToolDefinition;

pub use super::job::{
    JobContext, MAX_DELEGATION_DEPTH, Parent, RunOutcome, RunSpec, RunStart, write_job_record,
};

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

fn skill_event(report: SkillEvent) -> EventKind {
    let skill_name = report.skill_name;
    match report.kind {
        SkillEventKind::Starting { sandbox } => EventKind::SkillStarting {
            skill_name,
            sandbox,
        },
        SkillEventKind::SandboxDenied { host, port } => EventKind::SandboxDenied {
            skill_name,
            host,
            port,
        },
        SkillEventKind::Connected(info) => EventKind::SkillConnected {
            skill_name,
            server_info: Some(json!({"name": info.server_name, "version": info.server_version})),
            spawn_duration_ms: info.spawn_duration_ms,
            handshake_duration_ms: info.handshake_duration_ms,
            connect_duration_ms: info.spawn_duration_ms + info.handshake_duration_ms,
            tool_discovery_duration_ms: info.tool_discovery_duration_ms,
            total_duration_ms: info.total_duration_ms,
            tools: Vec::new(),
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
        SkillEventKind::Frame(frame) => EventKind::McpFrame {
            skill_name,
            direction: frame.direction,
            at_us: frame.at_us,
            bytes: frame.bytes,
            frame: frame.frame,
            method: frame.method,
            tool_call_id: frame.tool_call_id,
        },
    }
}

pub(super) struct Driver {
    pub(super) job: Arc<JobContext>,
    pub(super) spec: RunSpec,
    expert: Expert,
    pub(super) ids: RunIds,
    /// Built once: every event of the run goes through it.
    emitter: Emitter,
    pub(super) skills: Option<SkillManager>,
    /// Forwards skill reports as events until the skills shut down.
    forward: Option<tokio::task::JoinHandle<()>>,
    pub(super) tools: Vec<ToolDefinition>,
    pub(super) kinds: HashMap<String, ToolKind>,
    /// Kept from step to step, so each step converts only its new messages.
    pub(super) request: Mutex<RunRequest>,
    /// Retries of the current model call by the provider layer, for the checkpoint's count.
    pub(super) provider_retries: Arc<AtomicU64>,
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
        let emitter = Emitter::new(job.clone(), ids.clone());
        let request = Mutex::new(
            RunRequest::new(job.reasoning, spec.expert_key.clone()).with_provider_tools(&expert),
        );
        Driver {
            job,
            spec,
            expert,
            ids,
            emitter,
            skills: None,
            forward: None,
            tools: Vec::new(),
            kinds: HashMap::new(),
            request,
            provider_retries: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Custom Agent Skills run only once uploaded: upload those not cached yet, and send
    /// their ids in every request of this run.
    async fn upload_custom_skills(&mut self) -> Result<(), String> {
        let skills = self
            .request
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .provider_skills()
            .to_vec();
        let model = self.job.model.as_ref();
        let endpoint = model.skills_endpoint().unwrap_or_default();
        let cache = crate::llm::agent_skills::cache_path(&self.job.workspace);
        let ids = crate::llm::agent_skills::resolve(model, &endpoint, &skills, &cache)
            .await
            .map_err(|err| format!("Agent Skills of {}: {err}", self.spec.expert_key))?;
        self.request
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_custom_skill_ids(ids);
        Ok(())
    }

    pub(super) fn emit(&self, step: u64, kind: EventKind) {
        self.emitter.emit(step, kind);
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
            sandbox: self.job.sandbox.clone(),
            mcp: crate::skills::mcp::McpOptions {
                trace: self.job.trace_mcp,
                ..Default::default()
            },
        };
        if !self.job.sandbox.is_confined() {
            self.emit(
                0,
                EventKind::SandboxDisabled {
                    message: "skills run unconfined (runtime = \"local\" or --sandbox off): \
                              they can write anywhere the user can and reach any host"
                        .into(),
                },
            );
        }
        let started =
            SkillManager::start(&self.expert, workspace, &self.job.env, sender, options).await;
        // Start-up reports go out before the run starts, in order; later ones (stderr, a
        // crash) are forwarded as they come.
        let emitter = self.emitter();
        let offered = started.as_ref().map(|m| m.tools()).unwrap_or_default();
        while let Ok(report) = reports.try_recv() {
            let mut kind = skill_event(report);
            // Say which tools each started skill offers, so a UI can list them.
            if let EventKind::SkillConnected {
                skill_name, tools, ..
            } = &mut kind
            {
                if let Ok(manager) = &started {
                    *tools = offered
                        .iter()
                        .filter(|t| manager.skill_of(&t.name) == Some(skill_name.as_str()))
                        .map(|t| t.name.clone())
                        .collect();
                }
            }
            emitter.emit(0, kind);
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
            let kind = match manager.is_interactive(&tool.name) {
                true if is_delegate => continue,
                true => ToolKind::Interactive { skill_name },
                false => ToolKind::Skill { skill_name },
            };
            self.kinds.insert(tool.name.clone(), kind);
            self.tools.push(tool);
        }
        self.skills = Some(manager);
        for key in self.expert.delegates() {
            let tool = crate::skills::delegate::delegate_tool(key, self.description_of(key));
            self.kinds.insert(
                tool.name.clone(),
                ToolKind::Delegate {
                    expert_key: key.clone(),
                },
            );
            self.tools.push(tool);
        }
        self.request
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .offer_tools(self.tools.clone());
        Ok(())
    }

    pub(super) fn emitter(&self) -> Emitter {
        self.emitter.clone()
    }

    /// What a delegate says of itself, shown to the Expert that may call it.
    fn description_of(&self, key: &str) -> Option<&str> {
        self.job
            .config
            .experts
            .get(key)
            .and_then(|e| e.description.as_deref())
    }

    fn system_prompt(&self) -> String {
        let delegates: Vec<(String, Option<String>)> = self
            .expert
            .delegates()
            .iter()
            .map(|key| (key.clone(), self.description_of(key).map(str::to_string)))
            .collect();
        prompt::system_prompt(
            &self.spec.expert_key,
            &self.expert,
            &delegates,
            &self.job.workspace,
            &rfc3339(now_millis()),
        )
    }

    fn initial_checkpoint(&self) -> (Checkpoint, Vec<Message>, Vec<ToolResult>) {
        match &self.spec.start {
            RunStart::Query(query) => {
                let system = self.system_prompt();
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
                    // A fork runs under the definitions as they are now: its system prompt is
                    // made anew from them; the conversation is the checkpoint's.
                    if let Some(first) = checkpoint.messages.first_mut() {
                        if matches!(**first, Message::InstructionMessage { .. }) {
                            *first = Frozen::new(Message::instruction(self.system_prompt()));
                        }
                    }
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
        if let RunStart::Resume { checkpoint, .. } = &self.spec.start {
            // The stored checkpoint this run goes on from: its events need not repeat it.
            let stored = Arc::new((**checkpoint).clone());
            self.job.writer.continues_from(&self.ids.run_id, stored);
        }
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
        let mut ready = self.prepare_tools().await;
        if ready.is_ok() {
            ready = self.upload_custom_skills().await;
        }
        if let Err(message) = ready {
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
        let mut setting = json!({
                "jobId": self.job.job_id,
                "runId": self.ids.run_id,
                "expertKey": self.spec.expert_key,
                "model": self.job.model.model(),
                "providerName": self.job.model.provider(),
                "maxSteps": self.job.max_steps,
                "maxRetries": self.job.max_retries,
                "parentRunId": self.ids.parent_run_id,
                "tools": self.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
        });
        // An A/B branch says what it changed; its delegates run as they would.
        if let (Some(variant), None) = (&self.job.variant, &self.ids.parent_run_id) {
            setting["variant"] = serde_json::to_value(variant).unwrap_or_default();
        }
        self.job
            .writer
            .run_setting(&self.job.job_id, &self.ids.run_id, setting);
        let mut machine = Machine::new(
            checkpoint,
            self.job.max_retries,
            self.kinds.clone(),
            self.job.clock.clone(),
        );
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
                    let step_done = matches!(kind, EventKind::ContinueToNextStep { .. });
                    self.emit(step, kind);
                    if step_done
                        && self.pause(step, PausePoint::AfterStep).await == Some(Control::Abort)
                    {
                        queue.clear();
                        Input::Cancelled
                    } else {
                        continue;
                    }
                }
                Effect::SaveCheckpoint(checkpoint) => {
                    self.job.save_checkpoint(checkpoint).await;
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
                    // The pause before the model call is inside `generate`: after the request
                    // is built, so what a paused run shows is exactly what will be sent.
                    let generated = self
                        .cancellable(self.generate(step, &messages, run_result))
                        .await;
                    machine.count_retries(self.provider_retries.swap(0, Ordering::Relaxed));
                    match generated {
                        Input::GenerationFailed(error) => {
                            let point = PausePoint::OnError {
                                message: error.message.clone(),
                            };
                            match self.pause(step, point).await {
                                Some(Control::Abort) => Input::Cancelled,
                                _ => Input::GenerationFailed(error),
                            }
                        }
                        input => input,
                    }
                }
                Effect::CallTools(calls) => {
                    let mut aborted = false;
                    for call in &calls {
                        let point = PausePoint::BeforeTool {
                            skill_name: call.skill_name.clone(),
                            tool_name: call.tool_name.clone(),
                            tool_call_id: call.id.clone(),
                        };
                        if self.pause(step, point).await == Some(Control::Abort) {
                            aborted = true;
                            break;
                        }
                    }
                    if aborted {
                        Input::Cancelled
                    } else {
                        let at = Origin {
                            expert: machine.checkpoint().expert.clone(),
                            checkpoint_id: machine.checkpoint().id.clone(),
                        };
                        self.cancellable(self.call_tools(step, calls, at)).await
                    }
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

    /// Pauses when a breakpoint (or a `step`) says so: emits `paused`, waits for a control,
    /// emits `resumed`. A cancel while paused is an abort.
    pub(super) async fn pause(&self, step: u64, point: PausePoint) -> Option<Control> {
        self.pause_with(step, point, None).await
    }

    /// `pause`, with the request about to be sent when paused before a model call: the one
    /// place an `edit` control applies. An edit is checked against the provider's wire format,
    /// shown as a new `llmRequest` (or refused), and the run stays paused.
    pub(super) async fn pause_with(
        &self,
        step: u64,
        point: PausePoint,
        mut pending: Option<&mut PendingRequest>,
    ) -> Option<Control> {
        let debugger = &self.job.debugger;
        if !debugger.should_pause(&self.spec.expert_key, &point) {
            return None;
        }
        self.emit(step, EventKind::Paused { point });
        let mut cancel = self.job.cancel.clone();
        let control = loop {
            let control = tokio::select! {
                control = debugger.wait() => control,
                _ = cancel.wait_for(|c| *c) => Control::Abort,
            };
            let Control::Edit { body } = control else {
                break control;
            };
            let checked = match pending.as_deref_mut() {
                Some(request) => self.job.model.check_body(body.as_bytes()).map(|()| request),
                None => Err(
                    "only a request about to be sent can be edited: pause before a model call"
                        .to_string(),
                ),
            };
            match checked {
                Ok(request) => {
                    request.edit(body);
                    self.emit(step, request.event(self.job.model.as_ref()));
                }
                Err(error) => self.emit(step, EventKind::RequestEditRefused { error }),
            }
        };
        self.emit(
            step,
            EventKind::Resumed {
                control: control.clone(),
            },
        );
        Some(control)
    }

    /// Runs `work` unless the job is cancelled first; cancelling drops it (and so the HTTP
    /// stream or the tool calls in flight).
    async fn cancellable(&self, work: impl std::future::Future<Output = Input>) -> Input {
        let mut cancel = self.job.cancel.clone();
        if *cancel.borrow() {
            return Input::Cancelled;
        }
        tokio::select! {
            // Work first: a run paused inside it answers the cancel itself, with `resumed`.
            biased;
            input = work => input,
            _ = cancel.wait_for(|c| *c) => Input::Cancelled,
        }
    }
}

/// A run stopped between a model's tool calls and their results (killed, cancelled) cannot send
/// that conversation again: providers refuse calls without results. The answer is asked anew.
fn drop_unanswered_calls(messages: &mut Vec<Frozen<Message>>) {
    let unanswered = matches!(
        messages.last().map(|m| &**m),
        Some(Message::ExpertMessage { contents, .. })
            if contents.iter().any(|p| matches!(p, super::message::Part::ToolCallPart { .. }))
    );
    if unanswered {
        messages.pop();
    }
}
