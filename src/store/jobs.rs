//! Jobs, checkpoints and events on any [`Store`]: the typed layer the runtime's writer,
//! `perstack log`, `perstack jobs`, `run --continue*` and a follower read and write through.
//!
//! Keys are Perstack's layout below the jobs root: `<jobId>/job.json`,
//! `<jobId>/checkpoints/<checkpointId>.json`, `<jobId>/runs/<runId>/run-setting.json` and
//! `<jobId>/runs/<runId>/event-<timestamp>-<step>-<type>.json`.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::refs::{self, Inflater};
use super::{Durability, Store, StoreError};
use crate::runtime::checkpoint::{Checkpoint, CheckpointStatus, Job};
use crate::runtime::event::RunEvent;

pub fn job_key(job_id: &str) -> String {
    format!("{job_id}/job.json")
}

pub fn checkpoint_key(job_id: &str, checkpoint_id: &str) -> String {
    format!("{job_id}/checkpoints/{checkpoint_id}.json")
}

pub fn run_dir_key(job_id: &str, run_id: &str) -> String {
    format!("{job_id}/runs/{run_id}")
}

/// Perstack's `event-<time>-<step>-<type>.json`. A second event of the same type, step and
/// millisecond in a run (two model calls of one step with an instant model) is
/// `event-<time>-<step>-<type>.<n>.json`, so neither overwrites the other.
pub fn event_key(
    job_id: &str,
    run_id: &str,
    timestamp: u64,
    step: u64,
    kind: &str,
    repeat: u32,
) -> String {
    let dir = run_dir_key(job_id, run_id);
    match repeat {
        0 => format!("{dir}/event-{timestamp}-{step}-{kind}.json"),
        n => format!("{dir}/event-{timestamp}-{step}-{kind}.{n}.json"),
    }
}

