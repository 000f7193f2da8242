//! Checkpoints and the job store, in Perstack's layout:
//!
//! ```text
//! perstack/jobs/<jobId>/job.json
//! perstack/jobs/<jobId>/checkpoints/<checkpointId>.json
//! perstack/jobs/<jobId>/runs/<runId>/run-setting.json
//! perstack/jobs/<jobId>/runs/<runId>/event-<timestamp>-<step>-<type>.json
//! ```
//!
//! Every file is written atomically (temp file, rename), so a crash at any instant leaves every
//! earlier file whole. Checkpoints, job and run records are also fsynced (file, then directory)
//! so they survive power loss; events, which a checkpoint can always rebuild, are not.

use std::cell::Cell;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::frozen::Frozen;
use super::message::{Message, ToolCall, ToolResult};
use crate::skills::base::Todo;

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid {what}: {source}", path.display())]
    Parse {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("no checkpoint {id} in job {job_id}; list them with `perstack log --job {job_id}`")]
    NoCheckpoint { job_id: String, id: String },
    #[error("no job {0} under the store; list jobs with `perstack log`")]
    NoJob(String),
}

/// The files of all jobs, under `<root>/perstack/jobs`.
#[derive(Debug, Clone)]
pub struct Store {
    jobs_dir: PathBuf,
}

impl Store {
    /// `project_dir` is the directory of perstack.toml.
    pub fn new(project_dir: &Path) -> Self {
        Store {
            jobs_dir: project_dir.join("perstack").join("jobs"),
        }
    }

    pub fn jobs_dir(&self) -> &Path {
        &self.jobs_dir
    }

    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.jobs_dir.join(job_id)
    }

    pub fn checkpoint_path(&self, job_id: &str, checkpoint_id: &str) -> PathBuf {
        self.job_dir(job_id)
            .join("checkpoints")
            .join(format!("{checkpoint_id}.json"))
    }

    pub fn run_dir(&self, job_id: &str, run_id: &str) -> PathBuf {
        self.job_dir(job_id).join("runs").join(run_id)
    }

    pub fn write_job(&self, job: &Job) -> Result<(), StoreError> {
        write_json(
            &self.job_dir(&job.id).join("job.json"),
            job,
            Durability::Synced,
        )
        .map(|_| ())
    }

    pub fn read_job(&self, job_id: &str) -> Result<Job, StoreError> {
        let path = self.job_dir(job_id).join("job.json");
        if !path.exists() {
            return Err(StoreError::NoJob(job_id.to_string()));
        }
        read_json(&path, "job")
    }

    pub fn write_checkpoint(&self, checkpoint: &Checkpoint) -> Result<u64, StoreError> {
        write_json(
            &self.checkpoint_path(&checkpoint.job_id, &checkpoint.id),
            checkpoint,
            Durability::Synced,
        )
    }

    pub fn read_checkpoint(
        &self,
        job_id: &str,
        checkpoint_id: &str,
    ) -> Result<Checkpoint, StoreError> {
        let path = self.checkpoint_path(job_id, checkpoint_id);
        if !path.exists() {
            return Err(StoreError::NoCheckpoint {
                job_id: job_id.to_string(),
                id: checkpoint_id.to_string(),
            });
        }
        read_json(&path, "checkpoint")
    }

    pub fn write_run_setting(
        &self,
        job_id: &str,
        run_id: &str,
        setting: &serde_json::Value,
    ) -> Result<(), StoreError> {
        write_json(
            &self.run_dir(job_id, run_id).join("run-setting.json"),
            setting,
            Durability::Synced,
        )
        .map(|_| ())
    }

    /// One event a file, named so that a directory listing sorts them in order.
    pub fn write_event(
        &self,
        job_id: &str,
        run_id: &str,
        timestamp: u64,
        step: u64,
        kind: &str,
        event: &impl Serialize,
    ) -> Result<(), StoreError> {
        let name = format!("event-{timestamp}-{step}-{kind}.json");
        write_json(
            &self.run_dir(job_id, run_id).join(name),
            event,
            Durability::Atomic,
        )
        .map(|_| ())
    }

    /// Every job id, newest first.
    pub fn job_ids(&self) -> Vec<String> {
        let mut jobs: Vec<(u64, String)> = read_dir_names(&self.jobs_dir)
            .into_iter()
            .filter_map(|id| self.read_job(&id).ok().map(|job| (job.started_at, id)))
            .collect();
        jobs.sort_by(|a, b| b.cmp(a));
        jobs.into_iter().map(|(_, id)| id).collect()
    }

    /// Every readable checkpoint of a job, in the order they were written. A file that does not
    /// parse (there should be none) is skipped rather than hiding the rest.
    pub fn checkpoints(&self, job_id: &str) -> Vec<Checkpoint> {
        let dir = self.job_dir(job_id).join("checkpoints");
        let mut checkpoints: Vec<(std::time::SystemTime, Checkpoint)> = read_dir_names(&dir)
            .into_iter()
            .filter(|name| name.ends_with(".json"))
            .filter_map(|name| {
                let path = dir.join(&name);
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
                let checkpoint = read_json::<Checkpoint>(&path, "checkpoint").ok()?;
                Some((modified, checkpoint))
            })
            .collect();
        checkpoints.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.step_number.cmp(&b.1.step_number)));
        checkpoints.into_iter().map(|(_, c)| c).collect()
    }

    /// The stored events of a run, in order, as JSON values.
    pub fn events(&self, job_id: &str, run_id: &str) -> Vec<serde_json::Value> {
        let dir = self.run_dir(job_id, run_id);
        let mut names: Vec<String> = read_dir_names(&dir)
            .into_iter()
            .filter(|n| n.starts_with("event-") && n.ends_with(".json"))
            .collect();
        names.sort_by_key(|name| event_order(name));
        names
            .into_iter()
            .filter_map(|name| read_json(&dir.join(name), "event").ok())
            .collect()
    }

    pub fn run_ids(&self, job_id: &str) -> Vec<String> {
        read_dir_names(&self.job_dir(job_id).join("runs"))
    }
}

