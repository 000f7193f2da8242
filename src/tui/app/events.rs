//! How each runtime event changes the state: the run tree, steps, tool calls, timeline.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::runtime::checkpoint::{Checkpoint, CheckpointStatus, Usage};
use crate::runtime::control::PausePoint;
use crate::runtime::event::{EventKind, RunEvent};
use crate::runtime::message::{Message, Part, ToolResult};
use crate::tool::{ToolContent, ToolOutput};

impl AppState {
    pub(super) fn on_event(&mut self, event: RunEvent) {
        let RunEvent {
            job_id,
            run_id,
            expert_key,
            step_number,
            timestamp,
            parent_run_id,
            kind,
            ..
        } = event;
        if self.job_id.is_none() {
            self.job_id = Some(job_id);
        }
        if !self.runs.contains_key(&run_id) {
            // A new run adds a row above the definitions: keep the cursor on its row.
            let keep = self.panes.experts.row(&self.job());
            if let Some(parent) = parent_run_id.as_ref().and_then(|p| self.runs.get_mut(p)) {
                parent.children.push(run_id.clone());
            }
            if parent_run_id.is_none() && self.root_run.is_none() {
                self.root_run = Some(run_id.clone());
            } else if parent_run_id.is_none() && self.select_next_root {
                self.select_next_root = false;
                self.selected_run = Some(run_id.clone());
            }
            self.runs.insert(
                run_id.clone(),
                RunView {
                    run_id: run_id.clone(),
                    parent: parent_run_id.clone(),
                    children: Vec::new(),
                    expert_key: expert_key.clone(),
                    model: self.model.clone(),
                    max_steps: self.max_steps,
                    status: RunStatus::Running,
                    step: step_number,
                    usage: Usage::default(),
                    started_at: timestamp,
                    finished_at: None,
                    steps: BTreeMap::new(),
                    conv: Vec::new(),
                    conv_folded: Vec::new(),
                    messages_seen: 0,
                    calls: Vec::new(),
                    error: None,
                    result: None,
                },
            );
            if let Some(row) = keep {
                self.cursor_to(&row);
            }
        }
        let is_root = parent_run_id.is_none();
        let depth = self.depth_of(&run_id);
        let Some(run) = self.runs.get_mut(&run_id) else {
            return;
        };
        run.step = run.step.max(step_number);
        let mut checkpoint: Option<Arc<Checkpoint>> = None;
        match kind {
            EventKind::InitializeRuntime {
                model, max_steps, ..
            } => {
                run.model = model;
                run.max_steps = max_steps;
            }
            EventKind::StartRun { .. } => {
                run.status = RunStatus::Running;
                run.finished_at = None;
                run.error = None;
                if is_root {
                    self.job_state = JobState::Running;
                }
            }
            EventKind::StartGeneration { messages } => {
                let new = messages.get(run.messages_seen..).unwrap_or(&[]);
                for message in new {
                    push_conv(run, message);
                }
                run.messages_seen = messages.len().max(run.messages_seen);
                let (len, folded) = (run.conv.len(), run.conv_folded.len());
                let step = run.steps.entry(step_number).or_default();
                step.conv_len = len;
                step.conv_folded_len = folded;
            }
            EventKind::LlmRequest { request, .. } => {
                // Only the newest request is kept pretty-printed; an older one is printed
                // again when it is looked at (`ensure_pretty`), so memory stays near one body.
                for step in run.steps.values_mut() {
                    step.pretty = None;
                }
                let step = run.steps.entry(step_number).or_default();
                step.pretty = Some(Arc::new(PrettyBody::new(&request.body)));
                if request.edited {
                    self.status = Some("the edited body is what will be sent; c sends it".into());
                }
                step.request = Some(request);
            }
            EventKind::StartStreamingReasoning | EventKind::StartStreamingRunResult => {
                run.steps.entry(step_number).or_default().streaming = true;
            }
            EventKind::StreamReasoning { delta } => {
                run.steps
                    .entry(step_number)
                    .or_default()
                    .reasoning
                    .push_str(&delta);
            }
            EventKind::StreamRunResult { delta } => {
                run.steps
                    .entry(step_number)
                    .or_default()
                    .text
                    .push_str(&delta);
            }
            EventKind::CompleteStreamingReasoning { text } => {
                let step = run.steps.entry(step_number).or_default();
                step.reasoning = text;
            }
            EventKind::CompleteStreamingRunResult { text } => {
                let step = run.steps.entry(step_number).or_default();
                step.text = text;
                step.streaming = false;
            }
            EventKind::CallTools {
                tool_calls, usage, ..
            } => {
                run.usage.add(&usage);
                if let Some(step) = run.steps.get_mut(&step_number) {
                    step.streaming = false;
                }
                for call in tool_calls {
                    run.calls.push(ToolCallView {
                        id: call.id,
                        step: step_number,
                        skill: call.skill_name,
                        tool: call.tool_name,
                        args: call.args,
                        status: CallStatus::Running,
                        duration_ms: None,
                        result: None,
                        delegate_run: None,
                        denied: Vec::new(),
                        run_by_provider: false,
                    });
                }
            }
            EventKind::ProviderToolCall {
                tool_call,
                tool_result,
                ..
            } => {
                let is_error = tool_result.result.is_error;
                run.calls.push(ToolCallView {
                    id: tool_call.id,
                    step: step_number,
                    skill: tool_call.skill_name,
                    tool: tool_call.tool_name,
                    args: tool_call.args,
                    status: if is_error {
                        CallStatus::Error
                    } else {
                        CallStatus::Done
                    },
                    duration_ms: None,
                    result: Some(output_text(&tool_result.result)),
                    delegate_run: None,
                    denied: Vec::new(),
                    run_by_provider: true,
                });
            }
            EventKind::CallDelegate {
                tool_call,
                delegate_run_id,
                ..
            } => {
                if let Some(call) = run.calls.iter_mut().find(|c| c.id == tool_call.id) {
                    call.delegate_run = Some(delegate_run_id);
                }
            }
            EventKind::CallInteractiveTool { tool_call } => {
                self.pending_question = Some(tool_call);
            }
            EventKind::ToolCallTiming {
                tool_call_id,
                duration_ms,
                is_error,
                ..
            } => {
                if let Some(call) = run.calls.iter_mut().find(|c| c.id == tool_call_id) {
                    call.duration_ms = Some(duration_ms);
                    call.status = if is_error {
                        CallStatus::Error
                    } else {
                        CallStatus::Done
                    };
                }
            }
            EventKind::ResolveToolResults { tool_results } => {
                for result in tool_results {
                    set_result(run, &result);
                }
            }
            EventKind::AttemptCompletion { tool_result } => set_result(run, &tool_result),
            EventKind::ContinueToNextStep { checkpoint: c, .. } => {
                run.usage = c.usage;
                checkpoint = Some(c);
            }
            EventKind::CompleteRun {
                checkpoint: c,
                text,
                usage,
                ..
            } => {
                run.usage = usage;
                run.status = RunStatus::Done;
                run.result = Some(text);
                run.finished_at = Some(timestamp);
                checkpoint = Some(c);
                if is_root {
                    self.job_state = JobState::Completed;
                    self.status =
                        Some("completed · f asks a follow-up · i starts a new job".into());
                }
            }
            EventKind::StopRunByError {
                checkpoint: c,
                error,
            } => {
                run.status = RunStatus::Error;
                run.error = Some(format!("{}: {}", error.name, error.message));
                run.finished_at = Some(timestamp);
                checkpoint = Some(c);
                if is_root {
                    self.job_state = JobState::Failed;
                    self.status = Some(format!("error: {}", error.message));
                }
            }
            EventKind::StopRunByInteractiveTool { checkpoint: c } => {
                run.status = RunStatus::WaitingForAnswer;
                checkpoint = Some(c);
                if is_root {
                    self.job_state = JobState::WaitingForAnswer;
                }
            }
            EventKind::Paused { point } => {
                self.paused = Some(PausedAt {
                    run_id: run_id.clone(),
                    expert_key: expert_key.clone(),
                    step: step_number,
                    point,
                });
                // The pane shows the paused run at the step it paused in.
                if self.selected_run.is_some() || !is_root {
                    self.selected_run = Some(run_id.clone());
                }
                self.pinned = None;
                self.panes.prompt.step = None;
                if self
                    .paused
                    .as_ref()
                    .is_some_and(|p| p.point == PausePoint::BeforeLlm)
                {
                    // What matters now is the exact body about to go.
                    self.panes.prompt.view = PromptView::Raw;
                    self.panes.prompt.rewind();
                }
            }
            EventKind::Resumed { .. } => self.paused = None,
            EventKind::RequestEditRefused { error } => {
                self.status = Some(format!("edit refused, nothing sent: {error}"));
            }
            EventKind::StorageRetry {
                key,
                attempt,
                spooled,
                ..
            } => {
                self.status = Some(format!(
                    "upload of {key} failed (attempt {attempt}); {spooled} object(s) kept in the local spool"
                ));
            }
            EventKind::StopRunByCancel { checkpoint: c } => {
                run.status = RunStatus::Stopped;
                run.finished_at = Some(timestamp);
                checkpoint = Some(c);
                if is_root {
                    self.job_state = JobState::Cancelled;
                }
            }
            EventKind::StopRunByExceededMaxSteps { checkpoint: c }
            | EventKind::StopRunByDelegate { checkpoint: c } => {
                run.status = RunStatus::Stopped;
                run.finished_at = Some(timestamp);
                checkpoint = Some(c);
                if is_root {
                    self.job_state = JobState::Stopped;
                }
            }
            EventKind::Retry {
                reason, attempt, ..
            } => {
                self.status = Some(format!("retry {attempt}: {reason}"));
            }
            EventKind::SkillWarning {
                skill_name,
                message,
            } => {
                self.status = Some(format!("{skill_name}: {message}"));
            }
            EventKind::SkillConnected {
                skill_name, tools, ..
            } if !tools.is_empty() => {
                let key = run.expert_key.clone();
                if let Some(expert) = self.experts.iter_mut().find(|e| e.key == key) {
                    if let Some(skill) = expert.skills.iter_mut().find(|s| s.name == skill_name) {
                        skill.tools = Some(tools);
                    }
                }
            }
            EventKind::SkillStarting {
                skill_name,
                sandbox,
            } => {
                let key = run.expert_key.clone();
                if let Some(expert) = self.experts.iter_mut().find(|e| e.key == key) {
                    if let Some(skill) = expert.skills.iter_mut().find(|s| s.name == skill_name) {
                        skill.confined = Some(sandbox.is_some());
                    }
                }
            }
            EventKind::SandboxDenied {
                skill_name,
                host,
                port,
            } => {
                let target = format!("{host}:{port}");
                // The call of that skill still running made the connection; else its latest.
                let of_skill = |c: &&mut ToolCallView| c.skill == skill_name;
                let call = match run
                    .calls
                    .iter()
                    .rposition(|c| c.skill == skill_name && c.status == CallStatus::Running)
                {
                    Some(i) => run.calls.get_mut(i),
                    None => run.calls.iter_mut().rev().find(of_skill),
                };
                if let Some(call) = call {
                    call.denied.push(target.clone());
                }
                self.status = Some(format!("sandbox refused {skill_name} → {target}"));
            }
            EventKind::SandboxDisabled { message } => {
                self.sandbox_disabled = true;
                for skill in self.experts.iter_mut().flat_map(|e| e.skills.iter_mut()) {
                    skill.confined = Some(false);
                }
                self.status = Some(message);
            }
            EventKind::McpFrame {
                skill_name,
                direction,
                at_us,
                bytes,
                frame,
                method,
                tool_call_id,
            } => {
                let frame = WireFrameView {
                    direction,
                    at_us,
                    bytes,
                    frame,
                    method,
                };
                self.wire.record(&run_id, &skill_name, tool_call_id, frame);
            }
            EventKind::SkillConnected { .. }
            | EventKind::SkillStderr { .. }
            | EventKind::SkillDisconnected { .. }
            | EventKind::FinishToolCall { .. } => {}
        }
        if let Some(c) = checkpoint {
            let first_of_run = !self.timeline.iter().any(|e| e.run_id == run_id);
            let fork_of = c
                .forked_from
                .as_ref()
                .filter(|_| first_of_run)
                .and_then(|id| self.timeline.iter().position(|e| &e.checkpoint_id == id));
            self.timeline.push(TimelineEntry {
                run_id: run_id.clone(),
                expert_key,
                depth,
                step: c.step_number,
                status: c.status,
                usage: c.usage,
                checkpoint_id: c.id.clone(),
                checkpoint: c.clone(),
                fork_of,
            });
            if is_root && c.status.is_final() {
                // The job is over: a delegate still marked running was stopped with it.
                if c.status != CheckpointStatus::StoppedByInteractiveTool {
                    for run in self.runs.values_mut() {
                        if run.status == RunStatus::Running {
                            run.status = RunStatus::Stopped;
                            run.finished_at.get_or_insert(timestamp);
                        }
                    }
                }
                self.resume_from = Some(c);
                if self.job_state == JobState::WaitingForAnswer {
                    self.open_answer_dialog();
                }
            }
            // Follow the live end unless the user is inspecting an earlier checkpoint.
            if self.pinned.is_none() {
                self.panes.timeline.cursor = self.timeline.len() - 1;
            }
        }
    }

