//! A directory that every path a tool touches must stay inside.
//!
//! A path is resolved the way the operating system would resolve it (following every symlink
//! that exists, at any component), with the part that does not exist yet appended lexically.
//! The result must lie under the canonical workspace root. Checking the resolved path rather
//! than the text the model wrote is what makes `..`, absolute paths and symlinks that point out
//! all fail the same way.
//!
//! Two places inside are off-limits to tools, as they are to confined processes (see
//! [`crate::sandbox`]): the job store `perstack/` (checkpoints must not be rewritten by the
//! run they record) and the dotenv files (they hold the API keys).
//!
//! The check and the later IO are two system calls, so a process that swaps a directory for a
//! symlink in between could still win that race; the workspace guards against a model's
//! mistakes and ordinary symlinks, not against a hostile local process.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow before it is treated as a loop (as in Linux).
const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("path {path} is outside the workspace {root}; use a path relative to the workspace")]
    Outside { path: String, root: String },
    #[error("path is empty; use a path relative to the workspace, or \".\" for its root")]
    Empty,
    #[error("cannot resolve path {path}: {message}")]
    Resolve { path: String, message: String },
    #[error(
        "path {path} is in the job store perstack/, which tools may not change or read; \
         use another directory of the workspace"
    )]
    Store { path: String },
    #[error(
        "path {path} is the dotenv file {file}, which holds secrets; tools may not read or \
         change it (the environment reaches skills through their requiredEnv)"
    )]
    Secret { path: String, file: String },
    #[error("workspace root {root} is not a usable directory: {source}")]
    Root {
        root: String,
        #[source]
        source: io::Error,
    },
}

/// The directory tools are confined to. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Canonical (absolute, symlink-free) root.
    root: PathBuf,
    /// The dotenv files tools may not touch, as physical paths.
    dotenv: Vec<PathBuf>,
}

