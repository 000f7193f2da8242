//! Performs the effects `AppState::update` asks for: starts and resumes jobs on background
//! tasks, cancels them, writes files, switches to the replay provider. Results come back to the
//! loop as messages; nothing here blocks the UI.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::app::{AbSide, Effect, Msg};
use crate::definition::LoadedConfig;
use crate::definition::watch::Reload;
use crate::runtime::control::{Breakpoint, Control, Debugger};
use crate::runtime::event::RunEvent;
use crate::runtime::variant::Variant;
use crate::runtime::{Canceller, JobStart, Overrides, Runtime};

pub struct Runner {
    pub loaded: LoadedConfig,
    pub overrides: Overrides,
    /// Filled again by a background task when the definitions or the provider change.
    pub runtime: Arc<Mutex<Option<Runtime>>>,
    pub workspace: PathBuf,
    events: mpsc::UnboundedSender<RunEvent>,
    msgs: mpsc::UnboundedSender<Msg>,
    cancel: Arc<Mutex<CancelSlot>>,
    /// One for the whole session: breakpoints outlive jobs.
    debugger: Arc<Debugger>,
    controls: mpsc::UnboundedSender<Control>,
    /// The job followed from the store, stopped when another is chosen.
    following: Option<tokio::task::JoinHandle<()>>,
}

/// The running jobs' cancellers (two for an A/B), and whether a cancel came before a job had
/// started.
#[derive(Default)]
struct CancelSlot {
    cancellers: Vec<Canceller>,
    requested: bool,
}

