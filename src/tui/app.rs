//! `AppState`: everything the workbench shows, as plain data, changed only by `update(msg)`.
//! No drawing and no IO here: `update` returns effects as data and the loop in `mod.rs`
//! performs them (start or cancel a run, write a file) and feeds the results back as messages.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use indexmap::IndexMap;
use serde_json::Value;

use super::keymap::{self, Action, PaneId};
use super::layout;
use crate::definition::Config;
use crate::runtime::checkpoint::{Checkpoint, Usage};
use crate::runtime::control::{Breakpoint, Control, PausePoint};
use crate::runtime::event::RunEvent;
use crate::runtime::message::{ToolCall, ToolResult};
use crate::tool::ToolOutput;

mod debug;
mod diff;
mod events;
mod views;

pub use diff::{DiffLine, DiffSource, DiffView};

pub use views::*;

/// A result longer than this many lines is folded until `e` unfolds it.
pub const FOLD_LINES: usize = 12;

#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Paste(String),
    Click {
        col: u16,
        row: u16,
    },
    Wheel {
        col: u16,
        row: u16,
        down: bool,
    },
    Resize {
        width: u16,
        height: u16,
    },
    Run(Box<RunEvent>),
    /// A job's top-level run returned (also when it failed before emitting anything).
    JobEnded {
        error: Option<String>,
    },
    /// A line for the status bar (a file written, a provider switched).
    Status(String),
    ProviderReady {
        model: String,
        /// Said in the status line (a rebuild after a reload says nothing).
        note: Option<String>,
    },
    ProviderFailed(String),
    /// perstack.toml changed on disk and is valid: these definitions are in force for new runs.
    Reloaded {
        config: Arc<Config>,
        changes: Vec<String>,
        lock: Option<crate::skills::lock::Lock>,
    },
    /// perstack.toml changed on disk and is invalid: each diagnostic, rendered.
    ReloadFailed(Vec<String>),
    Tick {
        now_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    StartRun {
        expert_key: String,
        query: String,
    },
    /// Resume the job's coordinator from `checkpoint`, with a follow-up query or answers.
    Resume {
        expert_key: String,
        checkpoint: Arc<Checkpoint>,
        query: Option<String>,
        answers: Vec<ToolResult>,
    },
    Cancel,
    WriteBody {
        name: String,
        body: String,
    },
    UseReplay,
    /// The workbench's breakpoints changed: the runtime holds them.
    SetBreakpoints(Vec<Breakpoint>),
    /// Answer the paused run.
    Control(Control),
    /// Hand the terminal to $EDITOR with the body about to be sent.
    EditRequest {
        body: String,
    },
    /// A new run from a checkpoint, under the definitions now in force.
    Fork {
        expert_key: String,
        checkpoint: Arc<Checkpoint>,
    },
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Idle,
    Running,
    WaitingForAnswer,
    Completed,
    Failed,
    Cancelled,
    Stopped,
}

impl JobState {
    pub fn label(self) -> &'static str {
        match self {
            JobState::Idle => "idle",
            JobState::Running => "running",
            JobState::WaitingForAnswer => "waiting for you",
            JobState::Completed => "completed",
            JobState::Failed => "error",
            JobState::Cancelled => "cancelled",
            JobState::Stopped => "stopped",
        }
    }
    pub fn active(self) -> bool {
        matches!(self, JobState::Running)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Done,
    Error,
    Stopped,
    WaitingForAnswer,
}