impl Workspace {
    /// Opens a workspace at `root`, which must be an existing directory.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, WorkspaceError> {
        let given = root.as_ref();
        let root_error = |source| WorkspaceError::Root {
            root: given.display().to_string(),
            source,
        };
        let root = std::fs::canonicalize(given).map_err(root_error)?;
        if !root.is_dir() {
            return Err(root_error(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        let mut workspace = Workspace {
            root,
            dotenv: Vec::new(),
        };
        workspace.set_dotenv_files(&crate::definition::DEFAULT_ENV_PATHS);
        Ok(workspace)
    }

    /// The dotenv files (`envPath`: relative to the root, or absolute) tools may not touch,
    /// instead of the default `.env` and `.env.local`.
    pub fn with_dotenv_files<S: AsRef<str>>(mut self, files: &[S]) -> Self {
        self.set_dotenv_files(files);
        self
    }

    fn set_dotenv_files<S: AsRef<str>>(&mut self, files: &[S]) {
        self.dotenv = files
            .iter()
            .filter_map(|file| resolve_physical(&self.root.join(file.as_ref())).ok())
            .collect();
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves `path` (relative to the root, or absolute) to the physical path it names, with
    /// every existing symlink followed, and refuses it unless it lies inside the workspace.
    /// Use this for anything that reads, writes or lists.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, WorkspaceError> {
        if path.is_empty() {
            return Err(WorkspaceError::Empty);
        }
        let joined = self.root.join(path);
        let resolved = resolve_physical(&joined).map_err(|e| WorkspaceError::Resolve {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        if !resolved.starts_with(&self.root) {
            return Err(self.outside(path));
        }
        self.check_protected(path, &resolved)?;
        Ok(resolved)
    }

    /// Refuses the job store and the dotenv files.
    fn check_protected(&self, path: &str, resolved: &Path) -> Result<(), WorkspaceError> {
        if resolved.starts_with(self.root.join(crate::sandbox::STORE_DIR)) {
            return Err(WorkspaceError::Store {
                path: path.to_string(),
            });
        }
        if let Some(file) = self.dotenv.iter().find(|f| f.as_path() == resolved) {
            return Err(WorkspaceError::Secret {
                path: path.to_string(),
                file: self.display(file),
            });
        }
        Ok(())
    }

    /// Like [`Workspace::resolve`], but keeps a final symlink itself instead of its target, so
    /// that deleting or moving a link acts on the link. The link's target must still be inside.
    pub fn resolve_entry(&self, path: &str) -> Result<PathBuf, WorkspaceError> {
        let target = self.resolve(path)?;
        if target == self.root {
            return Ok(target);
        }
        let joined = self.root.join(path);
        let (Some(parent), Some(Component::Normal(name))) =
            (joined.parent(), joined.components().next_back())
        else {
            return Ok(target);
        };
        let parent = resolve_physical(parent).map_err(|e| WorkspaceError::Resolve {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let entry = parent.join(name);
        if !entry.starts_with(&self.root) {
            return Err(self.outside(path));
        }
        self.check_protected(path, &entry)?;
        Ok(entry)
    }

    /// `path` shown relative to the root when it is inside (for messages to the model).
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }

    fn outside(&self, path: &str) -> WorkspaceError {
        WorkspaceError::Outside {
            path: path.to_string(),
            root: self.root.display().to_string(),
        }
    }
}

/// Resolves an absolute path like `realpath -m`: existing symlinks are followed wherever they
/// occur, `..` applies to the physical parent, and components that do not exist are appended
/// as written (they cannot be symlinks, so lexical handling is exact for them).
fn resolve_physical(path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_front_components(&mut pending, path);
    let mut current = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        match part.to_str() {
            Some("/") => current = PathBuf::from("/"),
            Some(".") => {}
            Some("..") => {
                current.pop();
            }
            _ => {
                let candidate = current.join(&part);
                match std::fs::symlink_metadata(&candidate) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Err(io::Error::other("too many levels of symbolic links"));
                        }
                        let target = std::fs::read_link(&candidate)?;
                        // A relative target is relative to the link's directory: `current`.
                        push_front_components(&mut pending, &target);
                    }
                    Ok(_) => current = candidate,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                        ) =>
                    {
                        current = candidate
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(current)
}

fn push_front_components(pending: &mut VecDeque<OsString>, path: &Path) {
    for component in path.components().rev() {
        let part = match component {
            Component::RootDir | Component::Prefix(_) => OsString::from("/"),
            Component::CurDir => continue,
            Component::ParentDir => OsString::from(".."),
            Component::Normal(name) => name.to_os_string(),
        };
        pending.push_front(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Workspace::new(dir.path()).expect("workspace");
        (dir, ws)
    }

    fn assert_outside(result: Result<PathBuf, WorkspaceError>) {
        match result {
            Err(WorkspaceError::Outside { .. }) => {}
            other => panic!("expected an outside-the-workspace error, got {other:?}"),
        }
    }

    #[test]
    fn normal_nested_paths_are_allowed() {
        let (_dir, ws) = setup();
        std::fs::create_dir_all(ws.root().join("a/b")).expect("mkdir");
        std::fs::write(ws.root().join("a/b/c.txt"), "x").expect("write");
        assert_eq!(
            ws.resolve("a/b/c.txt").expect("resolve"),
            ws.root().join("a/b/c.txt")
        );
        assert_eq!(
            ws.resolve("./a/../a/b/new/deeper.txt").expect("resolve"),
            ws.root().join("a/b/new/deeper.txt")
        );
        assert_eq!(ws.resolve(".").expect("resolve"), ws.root());
        let abs = ws.root().join("a/b/c.txt");
        assert_eq!(ws.resolve(&abs.display().to_string()).expect("abs"), abs);
    }

    #[test]
    fn parent_dir_escape_is_refused() {
        let (_dir, ws) = setup();
        assert_outside(ws.resolve("../x"));
        assert_outside(ws.resolve("a/../../x"));
        assert_outside(ws.resolve(".."));
        let err = ws.resolve("../x").expect_err("outside");
        let message = err.to_string();
        assert!(
            message.contains("path ../x is outside the workspace"),
            "{message}"
        );
        assert!(
            message.contains("use a path relative to the workspace"),
            "{message}"
        );
    }

    #[test]
    fn absolute_path_outside_is_refused() {
        let (_dir, ws) = setup();
        assert_outside(ws.resolve("/etc/passwd"));
        assert_outside(ws.resolve("/"));
    }

    #[test]
    fn symlink_to_etc_is_refused() {
        let (_dir, ws) = setup();
        symlink("/etc", ws.root().join("etc")).expect("symlink");
        symlink("/etc/passwd", ws.root().join("passwd")).expect("symlink");
        assert_outside(ws.resolve("etc"));
        assert_outside(ws.resolve("etc/passwd"));
        assert_outside(ws.resolve("passwd"));
        assert_outside(ws.resolve_entry("passwd"));
    }

    #[test]
    fn symlinked_dir_pointing_out_is_refused_even_for_new_files() {
        let (_dir, ws) = setup();
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(ws.root().join("inner")).expect("mkdir");
        symlink(outside.path(), ws.root().join("inner/out")).expect("symlink");
        assert_outside(ws.resolve("inner/out"));
        assert_outside(ws.resolve("inner/out/new-file.txt"));
        assert_outside(ws.resolve("inner/out/new-dir/new-file.txt"));
        // A relative link that climbs out.
        symlink("../../..", ws.root().join("inner/up")).expect("symlink");
        assert_outside(ws.resolve("inner/up/anything"));
    }

    #[test]
    fn dangling_symlink_pointing_out_is_refused() {
        let (_dir, ws) = setup();
        symlink("/nonexistent-perstack-dir/file", ws.root().join("dangling")).expect("symlink");
        assert_outside(ws.resolve("dangling"));
        assert_outside(ws.resolve_entry("dangling"));
    }

    #[test]
    fn symlinks_inside_are_followed() {
        let (_dir, ws) = setup();
        std::fs::create_dir(ws.root().join("real")).expect("mkdir");
        symlink("real", ws.root().join("alias")).expect("symlink");
        assert_eq!(
            ws.resolve("alias/file").expect("resolve"),
            ws.root().join("real/file")
        );
        // The entry is the link itself, so deleting it leaves the target alone.
        assert_eq!(
            ws.resolve_entry("alias").expect("entry"),
            ws.root().join("alias")
        );
    }

    #[test]
    fn symlink_loop_is_an_error_not_a_hang() {
        let (_dir, ws) = setup();
        symlink("b", ws.root().join("a")).expect("symlink");
        symlink("a", ws.root().join("b")).expect("symlink");
        assert!(matches!(
            ws.resolve("a/x"),
            Err(WorkspaceError::Resolve { .. })
        ));
    }

    #[test]
    fn the_job_store_and_dotenv_files_are_off_limits() {
        let (_dir, ws) = setup();
        std::fs::create_dir_all(ws.root().join("perstack/jobs")).expect("mkdir");
        std::fs::write(ws.root().join(".env"), "KEY=secret").expect("write");
        std::fs::write(ws.root().join("custom.env"), "KEY=secret").expect("write");
        symlink(".env", ws.root().join("alias")).expect("symlink");
        for path in [
            "perstack",
            "perstack/jobs/x.json",
            "./perstack/../perstack/new",
        ] {
            let err = ws.resolve(path).expect_err("store");
            assert!(matches!(err, WorkspaceError::Store { .. }), "{path}: {err}");
            assert!(err.to_string().contains("job store perstack/"), "{err}");
        }
        assert!(matches!(
            ws.resolve_entry("perstack/jobs"),
            Err(WorkspaceError::Store { .. })
        ));
        for path in [".env", ".env.local", "alias"] {
            let err = ws.resolve(path).expect_err("secret");
            assert!(
                matches!(err, WorkspaceError::Secret { .. }),
                "{path}: {err}"
            );
        }
        assert!(ws.resolve("custom.env").is_ok());
        assert!(ws.resolve("perstack.toml").is_ok());
        let custom = ws.clone().with_dotenv_files(&["custom.env"]);
        assert!(matches!(
            custom.resolve("custom.env"),
            Err(WorkspaceError::Secret { .. })
        ));
        assert!(custom.resolve(".env").is_ok());
    }

    #[test]
    fn empty_path_and_missing_root_are_errors() {
        let (dir, ws) = setup();
        assert!(matches!(ws.resolve(""), Err(WorkspaceError::Empty)));
        assert!(Workspace::new(dir.path().join("missing")).is_err());
        assert_eq!(ws.resolve_entry(".").expect("root"), ws.root());
    }
}
