//! The data the panes draw: runs, steps, tool calls, checkpoints, definitions.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

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

/// A text with the start of every line, for O(1) slicing of line `i`.
#[derive(Debug, Clone, Default)]
pub struct TextLines {
    pub text: String,
    pub line_starts: Vec<usize>,
}

impl TextLines {
    pub fn new(text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        TextLines { text, line_starts }
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

/// A request body pretty-printed, and on demand the same with its string values unescaped.
#[derive(Debug, Clone)]
pub struct PrettyBody {
    pub lines: TextLines,
    unescaped: OnceLock<Unescaped>,
}

/// The pretty body with every string value that holds escapes shown decoded: a `\n` becomes
/// a line break, so a system prompt reads as the text it is.
#[derive(Debug, Clone, Default)]
pub struct Unescaped {
    pub lines: TextLines,
    /// For each line, the line of the pretty body it comes from.
    pub origin: Vec<u32>,
    /// For the lines of a decoded string, the bytes before its text: the key and opening quote
    /// on its first line, the blank columns it hangs under on the others (0 elsewhere).
    pub hang: Vec<u32>,
    /// Lines that go on with a decoded string: plain text, not JSON.
    pub continued: Vec<bool>,
}

impl PrettyBody {
    pub fn new(body: &str) -> Self {
        PrettyBody {
            lines: TextLines::new(crate::editor::pretty_json(body)),
            unescaped: OnceLock::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.lines.len()
    }
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
    pub fn line(&self, i: usize) -> &str {
        self.lines.line(i)
    }
    /// Built the first time it is asked for.
    pub fn unescaped(&self) -> &Unescaped {
        self.unescaped.get_or_init(|| Unescaped::new(&self.lines))
    }
}

impl Unescaped {
    fn new(pretty: &TextLines) -> Self {
        let mut text = String::with_capacity(pretty.text.len());
        let (mut origin, mut continued, mut hang) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..pretty.len() {
            let line = pretty.line(i);
            let mut push = |piece: &str, more: bool, before: usize| {
                if !origin.is_empty() {
                    text.push('\n');
                }
                text.push_str(piece);
                origin.push(i as u32);
                continued.push(more);
                hang.push(before as u32);
            };
            let Some((head, decoded, tail)) = decode_string_value(line) else {
                push(line, false, 0);
                continue;
            };
            // Later lines hang under the first character of the string.
            let pad = " ".repeat(head.chars().count());
            let parts: Vec<&str> = decoded.split('\n').collect();
            let last = parts.len() - 1;
            for (k, part) in parts.iter().enumerate() {
                let mut piece = if k == 0 {
                    format!("{head}{part}")
                } else {
                    format!("{pad}{part}")
                };
                if k == last {
                    piece.push('"');
                    piece.push_str(tail);
                }
                push(&piece, k > 0, if k == 0 { head.len() } else { pad.len() });
            }
        }
        Unescaped {
            lines: TextLines::new(text),
            origin,
            hang,
            continued,
        }
    }

    /// The first line that shows pretty line `i`.
    pub fn line_of(&self, i: usize) -> usize {
        self.origin.partition_point(|&o| (o as usize) < i)
    }
}

/// A pretty-printed JSON line whose string value holds escapes: the line up to and with the
/// value's opening quote, the value decoded, and what follows its closing quote.
fn decode_string_value(line: &str) -> Option<(&str, String, &str)> {
    let indent = line.len() - line.trim_start().len();
    let mut value_start = indent;
    if let Some(key_end) = string_end(&line[indent..]) {
        if line[indent + key_end..].starts_with(": \"") {
            value_start = indent + key_end + 2;
        }
    }
    let value = &line[value_start..];
    let end = string_end(value)?;
    let token = &value[..end];
    if !token.contains('\\') {
        return None;
    }
    let decoded: String = serde_json::from_str(token).ok()?;
    Some((&line[..value_start + 1], decoded, &value[end..]))
}

/// Where the JSON string at the start of `s` ends (just after its closing quote).
fn string_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
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
    /// A provider tool (web search, code execution): the provider ran it, not a skill.
    pub run_by_provider: bool,
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
                .chain(provider_tools_info(expert))
                .collect(),
            delegates: expert.delegates().to_vec(),
        })
        .collect()
}

/// The tools and Agent Skills the provider runs for `expert`, shown as one more skill row.
fn provider_tools_info(expert: &crate::definition::Expert) -> Option<SkillInfo> {
    use crate::definition::ProviderSkill;
    let tools: Vec<String> = expert
        .provider_tools
        .iter()
        .flatten()
        .cloned()
        .chain(
            expert
                .provider_skills
                .iter()
                .flatten()
                .map(|skill| match skill {
                    ProviderSkill::Builtin { skill_id } => {
                        format!("Agent Skill {skill_id} (builtin)")
                    }
                    ProviderSkill::Custom { name, .. } => format!("Agent Skill {name} (custom)"),
                }),
        )
        .collect();
    (!tools.is_empty()).then(|| SkillInfo {
        name: "provider tools".into(),
        kind: "run by the provider",
        tools: Some(tools),
        confined: None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_tools_of_an_expert_are_one_more_skill_row() {
        let (config, _) = crate::definition::parse_str(
            "[provider]\nproviderName = \"anthropic\"\n[experts.r]\ninstruction = \"x\"\n\
             providerTools = [\"webSearch\"]\n\
             providerSkills = [{ type = \"custom\", name = \"style\", definition = \"d\" }]\n",
            std::path::Path::new("perstack.toml"),
        )
        .expect("loads");
        let infos = expert_infos(&config);
        let row = infos[0].skills.last().expect("a row");
        assert_eq!(row.name, "provider tools");
        assert_eq!(row.kind, "run by the provider");
        assert_eq!(
            row.tools,
            Some(vec![
                "webSearch".into(),
                "Agent Skill style (custom)".into()
            ])
        );
    }

    #[test]
    fn unescaped_body_breaks_string_values_at_their_newlines() {
        let body = r#"{"system":"first line\nsecond \"quoted\" line","n":1,"list":["a\nb"]}"#;
        let pretty = PrettyBody::new(body);
        let unescaped = pretty.unescaped();
        let lines: Vec<&str> = (0..unescaped.lines.len())
            .map(|i| unescaped.lines.line(i))
            .collect();
        assert_eq!(
            lines,
            [
                "{",
                r#"  "system": "first line"#,
                r#"             second "quoted" line","#,
                r#"  "n": 1,"#,
                r#"  "list": ["#,
                r#"    "a"#,
                r#"     b""#,
                "  ]",
                "}",
            ]
        );
        assert!(unescaped.continued[2]);
        assert!(!unescaped.continued[1]);
        assert_eq!(unescaped.origin[2], 1);
        assert_eq!(unescaped.line_of(2), 3);
        assert_eq!(unescaped.hang[..4], [0, 13, 13, 0]);
    }
}
