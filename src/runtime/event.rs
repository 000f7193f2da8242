//! `RunEvent`: the only data that crosses from the runtime to a UI or to JSONL.
//!
//! Names and fields follow Perstack's events, so tools that read its JSONL keep working. Beyond
//! them: `llmRequest` (the exact request sent to the model, secrets redacted), `toolCallTiming`,
//! `stopRunByCancel`, `paused` and `resumed`, and `parentRunId` on every event so a UI can
//! build the run tree without tracking delegation itself.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checkpoint::{Checkpoint, CheckpointError, Usage};
use super::control::{Control, PausePoint};
use super::frozen::Frozen;
use super::id::{new_id, now_millis};
use super::message::{Message, ToolCall, ToolResult};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    pub id: String,
    pub job_id: String,
    pub run_id: String,
    pub expert_key: String,
    pub step_number: u64,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The ids every event of one run carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIds {
    pub job_id: String,
    pub run_id: String,
    pub expert_key: String,
    pub parent_run_id: Option<String>,
}

impl RunIds {
    pub fn event(&self, step_number: u64, kind: EventKind) -> RunEvent {
        RunEvent {
            id: new_id(),
            job_id: self.job_id.clone(),
            run_id: self.run_id.clone(),
            expert_key: self.expert_key.clone(),
            step_number,
            timestamp: now_millis(),
            parent_run_id: self.parent_run_id.clone(),
            kind,
        }
    }
}

/// One step: one generation and the tool calls it asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub step_number: u64,
    pub new_messages: Vec<Message>,
    pub tool_calls: Vec<ToolCall>,
    pub tool_results: Vec<ToolResult>,
    pub usage: Usage,
    pub started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
}

