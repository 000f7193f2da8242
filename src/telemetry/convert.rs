//! The events of a job, in order, turned into spans: no clock, no network, the same spans live
//! and from the store.
//!
//! ```text
//! job <coordinator>                    (the job; OpenInference CHAIN)
//! └─ invoke_agent <expert>             (each run; AGENT)
//!    ├─ chat <model>                   (each model call; LLM; retries are span events)
//!    └─ execute_tool <tool>            (each tool call; TOOL)
//!       └─ invoke_agent <delegate>     (a delegate, under the call that started it)
//! ```
//!
//! Names and attributes follow the OpenTelemetry GenAI semantic conventions, plus the
//! OpenInference ones Phoenix and Arize render. Prompts, answers, tool arguments and results
//! are added only when `capture_content` is set; headers (where keys live) never are.

use std::collections::HashMap;

use serde::Serialize;

use super::span::{AttrValue, Attributes, Span, SpanEvent, SpanKind, Status, span_id, trace_id};
use crate::runtime::checkpoint::Usage;
use crate::runtime::event::{EventKind, RunEvent};
use crate::runtime::message::ToolCall;

/// The OpenTelemetry GenAI provider name for ours (`gen_ai.provider.name`).
fn provider_name(provider: &str) -> &str {
    match provider {
        "google" => "gcp.gemini",
        "azure-openai" => "azure.ai.openai",
        other => other,
    }
}

struct OpenSpan {
    span: Span,
}

struct Chat {
    span: Span,
    /// Its `llmRequest` has been seen.
    requested: bool,
}

struct RunState {
    span: Span,
    /// Model calls begun and not yet answered, oldest first. Usually one; a stored job whose
    /// events share a millisecond can show the next call's request before this one's answer.
    chats: std::collections::VecDeque<Chat>,
    /// What the answered calls of the current step used: a step's final answer is what is
    /// left of the step's usage.
    step_chat_usage: Usage,
    /// How many model calls this run has made, to name each one's span.
    generations: u64,
    model: String,
    provider: Option<String>,
    /// Tool calls asked for and not yet timed: their arguments and span ids.
    calls: HashMap<String, ToolCall>,
    /// MCP server names by skill, from `skillConnected`.
    servers: HashMap<String, String>,
    /// Timed tool spans waiting for their results (only when content is captured).
    pending: Vec<Span>,
}

/// Turns the events of one job into spans, as they come.
pub struct TraceBuilder {
    capture_content: bool,
    trace_id: [u8; 16],
    job_id: String,
    job: Option<OpenSpan>,
    runs: HashMap<String, RunState>,
    /// Runs whose span has ended: what they still say (skills stopping) adds no span, unless
    /// the run starts again (a continued job).
    ended: std::collections::HashSet<String>,
    last_time_ms: u64,
}

