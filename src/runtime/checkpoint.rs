//! Checkpoints and job records: what a job stores. Where and how they are stored is
//! [`crate::store`]; `Store` here is its filesystem store, under the name the runtime and the
//! workbench have always used.

use serde::{Deserialize, Serialize};

use super::frozen::Frozen;
use super::message::{Message, ToolCall, ToolResult};
use crate::skills::base::Todo;

pub use crate::store::{Durability, FsStore as Store, StoreError, write_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckpointStatus {
    Init,
    Proceeding,
    Completed,
    StoppedByInteractiveTool,
    StoppedByDelegate,
    StoppedByExceededMaxSteps,
    StoppedByError,
    /// Cancelled by the user (Ctrl-C, abort); resumable like any other stop.
    StoppedByCancel,
}

impl CheckpointStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Init | Self::Proceeding)
    }
}

#[derive(Debug, Clone, Default, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
    pub cached_input_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.total_tokens += other.total_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpertRef {
    pub key: String,
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegatedBy {
    pub expert: ExpertRef,
    pub tool_call_id: String,
    pub tool_name: String,
    pub checkpoint_id: String,
    pub run_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegateTo {
    pub expert: ExpertRef,
    pub tool_call_id: String,
    pub tool_name: String,
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointError {
    pub name: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub is_retryable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub id: String,
    pub job_id: String,
    pub run_id: String,
    pub status: CheckpointStatus,
    pub step_number: u64,
    /// Frozen: a checkpoint shares the messages of the one before it.
    pub messages: Vec<Frozen<Message>>,
    pub expert: ExpertRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_to: Option<Vec<DelegateTo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_by: Option<DelegatedBy>,
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_tool_results: Option<Vec<ToolResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CheckpointError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u64>,
    /// The base skill's todo list, so a resumed run keeps it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub todos: Vec<Todo>,
    /// The checkpoint this one continues from, when it was forked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<String>,
    /// Steps whose model request a person edited by hand before it was sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edited_requests: Vec<u64>,
}

impl Checkpoint {
    /// The first checkpoint of a run: step 1, nothing used yet.
    pub fn new(job_id: &str, run_id: &str, expert: ExpertRef, messages: Vec<Message>) -> Self {
        Checkpoint {
            id: super::id::new_id(),
            job_id: job_id.to_string(),
            run_id: run_id.to_string(),
            status: CheckpointStatus::Init,
            step_number: 1,
            messages: messages.into_iter().map(Frozen::new).collect(),
            expert,
            delegate_to: None,
            delegated_by: None,
            usage: Usage::default(),
            context_window: None,
            pending_tool_calls: None,
            partial_tool_results: None,
            error: None,
            retry_count: None,
            todos: Vec::new(),
            forked_from: None,
            edited_requests: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobStatus {
    Running,
    Completed,
    Stopped,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub status: JobStatus,
    pub coordinator_expert_key: String,
    pub total_steps: u64,
    pub max_steps: u64,
    pub usage: Usage,
    pub started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// The OpenTelemetry trace id of the job, when it was exported live (`--otel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}