fn event_order(name: &str) -> (u64, u64, String) {
    let mut parts = name.trim_start_matches("event-").splitn(3, '-');
    let timestamp = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    let step = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (timestamp, step, name.to_string())
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, StoreError> {
    let bytes = std::fs::read(path).map_err(|source| StoreError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
        path: path.to_path_buf(),
        what,
        source,
    })
}

/// How hard a write tries to survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Whole or absent after a process crash (rename is atomic); may be lost on power loss.
    Atomic,
    /// Also flushed to the disk before the rename: survives power loss too.
    Synced,
}

thread_local! {
    /// The buffer of the last write, kept for the next one on the same thread: the store
    /// writer's thread writes every event and checkpoint, and growing a fresh buffer to a late
    /// step's size each time costs about as much as filling it.
    static WRITE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer larger than this (a rare huge file) is not kept.
const KEPT_BUFFER_BYTES: usize = 16 << 20;

/// Write JSON atomically; returns the bytes written.
pub fn write_json(
    path: &Path,
    value: &impl Serialize,
    durability: Durability,
) -> Result<u64, StoreError> {
    let mut bytes = WRITE_BUFFER.take();
    bytes.clear();
    let written = serde_json::to_writer(&mut bytes, value)
        .map_err(std::io::Error::other)
        .and_then(|()| write_atomic(path, &bytes, durability))
        .map(|()| bytes.len() as u64)
        .map_err(|source| StoreError::Write {
            path: path.to_path_buf(),
            source,
        });
    if bytes.capacity() <= KEPT_BUFFER_BYTES {
        WRITE_BUFFER.set(bytes);
    }
    written
}

fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.tmp", super::id::new_id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        if durability == Durability::Atomic {
            return std::fs::rename(&temp, path);
        }
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample(job: &str, id: &str, step: u64) -> Checkpoint {
        let expert = ExpertRef {
            key: "a".into(),
            name: "a".into(),
            version: "1.0.0".into(),
        };
        let messages = vec![Message::instruction("be brief"), Message::user("hi")];
        Checkpoint {
            id: id.into(),
            status: CheckpointStatus::Proceeding,
            step_number: step,
            ..Checkpoint::new(job, "run1", expert, messages)
        }
    }

    #[test]
    fn checkpoints_round_trip_in_perstack_layout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::new(dir.path());
        let checkpoint = sample("job1", "cp1", 1);
        let bytes = store.write_checkpoint(&checkpoint).expect("write");
        assert!(bytes > 0);
        let path = dir.path().join("perstack/jobs/job1/checkpoints/cp1.json");
        assert!(path.is_file());
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        assert_eq!(json["jobId"], "job1");
        assert_eq!(json["stepNumber"], 1);
        assert_eq!(json["status"], "proceeding");
        assert_eq!(json["messages"][0]["type"], "instructionMessage");
        assert_eq!(
            store.read_checkpoint("job1", "cp1").expect("read"),
            checkpoint
        );
        assert!(matches!(
            store.read_checkpoint("job1", "nope"),
            Err(StoreError::NoCheckpoint { .. })
        ));
        // No temp file is left behind.
        let names = read_dir_names(&dir.path().join("perstack/jobs/job1/checkpoints"));
        assert_eq!(names, vec!["cp1.json".to_string()]);
    }

    #[test]
    fn checkpoints_list_in_write_order_and_skip_garbage() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::new(dir.path());
        for (i, id) in ["b", "a", "c"].iter().enumerate() {
            store
                .write_checkpoint(&sample("j", id, i as u64))
                .expect("write");
        }
        std::fs::write(store.checkpoint_path("j", "broken"), b"{not json").expect("write");
        let steps: Vec<u64> = store
            .checkpoints("j")
            .iter()
            .map(|c| c.step_number)
            .collect();
        assert_eq!(steps, vec![0, 1, 2]);
    }

    #[test]
    fn events_are_read_back_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::new(dir.path());
        for (t, kind) in [(20, "callTools"), (10, "startRun"), (30, "completeRun")] {
            store
                .write_event("j", "r", t, 1, kind, &serde_json::json!({"type": kind}))
                .expect("write");
        }
        let kinds: Vec<String> = store
            .events("j", "r")
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(kinds, vec!["startRun", "callTools", "completeRun"]);
    }
}
