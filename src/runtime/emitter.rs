//! The one road every event of a run takes: to the store (through the writer thread) and to
//! whoever watches the job (the workbench or JSONL on stdout), in that order. Nothing else in
//! the runtime sends an event. Each event is numbered as it goes, so the store keeps the order
//! the watcher saw even for events of one millisecond.

use std::sync::Arc;

use super::event::{EventKind, RunIds};
use super::job::JobContext;

#[derive(Clone)]
pub(crate) struct Emitter {
    job: Arc<JobContext>,
    ids: RunIds,
}

impl Emitter {
    pub(crate) fn new(job: Arc<JobContext>, ids: RunIds) -> Self {
        Emitter { job, ids }
    }

    pub(crate) fn emit(&self, step: u64, kind: EventKind) {
        let event = self.ids.event(step, kind);
        // Numbering and sending under one lock: runs of a job emit from several tasks, and the
        // stored order must be the order the watcher receives.
        let mut seq = self
            .job
            .sequence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *seq += 1;
        self.job.writer.event(&event, *seq);
        let _ = self.job.events.send(event);
        // Failed uploads of a remote store are said with the run's next event.
        for retry in self.job.storage_retries() {
            let event = self.ids.event(step, retry);
            *seq += 1;
            self.job.writer.event(&event, *seq);
            let _ = self.job.events.send(event);
        }
    }
}