/// The request as it went on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRequest {
    pub provider: String,
    pub model: String,
    pub method: String,
    pub url: String,
    /// Header names and values, with keys and tokens replaced by `[redacted]`.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes, as text.
    pub body: String,
    /// True when a person edited the body before it was sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum EventKind {
    InitializeRuntime {
        runtime_version: String,
        runtime: String,
        expert_name: String,
        experts: Vec<String>,
        model: String,
        max_steps: u64,
        max_retries: u64,
        timeout: u64,
        query: String,
    },
    SkillStarting {
        skill_name: String,
        /// How the skill's process is confined (stdio skills).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<crate::sandbox::SandboxPolicy>,
    },
    SkillConnected {
        skill_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_info: Option<Value>,
        spawn_duration_ms: u64,
        handshake_duration_ms: u64,
        connect_duration_ms: u64,
        tool_discovery_duration_ms: u64,
        total_duration_ms: u64,
        /// The tools the skill offers this Expert (after pick and omit).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tools: Vec<String>,
    },
    SkillStderr {
        skill_name: String,
        message: String,
    },
    SkillDisconnected {
        skill_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    SkillWarning {
        skill_name: String,
        message: String,
    },
    /// A confined skill tried to reach a host outside its `allowedDomains`.
    SandboxDenied {
        skill_name: String,
        host: String,
        port: u16,
    },
    /// Skills of this run are not confined (`runtime = "local"` or `--sandbox off`).
    SandboxDisabled {
        message: String,
    },
    StartRun {
        initial_checkpoint: Arc<Checkpoint>,
        input_messages: Vec<Message>,
    },
    StartGeneration {
        messages: Arc<Vec<Frozen<Message>>>,
    },
    LlmRequest {
        request: WireRequest,
        attempt: u32,
    },
    StartStreamingReasoning,
    StreamReasoning {
        delta: String,
    },
    CompleteStreamingReasoning {
        text: String,
    },
    StartStreamingRunResult,
    StreamRunResult {
        delta: String,
    },
    CompleteStreamingRunResult {
        text: String,
    },
    CallTools {
        new_message: Message,
        tool_calls: Vec<ToolCall>,
        usage: Usage,
    },
    CallDelegate {
        tool_call: ToolCall,
        delegate_run_id: String,
        delegate_expert_key: String,
        query: String,
    },
    CallInteractiveTool {
        tool_call: ToolCall,
    },
    ToolCallTiming {
        tool_call_id: String,
        skill_name: String,
        tool_name: String,
        started_at: u64,
        duration_ms: u64,
        is_error: bool,
    },
    ResolveToolResults {
        tool_results: Vec<ToolResult>,
    },
    AttemptCompletion {
        tool_result: ToolResult,
    },
    FinishToolCall {
        new_messages: Vec<Message>,
    },
    ContinueToNextStep {
        checkpoint: Arc<Checkpoint>,
        next_checkpoint: Arc<Checkpoint>,
        step: Box<Step>,
    },
    Retry {
        reason: String,
        attempt: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
    },
    CompleteRun {
        checkpoint: Arc<Checkpoint>,
        step: Box<Step>,
        text: String,
        usage: Usage,
    },
    StopRunByError {
        checkpoint: Arc<Checkpoint>,
        error: CheckpointError,
    },
    StopRunByExceededMaxSteps {
        checkpoint: Arc<Checkpoint>,
    },
    StopRunByDelegate {
        checkpoint: Arc<Checkpoint>,
    },
    StopRunByInteractiveTool {
        checkpoint: Arc<Checkpoint>,
    },
    StopRunByCancel {
        checkpoint: Arc<Checkpoint>,
    },
    /// A breakpoint (or a `step`) stopped the run here until a control comes.
    Paused {
        #[serde(flatten)]
        point: PausePoint,
    },
    Resumed {
        control: Control,
    },
    /// A hand edit of the pending request was refused; nothing was sent and the run stays
    /// paused.
    RequestEditRefused {
        error: String,
    },
    /// A tool the provider ran itself during a generation (`providerTools`: web search, code
    /// execution), with its result. Run by the provider, never here: `tool_result` is what a
    /// person reads of it, `raw_result` the provider's own result as it came.
    ProviderToolCall {
        tool_call: ToolCall,
        tool_result: Box<ToolResult>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw_result: Option<Value>,
    },
    /// An upload to the job's remote store failed and will be retried; the object waits in the
    /// local spool meanwhile (`spooled` objects in all), so nothing is lost.
    StorageRetry {
        key: String,
        attempt: u64,
        error: String,
        spooled: u64,
    },
    /// One JSON-RPC frame between us and an MCP server, exactly as it crossed the wire (only
    /// with `--trace-mcp`, on by default in the workbench).
    McpFrame {
        skill_name: String,
        direction: crate::skills::mcp::wire::Direction,
        /// When the frame passed, in microseconds since the Unix epoch.
        at_us: u64,
        /// The frame's size in bytes (without the newline that ends it on stdio).
        bytes: u64,
        /// The exact text of the frame.
        frame: String,
        /// The JSON-RPC method, or for a response the method of the request it answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// The tool call the frame belongs to; none for the handshake and listings.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_call_id: Option<String>,
    },
}

