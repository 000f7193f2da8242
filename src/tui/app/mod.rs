//! `AppState`: everything the workbench shows, as plain data, changed only by `update(msg)`: the
//! job's data (definitions, runs, timeline, breakpoints), the panes of the registry, each owning
//! its cursor, scroll and folds (`panes::Panes`), and the modes. A key goes to the focused pane
//! first; what a pane asks beyond its own state comes back as a `Request` and is applied here.
//! No drawing and no IO here: `update` returns effects as data and the loop in `mod.rs`
//! performs them (start or cancel a run, write a file) and feeds the results back as messages.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent};
use indexmap::IndexMap;
use serde_json::Value;

use super::input::{KeyOutcome, QueryHistory, TextInput};
use super::keymap::{self, Action, PaneId};
use super::layout;
use super::panes::{EventState, InputCtx, Panes, Request};
use crate::definition::Config;
use crate::runtime::checkpoint::{Checkpoint, Usage};
use crate::runtime::control::{Breakpoint, PausePoint};
use crate::runtime::message::ToolCall;

mod compare;
mod debug;
mod diff;
mod events;
mod job;
mod msg;
mod published;
mod views;
mod wire;

pub use compare::{AbChoice, AbCompare, AbSide};
pub use diff::{DiffLine, DiffSource, DiffView};
pub use job::JobData;
pub use msg::{EditorTarget, Effect, Mode, Msg};

pub use views::*;
pub use wire::{WireFrameView, WireLog};

/// A result longer than this many lines is folded until `e` unfolds it.
pub const FOLD_LINES: usize = 12;

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

#[derive(Debug, Clone)]
pub struct AppState {
    pub experts: Vec<ExpertInfo>,
    pub model: String,
    pub max_steps: u64,
    pub provider_error: Option<String>,
    /// Registry Experts of perstack.lock, with their published text where it is cached.
    pub registry: Vec<crate::registry::RegistryEntry>,
    /// A run said its skills are not confined (`runtime = "local"`, `--sandbox off`).
    pub sandbox_disabled: bool,
    pub width: u16,
    pub height: u16,
    pub now_ms: u64,
    pub focus: PaneId,
    /// `z`: the focused pane has the whole screen.
    pub zoomed: bool,
    pub mode: Mode,
    pub status: Option<String>,
    pub job_id: Option<String>,
    pub job_state: JobState,
    pub job_started_at: Option<u64>,
    pub runs: IndexMap<String, RunView>,
    /// The MCP frames of the job's runs (with `--trace-mcp`, the workbench's default).
    pub wire: WireLog,
    pub root_run: Option<String>,
    /// The coordinator's last checkpoint: where a follow-up or an answer resumes.
    pub resume_from: Option<Arc<Checkpoint>>,
    pub pending_question: Option<ToolCall>,
    pub timeline: Vec<TimelineEntry>,
    // The selection every pane follows.
    pub selected_expert: usize,
    pub selected_run: Option<String>,
    /// A timeline entry being inspected; None follows the live state.
    pub pinned: Option<usize>,
    /// Each pane's own state: cursors, scroll positions, folds, views.
    pub panes: Panes,
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
    /// Earlier queries of this project, recalled with ↑ in the query and follow-up boxes.
    pub history: QueryHistory,
    /// The last A/B comparison (`A` in the Timeline).
    pub compare: Option<AbCompare>,
    /// `J`: the jobs of the store, to show one.
    pub picker: crate::tui::panes::jobs::JobPicker,
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
    Run {
        run_id: String,
        depth: usize,
    },
    /// A registry Expert of perstack.lock (an index into `registry`).
    Registry(usize),
    /// A skill of the open Expert: indices into `experts` and its `skills`.
    Skill {
        expert: usize,
        skill: usize,
    },
}

impl ExpertRow {
    pub fn selectable(&self) -> bool {
        matches!(
            self,
            ExpertRow::Expert(_)
                | ExpertRow::Run { .. }
                | ExpertRow::Registry(_)
                | ExpertRow::Skill { .. }
        )
    }
}

impl AppState {
    pub fn new(config: &Config, model: String) -> Self {
        AppState {
            experts: expert_infos(config),
            model,
            max_steps: config.max_steps(),
            provider_error: None,
            registry: Vec::new(),
            sandbox_disabled: false,
            width: 80,
            height: 24,
            now_ms: 0,
            focus: PaneId::Experts,
            zoomed: false,
            mode: Mode::Normal,
            status: None,
            job_id: None,
            job_state: JobState::Idle,
            job_started_at: None,
            runs: IndexMap::new(),
            wire: WireLog::default(),
            root_run: None,
            resume_from: None,
            pending_question: None,
            timeline: Vec::new(),
            selected_expert: 0,
            selected_run: None,
            pinned: None,
            panes: Panes::default(),
            breakpoints: Vec::new(),
            paused: None,
            reload_errors: Vec::new(),
            diff_mark: None,
            diff: None,
            diff_scroll: 0,
            compare: None,
            select_next_root: false,
            history: QueryHistory::default(),
            picker: Default::default(),
        }
    }

