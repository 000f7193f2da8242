//! Writes checkpoints and events on a thread of their own, in the order they were produced, so a
//! step never waits for serialising events. Every file is written atomically; a crash loses at
//! most what was queued, never a file already written. A checkpoint is different: the step that
//! saves it waits until it (and everything queued before it) is written, so nothing reports a
//! step that a crash of the process could lose, and a step's tool calls never run again after a
//! crash once the next step has started. Putting the checkpoint on stable storage (fsync, which
//! can take tens of milliseconds) follows on a second thread, in order; a flush waits for it.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::checkpoint::{Checkpoint, Durability, Job, StoreError};
use super::event::RunEvent;
use crate::store::jobs::{checkpoint_key, run_dir_key};
use crate::store::refs::Deflater;
use crate::store::{JobStore as _, Store};

enum Write {
    /// A checkpoint the step has just written: later events may refer to it, it is to be
    /// synced, and the job record with its step count follows it.
    Checkpoint {
        checkpoint: Arc<Checkpoint>,
        record: Option<Box<Job>>,
        written: Result<(), StoreError>,
    },
    /// A checkpoint already in the store that a run continues from: its events may refer to it.
    Stored {
        run_id: String,
        checkpoint: Arc<Checkpoint>,
    },
    RunSetting {
        job_id: String,
        run_id: String,
        setting: serde_json::Value,
    },
    Event(Box<RunEvent>, u64),
    Flush(Sender<()>),
}

pub struct StoreWriter {
    store: Arc<dyn Store>,
    sender: Mutex<Option<Sender<Write>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    errors: Arc<Mutex<Vec<StoreError>>>,
}

impl StoreWriter {
    /// Starts the writer thread for `store` (any store: the writer is what keeps the network,
    /// if there is one, off the step's thread).
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = channel();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        let writer_store = store.clone();
        let thread = std::thread::Builder::new()
            .name("perstack-store".into())
            .spawn(move || write_all(writer_store, receiver, sink))
            .ok();
        StoreWriter {
            store,
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(thread),
            errors,
        }
    }

    /// Writes `checkpoint` at once, ahead of the events still queued (they may wait: none of
    /// them refers to it), and returns when it is in the store. Syncing it and writing
    /// `record`, the job's progress, follow on the writer's threads.
    pub async fn save_checkpoint(&self, checkpoint: Arc<Checkpoint>, record: Option<Job>) {
        let (store, to_write) = (self.store.clone(), checkpoint.clone());
        let key = checkpoint_key(&checkpoint.job_id, &checkpoint.id);
        let path = self.store.path_of(&key);
        let written = tokio::task::spawn_blocking(move || {
            store
                .write_json(&key, &*to_write, Durability::Atomic)
                .map(|_| ())
        })
        .await
        .unwrap_or_else(|err| {
            Err(StoreError::Write {
                path,
                source: std::io::Error::other(err),
            })
        });
        self.send(Write::Checkpoint {
            checkpoint,
            record: record.map(Box::new),
            written,
        });
    }

    /// `run_id` continues from `checkpoint`, which is in the store if the store says so.
    pub fn continues_from(&self, run_id: &str, checkpoint: Arc<Checkpoint>) {
        self.send(Write::Stored {
            run_id: run_id.to_string(),
            checkpoint,
        });
    }

    /// A run's settings, as `run-setting.json` (synced: it is written once per run).
    pub fn run_setting(&self, job_id: &str, run_id: &str, setting: serde_json::Value) {
        self.send(Write::RunSetting {
            job_id: job_id.to_string(),
            run_id: run_id.to_string(),
            setting,
        });
    }

    /// Stores `event`, the `seq`th the job emitted. Streaming deltas are not stored: the
    /// `complete*` event that follows holds their text.
    pub fn event(&self, event: &RunEvent, seq: u64) {
        if !event.kind.is_delta() {
            self.send(Write::Event(Box::new(event.clone()), seq));
        }
    }

    fn send(&self, write: Write) {
        if let Ok(sender) = self.sender.lock() {
            if let Some(sender) = sender.as_ref() {
                let _ = sender.send(write);
            }
        }
    }

    /// Waits until everything queued so far is on disk, logging what could not be
    /// written; later writes are still taken.
    pub fn flush(&self) {
        let (done, wait) = channel();
        self.send(Write::Flush(done));
        let _ = wait.recv();
        let errors = self
            .errors
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        for error in errors {
            tracing::warn!("{error}");
        }
    }

    /// Waits until everything queued is on disk; returns what could not be written. Later
    /// writes are refused.
    pub fn finish(&self) -> Vec<StoreError> {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
        self.errors
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        for error in self.finish() {
            tracing::warn!("{error}");
        }
    }
}

