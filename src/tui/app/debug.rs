//! The authoring loop in the workbench: breakpoints (held by the runtime, toggled here),
//! answering a paused run, editing the pending request, forking from a checkpoint, and taking
//! in definitions reloaded from disk.

use std::sync::Arc;

use super::{AppState, Effect, ExpertRow, JobState, PausedAt, expert_infos};
use crate::definition::Config;
use crate::runtime::checkpoint::CheckpointStatus;
use crate::runtime::control::{BreakKind, Breakpoint, Control, PausePoint};
use crate::tui::keymap::Action;

impl PausedAt {
    /// "before the model call of writer (step 3)".
    pub fn describe(&self) -> String {
        let at = match &self.point {
            PausePoint::BeforeLlm => "before the model call".to_string(),
            PausePoint::BeforeTool {
                skill_name,
                tool_name,
                ..
            } => format!("before the tool call {skill_name}/{tool_name}"),
            PausePoint::AfterStep => "after the step".to_string(),
            PausePoint::OnError { message } => format!("on an error ({message})"),
        };
        format!("{at} of {} (step {})", self.expert_key, self.step)
    }
}

fn describe_breakpoint(bp: &Breakpoint) -> String {
    let what = match &bp.kind {
        BreakKind::BeforeLlm => "before each model call".to_string(),
        BreakKind::BeforeTool {
            skill: None,
            tool: None,
        } => "before each tool call".to_string(),
        BreakKind::BeforeTool { skill, tool } => format!(
            "before each call of {}/{}",
            skill.as_deref().unwrap_or("*"),
            tool.as_deref().unwrap_or("*")
        ),
        BreakKind::AfterStep => "after each step".to_string(),
        BreakKind::OnError => "on each error".to_string(),
    };
    match &bp.expert {
        Some(expert) => format!("{what} of {expert}"),
        None => format!("{what} of any Expert"),
    }
}

impl AppState {
    /// The markers the Experts pane shows after an Expert's name.
    pub fn breakpoint_marks(&self, expert: &str) -> Vec<&'static str> {
        let mut marks = Vec::new();
        for bp in self
            .breakpoints
            .iter()
            .filter(|bp| bp.expert.as_deref().is_none_or(|e| e == expert))
        {
            let mark = match bp.kind {
                BreakKind::BeforeLlm => "llm",
                BreakKind::BeforeTool { .. } => "tool",
                BreakKind::AfterStep => "step",
                BreakKind::OnError => "err",
            };
            if !marks.contains(&mark) {
                marks.push(mark);
            }
        }
        marks
    }

    /// Whether a call of this tool by this Expert would pause.
    pub fn breaks_on_call(&self, expert: &str, skill: &str, tool: &str) -> bool {
        let point = PausePoint::BeforeTool {
            skill_name: skill.to_string(),
            tool_name: tool.to_string(),
            tool_call_id: String::new(),
        };
        self.breakpoints.iter().any(|bp| bp.matches(expert, &point))
    }

    /// The keys that drive a paused run.
    pub(super) fn on_debug_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Step | Action::Continue => {
                if self.paused.is_none() {
                    self.status = Some("no run is paused".into());
                    return Vec::new();
                }
                let control = if action == Action::Step {
                    Control::Step
                } else {
                    Control::Continue
                };
                vec![Effect::Control(control)]
            }
            Action::EditRequest => self.edit_request(),
            _ => Vec::new(),
        }
    }

    /// Sets the breakpoint, or clears it when it is set already.
    pub(super) fn toggle_breakpoint(&mut self, breakpoint: Breakpoint) -> Vec<Effect> {
        let described = describe_breakpoint(&breakpoint);
        match self.breakpoints.iter().position(|bp| *bp == breakpoint) {
            Some(i) => {
                self.breakpoints.remove(i);
                self.status = Some(format!("breakpoint cleared: {described}"));
            }
            None => {
                self.breakpoints.push(breakpoint);
                self.status = Some(format!("breakpoint set: {described}"));
            }
        }
        vec![Effect::SetBreakpoints(self.breakpoints.clone())]
    }

    /// `E`: the body about to be sent, to the editor. Only while paused before a model call.
    fn edit_request(&mut self) -> Vec<Effect> {
        let Some(paused) = &self.paused else {
            self.status = Some("nothing to edit: pause before a model call first (b)".into());
            return Vec::new();
        };
        if paused.point != PausePoint::BeforeLlm {
            self.status = Some(format!(
                "only a request about to be sent can be edited; paused {}",
                paused.describe()
            ));
            return Vec::new();
        }
        let body = self
            .runs
            .get(&paused.run_id)
            .and_then(|run| run.steps.get(&paused.step))
            .and_then(|step| step.request.as_ref())
            .map(|request| request.body.clone());
        match body {
            Some(body) => vec![Effect::EditRequest {
                body: crate::editor::pretty_json(&body),
            }],
            None => {
                self.status = Some("the request has not arrived yet".into());
                Vec::new()
            }
        }
    }

    /// `F` in the Timeline: a new run from the checkpoint at `index`, as a branch of it.
    pub(super) fn fork_from_timeline(&mut self, index: usize) -> Vec<Effect> {
        if self.job_state.active() {
            self.status = Some("a run is active: wait, or cancel it with x, then fork".into());
            return Vec::new();
        }
        if self.provider_error.is_some() {
            self.status = Some("no model provider: press r to use the replay provider".into());
            return Vec::new();
        }
        let Some(entry) = self.timeline.get(index) else {
            self.status = Some("no checkpoint to fork from yet".into());
            return Vec::new();
        };
        if entry.status == CheckpointStatus::Completed {
            self.status = Some(
                "this checkpoint ends its run: fork an earlier one, or ask a follow-up with f"
                    .into(),
            );
            return Vec::new();
        }
        let effect = Effect::Fork {
            expert_key: entry.expert_key.clone(),
            checkpoint: entry.checkpoint.clone(),
            variant: None,
            ab: None,
        };
        self.status = Some(format!(
            "forking {} from step {}: the original stays as it is",
            entry.expert_key, entry.step
        ));
        self.job_state = JobState::Running;
        self.select_next_root = true;
        self.pinned = None;
        vec![effect]
    }

    /// Definitions reloaded from disk: the Experts pane shows them; runs in progress keep theirs.
    pub(super) fn apply_reload(&mut self, config: &Arc<Config>, changes: &[String]) {
        let selected = self.selected_expert_key().map(str::to_string);
        self.experts = expert_infos(config);
        self.max_steps = config.max_steps();
        self.selected_expert = selected
            .and_then(|key| self.experts.iter().position(|e| e.key == key))
            .unwrap_or(0);
        self.panes.experts.cursor = self
            .expert_rows()
            .iter()
            .position(|r| *r == ExpertRow::Expert(self.selected_expert))
            .unwrap_or(0);
        self.reload_errors.clear();
        self.status = Some(if changes.is_empty() {
            "perstack.toml reloaded: no change to the Experts".to_string()
        } else {
            format!("perstack.toml reloaded: {}", changes.join(", "))
        });
    }
}
