//! Published texts cached by digest under the user cache dir, so locked runs work offline.
//!
//! A file is named after the sha256 of its content and checked against it when read: a cache
//! entry that was changed on disk is treated as missing, never trusted.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::sha256_digest;

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "no cache directory: set PERSTACK_CACHE_DIR, XDG_CACHE_HOME or HOME to a writable directory"
    )]
    NoDir,
    #[error("cannot write the registry cache {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("\"{0}\" is not a sha256 digest")]
    BadDigest(String),
}

impl Cache {
    pub fn at(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// `$PERSTACK_CACHE_DIR`, else `$XDG_CACHE_HOME/perstack`, else `~/.cache/perstack`; texts
    /// live in `registry/sha256/` below it.
    pub fn user() -> Result<Cache, CacheError> {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let root = if let Some(dir) = non_empty("PERSTACK_CACHE_DIR") {
            PathBuf::from(dir)
        } else if let Some(dir) = non_empty("XDG_CACHE_HOME") {
            PathBuf::from(dir).join("perstack")
        } else if let Some(home) = non_empty("HOME") {
            PathBuf::from(home).join(".cache").join("perstack")
        } else {
            return Err(CacheError::NoDir);
        };
        Ok(Cache::at(root.join("registry").join("sha256")))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, digest: &str) -> Result<PathBuf, CacheError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| CacheError::BadDigest(digest.to_string()))?;
        Ok(self.dir.join(format!("{hex}.toml")))
    }

    /// The text with this digest, if cached and intact.
    pub fn get(&self, digest: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.path_of(digest).ok()?).ok()?;
        (sha256_digest(text.as_bytes()) == digest).then_some(text)
    }

    /// Stores a text under its own digest (written to a temporary file, then renamed).
    pub fn put(&self, text: &str) -> Result<String, CacheError> {
        let digest = sha256_digest(text.as_bytes());
        let path = self.path_of(&digest)?;
        if path.is_file() && self.get(&digest).is_some() {
            return Ok(digest);
        }
        let write_error = |source| CacheError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(write_error)?;
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map_err(write_error)?;
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_digest_and_ignores_tampered_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("c"));
        let digest = cache.put("[experts.a]\n").unwrap();
        assert_eq!(cache.get(&digest).as_deref(), Some("[experts.a]\n"));
        assert_eq!(cache.put("[experts.a]\n").unwrap(), digest);
        let file = cache.path_of(&digest).unwrap();
        std::fs::write(&file, "changed").unwrap();
        assert_eq!(cache.get(&digest), None);
        assert_eq!(cache.get("sha256:nothex"), None);
        assert!(matches!(
            cache.path_of("md5:x"),
            Err(CacheError::BadDigest(_))
        ));
    }
}