impl TraceBuilder {
    pub fn new(job_id: &str, capture_content: bool) -> Self {
        TraceBuilder {
            capture_content,
            trace_id: trace_id(job_id),
            job_id: job_id.to_string(),
            job: None,
            runs: HashMap::new(),
            ended: std::collections::HashSet::new(),
            last_time_ms: 0,
        }
    }

    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// Takes one event; returns the spans it finished.
    pub fn push(&mut self, event: &RunEvent) -> Vec<Span> {
        let mut done = Vec::new();
        let time = event.timestamp;
        self.last_time_ms = self.last_time_ms.max(time);
        if self.job.is_none() {
            self.job = Some(OpenSpan {
                span: self.job_span(event),
            });
        }
        if self.ended.contains(&event.run_id) {
            if !matches!(event.kind, EventKind::StartRun { .. }) {
                return done;
            }
            self.ended.remove(&event.run_id);
        }
        if !self.runs.contains_key(&event.run_id) {
            let state = self.run_state(event);
            self.runs.insert(event.run_id.clone(), state);
        }
        let capture = self.capture_content;
        let trace = self.trace_id;
        let job_id = self.job_id.clone();
        let Some(run) = self.runs.get_mut(&event.run_id) else {
            return done;
        };
        // Set by the events that end the run; the run is ended after the match lets go of it.
        let mut ending: Option<Status> = None;
        match &event.kind {
            EventKind::InitializeRuntime { model, query, .. } => {
                run.model = model.clone();
                if capture {
                    run.span
                        .attributes
                        .push(("input.value", query.as_str().into()));
                }
            }
            EventKind::StartRun {
                initial_checkpoint, ..
            } => {
                if let Some(by) = &initial_checkpoint.delegated_by {
                    run.span.parent_span_id =
                        Some(span_id(&[&job_id, "tool", &by.run_id, &by.tool_call_id]));
                }
            }
            EventKind::SkillConnected {
                skill_name,
                server_info,
                ..
            } => {
                let server = server_info
                    .as_ref()
                    .and_then(|info| info["name"].as_str())
                    .unwrap_or(skill_name);
                run.servers.insert(skill_name.clone(), server.to_string());
            }
            EventKind::StartGeneration { messages } => {
                // A call that was sent and never answered (an empty answer retried) is over.
                while run.chats.front().is_some_and(|chat| chat.requested) {
                    if let Some(chat) = run.chats.pop_front() {
                        done.push(end(chat.span, time));
                    }
                }
                let mut chat = new_chat(trace, &job_id, &event.run_id, run, time);
                if capture {
                    let input = json(messages.as_ref());
                    chat.attributes
                        .push(("gen_ai.input.messages", input.clone().into()));
                    chat.attributes.push(("input.value", input.into()));
                    chat.attributes
                        .push(("input.mime_type", "application/json".into()));
                }
                run.chats.push_back(Chat {
                    span: chat,
                    requested: false,
                });
            }
            EventKind::LlmRequest { request, .. } => {
                run.model = request.model.clone();
                run.provider = Some(request.provider.clone());
                // The answer after `attemptCompletion` is sent without a `startGeneration`.
                if !run.chats.iter().any(|chat| !chat.requested) {
                    let chat = new_chat(trace, &job_id, &event.run_id, run, time);
                    run.chats.push_back(Chat {
                        span: chat,
                        requested: false,
                    });
                }
                if let Some(chat) = run.chats.iter_mut().find(|chat| !chat.requested) {
                    chat.requested = true;
                    chat.span.name = format!("chat {}", request.model);
                    chat.span.attributes.retain(|(k, _)| {
                        !k.starts_with("gen_ai.re")
                            && !k.starts_with("llm.")
                            && *k != "gen_ai.provider.name"
                    });
                    chat.span
                        .attributes
                        .extend(chat_attributes(&request.model, Some(&request.provider)));
                }
            }
            EventKind::Retry {
                reason,
                attempt,
                delay_ms,
            } => {
                let mut attributes: Attributes = vec![
                    ("perstack.retry.reason", reason.as_str().into()),
                    ("perstack.retry.attempt", (*attempt).into()),
                ];
                if let Some(delay) = delay_ms {
                    attributes.push(("perstack.retry.delay_ms", (*delay).into()));
                }
                let target = match run.chats.back_mut() {
                    Some(chat) => &mut chat.span,
                    None => &mut run.span,
                };
                target.events.push(SpanEvent {
                    name: "retry",
                    time_ms: time,
                    attributes,
                });
            }
            EventKind::CallTools {
                new_message,
                tool_calls,
                usage,
            } => {
                for call in tool_calls {
                    run.calls.insert(call.id.clone(), call.clone());
                }
                run.step_chat_usage.add(usage);
                {
                    let mut chat = answered_chat(trace, &job_id, &event.run_id, run, time);
                    add_usage(&mut chat, usage, &["tool_calls"]);
                    if capture {
                        let output = json(new_message);
                        chat.attributes
                            .push(("gen_ai.output.messages", output.clone().into()));
                        chat.attributes.push(("output.value", output.into()));
                        chat.attributes
                            .push(("output.mime_type", "application/json".into()));
                    }
                    done.push(end(chat, time));
                }
            }
            EventKind::ContinueToNextStep { .. } => {
                run.step_chat_usage = Usage::default();
            }
            EventKind::CallInteractiveTool { tool_call }
            | EventKind::CallDelegate { tool_call, .. } => {
                run.calls
                    .entry(tool_call.id.clone())
                    .or_insert_with(|| tool_call.clone());
            }
            EventKind::ToolCallTiming {
                tool_call_id,
                skill_name,
                tool_name,
                started_at,
                duration_ms,
                is_error,
            } => {
                let mut tool = child_span(
                    trace,
                    &run.span,
                    &[&job_id, "tool", &event.run_id, tool_call_id],
                    format!("execute_tool {tool_name}"),
                    SpanKind::Internal,
                    *started_at,
                );
                tool.attributes.extend([
                    ("gen_ai.operation.name", "execute_tool".into()),
                    ("gen_ai.tool.name", tool_name.as_str().into()),
                    ("gen_ai.tool.call.id", tool_call_id.as_str().into()),
                    ("gen_ai.tool.type", "function".into()),
                    ("perstack.skill.name", skill_name.as_str().into()),
                    ("openinference.span.kind", "TOOL".into()),
                    ("tool.name", tool_name.as_str().into()),
                ]);
                if let Some(server) = run.servers.get(skill_name) {
                    tool.attributes
                        .push(("mcp.server.name", server.as_str().into()));
                }
                if let (true, Some(call)) = (capture, run.calls.get(tool_call_id)) {
                    let args = call.args.to_string();
                    tool.attributes
                        .push(("gen_ai.tool.call.arguments", args.clone().into()));
                    tool.attributes.push(("input.value", args.into()));
                }
                run.calls.remove(tool_call_id);
                if *is_error {
                    tool.status = Status::Error(format!("{tool_name} returned an error"));
                    tool.attributes.push(("error.type", "tool_error".into()));
                }
                tool.end_ms = started_at.saturating_add(*duration_ms);
                // The result comes with `resolveToolResults`; held until then when captured.
                if capture {
                    run.pending.push(tool);
                } else {
                    done.push(tool);
                }
            }
            EventKind::ResolveToolResults { tool_results } => {
                let held = std::mem::take(&mut run.pending);
                for mut tool in held {
                    let id = tool
                        .attr("gen_ai.tool.call.id")
                        .and_then(as_str)
                        .unwrap_or_default()
                        .to_string();
                    if let Some(result) = tool_results.iter().find(|r| r.id == id) {
                        let output = json(&result.result);
                        tool.attributes
                            .push(("gen_ai.tool.call.result", output.clone().into()));
                        tool.attributes.push(("output.value", output.into()));
                    }
                    done.push(tool);
                }
            }
            EventKind::CompleteRun {
                step, text, usage, ..
            } => {
                {
                    let mut chat = answered_chat(trace, &job_id, &event.run_id, run, time);
                    let answer = usage_left(&step.usage, &run.step_chat_usage);
                    add_usage(&mut chat, &answer, &["stop"]);
                    if capture {
                        chat.attributes
                            .push(("gen_ai.output.messages", text.as_str().into()));
                        chat.attributes.push(("output.value", text.as_str().into()));
                    }
                    done.push(end(chat, time));
                }
                if capture {
                    run.span
                        .attributes
                        .push(("output.value", text.as_str().into()));
                }
                add_usage_totals(&mut run.span, usage);
                ending = Some(Status::Unset);
            }
            EventKind::StopRunByError { error, .. } => {
                let status = Status::Error(error.message.clone());
                if let Some(Chat { span: mut chat, .. }) = run.chats.pop_back() {
                    chat.status = status.clone();
                    chat.attributes
                        .push(("error.type", error.name.as_str().into()));
                    done.push(end(chat, time));
                }
                run.span
                    .attributes
                    .push(("error.type", error.name.as_str().into()));
                ending = Some(status);
            }
            EventKind::StopRunByExceededMaxSteps { .. } => {
                ending = Some(Status::Error("the job used all of its maxSteps".into()));
            }
            EventKind::StopRunByDelegate { .. }
            | EventKind::StopRunByInteractiveTool { .. }
            | EventKind::StopRunByCancel { .. } => {
                run.span
                    .attributes
                    .push(("perstack.run.stop", event.kind.name().into()));
                ending = Some(Status::Unset);
            }
            _ => {}
        }
        if let Some(status) = ending {
            done.extend(self.end_run(&event.run_id, time, status));
        }
        done
    }