enum Sync {
    Key(String),
    Flush(Sender<()>),
}

fn write_all(
    store: Arc<dyn Store>,
    receiver: Receiver<Write>,
    errors: Arc<Mutex<Vec<StoreError>>>,
) {
    let (to_sync, syncs) = channel();
    let syncer = {
        let (store, errors) = (store.clone(), errors.clone());
        std::thread::Builder::new()
            .name("perstack-store-sync".into())
            .spawn(move || sync_all(&*store, syncs, &errors))
            .ok()
    };
    let mut deflater = Deflater::default();
    let mut names = EventNames::default();
    for write in receiver {
        let result = match write {
            Write::Flush(done) => {
                // Answered once everything before it is synced too.
                if syncer.is_none() || to_sync.send(Sync::Flush(done.clone())).is_err() {
                    let _ = done.send(());
                }
                Ok(())
            }
            Write::Checkpoint {
                checkpoint,
                record,
                written,
            } => {
                if written.is_ok() {
                    deflater.stored(&checkpoint.run_id, checkpoint.clone());
                    let key = checkpoint_key(&checkpoint.job_id, &checkpoint.id);
                    if syncer.is_none() || to_sync.send(Sync::Key(key.clone())).is_err() {
                        if let Err(error) = store.sync(&key) {
                            push(&errors, error);
                        }
                    }
                }
                let recorded = match record {
                    Some(job) => store.write_job_with(&job, Durability::Atomic),
                    None => Ok(()),
                };
                written.and(recorded)
            }
            Write::Stored { run_id, checkpoint } => {
                if store.has_checkpoint(&checkpoint.job_id, &checkpoint.id) {
                    deflater.stored(&run_id, checkpoint);
                }
                Ok(())
            }
            Write::RunSetting {
                job_id,
                run_id,
                setting,
            } => store.write_run_setting(&job_id, &run_id, &setting),
            Write::Event(event, seq) => match deflater.deflate(&event, seq) {
                Ok(stored) => store.write_event_repeat(
                    &event.job_id,
                    &event.run_id,
                    event.timestamp,
                    event.step_number,
                    event.kind.name(),
                    names.repeat(&event),
                    &stored,
                ),
                Err(source) => Err(StoreError::Write {
                    path: store.path_of(&run_dir_key(&event.job_id, &event.run_id)),
                    source: std::io::Error::other(source),
                }),
            },
        };
        if let Err(error) = result {
            push(&errors, error);
        }
    }
    drop(to_sync);
    if let Some(syncer) = syncer {
        let _ = syncer.join();
    }
}

/// At most one round of syncs in this time: every fsync makes the filesystem commit its
/// journal, and the step's own writes wait behind that commit; a round syncs all that came.
const SYNC_ROUND: std::time::Duration = std::time::Duration::from_millis(50);

fn sync_all(store: &dyn Store, syncs: Receiver<Sync>, errors: &Mutex<Vec<StoreError>>) {
    while let Ok(first) = syncs.recv() {
        let started = std::time::Instant::now();
        let mut round = vec![first];
        round.extend(syncs.try_iter());
        let (keys, flushes): (Vec<Sync>, Vec<Sync>) =
            round.into_iter().partition(|s| matches!(s, Sync::Key(_)));
        for sync in keys {
            if let Sync::Key(key) = sync {
                if let Err(error) = store.sync(&key) {
                    push(errors, error);
                }
            }
        }
        let flushed = !flushes.is_empty();
        for sync in flushes {
            if let Sync::Flush(done) = sync {
                let _ = done.send(());
            }
        }
        if !flushed {
            std::thread::sleep(SYNC_ROUND.saturating_sub(started.elapsed()));
        }
    }
}

fn push(errors: &Mutex<Vec<StoreError>>, error: StoreError) {
    if let Ok(mut errors) = errors.lock() {
        errors.push(error);
    }
}

