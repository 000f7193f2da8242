//! The state machine of one Expert run. Pure: it takes an [`Input`] and returns [`Effect`]s as
//! data; a driver performs them (model calls, tools, disk) and feeds the results back. Every
//! transition can be tested without a network, a clock or a disk.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::checkpoint::{Checkpoint, CheckpointError, CheckpointStatus, Usage};
use super::event::{EventKind, Step};
use super::frozen::Frozen;
use super::id::Clock;
use super::message::{Message, Part, ToolCall, ToolResult};
use crate::skills::base::ATTEMPT_COMPLETION;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Init,
    PreparingForStep,
    GeneratingToolCall,
    CallingTool,
    CallingDelegate,
    CallingInteractiveTool,
    ResolvingToolResult,
    FinishingStep,
    GeneratingRunResult,
    Stopped(CheckpointStatus),
}

/// How a tool name is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolKind {
    /// A tool of a skill (built in or MCP): the driver calls it.
    Skill { skill_name: String },
    /// Another Expert, run as a child run.
    Delegate { expert_key: String },
    /// Answered by a person: the run stops until the answer comes.
    Interactive { skill_name: String },
}

/// What the model produced in one generation, provider-neutral.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generation {
    pub text: String,
    /// Thinking blocks with their signatures, kept so the next request can replay them.
    pub thinking: Vec<(String, Option<String>)>,
    pub tool_calls: Vec<GeneratedCall>,
    /// Tools the provider ran itself during the answer, with their results: kept in the
    /// message, never called here.
    pub provider_tools: Vec<crate::llm::ProviderToolUse>,
    pub usage: Usage,
    /// The output was cut by the token limit.
    pub truncated: bool,
    /// A person edited the request by hand before it was sent.
    pub edited_request: bool,
    /// The provider paused its own long-running tool work mid-answer (Anthropic's
    /// `pause_turn`): the answer goes back as it is so the provider carries on.
    pub paused_by_provider: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedCall {
    pub id: String,
    pub name: String,
    pub args: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Answer to [`Effect::ReserveStep`]: false when the job's maxSteps are spent.
    StepReserved(bool),
    Generated(Generation),
    /// The model call failed after the provider layer's own retries.
    GenerationFailed(CheckpointError),
    /// Results of [`Effect::CallTools`], in any order. `completion_accepted` answers an
    /// `attemptCompletion` among them: `Some(false)` while todos remain open.
    ToolsDone {
        results: Vec<ToolResult>,
        completion_accepted: Option<bool>,
        /// What the delegates among the calls spent: usage is summed up the tree.
        delegated_usage: Usage,
    },
    /// A person answered the pending interactive tool calls.
    InteractiveAnswered(Vec<ToolResult>),
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Emit(EventKind),
    /// Write this checkpoint to disk (atomically).
    SaveCheckpoint(Arc<Checkpoint>),
    /// Ask the job for one more step.
    ReserveStep,
    /// Call the model with these messages. `run_result` is true when the answer is the run's
    /// final text (after an accepted `attemptCompletion`).
    Generate {
        messages: Arc<Vec<Frozen<Message>>>,
        run_result: bool,
    },
    /// Call these tools (skills and delegates) concurrently, then send [`Input::ToolsDone`].
    CallTools(Vec<ToolCall>),
    /// The run has ended with this status.
    Finish(CheckpointStatus),
}

pub struct Machine {
    state: State,
    checkpoint: Checkpoint,
    max_retries: u64,
    tools: HashMap<String, ToolKind>,
    /// The step being built.
    step: Step,
    pending_interactive: Vec<ToolCall>,
    /// Empty or cut answers retried in a row: limited by maxRetries.
    answer_retries: u64,
    /// The time and ids come from outside, so a transition depends only on its inputs.
    clock: Arc<dyn Clock>,
}

const EMPTY_ANSWER_NOTE: &str = "Your last answer was empty. Continue the task: call a tool, or call attemptCompletion when the task is done.";
const TRUNCATED_NOTE: &str = "Your last answer was cut off by the output token limit. Continue with a shorter answer, or split the work into smaller tool calls.";

