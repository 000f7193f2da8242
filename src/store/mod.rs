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
pub mod jobs;
mod object;
pub mod refs;
pub mod spool;

use std::path::PathBuf;
use std::time::SystemTime;

pub use fs::{FsStore, write_json};
pub use jobs::{Follower, JobStore};
pub use object::{ObjectStore, open, open_for_writing};
pub use spool::SpooledStore;

/// How hard a write tries to survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Whole or absent after a process crash; may be lost on power loss.
    Atomic,
    /// Also on stable storage before the write returns: survives power loss too.
    Synced,
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The last part of its key.
    pub name: String,
    pub modified: SystemTime,
}

/// Objects under '/'-separated keys below a store's jobs root. What it must promise: a `put`
/// is atomic (a reader sees the old object or the new one, never part of one), and a `put`
/// that returned is seen by every later `get` and `list`. The typed operations on top are
/// [`JobStore`]'s, which every `Store` has.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where the store is, for messages: a directory or a URL.
    fn location(&self) -> String;

    /// Where `key` is, for messages.
    fn path_of(&self, key: &str) -> PathBuf;

    fn put(&self, key: &str, bytes: &[u8], durability: Durability) -> Result<(), StoreError>;

    /// `None` when there is no object under `key`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    fn exists(&self, key: &str) -> Result<bool, StoreError>;

    /// [`Store::get`] of each key, in the keys' order. A remote store fetches them at once.
    fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>, StoreError>> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// The objects directly below `dir` (not in its sub-directories), by name.
    fn list(&self, dir: &str) -> Result<Vec<Entry>, StoreError>;

    /// The names of the directories directly below `dir` (`""` is the root), sorted.
    fn children(&self, dir: &str) -> Result<Vec<String>, StoreError>;

    /// Puts the object under `key` on stable storage, if an `Atomic` put left it in a cache
    /// (a filesystem's page cache). Stores whose every put is durable need do nothing.
    fn sync(&self, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn error_writing(&self, key: &str, source: std::io::Error) -> StoreError {
        StoreError::Write {
            path: self.path_of(key),
            source,
        }
    }

    /// Waits up to `max_wait` for objects still on their way to the store (a store that
    /// uploads in the background); says which are not there yet. Others have none.
    fn settle(&self, _max_wait: std::time::Duration) -> Result<(), Unsettled> {
        Ok(())
    }

    /// Notices of failed uploads being retried, for a store that uploads in the background;
    /// the latest caller gets them.
    fn retries(&self) -> Option<std::sync::mpsc::Receiver<UploadRetry>> {
        None
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn location(&self) -> String {
        (**self).location()
    }
    fn path_of(&self, key: &str) -> PathBuf {
        (**self).path_of(key)
    }
    fn put(&self, key: &str, bytes: &[u8], durability: Durability) -> Result<(), StoreError> {
        (**self).put(key, bytes, durability)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }
    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        (**self).exists(key)
    }
    fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>, StoreError>> {
        (**self).get_many(keys)
    }
    fn list(&self, dir: &str) -> Result<Vec<Entry>, StoreError> {
        (**self).list(dir)
    }
    fn children(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        (**self).children(dir)
    }
    fn sync(&self, key: &str) -> Result<(), StoreError> {
        (**self).sync(key)
    }
    fn settle(&self, max_wait: std::time::Duration) -> Result<(), Unsettled> {
        (**self).settle(max_wait)
    }
    fn retries(&self) -> Option<std::sync::mpsc::Receiver<UploadRetry>> {
        (**self).retries()
    }
}

/// A failed upload about to be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRetry {
    pub key: String,
    /// 1 for the first failure of this object.
    pub attempt: u64,
    pub error: String,
    /// How many objects wait in the local spool.
    pub spooled: u64,
}

/// Objects not yet in the store when the wait for them ended: they are in the spool, and the
/// next run with the same storage uploads them first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} object(s) did not reach {location} ({}); they are kept in {} and the next `perstack run` \
     with the same storage uploads them first",
    keys.len(),
    shown_keys(keys),
    spool.display()
)]
pub struct Unsettled {
    pub keys: Vec<String>,
    pub location: String,
    pub spool: PathBuf,
}

fn shown_keys(keys: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut shown = keys
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        shown.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    shown
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
    #[error("no job {0} under the store; list jobs with `perstack jobs`")]
    NoJob(String),
    #[error("cannot use the store {url}: {reason}")]
    Location { url: String, reason: String },
}
