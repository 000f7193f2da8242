//! The filesystem store: Perstack's layout under `<workspace>/perstack/jobs`.
//!
//! Every file is written atomically (temp file, rename), so a crash at any instant leaves every
//! earlier file whole. Checkpoints, job and run records are also fsynced (file, then directory)
//! so they survive power loss; events, which a checkpoint can always rebuild, are not.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::jobs::{JobStore, checkpoint_key, run_dir_key, with_json};
use super::{Durability, Entry, Store, StoreError};
use crate::runtime::checkpoint::{Checkpoint, Job};

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

    /// A store whose jobs root is `jobs_dir` itself (a spool).
    pub fn at(jobs_dir: &Path) -> Self {
        FsStore {
            jobs_dir: jobs_dir.to_path_buf(),
        }
    }

    pub fn jobs_dir(&self) -> &Path {
        &self.jobs_dir
    }

    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.jobs_dir.join(job_id)
    }

    pub fn checkpoint_path(&self, job_id: &str, checkpoint_id: &str) -> PathBuf {
        self.path_of(&checkpoint_key(job_id, checkpoint_id))
    }

    pub fn run_dir(&self, job_id: &str, run_id: &str) -> PathBuf {
        self.path_of(&run_dir_key(job_id, run_id))
    }

    // The typed operations front ends have always called on this type, so they need not
    // import [`JobStore`].

    pub fn read_job(&self, job_id: &str) -> Result<Job, StoreError> {
        JobStore::read_job(self, job_id)
    }

    pub fn job_ids(&self) -> Vec<String> {
        JobStore::job_ids(self)
    }

    pub fn checkpoints(&self, job_id: &str) -> Vec<Checkpoint> {
        JobStore::checkpoints(self, job_id)
    }
}

impl Store for FsStore {
    fn location(&self) -> String {
        self.jobs_dir.display().to_string()
    }

    fn path_of(&self, key: &str) -> PathBuf {
        key.split('/')
            .filter(|part| !part.is_empty())
            .fold(self.jobs_dir.clone(), |path, part| path.join(part))
    }

    fn put(&self, key: &str, bytes: &[u8], durability: Durability) -> Result<(), StoreError> {
        let path = self.path_of(key);
        write_atomic(&path, bytes, durability).map_err(|source| StoreError::Write { path, source })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Read { path, source }),
        }
    }

    fn sync(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key);
        let synced = std::fs::File::open(&path)
            .and_then(|file| file.sync_all())
            .and_then(|()| match path.parent() {
                // The rename that made the file is durable only once its directory is synced.
                Some(dir) => std::fs::File::open(dir).and_then(|d| d.sync_all()),
                None => Ok(()),
            });
        synced.map_err(|source| StoreError::Write { path, source })
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.path_of(key).is_file())
    }

    fn list(&self, dir: &str) -> Result<Vec<Entry>, StoreError> {
        Ok(dir_entries(&self.path_of(dir))
            .into_iter()
            .filter(|(_, meta)| meta.is_file())
            .filter_map(|(name, meta)| {
                Some(Entry {
                    name,
                    modified: meta.modified().ok()?,
                })
            })
            .collect())
    }

    fn children(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        Ok(dir_entries(&self.path_of(dir))
            .into_iter()
            .filter(|(_, meta)| meta.is_dir())
            .map(|(name, _)| name)
            .collect())
    }
}

/// The visible entries of a directory (temp files start with a dot), sorted by name; none
/// when it does not exist.
fn dir_entries(dir: &Path) -> Vec<(String, std::fs::Metadata)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, std::fs::Metadata)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            (!name.starts_with('.')).then_some((name, meta))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Write JSON atomically to a path; returns the bytes written.
pub fn write_json(
    path: &Path,
    value: &impl Serialize,
    durability: Durability,
) -> Result<u64, StoreError> {
    with_json(
        value,
        |bytes| write_atomic(path, bytes, durability),
        std::io::Error::other,
    )
    .map_err(|source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    })
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
    use serde_json::Value;

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
        let names: Vec<String> = dir_entries(&dir.path().join("perstack/jobs/job1/checkpoints"))
            .into_iter()
            .map(|(name, _)| name)
            .collect();
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
