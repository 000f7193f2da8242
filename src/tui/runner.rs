//! Performs the effects `AppState::update` asks for: starts and resumes jobs on background
//! tasks, cancels them, writes files, switches to the replay provider. Results come back to the
//! loop as messages; nothing here blocks the UI.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::app::{Effect, Msg};
use crate::cli::run::{Overrides, Prepared, prepare_loaded};
use crate::definition::watch::Reload;
use crate::definition::{Config, LoadedConfig};
use crate::llm::LanguageModel;
use crate::runtime::checkpoint::Store;
use crate::runtime::control::{Breakpoint, Control, Debugger};
use crate::runtime::event::RunEvent;
use crate::runtime::id::{new_id, now_millis};
use crate::runtime::job::run_job;
use crate::runtime::run::{JobContext, RunStart};

/// What a job needs once a provider is ready.
#[derive(Clone)]
pub struct Ready {
    pub config: Arc<Config>,
    pub model: Arc<dyn LanguageModel>,
    pub workspace: PathBuf,
    pub store: Store,
    /// What MCP skills may draw their `requiredEnv` from, and perstack.lock.
    pub env: Arc<std::collections::HashMap<String, String>>,
    pub lock: Option<crate::skills::lock::Lock>,
}

impl From<Prepared> for Ready {
    fn from(p: Prepared) -> Self {
        Ready {
            config: p.config,
            model: p.model,
            workspace: p.workspace,
            store: p.store,
            env: Arc::new(p.env),
            lock: p.lock,
        }
    }
}

pub struct Runner {
    pub loaded: LoadedConfig,
    pub overrides: Overrides,
    /// Filled by a background task when the provider is switched to replay.
    pub ready: Arc<Mutex<Option<Ready>>>,
    pub workspace: PathBuf,
    events: mpsc::UnboundedSender<RunEvent>,
    msgs: mpsc::UnboundedSender<Msg>,
    cancel: Option<watch::Sender<bool>>,
    /// One for the whole session: breakpoints outlive jobs.
    debugger: Arc<Debugger>,
    controls: mpsc::UnboundedSender<Control>,
}

impl Runner {
    pub fn new(
        loaded: LoadedConfig,
        overrides: Overrides,
        ready: Option<Ready>,
        workspace: PathBuf,
        events: mpsc::UnboundedSender<RunEvent>,
        msgs: mpsc::UnboundedSender<Msg>,
        breakpoints: Vec<Breakpoint>,
    ) -> Self {
        let (debugger, controls) = Debugger::new(breakpoints);
        Runner {
            debugger: Arc::new(debugger),
            controls,
            loaded,
            overrides,
            ready: Arc::new(Mutex::new(ready)),
            workspace,
            events,
            msgs,
            cancel: None,
        }
    }

    /// Performs one effect; returns false for `Quit`.
    pub fn perform(&mut self, effect: Effect) -> bool {
        match effect {
            Effect::Quit => return false,
            Effect::StartRun { expert_key, query } => {
                let job_id = self.overrides.job_id.clone().unwrap_or_else(new_id);
                // A given job id is for the first job only; later ones get fresh ids.
                self.overrides.job_id = None;
                self.spawn_job(job_id, expert_key, RunStart::Query(query), Some(0), true);
            }
            Effect::Resume {
                expert_key,
                checkpoint,
                query,
                answers,
            } => {
                let job_id = checkpoint.job_id.clone();
                let start = RunStart::Resume {
                    checkpoint: Box::new((*checkpoint).clone()),
                    query,
                    answers,
                    fork: false,
                };
                // The job record (steps used, start time) is read on the job's task.
                self.spawn_job(job_id, expert_key, start, None, true);
            }
            Effect::Fork {
                expert_key,
                checkpoint,
            } => {
                let job_id = checkpoint.job_id.clone();
                let start = RunStart::Resume {
                    checkpoint: Box::new((*checkpoint).clone()),
                    query: None,
                    answers: Vec::new(),
                    fork: true,
                };
                // A fork adds a run to the job and leaves the original's files as they were.
                self.spawn_job(job_id, expert_key, start, None, false);
            }
            Effect::SetBreakpoints(breakpoints) => self.debugger.set_breakpoints(breakpoints),
            Effect::Control(control) => {
                let _ = self.controls.send(control);
            }
            // The loop owns the terminal, so it runs the editor; the result comes here as
            // `send_edit`.
            Effect::EditRequest { .. } => {}
            Effect::Cancel => {
                if let Some(cancel) = &self.cancel {
                    let _ = cancel.send(true);
                }
            }
            Effect::WriteBody { name, body } => {
                let dir = self.workspace.join("perstack").join("requests");
                let msgs = self.msgs.clone();
                tokio::task::spawn_blocking(move || {
                    let text = match write_body(&dir, &name, &body) {
                        Ok(path) => format!("wrote the request body to {}", path.display()),
                        Err(err) => format!("could not write the body: {err}"),
                    };
                    let _ = msgs.send(Msg::Status(text));
                });
            }
            Effect::UseReplay => self.use_replay(),
        }
        true
    }

