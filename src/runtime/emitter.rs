//! The one road every event of a run takes: to the store (through the writer thread) and to
//! whoever watches the job (the workbench or JSONL on stdout), in that order. Nothing else in
//! the runtime sends an event.

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
        self.job.writer.event(&event);
        let _ = self.job.events.send(event);
    }
}
