//! Hot reload: perstack.toml (and the dotenv files it names) are watched; a change is loaded
//! and checked off the caller's thread. A valid file is sent as [`Reload::Applied`] with what
//! changed; an invalid one as [`Reload::Failed`] with every diagnostic, and the last good
//! definitions stay in force.
//!
//! The directory is watched, not the file: editors save by rename (VS Code, JetBrains, vim's
//! backup-then-write) as often as by truncate-then-write, and a rename replaces the file a
//! file watch would follow.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc::UnboundedSender;

use super::diagnostic::Diagnostic;
use super::load::{ConfigError, LoadedConfig, load_file};
use super::model::Config;

#[derive(Debug, Clone)]
pub enum Reload {
    /// The file changed and is valid: these definitions are now in force.
    Applied {
        loaded: Box<LoadedConfig>,
        /// What changed, one short line each ("expert \"writer\" added").
        changes: Vec<String>,
    },
    /// The file changed and is invalid: the last good definitions stay.
    Failed { diagnostics: Vec<Diagnostic> },
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct WatchError {
    path: PathBuf,
    #[source]
    source: notify::Error,
}

/// Watches until dropped.
pub struct ConfigWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

struct State {
    last_good: Config,
    failing: bool,
}

impl ConfigWatcher {
    /// `current` is the configuration in force; changes are compared against it.
    pub fn start(
        loaded: &LoadedConfig,
        debounce: Duration,
        sender: UnboundedSender<Reload>,
    ) -> Result<Self, WatchError> {
        let config_path = loaded.path.clone();
        let dir = loaded.dir.clone();
        let watched: Vec<PathBuf> = std::iter::once(config_path.clone())
            .chain(loaded.config.env_paths().iter().map(|p| dir.join(p)))
            .filter_map(|p| p.file_name().map(|n| dir.join(n)))
            .collect();
        let state = Mutex::new(State {
            last_good: loaded.config.clone(),
            failing: false,
        });
        let handler = move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            // Reading the file is an access event too: only changes count, or a reload would
            // trigger itself forever.
            let touched: Vec<&PathBuf> = events
                .iter()
                .filter(|e| !matches!(e.event.kind, notify::EventKind::Access(_)))
                .flat_map(|e| e.event.paths.iter())
                .filter(|p| watched.iter().any(|w| same_file(w, p)))
                .collect();
            if touched.is_empty() {
                return;
            }
            let env_changed = touched.iter().any(|p| !same_file(&config_path, p));
            if let Some(reload) = reload(&config_path, &state, env_changed) {
                let _ = sender.send(reload);
            }
        };
        let mut debouncer =
            new_debouncer(debounce, None, handler).map_err(|source| WatchError {
                path: dir.clone(),
                source,
            })?;
        debouncer
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError { path: dir, source })?;
        Ok(ConfigWatcher {
            _debouncer: debouncer,
        })
    }
}

fn same_file(watched: &Path, event_path: &Path) -> bool {
    watched.file_name() == event_path.file_name()
}

fn reload(path: &Path, state: &Mutex<State>, env_changed: bool) -> Option<Reload> {
    let mut state = state.lock().ok()?;
    match load_file(path) {
        Ok(loaded) => {
            let mut changes = describe_changes(&state.last_good, &loaded.config);
            if env_changed {
                changes.push("an environment file changed".into());
            }
            if changes.is_empty() && !state.failing {
                // Saved without a change (or a half-written file read twice): nothing to say.
                return None;
            }
            if changes.is_empty() {
                changes.push("the file is valid again".into());
            }
            state.last_good = loaded.config.clone();
            state.failing = false;
            Some(Reload::Applied {
                loaded: Box::new(loaded),
                changes,
            })
        }
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            state.failing = true;
            Some(Reload::Failed { diagnostics })
        }
        // The file is gone for a moment during some saves; its new version brings an event.
        Err(ConfigError::NotFound { .. }) => None,
    }
}

/// What a person wants to read after a save: Experts added or removed, what changed in each.
pub fn describe_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changes = Vec::new();
    for key in new.experts.keys() {
        if !old.experts.contains_key(key) {
            changes.push(format!("expert \"{key}\" added"));
        }
    }
    for key in old.experts.keys() {
        if !new.experts.contains_key(key) {
            changes.push(format!("expert \"{key}\" removed"));
        }
    }
    for (key, after) in &new.experts {
        let Some(before) = old.experts.get(key) else {
            continue;
        };
        let mut parts = Vec::new();
        if before.instruction != after.instruction {
            parts.push("instruction");
        }
        if before.description != after.description {
            parts.push("description");
        }
        if before.delegates != after.delegates {
            parts.push("delegates");
        }
        if before.skills != after.skills {
            parts.push("skills");
        }
        if before.version != after.version || before.tags != after.tags {
            parts.push("version or tags");
        }
        if !parts.is_empty() {
            changes.push(format!("expert \"{key}\": {} changed", parts.join(", ")));
        }
    }
    let settings = |c: &Config| {
        (
            c.model.clone(),
            c.reasoning_budget,
            c.max_steps,
            c.max_retries,
            c.timeout,
            c.provider.clone(),
            c.env_path.clone(),
        )
    };
    if settings(old) != settings(new) {
        changes.push("top-level settings changed (model, provider, limits)".into());
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::parse_str;

    fn config(source: &str) -> Config {
        parse_str(source, Path::new("perstack.toml"))
            .expect("valid")
            .0
    }

    #[test]
    fn changes_are_described_per_expert() {
        let old = config("[experts.a]\ninstruction = \"x\"\n[experts.b]\ninstruction = \"y\"\n");
        let new = config(
            "model = \"m\"\n[experts.a]\ninstruction = \"changed\"\ndelegates = [\"c\"]\n[experts.c]\ninstruction = \"z\"\n",
        );
        assert_eq!(
            describe_changes(&old, &new),
            [
                "expert \"c\" added",
                "expert \"b\" removed",
                "expert \"a\": instruction, delegates changed",
                "top-level settings changed (model, provider, limits)",
            ]
        );
        assert!(describe_changes(&old, &old).is_empty());
    }
}