thread_local! {
    /// The buffer of the last write, kept for the next one on the same thread: the store
    /// writer's thread writes every event and checkpoint, and growing a fresh buffer to a late
    /// step's size each time costs about as much as filling it.
    static WRITE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer larger than this (a rare huge file) is not kept.
const KEPT_BUFFER_BYTES: usize = 16 << 20;

/// Serialises `value` into the thread's buffer and hands the bytes to `write`; returns how many.
pub(super) fn with_json<E>(
    value: &impl Serialize,
    write: impl FnOnce(&[u8]) -> Result<(), E>,
    serialise_error: impl FnOnce(serde_json::Error) -> E,
) -> Result<u64, E> {
    let mut bytes = WRITE_BUFFER.take();
    bytes.clear();
    let written = match serde_json::to_writer(&mut bytes, value) {
        Ok(()) => write(&bytes).map(|()| bytes.len() as u64),
        Err(err) => Err(serialise_error(err)),
    };
    if bytes.capacity() <= KEPT_BUFFER_BYTES {
        WRITE_BUFFER.set(bytes);
    }
    written
}

/// The typed operations every store has. Implemented for every [`Store`].
pub trait JobStore: Store {
    fn write_json(
        &self,
        key: &str,
        value: &impl Serialize,
        durability: Durability,
    ) -> Result<u64, StoreError> {
        with_json(
            value,
            |bytes| self.put(key, bytes, durability),
            |err| self.error_writing(key, std::io::Error::other(err)),
        )
    }

    /// `None` when there is no such object.
    fn read_json<T: DeserializeOwned>(
        &self,
        key: &str,
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.get(key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Parse {
                path: self.path_of(key),
                what,
                source,
            })
    }

    fn write_job(&self, job: &Job) -> Result<(), StoreError> {
        self.write_job_with(job, Durability::Synced)
    }

    /// The job record; `Atomic` for the running count kept with each checkpoint (the
    /// checkpoints themselves are the synced truth, see [`JobStore::steps_used`]).
    fn write_job_with(&self, job: &Job, durability: Durability) -> Result<(), StoreError> {
        self.write_json(&job_key(&job.id), job, durability)
            .map(|_| ())
    }

    fn read_job(&self, job_id: &str) -> Result<Job, StoreError> {
        self.read_json(&job_key(job_id), "job")?
            .ok_or_else(|| StoreError::NoJob(job_id.to_string()))
    }

    fn write_checkpoint(&self, checkpoint: &Checkpoint) -> Result<u64, StoreError> {
        self.write_json(
            &checkpoint_key(&checkpoint.job_id, &checkpoint.id),
            checkpoint,
            Durability::Synced,
        )
    }

    fn read_checkpoint(&self, job_id: &str, checkpoint_id: &str) -> Result<Checkpoint, StoreError> {
        self.read_json(&checkpoint_key(job_id, checkpoint_id), "checkpoint")?
            .ok_or_else(|| StoreError::NoCheckpoint {
                job_id: job_id.to_string(),
                id: checkpoint_id.to_string(),
            })
    }

    fn has_checkpoint(&self, job_id: &str, checkpoint_id: &str) -> bool {
        self.exists(&checkpoint_key(job_id, checkpoint_id))
            .unwrap_or(false)
    }

    fn write_run_setting(
        &self,
        job_id: &str,
        run_id: &str,
        setting: &Value,
    ) -> Result<(), StoreError> {
        let key = format!("{}/run-setting.json", run_dir_key(job_id, run_id));
        self.write_json(&key, setting, Durability::Synced)
            .map(|_| ())
    }

    /// One event an object, named as Perstack names it.
    fn write_event(
        &self,
        job_id: &str,
        run_id: &str,
        timestamp: u64,
        step: u64,
        kind: &str,
        event: &impl Serialize,
    ) -> Result<(), StoreError> {
        self.write_event_repeat(job_id, run_id, timestamp, step, kind, 0, event)
    }

    /// [`JobStore::write_event`] for the `repeat`-th event of the same name (see [`event_key`]).
    #[allow(clippy::too_many_arguments)]
    fn write_event_repeat(
        &self,
        job_id: &str,
        run_id: &str,
        timestamp: u64,
        step: u64,
        kind: &str,
        repeat: u32,
        event: &impl Serialize,
    ) -> Result<(), StoreError> {
        let key = event_key(job_id, run_id, timestamp, step, kind, repeat);
        self.write_json(&key, event, Durability::Atomic).map(|_| ())
    }

    /// Every job record, newest first. A job without a readable job.json is left out.
    fn jobs(&self) -> Vec<Job> {
        self.jobs_of(&self.children("").unwrap_or_default())
    }

    /// The records of the jobs `ids`, newest first (fetched at once from a remote store).
    fn jobs_of(&self, ids: &[String]) -> Vec<Job> {
        let keys: Vec<String> = ids.iter().map(|id| job_key(id)).collect();
        let mut jobs: Vec<Job> = self
            .get_many(&keys)
            .into_iter()
            .filter_map(|bytes| serde_json::from_slice(&bytes.ok()??).ok())
            .collect();
        jobs.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
        jobs
    }

    /// Every job id, newest first.
    fn job_ids(&self) -> Vec<String> {
        self.jobs().into_iter().map(|job| job.id).collect()
    }

    fn run_ids(&self, job_id: &str) -> Vec<String> {
        self.children(&format!("{job_id}/runs")).unwrap_or_default()
    }

    /// Every readable checkpoint of a job, in the order they were written. An object that
    /// does not parse (there should be none) is skipped rather than hiding the rest.
    fn checkpoints(&self, job_id: &str) -> Vec<Checkpoint> {
        let dir = format!("{job_id}/checkpoints");
        let entries: Vec<super::Entry> = self
            .list(&dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| entry.name.ends_with(".json"))
            .collect();
        let keys: Vec<String> = entries
            .iter()
            .map(|entry| format!("{dir}/{}", entry.name))
            .collect();
        let mut checkpoints: Vec<(std::time::SystemTime, Checkpoint)> = entries
            .iter()
            .zip(self.get_many(&keys))
            .filter_map(|(entry, bytes)| {
                let checkpoint = serde_json::from_slice(&bytes.ok()??).ok()?;
                Some((entry.modified, checkpoint))
            })
            .collect();
        checkpoints.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.step_number.cmp(&b.1.step_number)));
        checkpoints.into_iter().map(|(_, c)| c).collect()
    }

    /// The stored events of a run, in the order they were emitted, each exactly as `perstack
    /// run` printed it (see [`refs`]). An event that cannot be read or made whole is skipped
    /// with a warning rather than hiding the rest.
    fn events(&self, job_id: &str, run_id: &str) -> Vec<Value> {
        self.ordered_events(job_id, run_id)
            .into_iter()
            .map(|(_, event)| event)
            .collect()
    }

    /// The stored events of a run, whole, with the key that orders them across the runs of
    /// a job: merge runs by it to get the job's events in emission order.
    fn ordered_events(&self, job_id: &str, run_id: &str) -> Vec<(u64, Value)> {
        let mut follower = Follower::new(job_id);
        follower.poll_run(self, run_id)
    }

    /// Every event of a job (all runs, or only `run`), whole, in the order they were emitted.
    fn job_events(&self, job_id: &str, run: Option<&str>) -> Vec<Value> {
        let mut events: Vec<(u64, Value)> = self
            .run_ids(job_id)
            .iter()
            .filter(|id| run.is_none_or(|wanted| wanted == id.as_str()))
            .flat_map(|id| self.ordered_events(job_id, id))
            .collect();
        events.sort_by_key(|(key, _)| *key);
        events.into_iter().map(|(_, event)| event).collect()
    }

    /// The stored events of a run as the runtime emitted them (what the workbench receives
    /// live), in order.
    fn run_events(&self, job_id: &str, run_id: &str) -> Vec<RunEvent> {
        self.events(job_id, run_id)
            .into_iter()
            .filter_map(|value| serde_json::from_value(value).ok())
            .collect()
    }

    /// The steps a job has used, counted from its stored checkpoints: one for each step of each
    /// run that has a checkpoint past its start. A fork's steps are its own, not the job's.
    /// Unlike job.json, which a crash can leave behind, this is exactly what is stored.
    fn steps_used(&self, job_id: &str) -> u64 {
        let steps: BTreeSet<(String, u64)> = self
            .checkpoints(job_id)
            .into_iter()
            .filter(|c| c.status != CheckpointStatus::Init && c.forked_from.is_none())
            .map(|c| (c.run_id, c.step_number))
            .collect();
        steps.len() as u64
    }
}