impl EventKind {
    /// The event's `type` string.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::InitializeRuntime { .. } => "initializeRuntime",
            EventKind::SkillStarting { .. } => "skillStarting",
            EventKind::SkillConnected { .. } => "skillConnected",
            EventKind::SkillStderr { .. } => "skillStderr",
            EventKind::SkillDisconnected { .. } => "skillDisconnected",
            EventKind::SkillWarning { .. } => "skillWarning",
            EventKind::SandboxDenied { .. } => "sandboxDenied",
            EventKind::SandboxDisabled { .. } => "sandboxDisabled",
            EventKind::StartRun { .. } => "startRun",
            EventKind::StartGeneration { .. } => "startGeneration",
            EventKind::LlmRequest { .. } => "llmRequest",
            EventKind::StartStreamingReasoning => "startStreamingReasoning",
            EventKind::StreamReasoning { .. } => "streamReasoning",
            EventKind::CompleteStreamingReasoning { .. } => "completeStreamingReasoning",
            EventKind::StartStreamingRunResult => "startStreamingRunResult",
            EventKind::StreamRunResult { .. } => "streamRunResult",
            EventKind::CompleteStreamingRunResult { .. } => "completeStreamingRunResult",
            EventKind::CallTools { .. } => "callTools",
            EventKind::CallDelegate { .. } => "callDelegate",
            EventKind::CallInteractiveTool { .. } => "callInteractiveTool",
            EventKind::ToolCallTiming { .. } => "toolCallTiming",
            EventKind::ResolveToolResults { .. } => "resolveToolResults",
            EventKind::AttemptCompletion { .. } => "attemptCompletion",
            EventKind::FinishToolCall { .. } => "finishToolCall",
            EventKind::ContinueToNextStep { .. } => "continueToNextStep",
            EventKind::Retry { .. } => "retry",
            EventKind::CompleteRun { .. } => "completeRun",
            EventKind::StopRunByError { .. } => "stopRunByError",
            EventKind::StopRunByExceededMaxSteps { .. } => "stopRunByExceededMaxSteps",
            EventKind::StopRunByDelegate { .. } => "stopRunByDelegate",
            EventKind::StopRunByInteractiveTool { .. } => "stopRunByInteractiveTool",
            EventKind::StopRunByCancel { .. } => "stopRunByCancel",
            EventKind::Paused { .. } => "paused",
            EventKind::Resumed { .. } => "resumed",
            EventKind::RequestEditRefused { .. } => "requestEditRefused",
            EventKind::ProviderToolCall { .. } => "providerToolCall",
            EventKind::StorageRetry { .. } => "storageRetry",
            EventKind::McpFrame { .. } => "mcpFrame",
        }
    }

    /// Streaming deltas are shown live but not stored one file each.
    pub fn is_delta(&self) -> bool {
        matches!(
            self,
            EventKind::StreamReasoning { .. } | EventKind::StreamRunResult { .. }
        )
    }

    /// True for the events that end a run.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventKind::CompleteRun { .. }
                | EventKind::StopRunByError { .. }
                | EventKind::StopRunByExceededMaxSteps { .. }
                | EventKind::StopRunByDelegate { .. }
                | EventKind::StopRunByInteractiveTool { .. }
                | EventKind::StopRunByCancel { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_type_and_ids_flat() {
        let ids = RunIds {
            job_id: "j".into(),
            run_id: "r".into(),
            expert_key: "a".into(),
            parent_run_id: None,
        };
        let event = ids.event(3, EventKind::StreamRunResult { delta: "hi".into() });
        let json = serde_json::to_value(&event).expect("serialises");
        assert_eq!(json["type"], "streamRunResult");
        assert_eq!(json["jobId"], "j");
        assert_eq!(json["runId"], "r");
        assert_eq!(json["expertKey"], "a");
        assert_eq!(json["stepNumber"], 3);
        assert_eq!(json["delta"], "hi");
        assert!(json.get("parentRunId").is_none());
        let back: RunEvent = serde_json::from_value(json).expect("parses back");
        assert_eq!(back, event);
        assert_eq!(back.kind.name(), "streamRunResult");
        let unit = serde_json::to_value(ids.event(1, EventKind::StartStreamingRunResult))
            .expect("serialises");
        assert_eq!(unit["type"], "startStreamingRunResult");
        let denied = serde_json::to_value(ids.event(
            2,
            EventKind::SandboxDenied {
                skill_name: "s".into(),
                host: "evil.example".into(),
                port: 443,
            },
        ))
        .expect("serialises");
        assert_eq!(denied["type"], "sandboxDenied");
        assert_eq!(denied["skillName"], "s");
        assert_eq!(denied["host"], "evil.example");
        assert_eq!(denied["port"], 443);
    }
}