    /// Ends whatever is still open (a job cut short, the coordinator's end) at the last time
    /// seen, the job span last.
    pub fn finish(&mut self) -> Vec<Span> {
        let time = self.last_time_ms;
        let mut done = Vec::new();
        let runs: Vec<String> = self.runs.keys().cloned().collect();
        for run in runs {
            done.extend(self.end_run(&run, time, Status::Unset));
        }
        if let Some(job) = self.job.take() {
            done.push(end(job.span, time));
        }
        done
    }

    fn end_run(&mut self, run_id: &str, time: u64, status: Status) -> Vec<Span> {
        let Some(mut run) = self.runs.remove(run_id) else {
            return Vec::new();
        };
        self.ended.insert(run_id.to_string());
        let mut done: Vec<Span> = std::mem::take(&mut run.pending);
        for chat in run.chats.drain(..) {
            done.push(end(chat.span, time));
        }
        if let Status::Error(message) = &status {
            if let Some(job) = &mut self.job {
                if run.span.parent_span_id == Some(job.span.span_id) {
                    job.span.status = Status::Error(message.clone());
                }
            }
        }
        run.span.status = status;
        done.push(end(run.span, time));
        done
    }

    fn job_span(&self, event: &RunEvent) -> Span {
        let job_id = &self.job_id;
        Span {
            trace_id: self.trace_id,
            span_id: span_id(&[job_id, "job", &event.timestamp.to_string()]),
            parent_span_id: None,
            name: format!("job {}", event.expert_key),
            kind: SpanKind::Internal,
            start_ms: event.timestamp,
            end_ms: event.timestamp,
            attributes: vec![
                ("perstack.job.id", job_id.as_str().into()),
                ("gen_ai.conversation.id", job_id.as_str().into()),
                ("session.id", job_id.as_str().into()),
                ("openinference.span.kind", "CHAIN".into()),
            ],
            events: Vec::new(),
            status: Status::Unset,
        }
    }

