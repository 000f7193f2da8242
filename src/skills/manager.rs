//! The skills of one Expert's run: starts them, lists their tools and routes calls.
//!
//! Tool names must be unique across the Expert's skills. Two skills offering the same name is
//! an error at start naming both (fix it with `pick` or `omit`); if a server later adds a
//! clashing tool through `list_changed`, the skill listed first in perstack.toml keeps the
//! name and a warning is sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::definition::{BASE_SKILL_NAME, Expert, Skill};
use crate::sandbox::Sandbox;
use crate::skills::base::BaseSkill;
use crate::skills::event::{ConnectedInfo, EventSink, SkillEvent, SkillEventKind};
use crate::skills::lock::{LockedExpert, LockedSkill};
use crate::skills::mcp::{McpError, McpOptions, McpSkill};
use crate::skills::workspace::Workspace;
use crate::tool::{ToolDefinition, ToolOutput};

#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    #[error("skill {skill} failed to start: {source}")]
    Start {
        skill: String,
        #[source]
        source: McpError,
    },
    #[error(
        "tool {tool} is offered by both skill {first} and skill {second}; \
         use `pick` or `omit` on one of them"
    )]
    Collision {
        tool: String,
        first: String,
        second: String,
    },
}

/// Settings beyond the Expert itself.
#[derive(Debug, Clone, Default)]
pub struct SkillManagerOptions {
    /// Timeouts for MCP skills; the working directory defaults to the workspace root.
    pub mcp: McpOptions,
    /// This Expert's entry in perstack.lock: lets `lazyInit` skills wait for their first call.
    pub lock: Option<LockedExpert>,
    /// How `exec` and stdio servers are confined (default: confined).
    pub sandbox: Sandbox,
}

enum Entry {
    Base {
        name: String,
        tools: Vec<ToolDefinition>,
    },
    Mcp {
        skill: Arc<McpSkill>,
        /// Tools from the lock, offered until a lazy skill has started.
        locked: Option<Vec<ToolDefinition>>,
    },
    Interactive {
        name: String,
        tools: Vec<ToolDefinition>,
    },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Base { name, .. } | Entry::Interactive { name, .. } => name,
            Entry::Mcp { skill, .. } => skill.name(),
        }
    }

    fn tools(&self) -> Vec<ToolDefinition> {
        match self {
            Entry::Base { tools, .. } | Entry::Interactive { tools, .. } => tools.clone(),
            Entry::Mcp { skill, locked } => match locked {
                Some(locked) if !skill.has_tool_list() => locked.clone(),
                _ => skill.tools(),
            },
        }
    }

    fn offers(&self, tool_name: &str) -> bool {
        match self {
            Entry::Base { tools, .. } | Entry::Interactive { tools, .. } => {
                tools.iter().any(|t| t.name == tool_name)
            }
            Entry::Mcp { skill, locked } => match locked {
                Some(locked) if !skill.has_tool_list() => {
                    locked.iter().any(|t| t.name == tool_name)
                }
                _ => skill.offers(tool_name),
            },
        }
    }
}

pub struct SkillManager {
    base: BaseSkill,
    entries: Vec<Entry>,
    events: UnboundedSender<SkillEvent>,
    /// Hidden duplicate tools already warned about, so each is reported once.
    hidden: std::sync::Mutex<HashSet<(String, String)>>,
}