/// Input boxes and overlays; keys go to the topmost one.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    Query { input: String },
    FollowUp { input: String },
    Answer { question: String, input: String },
    Search { input: String },
    ConfirmQuit,
    Help,
    Diff,
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub experts: Vec<ExpertInfo>,
    pub model: String,
    pub max_steps: u64,
    pub provider_error: Option<String>,
    pub width: u16,
    pub height: u16,
    pub now_ms: u64,
    pub focus: PaneId,
    pub mode: Mode,
    pub status: Option<String>,
    pub job_id: Option<String>,
    pub job_state: JobState,
    pub job_started_at: Option<u64>,
    pub runs: IndexMap<String, RunView>,
    pub root_run: Option<String>,
    /// The coordinator's last checkpoint: where a follow-up or an answer resumes.
    pub resume_from: Option<Arc<Checkpoint>>,
    pub pending_question: Option<ToolCall>,
    pub timeline: Vec<TimelineEntry>,
    // Selections and scroll positions, one group per pane.
    pub selected_expert: usize,
    pub expert_cursor: usize,
    pub selected_run: Option<String>,
    /// A timeline entry being inspected; None follows the live state.
    pub pinned: Option<usize>,
    pub prompt_step: Option<u64>,
    pub prompt_view: PromptView,
    pub prompt_scroll: usize,
    pub show_thinking: bool,
    pub search: Option<String>,
    pub call_cursor: usize,
    pub call_expanded: bool,
    pub call_unfolded: bool,
    pub timeline_cursor: usize,
    /// Breakpoints as the workbench last set them in the runtime.
    pub breakpoints: Vec<Breakpoint>,
    /// Where a run is paused, waiting for step / continue / abort.
    pub paused: Option<PausedAt>,
    /// Diagnostics of a perstack.toml on disk that failed to load; the last good one is in force.
    pub reload_errors: Vec<String>,
    /// A timeline entry marked as the left side of a diff.
    pub diff_mark: Option<usize>,
    pub diff: Option<DiffView>,
    pub diff_scroll: usize,
    /// After a fork: the next top-level run to appear is the fork, and gets selected.
    pub select_next_root: bool,
}

/// A paused run and why it paused.
#[derive(Debug, Clone, PartialEq)]
pub struct PausedAt {
    pub run_id: String,
    pub expert_key: String,
    pub step: u64,
    pub point: PausePoint,
}

/// One row of the Experts pane.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpertRow {
    Header(&'static str),
    Expert(usize),
    Detail(String),
    Run { run_id: String, depth: usize },
}

impl ExpertRow {
    pub fn selectable(&self) -> bool {
        matches!(self, ExpertRow::Expert(_) | ExpertRow::Run { .. })
    }
}

impl AppState {
    pub fn new(config: &Config, model: String) -> Self {
        AppState {
            experts: expert_infos(config),
            model,
            max_steps: config.max_steps(),
            provider_error: None,
            width: 80,
            height: 24,
            now_ms: 0,
            focus: PaneId::Experts,
            mode: Mode::Normal,
            status: None,
            job_id: None,
            job_state: JobState::Idle,
            job_started_at: None,
            runs: IndexMap::new(),
            root_run: None,
            resume_from: None,
            pending_question: None,
            timeline: Vec::new(),
            selected_expert: 0,
            expert_cursor: 1,
            selected_run: None,
            pinned: None,
            prompt_step: None,
            prompt_view: PromptView::Conversation,
            prompt_scroll: 0,
            show_thinking: false,
            search: None,
            call_cursor: 0,
            call_expanded: false,
            call_unfolded: false,
            timeline_cursor: 0,
            breakpoints: Vec::new(),
            paused: None,
            reload_errors: Vec::new(),
            diff_mark: None,
            diff: None,
            diff_scroll: 0,
            select_next_root: false,
        }
    }

    pub fn selected_expert_key(&self) -> Option<&str> {
        self.experts
            .get(self.selected_expert)
            .map(|e| e.key.as_str())
    }

    /// The run the Prompt and Tool calls panes show.
    pub fn current_run(&self) -> Option<&RunView> {
        self.selected_run
            .as_ref()
            .or(self.root_run.as_ref())
            .and_then(|id| self.runs.get(id))
    }

    /// The step the Prompt pane shows: the pinned checkpoint's, the chosen one, or the latest.
    pub fn current_step(&self) -> Option<(u64, &StepView)> {
        let run = self.current_run()?;
        let wanted = self.pinned_step().or(self.prompt_step);
        match wanted {
            Some(n) => run.steps.range(..=n).next_back().map(|(k, v)| (*k, v)),
            None => run.steps.iter().next_back().map(|(k, v)| (*k, v)),
        }
    }