    fn run_state(&self, event: &RunEvent) -> RunState {
        let job_span_id = self.job.as_ref().map(|job| job.span.span_id);
        let mut span = Span {
            trace_id: self.trace_id,
            span_id: span_id(&[
                &self.job_id,
                "run",
                &event.run_id,
                &event.timestamp.to_string(),
            ]),
            parent_span_id: job_span_id,
            name: format!("invoke_agent {}", event.expert_key),
            kind: SpanKind::Internal,
            start_ms: event.timestamp,
            end_ms: event.timestamp,
            attributes: vec![
                ("gen_ai.operation.name", "invoke_agent".into()),
                ("gen_ai.agent.name", event.expert_key.as_str().into()),
                ("gen_ai.agent.id", event.run_id.as_str().into()),
                ("gen_ai.conversation.id", self.job_id.as_str().into()),
                ("perstack.run.id", event.run_id.as_str().into()),
                ("openinference.span.kind", "AGENT".into()),
                ("agent.name", event.expert_key.as_str().into()),
                ("session.id", self.job_id.as_str().into()),
            ],
            events: Vec::new(),
            status: Status::Unset,
        };
        if let Some(parent) = &event.parent_run_id {
            span.attributes
                .push(("perstack.run.parent_id", parent.as_str().into()));
        }
        RunState {
            span,
            chats: std::collections::VecDeque::new(),
            step_chat_usage: Usage::default(),
            generations: 0,
            model: String::new(),
            provider: None,
            calls: HashMap::new(),
            servers: HashMap::new(),
            pending: Vec::new(),
        }
    }
}

fn end(mut span: Span, time: u64) -> Span {
    span.end_ms = span.end_ms.max(time);
    span
}

fn child_span(
    trace: [u8; 16],
    parent: &Span,
    id_parts: &[&str],
    name: String,
    kind: SpanKind,
    start_ms: u64,
) -> Span {
    Span {
        trace_id: trace,
        span_id: span_id(id_parts),
        parent_span_id: Some(parent.span_id),
        name,
        kind,
        start_ms,
        end_ms: start_ms,
        attributes: Vec::new(),
        events: Vec::new(),
        status: Status::Unset,
    }
}

fn new_chat(trace: [u8; 16], job_id: &str, run_id: &str, run: &mut RunState, time: u64) -> Span {
    run.generations += 1;
    let mut chat = child_span(
        trace,
        &run.span,
        &[job_id, "chat", run_id, &run.generations.to_string()],
        format!("chat {}", run.model),
        SpanKind::Client,
        time,
    );
    chat.attributes
        .extend(chat_attributes(&run.model, run.provider.as_deref()));
    chat
}

/// The model call an answer belongs to: the oldest open one, or, when the store lost its
/// request (two events of one type in one millisecond share a file name), one made for it.
fn answered_chat(
    trace: [u8; 16],
    job_id: &str,
    run_id: &str,
    run: &mut RunState,
    time: u64,
) -> Span {
    match run.chats.pop_front() {
        Some(chat) => chat.span,
        None => new_chat(trace, job_id, run_id, run, time),
    }
}