impl SkillManager {
    /// Builds and starts the skills of `expert` (concurrently). On any failure the skills
    /// already started are shut down and the error names the skill.
    pub async fn start(
        expert: &Expert,
        workspace: Workspace,
        env: &HashMap<String, String>,
        events: UnboundedSender<SkillEvent>,
        options: SkillManagerOptions,
    ) -> Result<Self, SkillError> {
        let mut mcp_options = options.mcp.clone();
        mcp_options.sandbox = options.sandbox.clone();
        let workspace = workspace.with_dotenv_files(&options.sandbox.env_files);
        if mcp_options.cwd.is_none() {
            mcp_options.cwd = Some(workspace.root().to_path_buf());
        }
        let mut entries = Vec::new();
        let mut to_start = Vec::new();
        for (name, skill) in expert.effective_skills() {
            let events = Some(events.clone());
            let locked = options
                .lock
                .as_ref()
                .and_then(|l| l.tools_of(&name))
                .map(<[ToolDefinition]>::to_vec);
            match skill {
                Skill::McpStdio(def) if def.is_base() => {
                    let (tools, warnings) = crate::skills::mcp::filter_tools(
                        BaseSkill::tools(),
                        def.pick.as_deref(),
                        def.omit.as_deref(),
                    );
                    let sink = EventSink::new(&name, events);
                    warnings.into_iter().for_each(|w| sink.warn(w));
                    // In-process, so connected at once; reported like any skill so the run's
                    // events read as they do with a spawned base skill.
                    sink.send(SkillEventKind::Connected(ConnectedInfo {
                        server_name: Some(BASE_SKILL_NAME.to_string()),
                        server_version: Some(env!("CARGO_PKG_VERSION").to_string()),
                        ..ConnectedInfo::default()
                    }));
                    entries.push(Entry::Base { name, tools });
                }
                Skill::McpStdio(def) => {
                    let skill = Arc::new(McpSkill::stdio(
                        &name,
                        &def,
                        env,
                        mcp_options.clone(),
                        events,
                    ));
                    let lazy = def.lazy_init == Some(true) && locked.is_some();
                    if !lazy {
                        to_start.push(skill.clone());
                    }
                    let locked = if lazy { locked } else { None };
                    entries.push(Entry::Mcp { skill, locked });
                }
                Skill::McpSse(def) => {
                    let skill = Arc::new(McpSkill::http(&name, &def, mcp_options.clone(), events));
                    to_start.push(skill.clone());
                    entries.push(Entry::Mcp {
                        skill,
                        locked: None,
                    });
                }
                Skill::Interactive(def) => {
                    let tools = def
                        .tools
                        .iter()
                        .map(|(tool_name, tool)| ToolDefinition {
                            name: tool_name.clone(),
                            description: tool.description.clone().unwrap_or_default(),
                            input_schema: tool.input_schema(),
                        })
                        .collect();
                    entries.push(Entry::Interactive { name, tools });
                }
            }
        }
        let manager = SkillManager {
            base: BaseSkill::with_workspace(workspace).with_sandbox(options.sandbox.clone()),
            entries,
            events,
            hidden: Default::default(),
        };
        let results = join_all(to_start.iter().map(|s| s.start())).await;
        let failure = to_start
            .iter()
            .zip(results)
            .find_map(|(skill, result)| result.err().map(|e| (skill.name().to_string(), e)));
        let error = match failure {
            Some((skill, source)) => Some(SkillError::Start { skill, source }),
            None => manager.collision().err(),
        };
        match error {
            Some(error) => {
                manager.shutdown().await;
                Err(error)
            }
            None => Ok(manager),
        }
    }

    /// The first tool name offered by two skills, as an error naming both.
    fn collision(&self) -> Result<(), SkillError> {
        let mut owners: HashMap<String, &str> = HashMap::new();
        for entry in &self.entries {
            for tool in entry.tools() {
                if let Some(first) = owners.get(&tool.name) {
                    return Err(SkillError::Collision {
                        tool: tool.name,
                        first: first.to_string(),
                        second: entry.name().to_string(),
                    });
                }
                owners.insert(tool.name, entry.name());
            }
        }
        Ok(())
    }

