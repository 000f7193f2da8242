//! A remote store written through a local spool, so a step never waits on the network and a
//! service that is down loses nothing.
//!
//! Every `put` lands first in the spool, `<workspace>/perstack/spool/<store>/<key>` (an
//! [`FsStore`] layout, written atomically, synced when asked), and returns. One uploader thread
//! then puts the objects to the remote store in the order they were put, retrying a failed
//! upload with exponential backoff and never skipping ahead of it, so the remote store gets
//! checkpoints and events in order and each once (keys are deterministic: a retried put of one
//! key is idempotent). An uploaded object leaves the spool. What is left in the spool when the
//! process dies is uploaded first by the next store opened on the same spool.
//!
//! Reads see the spool over the remote store: what was put is read back at once.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Durability, Entry, FsStore, Store, StoreError, Unsettled, UploadRetry};

/// How a failed upload is retried: after `first`, doubling up to `max` between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub first: Duration,
    pub max: Duration,
}

impl RetrySchedule {
    /// `PERSTACK_STORAGE_RETRY_MS` (first delay, default 500) and
    /// `PERSTACK_STORAGE_RETRY_MAX_MS` (longest delay, default 30000).
    pub fn from_env() -> Self {
        RetrySchedule {
            first: env_millis("PERSTACK_STORAGE_RETRY_MS").unwrap_or(Duration::from_millis(500)),
            max: env_millis("PERSTACK_STORAGE_RETRY_MAX_MS").unwrap_or(Duration::from_secs(30)),
        }
    }

    /// The wait after the `attempt`th failure (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = self.first.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        doubled.min(self.max.max(self.first))
    }
}

/// A duration in milliseconds from the environment; `None` when unset or not a number.
pub fn env_millis(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_millis)
}

/// The spool of the store at `url` under `workspace`: one directory per store, so a spool is
/// never uploaded to another bucket than the one it was meant for.
pub fn spool_dir(workspace: &Path, url: &str) -> PathBuf {
    let name: String = url
        .trim_end_matches('/')
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' => c,
            _ => '_',
        })
        .collect();
    workspace.join("perstack").join("spool").join(name)
}

#[derive(Default)]
struct Queue {
    /// Keys to upload, in the order they were put, each with the generation it was put as.
    order: VecDeque<(String, u64)>,
    /// The generation of each key's spooled object: an older queued put of it is superseded.
    latest: HashMap<String, u64>,
    next: u64,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    notices: Mutex<Option<Sender<UploadRetry>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct SpooledStore {
    remote: Arc<dyn Store>,
    spool: FsStore,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SpooledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SpooledStore({:?} via {})",
            self.remote,
            self.spool.jobs_dir().display()
        )
    }
}

impl SpooledStore {
    /// Writes for `remote` through the spool at `spool_dir`, uploading what an earlier process
    /// left there first.
    pub fn new(remote: Arc<dyn Store>, spool_dir: &Path, retry: RetrySchedule) -> Self {
        let spool = FsStore::at(spool_dir);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            notices: Mutex::new(None),
        });
        {
            let mut queue = shared.lock();
            for key in leftover_keys(spool_dir) {
                enqueue(&mut queue, key);
            }
        }
        let uploader = Uploader {
            remote: remote.clone(),
            spool: spool.clone(),
            shared: shared.clone(),
            retry,
        };
        let started = std::thread::Builder::new()
            .name("perstack-upload".into())
            .spawn(move || uploader.run());
        if let Err(err) = started {
            tracing::warn!("uploads cannot start ({err}); objects stay in the spool");
        }
        SpooledStore {
            remote,
            spool,
            shared,
        }
    }

    pub fn spool_dir(&self) -> &Path {
        self.spool.jobs_dir()
    }

    /// The keys still waiting to be uploaded, in order.
    pub fn waiting(&self) -> Vec<String> {
        let queue = self.shared.lock();
        queue
            .order
            .iter()
            .filter(|(key, generation)| queue.latest.get(key) == Some(generation))
            .map(|(key, _)| key.clone())
            .collect()
    }
}

