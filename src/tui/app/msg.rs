//! The messages the workbench's state takes in, the effects it asks for, and its modes: the
//! vocabulary between `AppState::update` and the loop that performs IO.

use std::sync::Arc;

use crossterm::event::KeyEvent;

use crate::definition::Config;
use crate::runtime::checkpoint::Checkpoint;
use crate::runtime::control::{Breakpoint, Control};
use crate::runtime::event::RunEvent;
use crate::runtime::message::ToolResult;
use crate::tui::input::TextInput;

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
        /// Registry Experts of perstack.lock (a vendored one is local now and left out).
        registry: Vec<crate::registry::RegistryEntry>,
    },
    /// perstack.toml changed on disk and is invalid: each diagnostic, rendered.
    ReloadFailed(Vec<String>),
    Tick {
        now_ms: u64,
    },
    /// A fork of an A/B reported its run id (its first event).
    AbRun {
        side: super::compare::AbSide,
        run_id: String,
    },
    /// The ids of the store's jobs, newest first (one listing, before any record is read),
    /// or why they could not be listed.
    JobIdsListed {
        location: String,
        ids: Result<Vec<String>, String>,
    },
    /// Records of some of the listed jobs (a page at a time), or why they could not be read.
    JobsListed {
        location: String,
        jobs: Result<Vec<crate::runtime::checkpoint::Job>, String>,
    },
}

/// What `o` opens in the person's editor.
#[derive(Debug, Clone, PartialEq)]
pub enum EditorTarget {
    /// An Expert's table in perstack.toml, or one of its skills' tables.
    Definition {
        expert: String,
        skill: Option<String>,
    },
    /// A place a diagnostic names.
    File {
        path: std::path::PathBuf,
        line: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Hand the terminal to `$VISUAL`/`$EDITOR` at a line of the definitions; a save reloads
    /// them as any edit does.
    OpenInEditor(EditorTarget),
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
    /// A new run from a checkpoint, under the definitions now in force (with `variant`
    /// changed, for one side of an A/B).
    Fork {
        expert_key: String,
        checkpoint: Arc<Checkpoint>,
        variant: Option<crate::runtime::variant::Variant>,
        ab: Option<super::compare::AbSide>,
    },
    /// Hand the terminal to $EDITOR with the Expert's instruction, for side B of an A/B.
    EditVariantInstruction {
        expert_key: String,
    },
    /// Append a registry Expert's text to perstack.toml as a local Expert (vendoring).
    Vendor {
        key: String,
        text: String,
    },
    /// Add a submitted query to the project's history file (`perstack/history.jsonl`).
    RememberQuery {
        query: String,
    },
    Quit,
    /// List the store's jobs for the picker.
    ListJobs,
    /// Show a stored job in the panes, following it while it runs elsewhere.
    OpenJob {
        job_id: String,
    },
}

/// Input boxes and overlays; keys go to the topmost one.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    Query {
        input: TextInput,
    },
    FollowUp {
        input: TextInput,
    },
    Answer {
        question: String,
        input: TextInput,
    },
    /// One line: the Prompt pane's `/`.
    Search {
        input: TextInput,
    },
    ConfirmQuit,
    Help,
    Diff,
    /// The A/B overlay: choosing what B changes, then both runs side by side.
    Compare,
    /// A registry Expert's published text, read-only, scrolled to `scroll`.
    Published {
        index: usize,
        scroll: usize,
    },
    /// The job picker (its state is `AppState::picker`).
    Jobs,
}