/// What `total` has beyond `used` (a step's usage beyond its answered calls).
fn usage_left(total: &Usage, used: &Usage) -> Usage {
    Usage {
        input_tokens: total.input_tokens.saturating_sub(used.input_tokens),
        output_tokens: total.output_tokens.saturating_sub(used.output_tokens),
        reasoning_tokens: total.reasoning_tokens.saturating_sub(used.reasoning_tokens),
        total_tokens: total.total_tokens.saturating_sub(used.total_tokens),
        cached_input_tokens: total
            .cached_input_tokens
            .saturating_sub(used.cached_input_tokens),
    }
}

fn chat_attributes(model: &str, provider: Option<&str>) -> Attributes {
    let mut attributes: Attributes = vec![
        ("gen_ai.operation.name", "chat".into()),
        ("gen_ai.request.model", model.into()),
        ("gen_ai.response.model", model.into()),
        ("openinference.span.kind", "LLM".into()),
        ("llm.model_name", model.into()),
    ];
    if let Some(provider) = provider {
        attributes.push(("gen_ai.provider.name", provider_name(provider).into()));
        attributes.push(("llm.provider", provider.into()));
    }
    attributes
}

fn add_usage(chat: &mut Span, usage: &Usage, finish_reasons: &[&str]) {
    chat.attributes.extend([
        ("gen_ai.usage.input_tokens", usage.input_tokens.into()),
        ("gen_ai.usage.output_tokens", usage.output_tokens.into()),
        ("llm.token_count.prompt", usage.input_tokens.into()),
        ("llm.token_count.completion", usage.output_tokens.into()),
        (
            "llm.token_count.total",
            (usage.input_tokens + usage.output_tokens).into(),
        ),
        (
            "gen_ai.response.finish_reasons",
            AttrValue::StrList(finish_reasons.iter().map(|r| r.to_string()).collect()),
        ),
    ]);
}

/// A run's totals (delegates included, as its checkpoint counts them).
fn add_usage_totals(run: &mut Span, usage: &Usage) {
    run.attributes.extend([
        ("gen_ai.usage.input_tokens", usage.input_tokens.into()),
        ("gen_ai.usage.output_tokens", usage.output_tokens.into()),
    ]);
}