impl Machine {
    /// A machine continuing from `checkpoint` (a fresh one for a new run, or a stored one to
    /// resume). `tools` names every tool the Expert may call; `clock` gives step times and the
    /// ids of new messages and checkpoints.
    pub fn new(
        checkpoint: Checkpoint,
        max_retries: u64,
        tools: HashMap<String, ToolKind>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let step = empty_step(checkpoint.step_number);
        Machine {
            state: State::Init,
            checkpoint,
            max_retries,
            tools,
            step,
            pending_interactive: Vec::new(),
            answer_retries: 0,
            clock,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The base skill's todo list, kept in every checkpoint from now on.
    pub fn set_todos(&mut self, todos: Vec<crate::skills::base::Todo>) {
        self.checkpoint.todos = todos;
    }

    /// This step's generation was retried `count` more times, by the provider layer (rate
    /// limits, server errors) or by the machine (an empty answer): the checkpoint's
    /// `retryCount`, as Perstack keeps it.
    pub fn count_retries(&mut self, count: u64) {
        if count > 0 {
            self.checkpoint.retry_count = Some(self.checkpoint.retry_count.unwrap_or(0) + count);
        }
    }

    /// Start (or resume) the run. `input_messages` are the messages this run adds (the query,
    /// or nothing when resuming).
    pub fn start(&mut self, input_messages: Vec<Message>) -> Vec<Effect> {
        let mut effects = vec![Effect::Emit(EventKind::StartRun {
            initial_checkpoint: Arc::new(self.checkpoint.clone()),
            input_messages: input_messages.clone(),
        })];
        self.checkpoint
            .messages
            .extend(input_messages.into_iter().map(Frozen::new));
        if self.checkpoint.status == CheckpointStatus::Init {
            // A run killed before its first step ends can still be continued from here.
            effects.push(Effect::SaveCheckpoint(Arc::new(self.checkpoint.clone())));
        }
        self.checkpoint.status = CheckpointStatus::Proceeding;
        if let Some(pending) = self.checkpoint.pending_tool_calls.clone() {
            // Resuming a run that stopped for a person's answer: wait for it.
            self.pending_interactive = pending;
            self.state = State::CallingInteractiveTool;
            return effects;
        }
        self.state = State::PreparingForStep;
        effects.push(Effect::ReserveStep);
        effects
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        if let State::Stopped(_) = self.state {
            return Vec::new();
        }
        if let Input::Generated(generation) = &input {
            let step = self.checkpoint.step_number;
            if generation.edited_request && !self.checkpoint.edited_requests.contains(&step) {
                // Recorded before the answer is handled, so every later checkpoint says so.
                self.checkpoint.edited_requests.push(step);
            }
        }
        match (self.state, input) {
            (_, Input::Cancelled) => self.stop(CheckpointStatus::StoppedByCancel, None),
            (State::PreparingForStep, Input::StepReserved(true)) => self.generate(false),
            (State::PreparingForStep, Input::StepReserved(false)) => {
                self.stop(CheckpointStatus::StoppedByExceededMaxSteps, None)
            }
            (
                State::GeneratingToolCall | State::GeneratingRunResult,
                Input::GenerationFailed(error),
            ) => self.stop(CheckpointStatus::StoppedByError, Some(error)),
            (State::GeneratingToolCall, Input::Generated(generation)) => {
                self.on_generation(generation)
            }
            (State::GeneratingRunResult, Input::Generated(generation)) => {
                self.on_run_result(generation)
            }
            (
                State::CallingTool | State::CallingDelegate,
                Input::ToolsDone {
                    results,
                    completion_accepted,
                    delegated_usage,
                },
            ) => {
                self.checkpoint.usage.add(&delegated_usage);
                self.step.usage.add(&delegated_usage);
                self.on_tools_done(results, completion_accepted)
            }
            (State::CallingInteractiveTool, Input::InteractiveAnswered(answers)) => {
                let mut results = self
                    .checkpoint
                    .partial_tool_results
                    .take()
                    .unwrap_or_default();
                results.extend(answers);
                self.checkpoint.pending_tool_calls = None;
                self.pending_interactive.clear();
                self.finish_step(results)
            }
            (state, input) => {
                let error = CheckpointError {
                    name: "InvalidTransition".into(),
                    message: format!("the run received {input:?} while {state:?}"),
                    status_code: None,
                    is_retryable: false,
                };
                self.stop(CheckpointStatus::StoppedByError, Some(error))
            }
        }
    }

    fn generate(&mut self, run_result: bool) -> Vec<Effect> {
        self.state = if run_result {
            State::GeneratingRunResult
        } else {
            State::GeneratingToolCall
        };
        if self.step.started_at == 0 {
            self.step.started_at = self.clock.now_ms();
            // `retryCount` counts the retries of this step's generation.
            self.checkpoint.retry_count = None;
        }
        let messages = Arc::new(self.checkpoint.messages.clone());
        let mut effects = Vec::new();
        if !run_result {
            effects.push(Effect::Emit(EventKind::StartGeneration {
                messages: messages.clone(),
            }));
        }
        effects.push(Effect::Generate {
            messages,
            run_result,
        });
        effects
    }

    fn on_generation(&mut self, generation: Generation) -> Vec<Effect> {
        self.checkpoint.usage.add(&generation.usage);
        self.step.usage.add(&generation.usage);
        if generation.paused_by_provider && generation.tool_calls.is_empty() {
            return self.continue_paused(&generation);
        }
        let has_text = !generation.text.trim().is_empty();
        if generation.tool_calls.is_empty() && (!has_text || generation.truncated) {
            let note = if generation.truncated {
                TRUNCATED_NOTE
            } else {
                EMPTY_ANSWER_NOTE
            };
            return self.retry(note);
        }
        self.answer_retries = 0;
        let message = Message::expert_with(&*self.clock, answer_parts(&*self.clock, &generation));
        self.checkpoint.messages.push(Frozen::new(message.clone()));
        self.step.new_messages.push(message.clone());
        if generation.tool_calls.is_empty() {
            // A text answer with no tool call completes the run.
            return self.complete(generation.text);
        }
        let calls: Vec<ToolCall> = generation
            .tool_calls
            .iter()
            .map(|call| ToolCall {
                id: call.id.clone(),
                skill_name: self.skill_name(&call.name),
                tool_name: call.name.clone(),
                args: call.args.clone(),
            })
            .collect();
        self.step.tool_calls.extend(calls.iter().cloned());
        let mut effects = vec![Effect::Emit(EventKind::CallTools {
            new_message: message,
            tool_calls: calls.clone(),
            usage: generation.usage,
        })];
        let (interactive, callable): (Vec<ToolCall>, Vec<ToolCall>) =
            calls.into_iter().partition(|call| {
                matches!(
                    self.tools.get(&call.tool_name),
                    Some(ToolKind::Interactive { .. })
                )
            });
        self.pending_interactive = interactive;
        if callable.is_empty() {
            effects.extend(self.on_tools_done(Vec::new(), None));
            return effects;
        }
        let only_delegates = callable.iter().all(|call| {
            matches!(
                self.tools.get(&call.tool_name),
                Some(ToolKind::Delegate { .. })
            )
        });
        self.state = if only_delegates {
            State::CallingDelegate
        } else {
            State::CallingTool
        };
        effects.push(Effect::CallTools(callable));
        effects
    }

    fn skill_name(&self, tool_name: &str) -> String {
        match self.tools.get(tool_name) {
            Some(ToolKind::Skill { skill_name }) | Some(ToolKind::Interactive { skill_name }) => {
                skill_name.clone()
            }
            Some(ToolKind::Delegate { expert_key }) => expert_key.clone(),
            None => String::new(),
        }
    }

    fn on_tools_done(
        &mut self,
        results: Vec<ToolResult>,
        completion_accepted: Option<bool>,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        if !self.pending_interactive.is_empty() {
            // Everything else is answered; the run waits for a person.
            self.state = State::CallingInteractiveTool;
            for call in &self.pending_interactive {
                effects.push(Effect::Emit(EventKind::CallInteractiveTool {
                    tool_call: call.clone(),
                }));
            }
            self.checkpoint.pending_tool_calls = Some(self.pending_interactive.clone());
            self.checkpoint.partial_tool_results = Some(results);
            effects.extend(self.stop(CheckpointStatus::StoppedByInteractiveTool, None));
            return effects;
        }
        let completion = results
            .iter()
            .find(|r| r.tool_name == ATTEMPT_COMPLETION)
            .cloned();
        if let (Some(result), Some(true)) = (completion, completion_accepted) {
            self.state = State::ResolvingToolResult;
            let message = Message::tool_results_with(&*self.clock, &results);
            self.checkpoint.messages.push(Frozen::new(message.clone()));
            self.step.new_messages.push(message);
            self.step.tool_results.extend(results);
            effects.push(Effect::Emit(EventKind::AttemptCompletion {
                tool_result: result,
            }));
            effects.extend(self.generate(true));
            return effects;
        }
        effects.extend(self.finish_step(results));
        effects
    }

    fn finish_step(&mut self, results: Vec<ToolResult>) -> Vec<Effect> {
        self.state = State::ResolvingToolResult;
        let mut effects = vec![Effect::Emit(EventKind::ResolveToolResults {
            tool_results: results.clone(),
        })];
        let message = Message::tool_results_with(&*self.clock, &results);
        self.checkpoint.messages.push(Frozen::new(message.clone()));
        self.step.new_messages.push(message.clone());
        self.step.tool_results.extend(results);
        effects.push(Effect::Emit(EventKind::FinishToolCall {
            new_messages: vec![message],
        }));
        self.state = State::FinishingStep;
        self.checkpoint.status = CheckpointStatus::Proceeding;
        let finished = Arc::new(self.checkpoint.clone());
        effects.push(Effect::SaveCheckpoint(finished.clone()));
        let mut step = std::mem::replace(&mut self.step, empty_step(finished.step_number + 1));
        step.finished_at = Some(self.clock.now_ms());
        self.checkpoint.id = self.clock.new_id();
        self.checkpoint.step_number += 1;
        effects.push(Effect::Emit(EventKind::ContinueToNextStep {
            checkpoint: finished,
            next_checkpoint: Arc::new(self.checkpoint.clone()),
            step: Box::new(step),
        }));
        self.state = State::PreparingForStep;
        effects.push(Effect::ReserveStep);
        effects
    }

    /// Keeps a paused answer and asks again within the same step, so the provider resumes its
    /// tool work; a pause counts against maxRetries, so a provider that only pauses stops.
    fn continue_paused(&mut self, generation: &Generation) -> Vec<Effect> {
        let attempt = self.answer_retries + 1;
        if attempt > self.max_retries {
            let error = CheckpointError {
                name: "RetryLimitExceeded".into(),
                message: format!(
                    "the provider paused its answer {attempt} times in a row (gave up after {} retries)",
                    self.max_retries
                ),
                status_code: None,
                is_retryable: false,
            };
            return self.stop(CheckpointStatus::StoppedByError, Some(error));
        }
        self.answer_retries = attempt;
        let message = Message::expert_with(&*self.clock, answer_parts(&*self.clock, generation));
        self.checkpoint.messages.push(Frozen::new(message.clone()));
        self.step.new_messages.push(message);
        let run_result = self.state == State::GeneratingRunResult;
        self.generate(run_result)
    }

    fn on_run_result(&mut self, generation: Generation) -> Vec<Effect> {
        self.checkpoint.usage.add(&generation.usage);
        self.step.usage.add(&generation.usage);
        if generation.paused_by_provider && generation.tool_calls.is_empty() {
            return self.continue_paused(&generation);
        }
        if generation.text.trim().is_empty() && generation.tool_calls.is_empty() {
            return self.retry(EMPTY_ANSWER_NOTE);
        }
        if generation.text.trim().is_empty() {
            // The model chose to keep working after all: treat it as an ordinary step.
            self.state = State::GeneratingToolCall;
            return self.on_generation(generation);
        }
        let message = Message::expert_with(&*self.clock, answer_parts(&*self.clock, &generation));
        self.checkpoint.messages.push(Frozen::new(message.clone()));
        self.step.new_messages.push(message);
        self.complete(generation.text)
    }

    fn complete(&mut self, text: String) -> Vec<Effect> {
        self.checkpoint.status = CheckpointStatus::Completed;
        self.state = State::Stopped(CheckpointStatus::Completed);
        let mut step = std::mem::replace(&mut self.step, empty_step(self.checkpoint.step_number));
        step.finished_at = Some(self.clock.now_ms());
        let checkpoint = Arc::new(self.checkpoint.clone());
        vec![
            Effect::SaveCheckpoint(checkpoint.clone()),
            Effect::Emit(EventKind::CompleteRun {
                checkpoint,
                step: Box::new(step),
                text,
                usage: self.checkpoint.usage,
            }),
            Effect::Finish(CheckpointStatus::Completed),
        ]
    }

    fn retry(&mut self, note: &str) -> Vec<Effect> {
        let attempt = self.answer_retries + 1;
        if attempt > self.max_retries {
            let error = CheckpointError {
                name: "RetryLimitExceeded".into(),
                message: format!("{note} (gave up after {} retries)", self.max_retries),
                status_code: None,
                is_retryable: false,
            };
            return self.stop(CheckpointStatus::StoppedByError, Some(error));
        }
        self.answer_retries = attempt;
        self.count_retries(1);
        let note_message = Message::user_with(&*self.clock, note);
        self.checkpoint
            .messages
            .push(Frozen::new(note_message.clone()));
        self.step.new_messages.push(note_message);
        let mut effects = vec![Effect::Emit(EventKind::Retry {
            reason: note.to_string(),
            attempt,
            delay_ms: None,
        })];
        let run_result = self.state == State::GeneratingRunResult;
        effects.extend(self.generate(run_result));
        effects
    }

    fn stop(&mut self, status: CheckpointStatus, error: Option<CheckpointError>) -> Vec<Effect> {
        self.checkpoint.status = status;
        self.checkpoint.error = error.clone();
        self.state = State::Stopped(status);
        let checkpoint = Arc::new(self.checkpoint.clone());
        let saved = checkpoint.clone();
        let event = match (status, error) {
            (CheckpointStatus::StoppedByError, error) => EventKind::StopRunByError {
                checkpoint,
                error: error.unwrap_or(CheckpointError {
                    name: "Error".into(),
                    message: "the run stopped with an error".into(),
                    status_code: None,
                    is_retryable: false,
                }),
            },
            (CheckpointStatus::StoppedByExceededMaxSteps, _) => {
                EventKind::StopRunByExceededMaxSteps { checkpoint }
            }
            (CheckpointStatus::StoppedByInteractiveTool, _) => {
                EventKind::StopRunByInteractiveTool { checkpoint }
            }
            (CheckpointStatus::StoppedByDelegate, _) => EventKind::StopRunByDelegate { checkpoint },
            _ => EventKind::StopRunByCancel { checkpoint },
        };
        vec![
            Effect::SaveCheckpoint(saved),
            Effect::Emit(event),
            Effect::Finish(status),
        ]
    }
}

fn empty_step(step_number: u64) -> Step {
    Step {
        step_number,
        new_messages: Vec::new(),
        tool_calls: Vec::new(),
        tool_results: Vec::new(),
        usage: Usage::default(),
        started_at: 0,
        finished_at: None,
    }
}

fn answer_parts(clock: &dyn Clock, generation: &Generation) -> Vec<Part> {
    let mut parts: Vec<Part> = generation
        .thinking
        .iter()
        .map(|(thinking, signature)| Part::ThinkingPart {
            id: clock.new_id(),
            thinking: thinking.clone(),
            signature: signature.clone(),
        })
        .collect();
    // The provider's own tool uses precede the text that draws on them, as they came.
    parts.extend(
        generation
            .provider_tools
            .iter()
            .map(|used| Part::provider_tool_with(clock, used)),
    );
    if !generation.text.is_empty() {
        parts.push(Part::text_with(clock, generation.text.clone()));
    }
    parts.extend(generation.tool_calls.iter().map(|call| Part::ToolCallPart {
        id: clock.new_id(),
        tool_call_id: call.id.clone(),
        tool_name: call.name.clone(),
        args: call.args.clone(),
    }));
    parts
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
