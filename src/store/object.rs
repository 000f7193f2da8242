//! S3 and S3-compatible services (R2, MinIO, ...) as a [`Store`], on the `object_store` crate.
//!
//! `s3://bucket/prefix` holds Perstack's layout below `prefix`, as a workspace holds it:
//! `prefix/perstack/jobs/<jobId>/...`, with the same bytes a [`super::FsStore`] writes.
//! Credentials, region and endpoint come from the standard `AWS_*` variables
//! (`AWS_ENDPOINT_URL` for R2, MinIO and others; `AWS_ALLOW_HTTP=true` for plain http).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};

use super::{Durability, Entry, Store, StoreError};

/// Requests a [`Store::get_many`] keeps in flight.
const FETCHES_AT_ONCE: usize = 32;

pub struct ObjectStore {
    inner: Arc<dyn object_store::ObjectStore>,
    /// `prefix/perstack/jobs`.
    root: ObjectPath,
    url: String,
    /// Taken only by `drop`.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ObjectStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is refused inside another runtime's task.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStore({})", self.url)
    }
}

impl ObjectStore {
    /// `url` is `s3://bucket` or `s3://bucket/prefix`.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Self::from_url_with(url, Vec::new())
    }

    /// As [`ObjectStore::from_url`], with settings that override the environment's, named as
    /// `object_store` names them (`aws_endpoint`, `aws_access_key_id`, `aws_allow_http`, ...).
    pub fn from_url_with(url: &str, options: Vec<(String, String)>) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::Location {
            url: url.to_string(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if parsed.scheme() != "s3" || parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("expected s3://bucket or s3://bucket/prefix".into()));
        }
        // Installs the TLS provider the S3 client's reqwest needs, as for every other client.
        drop(crate::http::client_builder());
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url);
        // AWS_ENDPOINT_URL is the standard name; the builder reads AWS_ENDPOINT.
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            builder = builder.with_endpoint(endpoint);
        }
        for (key, value) in options {
            let key: object_store::aws::AmazonS3ConfigKey = key
                .parse()
                .map_err(|e: object_store::Error| invalid(e.to_string()))?;
            builder = builder.with_config(key, value);
        }
        // Failures are retried by the spool, which says so; here each try is short.
        builder = builder.with_retry(object_store::RetryConfig {
            max_retries: 1,
            retry_timeout: std::time::Duration::from_secs(10),
            ..Default::default()
        });
        let inner = builder.build().map_err(|e| invalid(e.to_string()))?;
        let prefix = parsed.path().trim_matches('/');
        let root = ObjectPath::from(
            [prefix, "perstack", "jobs"]
                .iter()
                .filter(|part| !part.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/"),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(ObjectStore {
            inner: Arc::new(inner),
            root,
            url: url.trim_end_matches('/').to_string(),
            runtime: Some(runtime),
        })
    }

    fn object_path(&self, key: &str) -> ObjectPath {
        let key = key.trim_matches('/');
        if key.is_empty() {
            return self.root.clone();
        }
        ObjectPath::from(format!("{}/{key}", self.root))
    }

    /// Runs `make()`'s future to its end on this store's own runtime. Inside another runtime
    /// (a blocking task of the runtime's), it runs on a thread of its own, since a runtime
    /// cannot be entered from inside one.
    fn block<T: Send, F: Future<Output = T>>(&self, make: impl FnOnce() -> F + Send) -> T {
        let Some(runtime) = &self.runtime else {
            unreachable!("the runtime is taken only when the store is dropped")
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(make());
        }
        std::thread::scope(
            |scope| match scope.spawn(move || runtime.block_on(make())).join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            },
        )
    }

    fn failed(&self, key: &str, err: object_store::Error, reading: bool) -> StoreError {
        let path = self.path_of(key);
        let source = std::io::Error::other(err);
        if reading {
            StoreError::Read { path, source }
        } else {
            StoreError::Write { path, source }
        }
    }

    fn listing(&self, dir: &str) -> Result<object_store::ListResult, StoreError> {
        let prefix = self.object_path(dir);
        let inner = self.inner.clone();
        self.block(move || async move { inner.list_with_delimiter(Some(&prefix)).await })
            .map_err(|err| self.failed(dir, err, true))
    }
}

impl Store for ObjectStore {
    fn location(&self) -> String {
        self.url.clone()
    }