    fn pinned_step(&self) -> Option<u64> {
        let entry = self.timeline.get(self.pinned?)?;
        (Some(&entry.run_id) == self.current_run().map(|r| &r.run_id)).then_some(entry.step)
    }

    /// The calls the Tool calls pane lists (only those up to a pinned checkpoint).
    pub fn visible_calls(&self) -> &[ToolCallView] {
        let Some(run) = self.current_run() else {
            return &[];
        };
        match self.pinned_step() {
            Some(step) => {
                let n = run.calls.iter().take_while(|c| c.step <= step).count();
                &run.calls[..n]
            }
            None => &run.calls,
        }
    }

    /// The job's tokens. A finished delegate's usage is already in its parent's (usage is
    /// summed up the tree), so only top-level runs and delegates still at work are added.
    pub fn total_usage(&self) -> Usage {
        let mut total = Usage::default();
        for run in self.runs.values() {
            let still_working =
                matches!(run.status, RunStatus::Running | RunStatus::WaitingForAnswer);
            if run.parent.is_none() || still_working {
                total.add(&run.usage);
            }
        }
        total
    }

    /// Fills in the tools of MCP skills from perstack.lock (written by `perstack install`), so
    /// they show without starting any server.
    pub fn use_lock(&mut self, lock: &crate::skills::lock::Lock) {
        for expert in &mut self.experts {
            let Some(locked) = lock.experts.get(&expert.key) else {
                continue;
            };
            for skill in expert.skills.iter_mut().filter(|s| s.tools.is_none()) {
                if let Some(locked_skill) = locked.skills.get(&skill.name) {
                    skill.tools = Some(locked_skill.tools.iter().map(|t| t.name.clone()).collect());
                }
            }
        }
    }