    pub fn selected_expert_key(&self) -> Option<&str> {
        self.experts
            .get(self.selected_expert)
            .map(|e| e.key.as_str())
    }

    /// The run the Prompt and Tool calls panes show.
    pub fn current_run(&self) -> Option<&RunView> {
        self.job().current_run()
    }

    /// The step the Prompt pane shows: the pinned checkpoint's, the chosen one, or the latest.
    pub fn current_step(&self) -> Option<(u64, &StepView)> {
        self.job().step_at(self.panes.prompt.step)
    }

    /// The calls the Tool calls pane lists (only those up to a pinned checkpoint).
    pub fn visible_calls(&self) -> &[ToolCallView] {
        self.job().visible_calls()
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
        self.job().expert_rows()
    }

    /// Puts the Experts pane's cursor on `target`, wherever rows above it moved it.
    fn cursor_to(&mut self, target: &ExpertRow) {
        let (panes, job) = self.panes_and_job();
        panes.experts.cursor_to(&job, target);
    }

    /// Lines of the Prompt pane's current view, for scrolling and search.
    pub fn prompt_len(&self) -> usize {
        self.panes.prompt.len(&self.job())
    }

    /// One line of the Prompt pane's current view (for search; the pane draws its own).
    pub fn prompt_line(&self, i: usize) -> Option<String> {
        self.panes.prompt.line(&self.job(), i)
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
                    input.paste(&text);
                }
                Vec::new()
            }
            Msg::Click { col, row } => self.on_click(col, row),
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
                if let Some(compare) = &mut self.compare {
                    compare.observe(&event);
                }
                self.on_event(*event);
                self.ab_keep_busy();
                Vec::new()
            }
            Msg::JobEnded { error } => {
                if self.ab_job_ended(&error) {
                    return Vec::new();
                }
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
                registry,
            } => {
                self.apply_reload(&config, &changes);
                if let Some(lock) = lock {
                    self.use_lock(&lock);
                }
                self.registry = registry;
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
            Msg::AbRun { side, run_id } => {
                self.ab_run(side, run_id);
                Vec::new()
            }
            Msg::JobIdsListed { location, ids } => {
                self.on_job_ids_listed(location, ids);
                Vec::new()
            }
            Msg::JobsListed { location, jobs } => {
                self.on_jobs_listed(location, jobs);
                Vec::new()
            }
        }
    }

    fn input_mut(&mut self) -> Option<&mut TextInput> {
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
            Mode::Published { index, scroll } => self.on_published_key(index, scroll, key),
            Mode::Compare => self.on_compare_key(key),
            Mode::Jobs => self.on_jobs_key(key),
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

    /// Keys of the text boxes: the editor takes the editing keys; Enter submits, Esc closes,
    /// and ↑/↓ at the box's edge walk the history of queries (query and follow-up boxes).
    fn on_input_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let recalls = matches!(self.mode, Mode::Query { .. } | Mode::FollowUp { .. });
        let Some(input) = self.input_mut() else {
            return Vec::new();
        };
        let outcome = input.on_key(key);
        match outcome {
            KeyOutcome::Submit => return self.submit(),
            KeyOutcome::Close => self.mode = Mode::Normal,
            KeyOutcome::Older | KeyOutcome::Newer if recalls => {
                if let Mode::Query { input } | Mode::FollowUp { input } = &mut self.mode {
                    if outcome == KeyOutcome::Older {
                        self.history.older(input);
                    } else {
                        self.history.newer(input);
                    }
                }
            }
            KeyOutcome::Older | KeyOutcome::Newer | KeyOutcome::Edited => {}
        }
        Vec::new()
    }

    /// Opens a query or follow-up box; ↑ starts from the newest query again.
    fn open_query_box(&mut self, follow_up: bool) {
        self.history.restart();
        let input = TextInput::default();
        self.mode = if follow_up {
            Mode::FollowUp { input }
        } else {
            Mode::Query { input }
        };
    }

    /// A query that starts or continues a job goes into the history (not a repeat of the
    /// newest entry); the loop adds it to the file.
    fn remember(&mut self, query: &str, effects: &mut Vec<Effect>) {
        if !effects.is_empty() && self.history.push(query) {
            effects.push(Effect::RememberQuery {
                query: query.to_string(),
            });
        }
    }

    fn submit(&mut self) -> Vec<Effect> {
        let mode = std::mem::replace(&mut self.mode, Mode::Normal);
        match mode {
            Mode::Query { input } => {
                let Some(expert_key) = self.selected_expert_key().map(str::to_string) else {
                    return Vec::new();
                };
                if input.is_blank() {
                    self.mode = Mode::Query { input };
                    return Vec::new();
                }
                let query = input.text();
                let mut effects = self.begin_job(&expert_key, query.clone());
                self.remember(&query, &mut effects);
                effects
            }
            Mode::FollowUp { input } => {
                let (Some(checkpoint), Some(root)) = (self.resume_from.clone(), self.root_run())
                else {
                    return Vec::new();
                };
                if input.is_blank() {
                    self.mode = Mode::FollowUp { input };
                    return Vec::new();
                }
                let expert_key = root.expert_key.clone();
                let query = input.text();
                self.job_state = JobState::Running;
                let mut effects = vec![Effect::Resume {
                    expert_key,
                    checkpoint,
                    query: Some(query.clone()),
                    answers: Vec::new(),
                }];
                self.remember(&query, &mut effects);
                effects
            }
            Mode::Answer { input, .. } => {
                let (Some(checkpoint), Some(root)) = (self.resume_from.clone(), self.root_run())
                else {
                    return Vec::new();
                };
                let expert_key = root.expert_key.clone();
                let answers = crate::runtime::answers_for(&checkpoint, &input.text());
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
                let (panes, job) = self.panes_and_job();
                let text = input.text();
                panes.prompt.search = (!text.is_empty()).then_some(text);
                if let Some(status) = panes.prompt.find_next(false, &job) {
                    self.status = Some(status);
                }
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
            self.mode = Mode::Query {
                input: TextInput::from(query.as_str()),
            };
            return Vec::new();
        }
        self.clear_job();
        self.job_state = JobState::Running;
        self.job_started_at = Some(self.now_ms);
        self.status = None;
        vec![Effect::StartRun {
            expert_key: expert_key.to_string(),
            query,
        }]
    }

    /// Forgets the job on screen, for a new one (started here or read from the store).
    pub(crate) fn clear_job(&mut self) {
        self.runs.clear();
        self.wire.clear();
        self.timeline.clear();
        self.root_run = None;
        self.cursor_to(&ExpertRow::Expert(self.selected_expert));
        self.selected_run = None;
        self.resume_from = None;
        self.pinned = None;
        self.panes.prompt.step = None;
        self.panes.prompt.rewind();
        self.panes.tool_calls.cursor = 0;
        self.panes.timeline.cursor = 0;
        self.job_id = None;
        self.job_state = JobState::Idle;
        self.job_started_at = None;
        self.paused = None;
        self.pending_question = None;
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
        self.open_query_box(false);
        Vec::new()
    }

    /// A key's action: the focused pane first, then the keys every pane shares.
    fn on_action(&mut self, action: Action) -> Vec<Effect> {
        // While perstack.toml does not load, its first error is what `o` opens, from any pane.
        if action == Action::OpenDefinition {
            if let Some((path, line)) = first_error_location(&self.reload_errors) {
                return vec![Effect::OpenInEditor(EditorTarget::File { path, line })];
            }
        }
        let focus = self.focus;
        let (state, requests) =
            self.with_pane_input(|panes, cx| panes.on_action(focus, action, cx));
        if state == EventState::Consumed {
            return self.apply_requests(requests);
        }
        self.on_global_action(action)
    }

    /// Lends the panes and the job's data to `handle`, and returns what the pane asked for.
    fn with_pane_input(
        &mut self,
        handle: impl FnOnce(&mut Panes, &mut InputCtx) -> EventState,
    ) -> (EventState, Vec<Request>) {
        let page = self.height.saturating_sub(6).max(1) as usize;
        let (panes, job) = self.panes_and_job();
        let mut cx = InputCtx {
            job,
            page,
            requests: Vec::new(),
        };
        let state = handle(panes, &mut cx);
        (state, cx.requests)
    }

    fn apply_requests(&mut self, requests: Vec<Request>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for request in requests {
            match request {
                Request::SelectExpert(i) => {
                    self.selected_expert = i;
                    self.cursor_to(&ExpertRow::Expert(i));
                }
                Request::SelectRun(run_id) => self.select_run(run_id),
                Request::Pin(index) => self.pin(index),
                Request::Unpin => self.pinned = None,
                Request::ToggleBreakpoint(breakpoint) => {
                    effects.extend(self.toggle_breakpoint(breakpoint))
                }
                Request::Fork(index) => effects.extend(self.fork_from_timeline(index)),
                Request::AbCompare(index) => effects.extend(self.open_ab(index)),
                Request::ReopenCompare => self.reopen_ab(),
                Request::MarkDiff(index) => self.mark_for_diff(index),
                Request::Diff(index) => self.open_diff(index),
                Request::Open(mode) => self.mode = mode,
                Request::Status(text) => self.status = Some(text),
                Request::Effect(effect) => effects.push(effect),
            }
        }
        effects
    }

    /// The keys no pane took.
    fn on_global_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Zoom => self.zoomed = !self.zoomed,
            Action::OpenDefinition => {
                self.status = Some(
                    "o opens an Expert (Experts pane) or a call's skill (Tool calls pane) in $EDITOR"
                        .into(),
                );
            }
            Action::Step | Action::Continue | Action::EditRequest => {
                return self.on_debug_action(action);
            }
            Action::FocusNext => {
                let next = (self.focus.index() + 1) % PaneId::ALL.len();
                self.focus = PaneId::ALL[next];
            }
            Action::FocusPrev => {
                let count = PaneId::ALL.len();
                self.focus = PaneId::ALL[(self.focus.index() + count - 1) % count];
            }
            Action::Focus(pane) => self.focus = pane,
            Action::Help => self.mode = Mode::Help,
            Action::Jobs => return self.open_job_picker(),
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
                    self.open_query_box(false);
                }
            }
            Action::FollowUp => {
                if self.job_state == JobState::Completed && self.resume_from.is_some() {
                    self.open_query_box(true);
                } else if self.job_state == JobState::WaitingForAnswer {
                    self.open_answer_dialog();
                } else {
                    self.status = Some("a follow-up needs a completed job".into());
                }
            }
            Action::Cancel if self.job_state.active() => {
                self.status = Some("cancelling; the last checkpoint is kept".into());
                return vec![Effect::Cancel];
            }
            Action::UseReplay if !self.job_state.active() => return vec![Effect::UseReplay],
            Action::Back => {
                self.pinned = None;
                self.panes.prompt.step = None;
                self.panes.tool_calls.expanded = false;
            }
            // Pane keys the focused pane does not use; cancel or replay when they do not apply.
            _ => {}
        }
        Vec::new()
    }

    /// Shows the state at a timeline entry: its run, up to its checkpoint.
    fn pin(&mut self, index: usize) {
        if let Some(entry) = self.timeline.get(index) {
            self.selected_run = Some(entry.run_id.clone());
            self.pinned = Some(index);
            self.panes.prompt.step = None;
            self.panes.prompt.rewind();
            self.panes.tool_calls.cursor = 0;
        }
    }

    fn select_run(&mut self, run_id: String) {
        if let Some(row) = self
            .expert_rows()
            .iter()
            .position(|r| matches!(r, ExpertRow::Run { run_id: id, .. } if *id == run_id))
        {
            self.panes.experts.cursor = row;
        }
        self.selected_run = Some(run_id);
        self.pinned = None;
        self.panes.prompt.step = None;
        self.panes.prompt.rewind();
        self.panes.tool_calls.cursor = 0;
        self.panes.tool_calls.expanded = false;
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
            input: TextInput::default(),
        };
    }

    fn on_click(&mut self, col: u16, row: u16) -> Vec<Effect> {
        if let Some(pane) = layout::tab_at(self, col, row) {
            self.focus = pane;
            return Vec::new();
        }
        let Some(pane) = layout::pane_at(self, col, row) else {
            return Vec::new();
        };
        self.focus = pane;
        let Some(area) = layout::pane_area(self, pane) else {
            return Vec::new();
        };
        // Rows inside the border; the lists scroll so the cursor stays in view.
        let Some(line) = row.checked_sub(area.y + 1) else {
            return Vec::new();
        };
        let height = area.height.saturating_sub(2) as usize;
        let (_, requests) =
            self.with_pane_input(|panes, cx| panes.on_click(pane, line as usize, height, cx));
        self.apply_requests(requests)
    }
}

/// The file and line of the first error among rendered diagnostics (their `  --> FILE:LINE:COL`
/// line), or of the first diagnostic when none is an error.
fn first_error_location(diagnostics: &[String]) -> Option<(std::path::PathBuf, usize)> {
    let errors = diagnostics.iter().filter(|d| d.starts_with("error"));
    errors
        .chain(diagnostics.iter())
        .find_map(|d| d.lines().find_map(location_of_arrow_line))
}

fn location_of_arrow_line(line: &str) -> Option<(std::path::PathBuf, usize)> {
    let place = line.trim_start().strip_prefix("--> ")?;
    // FILE:LINE:COL, where FILE may itself hold colons: split from the right.
    let mut parts = place.rsplitn(3, ':');
    let _column = parts.next()?;
    let line = parts.next()?.parse().ok()?;
    Some((parts.next()?.into(), line))
}