fn as_str(value: &AttrValue) -> Option<&str> {
    match value {
        AttrValue::Str(text) => Some(text),
        _ => None,
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runtime::checkpoint::{Checkpoint, CheckpointError, DelegatedBy, ExpertRef};
    use crate::runtime::event::{RunIds, Step, WireRequest};
    use crate::runtime::message::{Message, ToolResult};
    use crate::tool::ToolOutput;

    fn expert(key: &str) -> ExpertRef {
        ExpertRef {
            key: key.into(),
            name: key.into(),
            version: "1.0.0".into(),
        }
    }

    struct Script {
        events: Vec<RunEvent>,
        time: u64,
    }

    impl Script {
        fn emit(&mut self, ids: &RunIds, step: u64, kind: EventKind) {
            self.time += 10;
            let mut event = ids.event(step, kind);
            event.timestamp = self.time;
            self.events.push(event);
        }
    }

    fn ids(run: &str, key: &str, parent: Option<&str>) -> RunIds {
        RunIds {
            job_id: "job1".into(),
            run_id: run.into(),
            expert_key: key.into(),
            parent_run_id: parent.map(str::to_string),
        }
    }

    fn call(id: &str, skill: &str, tool: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            skill_name: skill.into(),
            tool_name: tool.into(),
            args: serde_json::json!({"path": "secret-plan.txt"}),
        }
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    fn checkpoint(run: &str, key: &str) -> Arc<Checkpoint> {
        Arc::new(Checkpoint::new("job1", run, expert(key), vec![]))
    }

    fn step(usage: Usage) -> Box<Step> {
        Box::new(Step {
            step_number: 1,
            new_messages: vec![],
            tool_calls: vec![],
            tool_results: vec![],
            usage,
            started_at: 0,
            finished_at: None,
        })
    }

    fn request(model: &str) -> EventKind {
        EventKind::LlmRequest {
            request: WireRequest {
                provider: "anthropic".into(),
                model: model.into(),
                method: "POST".into(),
                url: "https://api.example/v1/messages".into(),
                headers: vec![("x-api-key".into(), "[redacted]".into())],
                body: "{}".into(),
                edited: false,
            },
            attempt: 1,
        }
    }

    /// A coordinator that retries once, calls a delegate and a failing MCP tool, and completes;
    /// the delegate answers at once.
    fn job_events() -> Vec<RunEvent> {
        let mut script = Script {
            events: Vec::new(),
            time: 1_000,
        };
        let lead = ids("r1", "lead", None);
        let child = ids("r2", "writer", Some("r1"));
        script.emit(
            &lead,
            1,
            EventKind::SkillConnected {
                skill_name: "files".into(),
                server_info: Some(serde_json::json!({"name": "fs-server"})),
                spawn_duration_ms: 0,
                handshake_duration_ms: 0,
                connect_duration_ms: 0,
                tool_discovery_duration_ms: 0,
                total_duration_ms: 0,
                tools: vec![],
            },
        );
        script.emit(
            &lead,
            1,
            EventKind::StartRun {
                initial_checkpoint: checkpoint("r1", "lead"),
                input_messages: vec![Message::user("the secret question")],
            },
        );
        script.emit(
            &lead,
            1,
            EventKind::StartGeneration {
                messages: Arc::new(vec![]),
            },
        );
        script.emit(&lead, 1, request("claude-x"));
        script.emit(
            &lead,
            1,
            EventKind::Retry {
                reason: "529 overloaded".into(),
                attempt: 1,
                delay_ms: Some(5),
            },
        );
        let calls = vec![
            call("c1", "writer", "writer"),
            call("c2", "files", "readTextFile"),
        ];
        script.emit(
            &lead,
            1,
            EventKind::CallTools {
                new_message: Message::user("calling"),
                tool_calls: calls.clone(),
                usage: usage(100, 20),
            },
        );
        let mut child_start = Checkpoint::new("job1", "r2", expert("writer"), vec![]);
        child_start.delegated_by = Some(DelegatedBy {
            expert: expert("lead"),
            tool_call_id: "c1".into(),
            tool_name: "writer".into(),
            checkpoint_id: "cp".into(),
            run_id: "r1".into(),
        });
        script.emit(
            &child,
            1,
            EventKind::StartRun {
                initial_checkpoint: Arc::new(child_start),
                input_messages: vec![],
            },
        );
        script.emit(
            &child,
            1,
            EventKind::StartGeneration {
                messages: Arc::new(vec![]),
            },
        );
        script.emit(&child, 1, request("claude-y"));
        script.emit(
            &child,
            1,
            EventKind::CompleteRun {
                checkpoint: checkpoint("r2", "writer"),
                step: step(usage(7, 3)),
                text: "the secret answer".into(),
                usage: usage(7, 3),
            },
        );
        script.emit(
            &lead,
            1,
            EventKind::ToolCallTiming {
                tool_call_id: "c2".into(),
                skill_name: "files".into(),
                tool_name: "readTextFile".into(),
                started_at: 1_065,
                duration_ms: 4,
                is_error: true,
            },
        );
        script.emit(
            &lead,
            1,
            EventKind::ToolCallTiming {
                tool_call_id: "c1".into(),
                skill_name: "writer".into(),
                tool_name: "writer".into(),
                started_at: 1_065,
                duration_ms: 40,
                is_error: false,
            },
        );
        script.emit(
            &lead,
            1,
            EventKind::ResolveToolResults {
                tool_results: vec![ToolResult {
                    id: "c2".into(),
                    skill_name: "files".into(),
                    tool_name: "readTextFile".into(),
                    result: ToolOutput::error("no such file"),
                }],
            },
        );
        script.emit(
            &lead,
            2,
            EventKind::StartGeneration {
                messages: Arc::new(vec![]),
            },
        );
        script.emit(&lead, 2, request("claude-x"));
        script.emit(
            &lead,
            2,
            EventKind::StopRunByError {
                checkpoint: checkpoint("r1", "lead"),
                error: CheckpointError {
                    name: "ModelError".into(),
                    message: "500 from the provider".into(),
                    status_code: Some(500),
                    is_retryable: true,
                },
            },
        );
        // Skills stop after the run has ended: no new span for that.
        script.emit(
            &child,
            1,
            EventKind::SkillDisconnected {
                skill_name: "files".into(),
                reason: None,
            },
        );
        script.events
    }

    fn spans(capture: bool) -> Vec<Span> {
        let mut builder = TraceBuilder::new("job1", capture);
        let mut spans: Vec<Span> = job_events().iter().flat_map(|e| builder.push(e)).collect();
        spans.extend(builder.finish());
        spans
    }

    fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
        spans.iter().filter(|s| s.name == name).collect()
    }

    fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
        let found = named(spans, name);
        assert_eq!(found.len(), 1, "one span named {name}: {found:?}");
        found[0]
    }

    #[test]
    fn builds_the_tree_job_run_chat_tool_and_delegate_under_its_call() {
        let spans = spans(false);
        let job = one(&spans, "job lead");
        let lead = one(&spans, "invoke_agent lead");
        let writer = one(&spans, "invoke_agent writer");
        let delegate_call = one(&spans, "execute_tool writer");
        let read = one(&spans, "execute_tool readTextFile");
        let chats = named(&spans, "chat claude-x");
        assert_eq!(chats.len(), 2);
        let child_chat = one(&spans, "chat claude-y");
        assert_eq!(spans.len(), 8);
        assert!(spans.iter().all(|s| s.trace_id == trace_id("job1")));
        assert_eq!(job.parent_span_id, None);
        assert_eq!(lead.parent_span_id, Some(job.span_id));
        assert_eq!(delegate_call.parent_span_id, Some(lead.span_id));
        assert_eq!(writer.parent_span_id, Some(delegate_call.span_id));
        assert_eq!(child_chat.parent_span_id, Some(writer.span_id));
        assert_eq!(read.parent_span_id, Some(lead.span_id));
        assert!(chats.iter().all(|c| c.parent_span_id == Some(lead.span_id)));
        // Original times: the tool span is the timed call, the job spans the whole job.
        assert_eq!((read.start_ms, read.end_ms), (1_065, 1_069));
        assert_eq!(job.start_ms, 1_010);
        assert_eq!(lead.end_ms, 1_160);
        assert_eq!(job.end_ms, 1_170, "the job lasts until its last event");
        assert_eq!(
            read.attr("mcp.server.name"),
            Some(&AttrValue::Str("fs-server".into()))
        );
        assert_eq!(read.attr("gen_ai.tool.call.id"), Some(&"c2".into()));
        assert_eq!(read.attr("openinference.span.kind"), Some(&"TOOL".into()));
        assert_eq!(lead.attr("openinference.span.kind"), Some(&"AGENT".into()));
    }

    #[test]
    fn model_calls_carry_gen_ai_and_openinference_attributes_and_retries() {
        let spans = spans(false);
        let first = named(&spans, "chat claude-x")[0];
        assert_eq!(first.attr("gen_ai.operation.name"), Some(&"chat".into()));
        assert_eq!(
            first.attr("gen_ai.provider.name"),
            Some(&"anthropic".into())
        );
        assert_eq!(first.attr("gen_ai.request.model"), Some(&"claude-x".into()));
        assert_eq!(
            first.attr("gen_ai.response.model"),
            Some(&"claude-x".into())
        );
        assert_eq!(first.attr("llm.model_name"), Some(&"claude-x".into()));
        assert_eq!(
            first.attr("gen_ai.usage.input_tokens"),
            Some(&AttrValue::Int(100))
        );
        assert_eq!(
            first.attr("gen_ai.usage.output_tokens"),
            Some(&AttrValue::Int(20))
        );
        assert_eq!(
            first.attr("llm.token_count.prompt"),
            Some(&AttrValue::Int(100))
        );
        assert_eq!(
            first.attr("llm.token_count.total"),
            Some(&AttrValue::Int(120))
        );
        assert_eq!(
            first.attr("gen_ai.response.finish_reasons"),
            Some(&AttrValue::StrList(vec!["tool_calls".into()]))
        );
        assert_eq!(first.events.len(), 1);
        assert_eq!(first.events[0].name, "retry");
        assert_eq!(first.kind, SpanKind::Client);
        let child = one(&spans, "chat claude-y");
        assert_eq!(
            child.attr("gen_ai.response.finish_reasons"),
            Some(&AttrValue::StrList(vec!["stop".into()]))
        );
        assert_eq!(
            child.attr("gen_ai.usage.input_tokens"),
            Some(&AttrValue::Int(7))
        );
    }

    #[test]
    fn failures_carry_error_status_where_they_happened() {
        let spans = spans(false);
        let read = one(&spans, "execute_tool readTextFile");
        assert!(matches!(read.status, Status::Error(_)));
        assert_eq!(one(&spans, "execute_tool writer").status, Status::Unset);
        let chats = named(&spans, "chat claude-x");
        assert_eq!(chats[0].status, Status::Unset, "the retried call succeeded");
        assert_eq!(
            chats[1].status,
            Status::Error("500 from the provider".into())
        );
        let lead = one(&spans, "invoke_agent lead");
        assert_eq!(lead.status, Status::Error("500 from the provider".into()));
        assert_eq!(one(&spans, "invoke_agent writer").status, Status::Unset);
        assert!(matches!(one(&spans, "job lead").status, Status::Error(_)));
    }

    fn has_text(spans: &[Span], needle: &str) -> bool {
        spans.iter().any(|s| {
            s.attributes.iter().any(|(_, v)| match v {
                AttrValue::Str(text) => text.contains(needle),
                _ => false,
            })
        })
    }

    #[test]
    fn content_only_when_asked_and_keys_never() {
        let quiet = spans(false);
        for secret in ["secret-plan.txt", "secret answer", "no such file"] {
            assert!(!has_text(&quiet, secret), "{secret} leaked by default");
        }
        assert!(quiet.iter().all(|s| s.attr("input.value").is_none()));
        let told = spans(true);
        assert!(
            has_text(&told, "secret-plan.txt"),
            "tool arguments captured"
        );
        assert!(has_text(&told, "secret answer"), "answers captured");
        assert!(has_text(&told, "no such file"), "tool results captured");
        assert!(!has_text(&told, "x-api-key") && !has_text(&told, "[redacted]"));
        let read = one(&told, "execute_tool readTextFile");
        assert!(read.attr("gen_ai.tool.call.result").is_some());
        assert_eq!(told.len(), quiet.len());
    }

    /// Step 2 of a run: a call of attemptCompletion, then the final answer, which is sent
    /// without a `startGeneration`.
    fn completion_step(lost_first_request: bool) -> Vec<RunEvent> {
        let mut script = Script {
            events: Vec::new(),
            time: 1_000,
        };
        let run = ids("r1", "solo", None);
        script.emit(
            &run,
            2,
            EventKind::StartGeneration {
                messages: Arc::new(vec![]),
            },
        );
        // As stored, one millisecond's events sort by type: the one request left comes first.
        script.emit(&run, 2, request("m"));
        let done = call("c9", "@perstack/base", "attemptCompletion");
        script.emit(
            &run,
            2,
            EventKind::CallTools {
                new_message: Message::user("finishing"),
                tool_calls: vec![done],
                usage: usage(20, 2),
            },
        );
        if !lost_first_request {
            script.emit(&run, 2, request("m"));
        }
        script.emit(
            &run,
            2,
            EventKind::CompleteRun {
                checkpoint: checkpoint("r1", "solo"),
                step: step(usage(50, 7)),
                text: "done".into(),
                usage: usage(50, 7),
            },
        );
        script.events
    }

    #[test]
    fn the_answer_after_attempt_completion_is_its_own_model_call() {
        // Live, and as stored when both requests fell in one millisecond and shared a file.
        for lost in [false, true] {
            let mut builder = TraceBuilder::new("job1", false);
            let mut spans: Vec<Span> = completion_step(lost)
                .iter()
                .flat_map(|e| builder.push(e))
                .collect();
            spans.extend(builder.finish());
            let chats = named(&spans, "chat m");
            assert_eq!(chats.len(), 2, "lost first request: {lost}");
            let tokens: Vec<_> = chats
                .iter()
                .map(|c| {
                    (
                        c.attr("gen_ai.usage.input_tokens").cloned(),
                        c.attr("gen_ai.response.finish_reasons").cloned(),
                    )
                })
                .collect();
            assert_eq!(
                tokens,
                vec![
                    (
                        Some(AttrValue::Int(20)),
                        Some(AttrValue::StrList(vec!["tool_calls".into()]))
                    ),
                    (
                        Some(AttrValue::Int(30)),
                        Some(AttrValue::StrList(vec!["stop".into()]))
                    ),
                ],
                "the step's usage is split between its two calls"
            );
        }
    }

    #[test]
    fn the_same_events_give_the_same_spans() {
        assert_eq!(spans(false), spans(false));
    }
}
