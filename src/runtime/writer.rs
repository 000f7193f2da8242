//! Writes checkpoints and events on a thread of their own, in the order they were produced, so a
//! step never waits for serialising events. Every file is written atomically; a crash loses at
//! most what was queued, never a file already written. A checkpoint is different: the step that
//! saves it waits until it (and everything queued before it) is on disk, so nothing reports a
//! step that a crash could lose, and a step's tool calls never run again after a crash once the
//! next step has started.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::checkpoint::{Checkpoint, Durability, Job, Store, StoreError};
use super::event::RunEvent;
use crate::store::JobStore as _;
use crate::store::refs::Deflater;

enum Write {
    Checkpoint {
        checkpoint: Arc<Checkpoint>,
        /// The job record with its step count, kept with the checkpoint.
        record: Option<Box<Job>>,
        saved: oneshot::Sender<()>,
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
    sender: Mutex<Option<Sender<Write>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    errors: Arc<Mutex<Vec<StoreError>>>,
}

impl StoreWriter {
    pub fn start(store: Store) -> Self {
        let (sender, receiver) = channel();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        let thread = std::thread::Builder::new()
            .name("perstack-store".into())
            .spawn(move || write_all(&store, receiver, &sink))
            .ok();
        StoreWriter {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(thread),
            errors,
        }
    }

    /// Queues `checkpoint` (and then `record`, the job's progress); the receiver answers once
    /// both are on disk, or as soon as the writer is gone.
    pub fn checkpoint(
        &self,
        checkpoint: Arc<Checkpoint>,
        record: Option<Job>,
    ) -> oneshot::Receiver<()> {
        let (saved, on_disk) = oneshot::channel();
        self.send(Write::Checkpoint {
            checkpoint,
            record: record.map(Box::new),
            saved,
        });
        on_disk
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

fn write_all(store: &Store, receiver: Receiver<Write>, errors: &Mutex<Vec<StoreError>>) {
    let mut deflater = Deflater::default();
    for write in receiver {
        let result = match write {
            Write::Flush(done) => {
                let _ = done.send(());
                Ok(())
            }
            Write::Checkpoint {
                checkpoint,
                record,
                saved,
            } => {
                let written = store.write_checkpoint(&checkpoint).map(|_| ());
                if written.is_ok() {
                    deflater.stored(&checkpoint.run_id, checkpoint.clone());
                }
                let recorded = match record {
                    Some(job) => store.write_job_with(&job, Durability::Atomic),
                    None => Ok(()),
                };
                let _ = saved.send(());
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
                Ok(stored) => store.write_event(
                    &event.job_id,
                    &event.run_id,
                    event.timestamp,
                    event.step_number,
                    event.kind.name(),
                    &stored,
                ),
                Err(source) => Err(StoreError::Write {
                    path: store.run_dir(&event.job_id, &event.run_id),
                    source: std::io::Error::other(source),
                }),
            },
        };
        if let Err(error) = result {
            if let Ok(mut errors) = errors.lock() {
                errors.push(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::event::{EventKind, RunIds};

    #[test]
    fn everything_queued_is_written_by_finish() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::new(dir.path());
        let writer = StoreWriter::start(store.clone());
        let ids = RunIds {
            job_id: "j".into(),
            run_id: "r".into(),
            expert_key: "a".into(),
            parent_run_id: None,
        };
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
}