    /// Every tool of every skill, in perstack.toml order; names are unique.
    pub fn tools(&self) -> Vec<ToolDefinition> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for entry in &self.entries {
            for tool in entry.tools() {
                if seen.insert(tool.name.clone()) {
                    out.push(tool);
                } else if self
                    .hidden
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((entry.name().to_string(), tool.name.clone()))
                {
                    EventSink::new(entry.name(), Some(self.events.clone())).warn(format!(
                        "tool {} is already offered by another skill; this skill's one is hidden",
                        tool.name
                    ));
                }
            }
        }
        out
    }

    fn entry_of(&self, tool_name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.offers(tool_name))
    }

    /// Whether a person answers this tool (an interactive skill's), not a program. The
    /// runtime's `ToolKind` says how each tool is answered; this is the fact it needs from here.
    pub fn is_interactive(&self, tool_name: &str) -> bool {
        matches!(self.entry_of(tool_name), Some(Entry::Interactive { .. }))
    }

    /// The name of the skill that offers a tool.
    pub fn skill_of(&self, tool_name: &str) -> Option<&str> {
        self.entry_of(tool_name).map(Entry::name)
    }

    /// Runs a tool. Unknown tools, interactive tools and every failure come back as error
    /// outputs the model can read.
    pub async fn call(&self, tool_name: &str, args: Value) -> ToolOutput {
        self.call_as(None, tool_name, args).await
    }

    /// [`Self::call`] for the tool call `tool_call_id`, which a traced MCP skill's wire frames
    /// then name.
    pub async fn call_as(
        &self,
        tool_call_id: Option<&str>,
        tool_name: &str,
        args: Value,
    ) -> ToolOutput {
        match self.entry_of(tool_name) {
            Some(Entry::Base { .. }) => self.base.call(tool_name, args).await,
            Some(Entry::Mcp { skill, .. }) => skill.call_as(tool_call_id, tool_name, args).await,
            Some(Entry::Interactive { name, .. }) => ToolOutput::error(format!(
                "{tool_name} belongs to the interactive skill {name} and is answered by the \
                 user, not by a skill"
            )),
            None => ToolOutput::error(format!(
                "unknown tool {tool_name}; available tools: {}",
                self.tools()
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The built-in base skill (todos, attemptCompletion), present even when the Expert does not
    /// list it, so the runtime can always ask it.
    pub fn base(&self) -> &BaseSkill {
        &self.base
    }

    /// The MCP skills, in perstack.toml order.
    pub fn mcp_skills(&self) -> impl Iterator<Item = &McpSkill> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Mcp { skill, .. } => Some(skill.as_ref()),
            _ => None,
        })
    }

    /// The resolved tools per skill, for perstack.lock.
    pub fn locked(&self) -> LockedExpert {
        let mut locked = LockedExpert::default();
        for entry in &self.entries {
            locked.skills.insert(
                entry.name().to_string(),
                LockedSkill {
                    tools: entry.tools(),
                },
            );
        }
        locked
    }

    /// Stops every MCP server (concurrently) and kills their process groups. Every skill that
    /// reported `Connected` reports `Disconnected`.
    pub async fn shutdown(&self) {
        join_all(self.mcp_skills().map(McpSkill::shutdown)).await;
        for entry in &self.entries {
            if let Entry::Base { name, .. } = entry {
                EventSink::new(name, Some(self.events.clone())).send(
                    SkillEventKind::Disconnected {
                        reason: "shut down".into(),
                    },
                );
            }
        }
    }
}

impl std::fmt::Debug for SkillManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillManager")
            .field(
                "skills",
                &self.entries.iter().map(Entry::name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}

    #[test]
    fn the_manager_can_live_in_a_task() {
        send_sync::<SkillManager>();
        send_sync::<McpSkill>();
    }

    // Compiled, not run: the futures the runtime awaits must be Send.
    #[allow(dead_code)]
    fn futures_are_send(
        manager: &SkillManager,
        expert: &Expert,
        workspace: Workspace,
        events: UnboundedSender<SkillEvent>,
    ) {
        send(&manager.call("x", Value::Null));
        send(&manager.shutdown());
        let env = HashMap::new();
        send(&SkillManager::start(
            expert,
            workspace,
            &env,
            events,
            SkillManagerOptions::default(),
        ));
    }
}