impl<S: Store + ?Sized> JobStore for S {}

/// Follows a job as it is written, by polling: each [`Follower::poll`] gives the events
/// stored since the last one, whole, in the order they were emitted. Works on any store, so a
/// job running on another machine can be watched while it runs.
pub struct Follower {
    job_id: String,
    seen: HashSet<String>,
    /// Per run: an `llmRequest` refers to the run's previous one.
    inflaters: HashMap<String, Inflater>,
    messages: HashMap<String, Option<Arc<Vec<Value>>>>,
}

impl Follower {
    pub fn new(job_id: &str) -> Self {
        Follower {
            job_id: job_id.to_string(),
            seen: HashSet::new(),
            inflaters: HashMap::new(),
            messages: HashMap::new(),
        }
    }

    /// The job's events stored since the last poll (all of them the first time).
    pub fn poll(&mut self, store: &(impl Store + ?Sized)) -> Vec<Value> {
        let mut events: Vec<(u64, Value)> = store
            .run_ids(&self.job_id)
            .iter()
            .flat_map(|run| self.poll_run(store, run))
            .collect();
        events.sort_by_key(|(key, _)| *key);
        events.into_iter().map(|(_, event)| event).collect()
    }

    fn poll_run(&mut self, store: &(impl Store + ?Sized), run_id: &str) -> Vec<(u64, Value)> {
        let dir = run_dir_key(&self.job_id, run_id);
        let fresh: Vec<String> = store
            .list(&dir)
            .unwrap_or_default()
            .into_iter()
            .map(|entry| format!("{dir}/{}", entry.name))
            .filter(|key| is_event_key(key) && !self.seen.contains(key))
            .collect();
        let mut events: Vec<(u64, String, Value)> = fresh
            .into_iter()
            .filter_map(|key| {
                let value: Value = store.read_json(&key, "event").ok()??;
                Some((refs::order_key(&value), key, value))
            })
            .collect();
        events.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let inflater = self.inflaters.entry(run_id.to_string()).or_default();
        let (job_id, messages) = (&self.job_id, &mut self.messages);
        let mut whole = Vec::with_capacity(events.len());
        for (order, key, mut value) in events {
            let mut messages_of = |id: &str| {
                messages
                    .entry(id.to_string())
                    .or_insert_with(|| stored_messages(store, job_id, id))
                    .clone()
            };
            match inflater.inflate(&mut value, &mut messages_of) {
                Ok(()) => whole.push((order, value)),
                Err(err) => tracing::warn!("{} skipped: {err}", store.path_of(&key).display()),
            }
            self.seen.insert(key);
        }
        whole
    }
}