    fn depth_of(&self, run_id: &str) -> usize {
        let mut depth = 0;
        let mut current = self.runs.get(run_id).and_then(|r| r.parent.clone());
        while let Some(id) = current {
            depth += 1;
            current = self.runs.get(&id).and_then(|r| r.parent.clone());
            if depth > 64 {
                break;
            }
        }
        depth
    }
}

fn set_result(run: &mut RunView, result: &ToolResult) {
    if let Some(call) = run.calls.iter_mut().find(|c| c.id == result.id) {
        call.result = Some(output_text(&result.result));
        if result.result.is_error {
            call.status = CallStatus::Error;
        } else if call.status == CallStatus::Running {
            call.status = CallStatus::Done;
        }
    }
}

fn output_text(output: &ToolOutput) -> String {
    let mut out = String::new();
    for content in &output.contents {
        if !out.is_empty() {
            out.push('\n');
        }
        match content {
            ToolContent::Text { text } => out.push_str(text),
            ToolContent::Image { mime_type, data } => {
                out.push_str(&format!("[image {mime_type}, {} bytes base64]", data.len()))
            }
        }
    }
    out
}

fn push_conv(run: &mut RunView, message: &Message) {
    let (role, contents) = match message {
        Message::InstructionMessage { contents, .. } => (Role::System, contents),
        Message::UserMessage { contents, .. } => (Role::User, contents),
        Message::ExpertMessage { contents, .. } => (Role::Assistant, contents),
        Message::ToolMessage { contents, .. } => (Role::Tool, contents),
    };
    let mut first = true;
    for part in contents {
        match part {
            Part::TextPart { text, .. } => push_lines(run, role, text, &mut first, false),
            Part::ImageInlinePart { mime_type, .. } => push_lines(
                run,
                role,
                &format!("[image {mime_type}]"),
                &mut first,
                false,
            ),
            Part::ToolCallPart {
                tool_name, args, ..
            } => push_lines(
                run,
                Role::ToolCall,
                &format!("{tool_name}({args})"),
                &mut first,
                false,
            ),
            Part::ToolResultPart {
                tool_name,
                contents,
                is_error,
                ..
            } => {
                let mut text = String::new();
                for part in contents {
                    if let Part::TextPart { text: t, .. } = part {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(t);
                    }
                }
                let mark = if *is_error { " (error)" } else { "" };
                push_lines(
                    run,
                    role,
                    &format!("{tool_name}{mark} → {text}"),
                    &mut first,
                    false,
                )
            }
            Part::ProviderToolPart {
                tool_name, args, ..
            } => push_lines(
                run,
                Role::ToolCall,
                &format!("{tool_name}({args}) · run by the provider"),
                &mut first,
                false,
            ),
            Part::ThinkingPart { thinking, .. } => {
                let lines = thinking.lines().count();
                let summary = format!("▸ {lines} line(s) of thinking (t folds and unfolds)");
                // The summary shows only while folded, the body only while unfolded.
                run.conv_folded.push(run.conv.len() as u32);
                run.conv.push(ConvLine {
                    role: Role::Thinking,
                    first,
                    text: summary,
                });
                first = false;
                push_lines(run, Role::Thinking, thinking, &mut first, true);
            }
        }
    }
}

fn push_lines(
    run: &mut RunView,
    role: Role,
    text: &str,
    first: &mut bool,
    hidden_when_folded: bool,
) {
    let mut any = false;
    for line in text.lines() {
        any = true;
        if !hidden_when_folded {
            run.conv_folded.push(run.conv.len() as u32);
        }
        let first_of_role = *first || run.conv.last().is_none_or(|l| l.role != role);
        run.conv.push(ConvLine {
            role,
            first: first_of_role,
            text: line.to_string(),
        });
        *first = false;
    }
    if !any {
        if !hidden_when_folded {
            run.conv_folded.push(run.conv.len() as u32);
        }
        run.conv.push(ConvLine {
            role,
            first: *first,
            text: String::new(),
        });
        *first = false;
    }
}