    fn path_of(&self, key: &str) -> PathBuf {
        PathBuf::from(format!(
            "{}/perstack/jobs/{}",
            self.url,
            key.trim_matches('/')
        ))
    }

    /// Every put to S3 is atomic and durable when it returns.
    fn put(&self, key: &str, bytes: &[u8], _durability: Durability) -> Result<(), StoreError> {
        let (inner, path) = (self.inner.clone(), self.object_path(key));
        let payload = PutPayload::from(bytes.to_vec());
        self.block(move || async move { inner.put(&path, payload).await })
            .map(|_| ())
            .map_err(|err| self.failed(key, err, false))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (inner, path) = (self.inner.clone(), self.object_path(key));
        let fetched = self.block(move || async move {
            match inner.get(&path).await {
                Ok(found) => found.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(err) => Err(err),
            }
        });
        fetched
            .map(|bytes| bytes.map(|b| b.to_vec()))
            .map_err(|err| self.failed(key, err, true))
    }

    /// Up to [`FETCHES_AT_ONCE`] requests in flight: a listing of a thousand jobs is a thousand
    /// job records.
    fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>, StoreError>> {
        use futures_util::StreamExt as _;
        let paths: Vec<ObjectPath> = keys.iter().map(|key| self.object_path(key)).collect();
        let inner = self.inner.clone();
        let fetched: Vec<Result<Option<bytes::Bytes>, object_store::Error>> =
            self.block(move || async move {
                futures_util::stream::iter(paths)
                    .map(|path| {
                        let inner = inner.clone();
                        async move {
                            match inner.get(&path).await {
                                Ok(found) => found.bytes().await.map(Some),
                                Err(object_store::Error::NotFound { .. }) => Ok(None),
                                Err(err) => Err(err),
                            }
                        }
                    })
                    .buffered(FETCHES_AT_ONCE)
                    .collect()
                    .await
            });
        fetched
            .into_iter()
            .zip(keys)
            .map(|(result, key)| {
                result
                    .map(|bytes| bytes.map(|b| b.to_vec()))
                    .map_err(|err| self.failed(key, err, true))
            })
            .collect()
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let (inner, path) = (self.inner.clone(), self.object_path(key));
        match self.block(move || async move { inner.head(&path).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(self.failed(key, err, true)),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<Entry>, StoreError> {
        let mut entries: Vec<Entry> = self
            .listing(dir)?
            .objects
            .into_iter()
            .filter_map(|meta| {
                Some(Entry {
                    name: meta.location.filename()?.to_string(),
                    modified: SystemTime::from(meta.last_modified),
                })
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn children(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .listing(dir)?
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// The store a run writes to: the workspace's own, or the one at `storage` written through
/// its spool under the workspace (see [`super::spool`]).
pub fn open_for_writing(
    storage: Option<&str>,
    workspace: &std::path::Path,
) -> Result<Arc<dyn Store>, StoreError> {
    match storage {
        None => Ok(Arc::new(super::FsStore::new(workspace))),
        Some(url) => {
            // One uploader per spool in a process: the workbench prepares a runtime again on
            // every reload, and two uploaders would both take the same leftovers.
            static OPEN: std::sync::Mutex<Vec<(PathBuf, std::sync::Weak<super::SpooledStore>)>> =
                std::sync::Mutex::new(Vec::new());
            let spool = super::spool::spool_dir(workspace, url);
            let mut open = OPEN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            open.retain(|(_, store)| store.strong_count() > 0);
            if let Some(store) = open
                .iter()
                .find(|(dir, _)| *dir == spool)
                .and_then(|(_, store)| store.upgrade())
            {
                return Ok(store);
            }
            let remote = Arc::new(ObjectStore::from_url(url)?);
            let retry = super::spool::RetrySchedule::from_env();
            let store = Arc::new(super::SpooledStore::new(remote, &spool, retry));
            open.push((spool, Arc::downgrade(&store)));
            Ok(store)
        }
    }
}

/// The store at `storage` (`s3://bucket/prefix`), or the workspace's own.
pub fn open(
    storage: Option<&str>,
    workspace: &std::path::Path,
) -> Result<Box<dyn Store>, StoreError> {
    match storage {
        None => Ok(Box::new(super::FsStore::new(workspace))),
        Some(url) => Ok(Box::new(ObjectStore::from_url(url)?)),
    }
}
