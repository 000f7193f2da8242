//! The data the panes draw: runs, steps, tool calls, checkpoints, definitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::RunStatus;
use crate::definition::Config;
use crate::definition::Skill;
use crate::runtime::checkpoint::{Checkpoint, CheckpointStatus, Usage};
use crate::runtime::event::WireRequest;
use crate::skills::base::BaseSkill;
use crate::skills::mcp::filter_tools;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptView {
    Conversation,
    Raw,
}

#[derive(Debug, Clone)]
pub struct SkillInfo {
    pub name: String,
    pub kind: &'static str,
    /// None when the tools are known only once the skill's server runs.
    pub tools: Option<Vec<String>>,
    /// Whether the last run confined the skill's process; None until one has started it.
    pub confined: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct ExpertInfo {
    pub key: String,
    pub description: String,
    pub skills: Vec<SkillInfo>,
    pub delegates: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Thinking,
    ToolCall,
    Tool,
    /// The separator above a step's answer.
    Response,
}

#[derive(Debug, Clone)]
pub struct ConvLine {
    pub role: Role,
    /// True for the first line of a message: the pane prints the role there.
    pub first: bool,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct StepView {
    pub request: Option<WireRequest>,
    /// The body pretty-printed once, with the start of every line for O(1) slicing.
    pub pretty: Option<Arc<PrettyBody>>,
    /// How much of the run's conversation this step's request held.
    pub conv_len: usize,
    pub conv_folded_len: usize,
    pub reasoning: String,
    pub text: String,
    pub streaming: bool,
}

#[derive(Debug, Clone)]
pub struct PrettyBody {
    pub text: String,
    pub line_starts: Vec<usize>,
}

impl PrettyBody {
    pub fn new(body: &str) -> Self {
        let text = crate::editor::pretty_json(body);
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        PrettyBody { text, line_starts }
    }
    pub fn len(&self) -> usize {
        self.line_starts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
    pub fn line(&self, i: usize) -> &str {
        let start = self.line_starts.get(i).copied().unwrap_or(self.text.len());
        let end = self
            .line_starts
            .get(i + 1)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        self.text.get(start..end.max(start)).unwrap_or("")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Running,
    Done,
    Error,
}

#[derive(Debug, Clone)]
pub struct ToolCallView {
    pub id: String,
    pub step: u64,
    pub skill: String,
    pub tool: String,
    pub args: Value,
    pub status: CallStatus,
    pub duration_ms: Option<u64>,
    pub result: Option<String>,
    pub delegate_run: Option<String>,
    /// Connections the sandbox refused while this call ran (`host:port`).
    pub denied: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RunView {
    pub run_id: String,
    pub parent: Option<String>,
    pub children: Vec<String>,
    pub expert_key: String,
    pub model: String,
    pub max_steps: u64,
    pub status: RunStatus,
    pub step: u64,
    pub usage: Usage,
    pub started_at: u64,
    pub finished_at: Option<u64>,
    pub steps: BTreeMap<u64, StepView>,
    pub conv: Vec<ConvLine>,
    /// Indices into `conv` of the lines shown while thinking is folded.
    pub conv_folded: Vec<u32>,
    pub messages_seen: usize,
    pub calls: Vec<ToolCallView>,
    pub error: Option<String>,
    pub result: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TimelineEntry {
    pub run_id: String,
    pub expert_key: String,
    pub depth: usize,
    pub step: u64,
    pub status: CheckpointStatus,
    pub usage: Usage,
    pub checkpoint_id: String,
    pub checkpoint: Arc<Checkpoint>,
    /// For the first checkpoint of a fork: the entry it was forked from.
    pub fork_of: Option<usize>,
}

/// The first row to draw so that `cursor` is visible in `height` rows.
pub fn scroll_offset(cursor: usize, height: usize, len: usize) -> usize {
    if height == 0 || len <= height {
        return 0;
    }
    cursor.saturating_sub(height - 1).min(len - height)
}

pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The model's answer to a step's request, shown below it: live while it streams.
pub fn streaming_lines(step: &StepView, show_thinking: bool) -> Vec<(Role, &str)> {
    if step.reasoning.is_empty() && step.text.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![(Role::Response, "")];
    if !step.reasoning.is_empty() {
        if show_thinking {
            lines.extend(step.reasoning.lines().map(|l| (Role::Thinking, l)));
        } else {
            lines.push((Role::Thinking, "▸ thinking (t unfolds)"));
        }
    }
    lines.extend(step.text.lines().map(|l| (Role::Assistant, l)));
    lines
}

/// The Experts pane's view of the definitions.
pub(super) fn expert_infos(config: &Config) -> Vec<ExpertInfo> {
    config
        .experts
        .iter()
        .map(|(key, expert)| ExpertInfo {
            key: key.clone(),
            description: expert.description.clone().unwrap_or_default(),
            skills: expert
                .effective_skills()
                .iter()
                .map(|(name, skill)| skill_info(name, skill))
                .collect(),
            delegates: expert.delegates().to_vec(),
        })
        .collect()
}

pub(super) fn skill_info(name: &str, skill: &Skill) -> SkillInfo {
    let tools = match skill {
        // The runtime's own filter, so the pane lists exactly the tools a run is offered.
        Skill::McpStdio(s) if s.is_base() => Some(
            filter_tools(BaseSkill::tools(), s.pick.as_deref(), s.omit.as_deref())
                .0
                .into_iter()
                .map(|t| t.name)
                .collect(),
        ),
        Skill::Interactive(s) => Some(s.tools.keys().cloned().collect()),
        _ => None,
    };
    SkillInfo {
        name: name.to_string(),
        kind: match skill {
            Skill::McpStdio(s) if s.is_base() => "built-in",
            Skill::McpStdio(_) => "mcp stdio",
            Skill::McpSse(_) => "mcp sse",
            Skill::Interactive(_) => "interactive",
        },
        tools,
        confined: None,
    }
}
