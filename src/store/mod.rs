//! Where jobs are stored, in Perstack's layout:
//!
//! ```text
//! perstack/jobs/<jobId>/job.json
//! perstack/jobs/<jobId>/checkpoints/<checkpointId>.json
//! perstack/jobs/<jobId>/runs/<runId>/run-setting.json
//! perstack/jobs/<jobId>/runs/<runId>/event-<timestamp>-<step>-<type>.json
//! ```
//!
//! Checkpoint, job and run-setting files are exactly Perstack's. Events are Perstack's too, with
//! two additions that keep storage linear in the steps and the order exact (see [`refs`]): a
//! `seq` number, and a reference to a stored checkpoint in place of an embedded message list.
//! Reading an event back restores the very JSON `perstack run` printed.

mod fs;
pub mod refs;

use std::path::PathBuf;

pub use fs::{Durability, FsStore, write_json};

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
