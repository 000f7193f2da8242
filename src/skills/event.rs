//! What skills report while they start, run and stop. The runtime maps these into its own
//! events (`skillStarting`, `skillConnected`, `skillStderr`, `skillDisconnected`).

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

/// One report from one skill.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillEvent {
    pub skill_name: String,
    pub kind: SkillEventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SkillEventKind {
    /// The process is being spawned (under `sandbox`, for stdio skills) or the endpoint
    /// contacted.
    Starting {
        #[serde(skip_serializing_if = "Option::is_none")]
        sandbox: Option<crate::sandbox::SandboxPolicy>,
    },
    /// Handshake and tool discovery are done; the skill answers calls.
    Connected(ConnectedInfo),
    /// One line the server wrote to its stderr (stdio skills only).
    Stderr { line: String },
    /// The connection ended: shutdown, crash, hang or transport failure. A later call
    /// starts the server again.
    Disconnected { reason: String },
    /// Something the user should fix but that does not stop the run (e.g. a `pick` entry that
    /// names no tool).
    Warning { message: String },
    /// The sandbox's proxy refused a connection to a host outside `allowedDomains`.
    SandboxDenied { host: String, port: u16 },
    /// One JSON-RPC frame on a traced server's wire.
    Frame(crate::skills::mcp::wire::WireFrame),
}

/// Server identity and how long each start-up phase took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedInfo {
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    /// Process spawn (stdio) or HTTP client set-up.
    pub spawn_duration_ms: u64,
    /// The `initialize` exchange.
    pub handshake_duration_ms: u64,
    pub tool_discovery_duration_ms: u64,
    pub total_duration_ms: u64,
}

/// Where a skill sends its events; a closed receiver is fine (events are then dropped).
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    skill_name: String,
    sender: Option<UnboundedSender<SkillEvent>>,
}

impl EventSink {
    pub(crate) fn new(skill_name: &str, sender: Option<UnboundedSender<SkillEvent>>) -> Self {
        EventSink {
            skill_name: skill_name.to_string(),
            sender,
        }
    }

    pub(crate) fn skill_name(&self) -> &str {
        &self.skill_name
    }

    pub(crate) fn send(&self, kind: SkillEventKind) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(SkillEvent {
                skill_name: self.skill_name.clone(),
                kind,
            });
        }
    }

    pub(crate) fn warn(&self, message: impl Into<String>) {
        self.send(SkillEventKind::Warning {
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_serialize_with_a_type_tag() {
        let event = SkillEvent {
            skill_name: "s".into(),
            kind: SkillEventKind::Connected(ConnectedInfo {
                server_name: Some("n".into()),
                total_duration_ms: 7,
                ..ConnectedInfo::default()
            }),
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["skillName"], "s");
        assert_eq!(value["kind"]["type"], "connected");
        assert_eq!(value["kind"]["serverName"], "n");
        assert_eq!(value["kind"]["totalDurationMs"], 7);
        let stderr = SkillEventKind::Stderr { line: "x".into() };
        assert_eq!(
            serde_json::to_value(&stderr).unwrap(),
            json!({"type": "stderr", "line": "x"})
        );
    }
}