impl Drop for SpooledStore {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

fn enqueue(queue: &mut Queue, key: String) {
    queue.next += 1;
    let generation = queue.next;
    queue.latest.insert(key.clone(), generation);
    queue.order.push_back((key, generation));
}

/// The objects a spool holds, oldest first (the order they were put in).
fn leftover_keys(spool_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    collect_files(spool_dir, spool_dir, &mut found);
    found.sort();
    found.into_iter().map(|(_, key)| key).collect()
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(std::time::SystemTime, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Temp files of an interrupted write start with a dot and were never put.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            collect_files(root, &path, out);
        } else if let (Ok(relative), Ok(modified)) = (path.strip_prefix(root), meta.modified()) {
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((modified, key));
        }
    }
}

struct Uploader {
    remote: Arc<dyn Store>,
    spool: FsStore,
    shared: Arc<Shared>,
    retry: RetrySchedule,
}

impl Uploader {
    fn run(self) {
        while let Some((key, generation)) = self.next() {
            let bytes = {
                let queue = self.shared.lock();
                let current = queue.latest.get(&key) == Some(&generation);
                // Read under the lock: a newer put of the key cannot replace it meanwhile.
                current
                    .then(|| self.spool.get(&key).ok().flatten())
                    .flatten()
            };
            if let Some(bytes) = bytes {
                if !self.upload(&key, generation, &bytes) {
                    return;
                }
            }
            let mut queue = self.shared.lock();
            queue.order.pop_front();
            if queue.latest.get(&key) == Some(&generation) {
                queue.latest.remove(&key);
                remove_spooled(&self.spool, &key);
            }
            drop(queue);
            self.shared.changed.notify_all();
        }
    }

