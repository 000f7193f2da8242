//! The filesystem store: Perstack's layout under `<workspace>/perstack/jobs`.
//!
//! Every file is written atomically (temp file, rename), so a crash at any instant leaves every
//! earlier file whole. Checkpoints, job and run records are also fsynced (file, then directory)
//! so they survive power loss; events, which a checkpoint can always rebuild, are not.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::StoreError;
use super::refs;
use crate::runtime::checkpoint::{Checkpoint, CheckpointStatus, Job};
use crate::runtime::event::RunEvent;

/// The files of all jobs, under `<root>/perstack/jobs`.
#[derive(Debug, Clone)]
pub struct FsStore {
    jobs_dir: PathBuf,
}

impl FsStore {
    /// `project_dir` is the directory of perstack.toml.
    pub fn new(project_dir: &Path) -> Self {
        FsStore {
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
        self.write_job_with(job, Durability::Synced)
    }

    /// The job record; `Atomic` for the running count kept with each checkpoint (the
    /// checkpoints themselves are the synced truth, see [`FsStore::steps_used`]).
    pub fn write_job_with(&self, job: &Job, durability: Durability) -> Result<(), StoreError> {
        write_json(&self.job_dir(&job.id).join("job.json"), job, durability).map(|_| ())
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

    /// The stored events of a run, in the order they were emitted, each exactly as `perstack
    /// run` printed it (see [`refs`]). An event that cannot be read or made whole is skipped
    /// with a warning rather than hiding the rest.
    pub fn events(&self, job_id: &str, run_id: &str) -> Vec<Value> {
        self.ordered_events(job_id, run_id)
            .into_iter()
            .map(|(_, event)| event)
            .collect()
    }

    /// The stored events of a run, whole, with the key that orders them across the runs of
    /// a job: merge runs by it to get the job's events in emission order.
    pub fn ordered_events(&self, job_id: &str, run_id: &str) -> Vec<(u64, Value)> {
        let dir = self.run_dir(job_id, run_id);
        let names = read_dir_names(&dir)
            .into_iter()
            .filter(|n| n.starts_with("event-") && n.ends_with(".json"));
        let mut events: Vec<(u64, String, Value)> = names
            .filter_map(|name| {
                let value: Value = read_json(&dir.join(&name), "event").ok()?;
                Some((refs::order_key(&value), name, value))
            })
            .collect();
        events.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let mut messages = MessageCache::new(self, job_id);
        let mut inflater = refs::Inflater::default();
        events
            .into_iter()
            .filter_map(|(key, name, mut value)| {
                match inflater.inflate(&mut value, &mut |id| messages.get(id)) {
                    Ok(()) => Some((key, value)),
                    Err(err) => {
                        tracing::warn!("{} skipped: {err}", dir.join(name).display());
                        None
                    }
                }
            })
            .collect()
    }

    /// Every event of a job (all runs, or only `run`), whole, in the order they were emitted.
    pub fn job_events(&self, job_id: &str, run: Option<&str>) -> Vec<Value> {
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
    pub fn run_events(&self, job_id: &str, run_id: &str) -> Vec<RunEvent> {
        self.events(job_id, run_id)
            .into_iter()
            .filter_map(|value| serde_json::from_value(value).ok())
            .collect()
    }

    pub fn has_checkpoint(&self, job_id: &str, checkpoint_id: &str) -> bool {
        self.checkpoint_path(job_id, checkpoint_id).is_file()
    }

    /// The steps a job has used, counted from its stored checkpoints: one for each step of each
    /// run that has a checkpoint past its start. A fork's steps are its own, not the job's.
    /// Unlike job.json, which a crash can leave behind, this is exactly what is on disk.
    pub fn steps_used(&self, job_id: &str) -> u64 {
        let steps: BTreeSet<(String, u64)> = self
            .checkpoints(job_id)
            .into_iter()
            .filter(|c| c.status != CheckpointStatus::Init && c.forked_from.is_none())
            .map(|c| (c.run_id, c.step_number))
            .collect();
        steps.len() as u64
    }

    pub fn run_ids(&self, job_id: &str) -> Vec<String> {
        read_dir_names(&self.job_dir(job_id).join("runs"))
    }
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

/// The message lists of a job's checkpoints, each read once, for making events whole.
struct MessageCache<'a> {
    store: &'a FsStore,
    job_id: &'a str,
    read: HashMap<String, Option<Arc<Vec<Value>>>>,
}

impl<'a> MessageCache<'a> {
    fn new(store: &'a FsStore, job_id: &'a str) -> Self {
        MessageCache {
            store,
            job_id,
            read: HashMap::new(),
        }
    }

    fn get(&mut self, checkpoint_id: &str) -> Option<Arc<Vec<Value>>> {
        if let Some(found) = self.read.get(checkpoint_id) {
            return found.clone();
        }
        let path = self.store.checkpoint_path(self.job_id, checkpoint_id);
        let messages = read_json::<Value>(&path, "checkpoint")
            .ok()
            .and_then(|mut c| match c.get_mut("messages").map(Value::take) {
                Some(Value::Array(messages)) => Some(Arc::new(messages)),
                _ => None,
            });
        self.read
            .insert(checkpoint_id.to_string(), messages.clone());
        messages
    }
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
    let temp = dir.join(format!(".{file_name}.{}.tmp", crate::runtime::id::new_id()));
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
    use crate::runtime::checkpoint::{CheckpointStatus, ExpertRef};
    use crate::runtime::message::Message;

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
        let store = FsStore::new(dir.path());
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
        let store = FsStore::new(dir.path());
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
        let store = FsStore::new(dir.path());
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

    #[test]
    fn events_of_one_millisecond_keep_the_order_they_were_emitted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsStore::new(dir.path());
        // By file name `completeRun` sorts before `startStreamingRunResult`; `seq` decides.
        let emitted = [
            ("r", "startStreamingRunResult", 10),
            ("r2", "callTools", 11),
            ("r", "completeStreamingRunResult", 12),
            ("r", "completeRun", 13),
        ];
        for (run, kind, seq) in emitted {
            let event = serde_json::json!({"type": kind, "timestamp": 5, "seq": seq});
            store
                .write_event("j", run, 5, 1, kind, &event)
                .expect("write");
        }
        let kinds = |events: Vec<Value>| -> Vec<String> {
            events
                .iter()
                .map(|e| e["type"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(
            kinds(store.job_events("j", None)),
            vec![
                "startStreamingRunResult",
                "callTools",
                "completeStreamingRunResult",
                "completeRun"
            ]
        );
        assert_eq!(
            kinds(store.events("j", "r")),
            vec![
                "startStreamingRunResult",
                "completeStreamingRunResult",
                "completeRun"
            ]
        );
        assert!(
            store
                .events("j", "r")
                .iter()
                .all(|e| e.get("seq").is_none()),
            "read back as printed, without the sequence number"
        );
    }

    #[test]
    fn steps_used_counts_each_stored_step_once_and_not_a_forks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsStore::new(dir.path());
        let mut init = sample("j", "c0", 1);
        init.status = CheckpointStatus::Init;
        store.write_checkpoint(&init).expect("write");
        for step in 1..=3 {
            store
                .write_checkpoint(&sample("j", &format!("c{step}"), step))
                .expect("write");
        }
        // A run continued after a stop writes its stopped step again.
        store
            .write_checkpoint(&sample("j", "again", 3))
            .expect("write");
        let mut fork = sample("j", "f4", 4);
        fork.run_id = "fork".into();
        fork.forked_from = Some("c3".into());
        store.write_checkpoint(&fork).expect("write");
        assert_eq!(store.steps_used("j"), 3);
    }
}