fn is_event_key(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or_default();
    name.starts_with("event-") && name.ends_with(".json")
}

/// The stored message list of a checkpoint, for making events whole.
fn stored_messages(
    store: &(impl Store + ?Sized),
    job_id: &str,
    checkpoint_id: &str,
) -> Option<Arc<Vec<Value>>> {
    let mut checkpoint: Value = store
        .read_json(&checkpoint_key(job_id, checkpoint_id), "checkpoint")
        .ok()??;
    match checkpoint.get_mut("messages").map(Value::take) {
        Some(Value::Array(messages)) => Some(Arc::new(messages)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FsStore;

    fn event(store: &FsStore, run: &str, kind: &str, seq: u64) {
        let value = serde_json::json!({"type": kind, "timestamp": 7, "seq": seq});
        store
            .write_event("j", run, 7, 1, kind, &value)
            .expect("write");
    }

    fn kinds(events: &[Value]) -> Vec<&str> {
        events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_follower_gets_each_new_event_once_in_emission_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsStore::new(dir.path());
        let mut follower = Follower::new("j");
        assert!(follower.poll(&store).is_empty(), "nothing stored yet");
        event(&store, "r", "startRun", 1);
        event(&store, "r", "startGeneration", 2);
        assert_eq!(
            kinds(&follower.poll(&store)),
            ["startRun", "startGeneration"]
        );
        event(&store, "d", "startRun", 3);
        event(&store, "r", "callDelegate", 4);
        event(&store, "r", "completeRun", 5);
        assert_eq!(
            kinds(&follower.poll(&store)),
            ["startRun", "callDelegate", "completeRun"]
        );
        assert!(follower.poll(&store).is_empty(), "nothing new");
    }

    #[test]
    fn jobs_are_listed_newest_first_with_their_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsStore::new(dir.path());
        for (id, started_at) in [("old", 1), ("new", 3), ("mid", 2)] {
            let job = Job {
                id: id.into(),
                status: crate::runtime::checkpoint::JobStatus::Completed,
                coordinator_expert_key: "a".into(),
                total_steps: started_at,
                max_steps: 10,
                usage: Default::default(),
                started_at,
                finished_at: None,
                trace_id: None,
            };
            store.write_job(&job).expect("write");
        }
        std::fs::create_dir_all(store.job_dir("no-record")).expect("dir");
        let ids: Vec<String> = store.jobs().into_iter().map(|j| j.id).collect();
        assert_eq!(ids, ["new", "mid", "old"]);
    }
}