/// The event file names used in the current millisecond, so a second event of the same run,
/// step and type in it gets a name of its own instead of overwriting the first.
#[derive(Default)]
struct EventNames {
    millisecond: u64,
    used: std::collections::HashMap<(String, u64, &'static str), u32>,
}

impl EventNames {
    fn repeat(&mut self, event: &RunEvent) -> u32 {
        if event.timestamp != self.millisecond {
            self.millisecond = event.timestamp;
            self.used.clear();
        }
        let count = self
            .used
            .entry((event.run_id.clone(), event.step_number, event.kind.name()))
            .or_insert(0);
        let repeat = *count;
        *count += 1;
        repeat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::event::{EventKind, RunIds};

    /// A writer on a filesystem store in a temporary directory (kept alive by the first
    /// value), and the ids of run `r` of job `j`.
    fn writer_on_disk() -> (
        tempfile::TempDir,
        crate::store::FsStore,
        StoreWriter,
        RunIds,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::store::FsStore::new(dir.path());
        let writer = StoreWriter::start(Arc::new(store.clone()));
        let ids = RunIds {
            job_id: "j".into(),
            run_id: "r".into(),
            expert_key: "a".into(),
            parent_run_id: None,
        };
        (dir, store, writer, ids)
    }

    #[test]
    fn everything_queued_is_written_by_finish() {
        let (_dir, store, writer, ids) = writer_on_disk();
        for step in 0..50 {
            writer.event(&ids.event(step, EventKind::StartStreamingRunResult), step);
            let delta = EventKind::StreamRunResult { delta: "x".into() };
            writer.event(&ids.event(step, delta), step);
        }
        assert!(writer.finish().is_empty());
        assert_eq!(store.events("j", "r").len(), 50, "deltas are not stored");
        writer.event(&ids.event(99, EventKind::StartStreamingRunResult), 99);
        assert!(writer.finish().is_empty());
        assert_eq!(
            store.events("j", "r").len(),
            50,
            "nothing is written after finish"
        );
    }

    #[test]
    fn events_of_one_name_in_one_millisecond_are_all_kept() {
        let (dir, store, writer, ids) = writer_on_disk();
        // Two model calls of one step with an instant model: same type, step and millisecond.
        for seq in 1..=3 {
            let mut event = ids.event(4, EventKind::StartStreamingRunResult);
            event.timestamp = 1_000;
            writer.event(&event, seq);
        }
        assert!(writer.finish().is_empty());
        assert_eq!(store.events("j", "r").len(), 3, "none overwrote another");
        let run_dir = dir.path().join("perstack/jobs/j/runs/r");
        for name in [
            "event-1000-4-startStreamingRunResult.json",
            "event-1000-4-startStreamingRunResult.1.json",
            "event-1000-4-startStreamingRunResult.2.json",
        ] {
            assert!(run_dir.join(name).exists(), "{name}");
        }
    }

    #[tokio::test]
    async fn a_checkpoint_is_written_when_its_save_returns_and_its_record_follows() {
        use crate::runtime::checkpoint::{ExpertRef, Job, JobStatus, Usage};
        let (_dir, store, writer, ids) = writer_on_disk();
        let expert = ExpertRef {
            key: "a".into(),
            name: "a".into(),
            version: "1.0.0".into(),
        };
        for step in 1..=20 {
            writer.event(&ids.event(step, EventKind::StartStreamingRunResult), step);
            let mut checkpoint = Checkpoint::new("j", "r", expert.clone(), Vec::new());
            checkpoint.step_number = step;
            let record = Job {
                id: "j".into(),
                status: JobStatus::Running,
                coordinator_expert_key: "a".into(),
                total_steps: step,
                max_steps: 100,
                usage: Usage::default(),
                started_at: 1,
                finished_at: None,
                trace_id: None,
            };
            let id = checkpoint.id.clone();
            writer
                .save_checkpoint(Arc::new(checkpoint), Some(record))
                .await;
            assert!(store.has_checkpoint("j", &id), "step {step}");
        }
        writer.flush();
        assert_eq!(store.events("j", "r").len(), 20);
        assert_eq!(store.read_job("j").expect("job.json").total_steps, 20);
        assert!(writer.finish().is_empty());
    }
}