    fn spawn_job(
        &mut self,
        job_id: String,
        expert_key: String,
        start: RunStart,
        steps_used: Option<u64>,
        record: bool,
    ) {
        let started_at = now_millis();
        let ready = self.ready.lock().ok().and_then(|r| r.clone());
        let Some(ready) = ready else {
            let _ = self.msgs.send(Msg::JobEnded {
                error: Some("no model provider: press r to use the replay provider".into()),
            });
            return;
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.cancel = Some(cancel_tx);
        self.debugger.stop_stepping();
        let events = self.events.clone();
        let msgs = self.msgs.clone();
        let debugger = self.debugger.clone();
        tokio::spawn(async move {
            let (steps_used, started_at) = match steps_used {
                Some(steps) => (steps, started_at),
                None => {
                    let (store, id) = (ready.store.clone(), job_id.clone());
                    tokio::task::spawn_blocking(move || store.read_job(&id).ok())
                        .await
                        .ok()
                        .flatten()
                        .map(|j| (j.total_steps, j.started_at))
                        .unwrap_or((0, started_at))
                }
            };
            let job = Arc::new(
                JobContext::new(
                    job_id,
                    ready.config,
                    ready.workspace,
                    ready.model,
                    ready.store,
                    events,
                    cancel_rx,
                    steps_used,
                )
                .with_environment((*ready.env).clone(), ready.lock)
                .with_debugger(debugger),
            );
            let outcome = run_job(job.clone(), &expert_key, start, started_at, record).await;
            log(&format!("job {} ended: {:?}", job.job_id, outcome.status));
            let _ = msgs.send(Msg::JobEnded {
                error: outcome.error,
            });
        });
    }

    /// A body edited by hand, for the paused run to check and send.
    pub fn send_edit(&self, body: String) {
        let _ = self.controls.send(Control::Edit { body });
    }

    /// perstack.toml changed on disk. Valid: new runs and forks use it (a run in progress keeps
    /// what it started with), and the provider is built again from it. Invalid: the panel shows
    /// why, and the last good definitions stay.
    pub fn on_reload(&mut self, reload: Reload) {
        match reload {
            Reload::Applied { loaded, changes } => {
                self.loaded = *loaded;
                let config = Arc::new(self.loaded.config.clone());
                // A small file: the tools of MCP skills, as `perstack install` found them.
                let lock_path = crate::skills::lock::lock_path(&self.loaded.path);
                let lock = crate::skills::lock::read_lock(&lock_path).ok().flatten();
                let _ = self.msgs.send(Msg::Reloaded {
                    config,
                    changes,
                    lock,
                });
                self.rebuild_provider(None);
            }
            Reload::Failed { diagnostics } => {
                let rendered = diagnostics.iter().map(|d| d.render()).collect();
                let _ = self.msgs.send(Msg::ReloadFailed(rendered));
            }
        }
    }

    fn use_replay(&mut self) {
        let script = self
            .overrides
            .replay
            .clone()
            .or_else(|| find_replay_script(&self.loaded.dir));
        let Some(script) = script else {
            let _ = self.msgs.send(Msg::Status(format!(
                "no replay script: pass --replay FILE or put one in {}",
                self.loaded.dir.join("assets").display()
            )));
            return;
        };
        self.overrides.replay = Some(script.clone());
        self.rebuild_provider(Some(format!(
            "replay provider: answers from {}",
            script.display()
        )));
    }

    /// Builds the provider and environment again from the current definitions and overrides.
    /// `note` is said when it is ready.
    fn rebuild_provider(&self, note: Option<String>) {
        let (overrides, loaded) = (self.overrides.clone(), self.loaded.clone());
        let (ready, msgs) = (self.ready.clone(), self.msgs.clone());
        // Building a provider reads env files: off the UI's thread.
        tokio::task::spawn_blocking(move || match prepare_loaded(loaded, &overrides) {
            Ok(prepared) => {
                let model = super::model_label(prepared.model.as_ref());
                if let Ok(mut slot) = ready.lock() {
                    *slot = Some(prepared.into());
                }
                let _ = msgs.send(Msg::ProviderReady { model, note });
            }
            Err(err) => {
                let _ = msgs.send(Msg::ProviderFailed(err));
            }
        });
    }
}

/// The first `assets/*.replay.toml` next to perstack.toml.
pub fn find_replay_script(config_dir: &Path) -> Option<PathBuf> {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(config_dir.join("assets"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".replay.toml"))
        .collect();
    scripts.sort();
    scripts.into_iter().next()
}

fn write_body(dir: &Path, name: &str, body: &str) -> std::io::Result<PathBuf> {
    let path = match std::fs::create_dir_all(dir) {
        Ok(()) => dir.join(name),
        Err(_) => std::env::temp_dir().join(name),
    };
    std::fs::write(&path, body)?;
    Ok(path)
}

/// A line in the workbench log (stderr is redirected there while the screen is ours).
pub fn log(line: &str) {
    eprintln!("[{}] {line}", now_millis());
}