    /// The front of the queue, once there is one; `None` when the store is closed and empty.
    fn next(&self) -> Option<(String, u64)> {
        let mut queue = self.shared.lock();
        loop {
            if let Some(front) = queue.order.front() {
                return Some(front.clone());
            }
            if queue.closed {
                return None;
            }
            queue = self
                .shared
                .changed
                .wait(queue)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Puts `bytes` until it is stored or a newer put of `key` supersedes it; false when the
    /// store closed while it could not be.
    fn upload(&self, key: &str, generation: u64, bytes: &[u8]) -> bool {
        let mut attempt = 0u32;
        loop {
            let error = match self.remote.put(key, bytes, Durability::Synced) {
                Ok(()) => return true,
                Err(error) => error,
            };
            attempt += 1;
            let spooled = self.shared.lock().latest.len() as u64;
            let notice = UploadRetry {
                key: key.to_string(),
                attempt: u64::from(attempt),
                error: error.to_string(),
                spooled,
            };
            tracing::debug!("upload of {key} failed (attempt {attempt}): {error}");
            if let Ok(notices) = self.shared.notices.lock() {
                if let Some(sender) = notices.as_ref() {
                    let _ = sender.send(notice);
                }
            }
            let queue = self.shared.lock();
            if queue.closed {
                return false;
            }
            // Woken early only by closing.
            let (queue, _) = self
                .shared
                .changed
                .wait_timeout_while(queue, self.retry.delay(attempt), |q| !q.closed)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if queue.closed {
                return false;
            }
            if queue.latest.get(key) != Some(&generation) {
                return true;
            }
        }
    }
}

/// Removes an uploaded object from the spool, and the directories it leaves empty.
fn remove_spooled(spool: &FsStore, key: &str) {
    let path = spool.path_of(key);
    let _ = std::fs::remove_file(&path);
    let mut dir = path.parent();
    while let Some(current) = dir {
        if current == spool.jobs_dir() || std::fs::remove_dir(current).is_err() {
            break;
        }
        dir = current.parent();
    }
}

/// Entries of both, by name; the spool's newer ones win.
fn merged(remote: Vec<Entry>, spooled: Vec<Entry>) -> Vec<Entry> {
    let mut by_name: std::collections::BTreeMap<String, Entry> = remote
        .into_iter()
        .map(|entry| (entry.name.clone(), entry))
        .collect();
    for entry in spooled {
        by_name.insert(entry.name.clone(), entry);
    }
    by_name.into_values().collect()
}

impl Store for SpooledStore {
    fn location(&self) -> String {
        self.remote.location()
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.remote.path_of(key)
    }

    fn put(&self, key: &str, bytes: &[u8], durability: Durability) -> Result<(), StoreError> {
        let mut queue = self.shared.lock();
        self.spool.put(key, bytes, durability)?;
        enqueue(&mut queue, key.to_string());
        drop(queue);
        self.shared.changed.notify_all();
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.spool.get(key)? {
            Some(bytes) => Ok(Some(bytes)),
            None => self.remote.get(key),
        }
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.spool.exists(key)? || self.remote.exists(key)?)
    }

    fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>, StoreError>> {
        let mut found: Vec<Result<Option<Vec<u8>>, StoreError>> =
            keys.iter().map(|key| self.spool.get(key)).collect();
        let missing: Vec<usize> = (0..keys.len())
            .filter(|&i| matches!(found[i], Ok(None)))
            .collect();
        let fetched = self
            .remote
            .get_many(&missing.iter().map(|&i| keys[i].clone()).collect::<Vec<_>>());
        for (i, result) in missing.into_iter().zip(fetched) {
            found[i] = result;
        }
        found
    }

    fn list(&self, dir: &str) -> Result<Vec<Entry>, StoreError> {
        let spooled = self.spool.list(dir)?;
        match self.remote.list(dir) {
            Ok(remote) => Ok(merged(remote, spooled)),
            Err(_) if !spooled.is_empty() => Ok(spooled),
            Err(err) => Err(err),
        }
    }

    fn children(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let mut names = self.spool.children(dir)?;
        match self.remote.children(dir) {
            Ok(remote) => names.extend(remote),
            Err(err) if names.is_empty() => return Err(err),
            Err(_) => {}
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn sync(&self, key: &str) -> Result<(), StoreError> {
        // Uploaded already (and so off the spool) is as durable as it gets.
        match self.spool.sync(key) {
            Err(_) if !self.spool.exists(key)? => Ok(()),
            synced => synced,
        }
    }

    fn settle(&self, max_wait: Duration) -> Result<(), Unsettled> {
        let deadline = Instant::now() + max_wait;
        let mut queue = self.shared.lock();
        while !queue.latest.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = self
                .shared
                .changed
                .wait_timeout(queue, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        drop(queue);
        let keys = self.waiting();
        if keys.is_empty() {
            return Ok(());
        }
        Err(Unsettled {
            keys,
            location: self.remote.location(),
            spool: self.spool_dir().to_path_buf(),
        })
    }

    fn retries(&self) -> Option<std::sync::mpsc::Receiver<UploadRetry>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        if let Ok(mut notices) = self.shared.notices.lock() {
            *notices = Some(sender);
        }
        Some(receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A remote store that refuses every put while it is down, and records the puts it took.
    #[derive(Debug)]
    struct Flaky {
        down: AtomicBool,
        inner: FsStore,
        taken: Mutex<Vec<String>>,
    }

    impl Store for Flaky {
        fn location(&self) -> String {
            "flaky://".into()
        }
        fn path_of(&self, key: &str) -> PathBuf {
            self.inner.path_of(key)
        }
        fn put(&self, key: &str, bytes: &[u8], d: Durability) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(self.error_writing(key, std::io::Error::other("service down")));
            }
            self.taken.lock().expect("lock").push(key.to_string());
            self.inner.put(key, bytes, d)
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn exists(&self, key: &str) -> Result<bool, StoreError> {
            self.inner.exists(key)
        }
        fn list(&self, dir: &str) -> Result<Vec<Entry>, StoreError> {
            self.inner.list(dir)
        }
        fn children(&self, dir: &str) -> Result<Vec<String>, StoreError> {
            self.inner.children(dir)
        }
    }

    fn flaky(dir: &Path, down: bool) -> Arc<Flaky> {
        Arc::new(Flaky {
            down: AtomicBool::new(down),
            inner: FsStore::at(&dir.join("remote")),
            taken: Mutex::new(Vec::new()),
        })
    }

    const FAST: RetrySchedule = RetrySchedule {
        first: Duration::from_millis(5),
        max: Duration::from_millis(20),
    };

    #[test]
    fn the_delay_doubles_up_to_its_maximum() {
        let schedule = RetrySchedule {
            first: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        let delays: Vec<u128> = (1..=6).map(|n| schedule.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(schedule.delay(200).as_millis(), 1000, "no overflow");
    }

    #[test]
    fn puts_reach_the_remote_store_in_order_once_it_is_back_and_leave_the_spool() {
        let dir = tempfile::tempdir().expect("temp dir");
        let remote = flaky(dir.path(), true);
        let store = SpooledStore::new(remote.clone(), &dir.path().join("spool"), FAST);
        let retries = store.retries().expect("notices");
        for n in 0..20 {
            store
                .put(&format!("j/e{n:02}.json"), b"{}", Durability::Atomic)
                .expect("spooled");
        }
        assert_eq!(store.get("j/e05.json").expect("read"), Some(b"{}".to_vec()));
        let notice = retries
            .recv_timeout(Duration::from_secs(5))
            .expect("a retry is said");
        assert_eq!(notice.key, "j/e00.json", "the first put is retried first");
        assert_eq!(
            store
                .settle(Duration::from_millis(50))
                .map_err(|u| u.keys.len()),
            Err(20)
        );
        remote.down.store(false, Ordering::SeqCst);
        store.settle(Duration::from_secs(10)).expect("all uploaded");
        let taken = remote.taken.lock().expect("lock").clone();
        let expected: Vec<String> = (0..20).map(|n| format!("j/e{n:02}.json")).collect();
        assert_eq!(taken, expected, "in order, each once");
        assert!(
            leftover_keys(store.spool_dir()).is_empty(),
            "the spool is empty"
        );
    }

    #[test]
    fn a_key_put_again_before_its_upload_is_uploaded_with_its_newest_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let remote = flaky(dir.path(), true);
        let store = SpooledStore::new(remote.clone(), &dir.path().join("spool"), FAST);
        store
            .put("j/job.json", b"1", Durability::Atomic)
            .expect("put");
        store
            .put("j/c.json", b"c", Durability::Synced)
            .expect("put");
        store
            .put("j/job.json", b"2", Durability::Atomic)
            .expect("put");
        store.sync("j/c.json").expect("sync");
        remote.down.store(false, Ordering::SeqCst);
        store.settle(Duration::from_secs(10)).expect("uploaded");
        assert_eq!(remote.get("j/job.json").expect("read"), Some(b"2".to_vec()));
        assert_eq!(
            *remote.taken.lock().expect("lock"),
            ["j/c.json", "j/job.json"]
        );
    }

    #[test]
    fn what_a_dead_process_left_in_the_spool_is_uploaded_by_the_next_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = dir.path().join("spool");
        let remote = flaky(dir.path(), true);
        {
            let store = SpooledStore::new(remote.clone(), &spool, FAST);
            for name in ["a", "b", "c"] {
                store
                    .put(
                        &format!("j/{name}.json"),
                        name.as_bytes(),
                        Durability::Synced,
                    )
                    .expect("put");
                std::thread::sleep(Duration::from_millis(10));
            }
            let unsettled = store.settle(Duration::ZERO).expect_err("nothing uploaded");
            assert_eq!(unsettled.spool, spool);
            assert!(unsettled.to_string().contains(&spool.display().to_string()));
        }
        assert_eq!(leftover_keys(&spool), ["j/a.json", "j/b.json", "j/c.json"]);
        remote.down.store(false, Ordering::SeqCst);
        let store = SpooledStore::new(remote.clone(), &spool, FAST);
        store.settle(Duration::from_secs(10)).expect("drained");
        assert_eq!(
            *remote.taken.lock().expect("lock"),
            ["j/a.json", "j/b.json", "j/c.json"]
        );
        assert_eq!(remote.children("").expect("list"), ["j"]);
        assert!(!spool.join("j").exists(), "emptied directories go too");
    }

    #[test]
    fn spools_of_different_stores_are_apart() {
        let ws = Path::new("/w");
        assert_eq!(
            spool_dir(ws, "s3://bucket/runs/ci/"),
            Path::new("/w/perstack/spool/bucket_runs_ci")
        );
        assert_ne!(spool_dir(ws, "s3://a/b"), spool_dir(ws, "s3://a"));
    }
}
