//! `perstack.lock`: the resolved tools of every Expert, written by `perstack install` next to
//! perstack.toml.
//!
//! The format is JSON (tool input schemas are JSON already, and JSON keeps them exact):
//!
//! ```json
//! { "version": 1,
//!   "experts": { "<expert key>": { "skills": { "<skill name>": { "tools": [
//!       { "name": "...", "description": "...", "inputSchema": { "type": "object" } } ] } } } } }
//! ```
//!
//! Tools are listed after `omit` and `pick`. A skill with `lazyInit` whose tools are in the lock
//! is not started until one of its tools is called.
//!
//! Registry Experts resolved by `perstack install` are pinned in a `registry` table (absent from
//! lock files written before it existed, which still read):
//!
//! ```json
//! "registry": { "@acme/reviewer@1.2.0": { "registry": "oci://ghcr.io/acme",
//!     "name": "@acme/reviewer", "version": "1.2.0", "digest": "sha256:...",
//!     "requiredEnv": ["GH_TOKEN"], "allowedDomains": ["api.github.com"] } }
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::tool::ToolDefinition;

pub const LOCK_FILE_NAME: &str = "perstack.lock";
pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    pub version: u32,
    pub experts: IndexMap<String, LockedExpert>,
}

impl Default for Lock {
    fn default() -> Self {
        Lock {
            version: LOCK_VERSION,
            experts: IndexMap::new(),
        }
    }
}

/// Registry Experts by their full key (`@scope/name@version`): the `registry` table of the
/// lock file, read and written beside [`Lock`] so older readers skip it.
pub type RegistryPins = IndexMap<String, LockedRegistryExpert>;

#[derive(Serialize)]
struct LockFile<'a> {
    #[serde(flatten)]
    lock: &'a Lock,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    registry: &'a RegistryPins,
}

#[derive(Deserialize)]
struct RegistryPart {
    #[serde(default)]
    registry: RegistryPins,
}

/// One registry Expert version as `perstack install` found it: where from, the digest of its
/// published text, and everything its skills will get from this machine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockedRegistryExpert {
    /// The registry's address (`oci://...` or a Perstack API base URL).
    pub registry: String,
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the published text.
    pub digest: String,
    #[serde(default)]
    pub required_env: Vec<String>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// available, deprecated or disabled, as the registry said at install.
    #[serde(default = "available", skip_serializing_if = "is_available")]
    pub status: String,
    /// Installed by name (`perstack install KEY`) rather than reached as a delegate: kept by
    /// later installs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

fn available() -> String {
    "available".into()
}

fn is_available(status: &String) -> bool {
    status == "available"
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LockedExpert {
    pub skills: IndexMap<String, LockedSkill>,
}

impl LockedExpert {
    /// The tools recorded for `skill`, if the skill is in the lock at all.
    pub fn tools_of(&self, skill: &str) -> Option<&[ToolDefinition]> {
        self.skills.get(skill).map(|s| s.tools.as_slice())
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LockedSkill {
    pub tools: Vec<ToolDefinition>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid lock file: {source}; run `perstack install` to rewrite it")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path} has lock version {found}, this build reads {LOCK_VERSION}; run `perstack install`"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock file that belongs to a perstack.toml.
pub fn lock_path(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(LOCK_FILE_NAME)
}

/// Reads a lock file; `Ok(None)` when there is none.
pub fn read_lock(path: &Path) -> Result<Option<Lock>, LockError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LockError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let lock: Lock = serde_json::from_str(&text).map_err(|source| LockError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    if lock.version != LOCK_VERSION {
        return Err(LockError::Version {
            path: path.to_path_buf(),
            found: lock.version,
        });
    }
    Ok(Some(lock))
}

/// The registry Experts pinned in a lock file; empty when there is no file or no such table.
pub fn read_registry(path: &Path) -> Result<RegistryPins, LockError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryPins::new()),
        Err(source) => {
            return Err(LockError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let part: RegistryPart = serde_json::from_str(&text).map_err(|source| LockError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(part.registry)
}

/// Writes a lock file with no registry Experts; see [`write_lock_with_registry`].
pub fn write_lock(path: &Path, lock: &Lock) -> Result<(), LockError> {
    write_lock_with_registry(path, lock, &RegistryPins::new())
}

/// Writes a lock file atomically (temporary file, fsync, rename), so a reader never sees half
/// of one.
pub fn write_lock_with_registry(
    path: &Path,
    lock: &Lock,
    registry: &RegistryPins,
) -> Result<(), LockError> {
    let write_error = |source| LockError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file = LockFile { lock, registry };
    let mut text = serde_json::to_string_pretty(&file).map_err(|e| write_error(e.into()))?;
    text.push('\n');
    let temp = path.with_extension("lock.tmp");
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(write_error)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lock_files_without_registry_experts_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE_NAME);
        std::fs::write(&path, r#"{"version":1,"experts":{"a":{"skills":{}}}}"#).unwrap();
        let lock = read_lock(&path).unwrap().unwrap();
        assert!(read_registry(&path).unwrap().is_empty());
        let mut registry = RegistryPins::new();
        registry.insert(
            "@acme/r@1.0.0".into(),
            LockedRegistryExpert {
                registry: "oci://127.0.0.1:5000/x".into(),
                name: "@acme/r".into(),
                version: "1.0.0".into(),
                digest: "sha256:00".into(),
                required_env: vec!["TOKEN".into()],
                allowed_domains: vec![],
                status: "available".into(),
                pinned: false,
            },
        );
        write_lock_with_registry(&path, &lock, &registry).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"requiredEnv\""), "{text}");
        assert!(
            !text.contains("pinned") && !text.contains("status"),
            "{text}"
        );
        assert_eq!(read_lock(&path).unwrap(), Some(lock));
        assert_eq!(read_registry(&path).unwrap(), registry);
    }

    #[test]
    fn round_trips_and_reports_absence() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(&dir.path().join("perstack.toml"));
        assert_eq!(read_lock(&path).unwrap(), None);
        let mut lock = Lock::default();
        let mut expert = LockedExpert::default();
        expert.skills.insert(
            "s".into(),
            LockedSkill {
                tools: vec![ToolDefinition {
                    name: "echo".into(),
                    description: "d".into(),
                    input_schema: json!({"type": "object"}),
                }],
            },
        );
        lock.experts.insert("e".into(), expert);
        write_lock(&path, &lock).unwrap();
        let read = read_lock(&path).unwrap().unwrap();
        assert_eq!(read, lock);
        assert_eq!(read.experts["e"].tools_of("s").unwrap()[0].name, "echo");
        assert!(read.experts["e"].tools_of("other").is_none());
    }

    #[test]
    fn rejects_garbage_and_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE_NAME);
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(read_lock(&path), Err(LockError::Parse { .. })));
        std::fs::write(&path, r#"{"version": 99, "experts": {}}"#).unwrap();
        assert!(matches!(read_lock(&path), Err(LockError::Version { .. })));
    }
}