impl Runner {
    pub fn new(
        loaded: LoadedConfig,
        overrides: Overrides,
        runtime: Option<Runtime>,
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
            runtime: Arc::new(Mutex::new(runtime)),
            workspace,
            events,
            msgs,
            cancel: Arc::default(),
            following: None,
        }
    }

    /// The store jobs are read from and written to: the runtime's, or (with no provider yet)
    /// the one `--storage` or the workspace names.
    fn store(&self) -> Result<Arc<dyn crate::store::Store>, String> {
        if let Some(runtime) = self.runtime.lock().ok().and_then(|r| r.clone()) {
            return Ok(runtime.store);
        }
        let storage = self
            .overrides
            .storage
            .clone()
            .or_else(|| self.loaded.config.storage.clone());
        crate::store::open_for_writing(storage.as_deref(), &self.workspace)
            .map_err(|err| err.to_string())
    }

    /// Performs one effect; returns false for `Quit`.
    pub fn perform(&mut self, effect: Effect) -> bool {
        match effect {
            Effect::Quit => return false,
            Effect::StartRun { expert_key, query } => {
                // A new job replaces the one followed from the store.
                if let Some(previous) = self.following.take() {
                    previous.abort();
                }
                // A given job id is for the first job only; later ones get fresh ids.
                let job_id = self.overrides.job_id.take();
                self.spawn_job(expert_key, JobStart::New { query, job_id }, None, None);
            }
            Effect::Resume {
                expert_key,
                checkpoint,
                query,
                answers,
            } => {
                let start = JobStart::Checkpoint {
                    checkpoint,
                    query,
                    answers,
                    fork: false,
                };
                self.spawn_job(expert_key, start, None, None);
            }
            Effect::Fork {
                expert_key,
                checkpoint,
                variant,
                ab,
            } => {
                // A fork adds a run to the job and leaves the original's files as they were.
                let start = JobStart::Checkpoint {
                    checkpoint,
                    query: None,
                    answers: Vec::new(),
                    fork: true,
                };
                self.spawn_job(expert_key, start, variant, ab);
            }
            Effect::SetBreakpoints(breakpoints) => self.debugger.set_breakpoints(breakpoints),
            Effect::Control(control) => {
                let _ = self.controls.send(control);
            }
            // The loop owns the terminal, so it runs the editor; the result comes here as
            // `send_edit`.
            // The loop performs these: they need the terminal.
            Effect::EditRequest { .. }
            | Effect::OpenInEditor(_)
            | Effect::EditVariantInstruction { .. } => {}
            Effect::Cancel => {
                if let Ok(mut slot) = self.cancel.lock() {
                    slot.requested = true;
                    for canceller in &slot.cancellers {
                        canceller.cancel();
                    }
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
            Effect::RememberQuery { query } => {
                let path = crate::tui::input::history_path(&self.workspace);
                let msgs = self.msgs.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(err) = crate::tui::input::append_history(&path, &query) {
                        let _ = msgs.send(Msg::Status(err.to_string()));
                    }
                });
            }
            Effect::UseReplay => self.use_replay(),
            Effect::ListJobs => {
                let msgs = self.msgs.clone();
                match self.store() {
                    Ok(store) => {
                        tokio::task::spawn_blocking(move || {
                            super::panes::jobs::list_jobs(&*store, |msg| {
                                let _ = msgs.send(msg);
                            });
                        });
                    }
                    Err(error) => {
                        let _ = msgs.send(Msg::JobIdsListed {
                            location: String::new(),
                            ids: Err(error),
                        });
                    }
                }
            }
            Effect::OpenJob { job_id } => {
                if let Some(previous) = self.following.take() {
                    previous.abort();
                }
                match self.store() {
                    Ok(store) => {
                        let follow = super::panes::jobs::follow_job(
                            store,
                            job_id,
                            self.events.clone(),
                            self.msgs.clone(),
                            super::panes::jobs::FOLLOW_EVERY,
                        );
                        self.following = Some(tokio::spawn(follow));
                    }
                    Err(error) => {
                        let _ = self.msgs.send(Msg::Status(error));
                    }
                }
            }
            Effect::Vendor { key, text } => {
                let path = self.loaded.path.clone();
                let msgs = self.msgs.clone();
                // The save is picked up by the watcher like any edit: the reload shows it.
                tokio::task::spawn_blocking(move || {
                    let text = match append(&path, &text) {
                        Ok(()) => format!(
                            "{key} copied into {} as a local Expert: edit it there",
                            path.display()
                        ),
                        Err(err) => format!("could not copy {key} into {}: {err}", path.display()),
                    };
                    let _ = msgs.send(Msg::Status(text));
                });
            }
        }
        true
    }

    /// Starts a job on a background task. `variant` changes one thing for it (side `ab` of an
    /// A/B, whose first event reports its run id); B of an A/B runs beside A, so A's canceller
    /// is kept.
    fn spawn_job(
        &mut self,
        expert_key: String,
        start: JobStart,
        variant: Option<Variant>,
        ab: Option<AbSide>,
    ) {
        let runtime = self.runtime.lock().ok().and_then(|r| r.clone());
        let Some(runtime) = runtime else {
            let _ = self.msgs.send(Msg::JobEnded {
                error: Some("no model provider: press r to use the replay provider".into()),
            });
            return;
        };
        if ab != Some(AbSide::B) {
            if let Ok(mut slot) = self.cancel.lock() {
                *slot = CancelSlot::default();
            }
            self.debugger.stop_stepping();
        }
        let (events, msgs, debugger) = (
            self.events.clone(),
            self.msgs.clone(),
            self.debugger.clone(),
        );
        let cancel = self.cancel.clone();
        let (loaded, overrides) = (self.loaded.clone(), self.overrides.clone());
        tokio::spawn(async move {
            let runtime = match with_variant(runtime, variant, loaded, overrides).await {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = msgs.send(Msg::JobEnded { error: Some(err) });
                    return;
                }
            };
            let mut job = match runtime.start(&expert_key, start, debugger).await {
                Ok(job) => job,
                Err(err) => {
                    let _ = msgs.send(Msg::JobEnded {
                        error: Some(err.to_string()),
                    });
                    return;
                }
            };
            if let Ok(mut slot) = cancel.lock() {
                let canceller = job.canceller();
                if slot.requested {
                    canceller.cancel();
                }
                slot.cancellers.push(canceller);
            }
            let mut side = ab;
            while let Some(event) = job.events.recv().await {
                if let Some(side) = side.take() {
                    let _ = msgs.send(Msg::AbRun {
                        side,
                        run_id: event.run_id.clone(),
                    });
                }
                if events.send(event).is_err() {
                    break;
                }
            }
            let job_id = job.job_id.clone();
            let outcome = job.outcome().await;
            tracing::info!(job = %job_id, status = ?outcome.status, "job ended");
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
                let registry = registry_entries(&self.loaded);
                let _ = self.msgs.send(Msg::Reloaded {
                    config,
                    changes,
                    lock,
                    registry,
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
        let (slot, msgs) = (self.runtime.clone(), self.msgs.clone());
        // Building a provider reads env files: off the UI's thread.
        tokio::task::spawn_blocking(move || match Runtime::prepare(&loaded, &overrides) {
            Ok(runtime) => {
                let model = super::model_label(runtime.model.as_ref());
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(runtime);
                }
                let _ = msgs.send(Msg::ProviderReady { model, note });
            }
            Err(err) => {
                let _ = msgs.send(Msg::ProviderFailed(err.to_string()));
            }
        });
    }
}

/// The registry Experts of perstack.lock that are not vendored into the definitions.
pub fn registry_entries(loaded: &LoadedConfig) -> Vec<crate::registry::RegistryEntry> {
    let lock_path = crate::skills::lock::lock_path(&loaded.path);
    match crate::skills::lock::read_registry(&lock_path) {
        Ok(pins) => crate::registry::registry_experts(&loaded.config, &pins),
        Err(err) => {
            tracing::warn!(
                "registry Experts of {} not listed: {err}",
                lock_path.display()
            );
            Vec::new()
        }
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

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn write_body(dir: &Path, name: &str, body: &str) -> std::io::Result<PathBuf> {
    let path = match std::fs::create_dir_all(dir) {
        Ok(()) => dir.join(name),
        Err(_) => std::env::temp_dir().join(name),
    };
    std::fs::write(&path, body)?;
    Ok(path)
}

/// `runtime` with `variant` in force: a model or provider variant builds the provider again
/// from the definitions and overrides in force (off the UI's thread); the model in force (side A)
/// or an instruction variant only rides along to the job.
async fn with_variant(
    runtime: Runtime,
    variant: Option<Variant>,
    loaded: LoadedConfig,
    mut overrides: Overrides,
) -> Result<Runtime, String> {
    let Some(variant) = variant else {
        return Ok(runtime);
    };
    let same_model = variant.provider.is_none()
        && variant
            .model
            .as_deref()
            .is_none_or(|model| model == runtime.model.model() || model == "replay");
    if same_model {
        return Ok(Runtime {
            variant: Some(variant),
            ..runtime
        });
    }
    overrides.variant = Some(variant);
    tokio::task::spawn_blocking(move || Runtime::prepare(&loaded, &overrides))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| format!("the A/B variant: {err}"))
}