    /// The status shown for a run: a running parent with a running child is waiting on it.
    pub fn run_label(&self, run: &RunView) -> &'static str {
        match run.status {
            RunStatus::Running
                if run.children.iter().any(|c| {
                    self.runs
                        .get(c)
                        .is_some_and(|c| c.status == RunStatus::Running)
                }) =>
            {
                "waiting"
            }
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Error => "error",
            RunStatus::Stopped => "stopped",
            RunStatus::WaitingForAnswer => "waiting",
        }
    }

    /// The rows of the Experts pane: the live run tree first (when there is a job), then the
    /// definitions, the selected Expert opened to its skills, tools and delegates.
    pub fn expert_rows(&self) -> Vec<ExpertRow> {
        let mut rows = Vec::new();
        if let Some(root) = &self.root_run {
            rows.push(ExpertRow::Header("Runs"));
            self.push_run_rows(root, 0, &mut rows);
            // Forks are top-level runs of the same job, after the original.
            for fork in self
                .runs
                .values()
                .filter(|r| r.parent.is_none() && r.run_id != *root)
            {
                self.push_run_rows(&fork.run_id, 0, &mut rows);
            }
        }
        rows.push(ExpertRow::Header("Definitions"));
        for (i, expert) in self.experts.iter().enumerate() {
            rows.push(ExpertRow::Expert(i));
            if i != self.selected_expert {
                continue;
            }
            for skill in &expert.skills {
                rows.push(ExpertRow::Detail(format!(
                    "  ◆ {} ({})",
                    skill.name, skill.kind
                )));
                match &skill.tools {
                    Some(tools) => {
                        for tool in tools {
                            rows.push(ExpertRow::Detail(format!("      {tool}")));
                        }
                    }
                    None => rows.push(ExpertRow::Detail(
                        "      tools listed after `perstack install`".into(),
                    )),
                }
            }
            for delegate in &expert.delegates {
                rows.push(ExpertRow::Detail(format!("  → {delegate}")));
            }
        }
        rows
    }

    /// Puts the Experts pane's cursor on `target`, wherever rows above it moved it.
    fn cursor_to(&mut self, target: &ExpertRow) {
        if let Some(row) = self.expert_rows().iter().position(|r| r == target) {
            self.expert_cursor = row;
        }
    }

    fn push_run_rows(&self, run_id: &str, depth: usize, rows: &mut Vec<ExpertRow>) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        rows.push(ExpertRow::Run {
            run_id: run_id.to_string(),
            depth,
        });
        // Depth is bounded by the runtime's delegation limit.
        for child in &run.children {
            self.push_run_rows(child, depth + 1, rows);
        }
    }

    /// Lines of the Prompt pane's current view, for scrolling and search.
    pub fn prompt_len(&self) -> usize {
        let Some((_, step)) = self.current_step() else {
            return 0;
        };
        match self.prompt_view {
            PromptView::Raw => step.pretty.as_ref().map(|p| p.len()).unwrap_or(0) + 3,
            PromptView::Conversation => {
                let conv = if self.show_thinking {
                    step.conv_len
                } else {
                    step.conv_folded_len
                };
                conv + streaming_lines(step, self.show_thinking).len()
            }
        }
    }

    /// One line of the Prompt pane's current view (for search; the pane draws its own).
    pub fn prompt_line(&self, i: usize) -> Option<String> {
        let run = self.current_run()?;
        let (_, step) = self.current_step()?;
        match self.prompt_view {
            PromptView::Raw => {
                let pretty = step.pretty.as_ref()?;
                // The three header lines (method + url, headers) come first.
                i.checked_sub(3).map(|i| pretty.line(i).to_string())
            }
            PromptView::Conversation => {
                let (len, line) = if self.show_thinking {
                    (step.conv_len, run.conv.get(i))
                } else {
                    (
                        step.conv_folded_len,
                        run.conv_folded
                            .get(i)
                            .and_then(|&j| run.conv.get(j as usize)),
                    )
                };
                if i < len {
                    line.map(|l| l.text.clone())
                } else {
                    streaming_lines(step, self.show_thinking)
                        .get(i - len)
                        .map(|(_, t)| t.to_string())
                }
            }
        }
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        let effects = self.handle(msg);
        self.ensure_pretty();
        effects
    }

    /// The step on screen has its body pretty-printed, whatever changed the selection.
    fn ensure_pretty(&mut self) {
        let Some((n, step)) = self.current_step() else {
            return;
        };
        if step.pretty.is_some() {
            return;
        }
        let Some(pretty) = step.request.as_ref().map(|r| PrettyBody::new(&r.body)) else {
            return;
        };
        let run_id = self.current_run().map(|r| r.run_id.clone());
        if let Some(step) = run_id
            .and_then(|id| self.runs.get_mut(&id))
            .and_then(|run| run.steps.get_mut(&n))
        {
            step.pretty = Some(std::sync::Arc::new(pretty));
        }
    }

    fn handle(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) => self.on_key(key),
            Msg::Paste(text) => {
                if let Some(input) = self.input_mut() {
                    input.push_str(&text.replace(['\r', '\n'], " "));
                }
                Vec::new()
            }
            Msg::Click { col, row } => {
                self.on_click(col, row);
                Vec::new()
            }
            Msg::Wheel { col, row, down } => {
                if let Some(pane) = layout::pane_at(self, col, row) {
                    self.focus = pane;
                    let action = if down { Action::Down } else { Action::Up };
                    for _ in 0..3 {
                        self.on_action(action);
                    }
                }
                Vec::new()
            }
            Msg::Resize { width, height } => {
                self.width = width;
                self.height = height;
                Vec::new()
            }
            Msg::Run(event) => {
                self.on_event(*event);
                Vec::new()
            }
            Msg::JobEnded { error } => {
                if let Some(error) = error {
                    if self.job_state == JobState::Running {
                        self.job_state = JobState::Failed;
                    }
                    self.status = Some(format!("error: {error}"));
                } else if self.job_state == JobState::Running {
                    // The run returned without a final event of its own.
                    self.job_state = JobState::Stopped;
                }
                Vec::new()
            }
            Msg::Status(text) => {
                self.status = Some(text);
                Vec::new()
            }
            Msg::ProviderReady { model, note } => {
                self.provider_error = None;
                self.model = model;
                if note.is_some() {
                    self.status = note;
                }
                Vec::new()
            }
            Msg::ProviderFailed(error) => {
                self.provider_error = Some(error);
                Vec::new()
            }
            Msg::Reloaded {
                config,
                changes,
                lock,
            } => {
                self.apply_reload(&config, &changes);
                if let Some(lock) = lock {
                    self.use_lock(&lock);
                }
                Vec::new()
            }
            Msg::ReloadFailed(diagnostics) => {
                self.reload_errors = diagnostics;
                Vec::new()
            }
            Msg::Tick { now_ms } => {
                self.now_ms = now_ms;
                Vec::new()
            }
        }
    }

    fn input_mut(&mut self) -> Option<&mut String> {
        match &mut self.mode {
            Mode::Query { input }
            | Mode::FollowUp { input }
            | Mode::Answer { input, .. }
            | Mode::Search { input } => Some(input),
            _ => None,
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        match self.mode.clone() {
            Mode::Help => {
                self.mode = Mode::Normal;
                Vec::new()
            }
            Mode::Diff => {
                self.on_diff_key(key);
                Vec::new()
            }
            Mode::ConfirmQuit => match key.code {
                KeyCode::Char('y') | KeyCode::Char('q') | KeyCode::Enter => {
                    self.mode = Mode::Normal;
                    vec![Effect::Quit]
                }
                _ => {
                    self.mode = Mode::Normal;
                    Vec::new()
                }
            },
            Mode::Normal => match keymap::lookup(self.focus, key) {
                Some(action) => {
                    // A message lasts until the next key; then the key hints come back.
                    self.status = None;
                    self.on_action(action)
                }
                None => Vec::new(),
            },
            _ => self.on_input_key(key),
        }
    }

    /// Keys of the text boxes: typing, Enter submits, Esc closes.
    fn on_input_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                Vec::new()
            }
            KeyCode::Enter => self.submit(),
            KeyCode::Backspace => {
                if let Some(input) = self.input_mut() {
                    input.pop();
                }
                Vec::new()
            }
            KeyCode::Char('u') if ctrl => {
                if let Some(input) = self.input_mut() {
                    input.clear();
                }
                Vec::new()
            }
            KeyCode::Char('c') if ctrl => {
                self.mode = Mode::Normal;
                Vec::new()
            }
            KeyCode::Char(c) => {
                if let Some(input) = self.input_mut() {
                    input.push(c);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn submit(&mut self) -> Vec<Effect> {
        let mode = std::mem::replace(&mut self.mode, Mode::Normal);
        match mode {
            Mode::Query { input } => {
                let Some(expert_key) = self.selected_expert_key().map(str::to_string) else {
                    return Vec::new();
                };
                if input.trim().is_empty() {
                    self.mode = Mode::Query { input };
                    return Vec::new();
                }
                self.begin_job(&expert_key, input)
            }
            Mode::FollowUp { input } => {
                let (Some(checkpoint), Some(root)) = (self.resume_from.clone(), self.root_run())
                else {
                    return Vec::new();
                };
                if input.trim().is_empty() {
                    self.mode = Mode::FollowUp { input };
                    return Vec::new();
                }
                let expert_key = root.expert_key.clone();
                self.job_state = JobState::Running;
                vec![Effect::Resume {
                    expert_key,
                    checkpoint,
                    query: Some(input),
                    answers: Vec::new(),
                }]
            }
            Mode::Answer { input, .. } => {
                let (Some(checkpoint), Some(root)) = (self.resume_from.clone(), self.root_run())
                else {
                    return Vec::new();
                };
                let expert_key = root.expert_key.clone();
                let answers = checkpoint
                    .pending_tool_calls
                    .iter()
                    .flatten()
                    .map(|call| ToolResult {
                        id: call.id.clone(),
                        skill_name: call.skill_name.clone(),
                        tool_name: call.tool_name.clone(),
                        result: ToolOutput::text(input.clone()),
                    })
                    .collect();
                self.pending_question = None;
                self.job_state = JobState::Running;
                vec![Effect::Resume {
                    expert_key,
                    checkpoint,
                    query: None,
                    answers,
                }]
            }
            Mode::Search { input } => {
                self.search = (!input.is_empty()).then_some(input);
                self.find_next(self.prompt_scroll);
                Vec::new()
            }
            other => {
                self.mode = other;
                Vec::new()
            }
        }
    }

    fn root_run(&self) -> Option<&RunView> {
        self.root_run.as_ref().and_then(|id| self.runs.get(id))
    }

    /// A new job: forget the previous one's runs (they stay on disk).
    fn begin_job(&mut self, expert_key: &str, query: String) -> Vec<Effect> {
        if self.provider_error.is_some() {
            self.status = Some("no model provider: press r to use the replay provider".into());
            self.mode = Mode::Query { input: query };
            return Vec::new();
        }
        self.runs.clear();
        self.timeline.clear();
        self.root_run = None;
        self.cursor_to(&ExpertRow::Expert(self.selected_expert));
        self.selected_run = None;
        self.resume_from = None;
        self.pinned = None;
        self.prompt_step = None;
        self.prompt_scroll = 0;
        self.call_cursor = 0;
        self.timeline_cursor = 0;
        self.job_id = None;
        self.job_state = JobState::Running;
        self.job_started_at = Some(self.now_ms);
        self.status = None;
        vec![Effect::StartRun {
            expert_key: expert_key.to_string(),
            query,
        }]
    }

    /// Starts a job as if typed into the query box (for `perstack start <expert> <query>`).
    pub fn start_query(&mut self, expert_key: &str, query: String) -> Vec<Effect> {
        if let Some(i) = self.experts.iter().position(|e| e.key == expert_key) {
            self.selected_expert = i;
            self.cursor_to(&ExpertRow::Expert(i));
        }
        self.begin_job(expert_key, query)
    }

    /// Selects an Expert and opens the query box (for `perstack start <expert>`).
    pub fn start_query_box(&mut self, expert_key: &str) -> Vec<Effect> {
        if let Some(i) = self.experts.iter().position(|e| e.key == expert_key) {
            self.selected_expert = i;
            self.cursor_to(&ExpertRow::Expert(i));
        }
        self.mode = Mode::Query {
            input: String::new(),
        };
        Vec::new()
    }

    fn on_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::BreakBeforeLlm
            | Action::BreakBeforeTool
            | Action::BreakAfterStep
            | Action::BreakOnError
            | Action::Step
            | Action::Continue
            | Action::EditRequest
            | Action::Fork
            | Action::MarkDiff
            | Action::Diff => return self.on_debug_action(action),
            Action::FocusNext => self.focus = PaneId::ALL[(self.focus.index() + 1) % 4],
            Action::FocusPrev => self.focus = PaneId::ALL[(self.focus.index() + 3) % 4],
            Action::Focus(pane) => self.focus = pane,
            Action::Help => self.mode = Mode::Help,
            Action::Quit => {
                if self.job_state.active() {
                    self.mode = Mode::ConfirmQuit;
                } else {
                    return vec![Effect::Quit];
                }
            }
            Action::NewQuery => {
                if self.job_state.active() {
                    self.status = Some("a run is active: wait, or cancel it with x".into());
                } else {
                    self.mode = Mode::Query {
                        input: String::new(),
                    };
                }
            }
            Action::FollowUp => {
                if self.job_state == JobState::Completed && self.resume_from.is_some() {
                    self.mode = Mode::FollowUp {
                        input: String::new(),
                    };
                } else if self.job_state == JobState::WaitingForAnswer {
                    self.open_answer_dialog();
                } else {
                    self.status = Some("a follow-up needs a completed job".into());
                }
            }
            Action::Cancel => {
                if self.job_state.active() {
                    self.status = Some("cancelling; the last checkpoint is kept".into());
                    return vec![Effect::Cancel];
                }
            }
            Action::UseReplay => {
                if !self.job_state.active() {
                    return vec![Effect::UseReplay];
                }
            }
            Action::Back => {
                self.pinned = None;
                self.prompt_step = None;
                self.call_expanded = false;
            }
            Action::Search => {
                self.mode = Mode::Search {
                    input: String::new(),
                }
            }
            Action::NextMatch => self.find_next(self.prompt_scroll + 1),
            Action::ToggleView => {
                self.prompt_view = match self.prompt_view {
                    PromptView::Raw => PromptView::Conversation,
                    PromptView::Conversation => PromptView::Raw,
                };
                self.prompt_scroll = 0;
            }
            Action::ToggleThinking => {
                self.show_thinking = !self.show_thinking;
                self.prompt_scroll = 0;
            }
            Action::WriteBody => {
                let Some((step, view)) = self.current_step() else {
                    self.status = Some("no request to write yet".into());
                    return Vec::new();
                };
                let (Some(request), Some(run)) = (&view.request, self.current_run()) else {
                    self.status = Some("no request to write yet".into());
                    return Vec::new();
                };
                return vec![Effect::WriteBody {
                    name: format!(
                        "request-{}-{}-step{step}.json",
                        run.expert_key,
                        short(&run.run_id)
                    ),
                    body: request.body.clone(),
                }];
            }
            Action::ExpandResult => self.call_unfolded = !self.call_unfolded,
            Action::Enter => self.on_enter(),
            Action::Up | Action::Down | Action::PageUp | Action::PageDown => {
                let page = self.height.saturating_sub(6).max(1) as isize;
                let delta = match action {
                    Action::Up => -1,
                    Action::Down => 1,
                    Action::PageUp => -page,
                    _ => page,
                };
                self.move_by(delta);
            }
            Action::Top => self.move_by(isize::MIN / 2),
            Action::Bottom => self.move_by(isize::MAX / 2),
            Action::Left | Action::Right => match self.focus {
                PaneId::Prompt => self.step_by(if action == Action::Left { -1 } else { 1 }),
                PaneId::ToolCalls => self.call_expanded = action == Action::Right,
                _ => {}
            },
        }
        Vec::new()
    }

    fn step_by(&mut self, delta: i64) {
        let Some(run) = self.current_run() else {
            return;
        };
        let steps: Vec<u64> = run.steps.keys().copied().collect();
        if steps.is_empty() {
            return;
        }
        let current = self.current_step().map(|(n, _)| n);
        let pos = current
            .and_then(|c| steps.iter().position(|&s| s == c))
            .unwrap_or(steps.len().saturating_sub(1));
        let next = (pos as i64 + delta).clamp(0, steps.len() as i64 - 1);
        self.pinned = None;
        self.prompt_step = steps.get(next as usize).copied();
        self.prompt_scroll = 0;
    }

    fn find_next(&mut self, from: usize) {
        let Some(needle) = self.search.clone().map(|s| s.to_lowercase()) else {
            return;
        };
        let len = self.prompt_len();
        let found = (from..len).chain(0..from.min(len)).find(|&i| {
            self.prompt_line(i)
                .is_some_and(|l| l.to_lowercase().contains(&needle))
        });
        match found {
            Some(i) => {
                self.prompt_scroll = i;
                self.status = Some(format!("\"{needle}\" at line {}", i + 1));
            }
            None => self.status = Some(format!("\"{needle}\" not found")),
        }
    }

    fn move_by(&mut self, delta: isize) {
        let clamp = |value: usize, len: usize| -> usize {
            (value as isize)
                .saturating_add(delta)
                .clamp(0, len.saturating_sub(1) as isize) as usize
        };
        match self.focus {
            PaneId::Experts => {
                let rows = self.expert_rows();
                let mut cursor = clamp(self.expert_cursor, rows.len());
                // Skip to the nearest selectable row in the direction of travel.
                while !rows.get(cursor).is_some_and(ExpertRow::selectable) {
                    if delta < 0 && cursor > 0 {
                        cursor -= 1;
                    } else if delta >= 0 && cursor + 1 < rows.len() {
                        cursor += 1;
                    } else {
                        cursor = self.expert_cursor;
                        break;
                    }
                }
                self.expert_cursor = cursor;
            }
            PaneId::Prompt => {
                self.prompt_scroll = clamp(self.prompt_scroll, self.prompt_len());
            }
            PaneId::ToolCalls => {
                self.call_cursor = clamp(self.call_cursor, self.visible_calls().len());
                self.call_unfolded = false;
            }
            PaneId::Timeline => {
                self.timeline_cursor = clamp(self.timeline_cursor, self.timeline.len());
            }
        }
    }

    fn on_enter(&mut self) {
        match self.focus {
            PaneId::Experts => match self.expert_rows().get(self.expert_cursor) {
                Some(ExpertRow::Expert(i)) => {
                    let i = *i;
                    self.selected_expert = i;
                    self.cursor_to(&ExpertRow::Expert(i));
                }
                Some(ExpertRow::Run { run_id, .. }) => self.select_run(run_id.clone()),
                _ => {}
            },
            PaneId::Prompt => {}
            PaneId::ToolCalls => {
                let call = self.visible_calls().get(self.call_cursor).cloned();
                match call.and_then(|c| c.delegate_run) {
                    Some(child) => self.select_run(child),
                    None => self.call_expanded = !self.call_expanded,
                }
            }
            PaneId::Timeline => {
                if let Some(entry) = self.timeline.get(self.timeline_cursor) {
                    self.selected_run = Some(entry.run_id.clone());
                    self.pinned = Some(self.timeline_cursor);
                    self.prompt_step = None;
                    self.prompt_scroll = 0;
                    self.call_cursor = 0;
                }
            }
        }
    }

    fn select_run(&mut self, run_id: String) {
        if let Some(row) = self
            .expert_rows()
            .iter()
            .position(|r| matches!(r, ExpertRow::Run { run_id: id, .. } if *id == run_id))
        {
            self.expert_cursor = row;
        }
        self.selected_run = Some(run_id);
        self.pinned = None;
        self.prompt_step = None;
        self.prompt_scroll = 0;
        self.call_cursor = 0;
        self.call_expanded = false;
    }

    fn open_answer_dialog(&mut self) {
        let question = self
            .pending_question
            .as_ref()
            .map(|call| {
                call.args
                    .get("question")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}: {}", call.tool_name, call.args))
            })
            .unwrap_or_else(|| "The run waits for an answer".into());
        self.mode = Mode::Answer {
            question,
            input: String::new(),
        };
    }

    fn on_click(&mut self, col: u16, row: u16) {
        if let Some(pane) = layout::tab_at(self, col, row) {
            self.focus = pane;
            return;
        }
        let Some(pane) = layout::pane_at(self, col, row) else {
            return;
        };
        self.focus = pane;
        let Some(area) = layout::pane_area(self, pane) else {
            return;
        };
        // Rows inside the border; the lists scroll so the cursor stays in view.
        let Some(line) = row.checked_sub(area.y + 1) else {
            return;
        };
        let height = area.height.saturating_sub(2) as usize;
        let line = line as usize;
        match pane {
            PaneId::Experts => {
                let rows = self.expert_rows();
                let index = scroll_offset(self.expert_cursor, height, rows.len()) + line;
                if rows.get(index).is_some_and(ExpertRow::selectable) {
                    self.expert_cursor = index;
                    self.on_enter();
                }
            }
            PaneId::Timeline => {
                let index = scroll_offset(self.timeline_cursor, height, self.timeline.len()) + line;
                if index < self.timeline.len() {
                    self.timeline_cursor = index;
                    self.on_enter();
                }
            }
            PaneId::ToolCalls => {
                // Only the list rows above an expanded call map one to one.
                let calls = self.visible_calls().len();
                let index = scroll_offset(self.call_cursor, height, calls) + line;
                if index < calls && (!self.call_expanded || index <= self.call_cursor) {
                    self.call_expanded = index == self.call_cursor && !self.call_expanded;
                    self.call_cursor = index;
                }
            }
            PaneId::Prompt => {}
        }
    }
}
