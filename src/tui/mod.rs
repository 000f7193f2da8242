//! `perstack start`: the workbench. This file owns the terminal (setup, and restore on quit,
//! error, panic and SIGTERM/SIGHUP) and the loop: one `select!` over terminal input, runtime
//! events, results of effects and frame deadlines. There is no fixed tick: a frame is drawn
//! only when something changed, at most 60 times a second, plus once a second while a run is
//! active so elapsed times move.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyEventKind, MouseButton, MouseEventKind,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use crate::definition::LoadedConfig;
use crate::definition::watch::{ConfigWatcher, Reload};
use crate::editor::Edited;
use crate::runtime::control::Breakpoint;
use crate::runtime::event::RunEvent;
use crate::runtime::id::now_millis;
use crate::runtime::{Overrides, PrepareError, Runtime};

pub mod app;
pub mod goto;
pub mod highlight;
pub mod input;
pub mod keymap;
pub mod layout;
pub mod panes;
pub mod pricing;
pub mod runner;
pub mod theme;
pub mod wrap;

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod authoring_tests;
#[cfg(test)]
mod prompt_view_tests;
#[cfg(test)]
mod snapshot_tests;
/// Scripted event streams, shared by the tests and the benchmark (`--features test-support`).
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod test_support;

use app::{AppState, Msg};
use highlight::Highlighter;
use panes::Ctx;
use runner::Runner;
use theme::Theme;

/// 60 frames a second at most.
const FRAME: Duration = Duration::from_millis(16);

/// Editors write a file in several events; this is long enough to see them as one save and short
/// enough to keep a reload well under a tenth of a second.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(30);

/// What the workbench opens with, from the command line or any other front end.
pub struct WorkbenchOptions {
    /// The Expert to select, and a query to start at once.
    pub expert_key: Option<String>,
    pub query: Option<String>,
    pub theme: Theme,
    pub breakpoints: Vec<Breakpoint>,
    /// Kept for rebuilding the runtime after a reload or a switch to replay.
    pub overrides: Overrides,
    /// When the command started, for the first-frame time in the log.
    pub started: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkbenchError {
    #[error("cannot start the async runtime: {0}")]
    AsyncRuntime(io::Error),
    #[error("cannot open the terminal: {0}")]
    Terminal(io::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Opens the workbench on `loaded`. Without a runtime (no API key, say) it still opens: it
/// shows why and offers the replay provider.
pub fn start(
    loaded: LoadedConfig,
    runtime: Result<Runtime, PrepareError>,
    workspace: PathBuf,
    options: WorkbenchOptions,
) -> Result<(), WorkbenchError> {
    let (runtime, provider_error) = match runtime {
        Ok(runtime) => (Some(runtime), None),
        Err(err) => (None, Some(err.to_string())),
    };
    let model = runtime
        .as_ref()
        .map(|r| model_label(r.model.as_ref()))
        .or_else(|| options.overrides.model.clone())
        .or_else(|| loaded.config.model.clone())
        .unwrap_or_default();
    let mut state = AppState::new(&loaded.config, model);
    state.breakpoints = options.breakpoints.clone();
    // Without a runtime the lock is still worth reading: it lists the skills' tools.
    let lock = match &runtime {
        Some(runtime) => runtime.lock.clone(),
        None => crate::skills::lock::read_lock(&crate::skills::lock::lock_path(&loaded.path))
            .ok()
            .flatten(),
    };
    if let Some(lock) = &lock {
        state.use_lock(lock);
    }
    state.registry = runner::registry_entries(&loaded);
    match input::load_history(&input::history_path(&workspace)) {
        Ok(entries) => state.history = input::QueryHistory::new(entries),
        Err(err) => state.status = Some(err.to_string()),
    }
    state.provider_error = provider_error;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(WorkbenchError::AsyncRuntime)?;
    tracing::info!("workbench starting");
    let terminal = TerminalGuard::enter().map_err(WorkbenchError::Terminal)?;
    let result = tokio.block_on(run_loop(
        terminal, state, &options, loaded, runtime, workspace,
    ));
    // Background tasks (a cancelled run writing its checkpoint) get a moment, then stop.
    tokio.shutdown_timeout(Duration::from_millis(500));
    Ok(result?)
}

/// The model as shown and priced: a replayed run costs nothing.
pub fn model_label(model: &dyn crate::llm::LanguageModel) -> String {
    if model.provider() == "replay" {
        "replay".into()
    } else {
        model.model().to_string()
    }
}

async fn run_loop(
    mut terminal: TerminalGuard,
    mut state: AppState,
    options: &WorkbenchOptions,
    loaded: LoadedConfig,
    runtime: Option<Runtime>,
    workspace: PathBuf,
) -> io::Result<()> {
    let theme = &options.theme;
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<RunEvent>();
    let (msgs_tx, mut msgs_rx) = mpsc::unbounded_channel::<Msg>();
    let (reload_tx, mut reload_rx) = mpsc::unbounded_channel::<Reload>();
    // Watching is a convenience: without it (no inotify left) the workbench still works.
    let _watcher = match ConfigWatcher::start(&loaded, RELOAD_DEBOUNCE, reload_tx) {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            state.status = Some(format!("perstack.toml is not watched: {err}"));
            None
        }
    };
    // `o` opens the definitions where they are on disk.
    let config_path = loaded.path.clone();
    let mut runner = Runner::new(
        loaded,
        options.overrides.clone(),
        runtime,
        workspace.clone(),
        events_tx,
        msgs_tx,
        options.breakpoints.clone(),
    );
    let highlighter = Highlighter::new(&theme.syntax);
    let size = terminal.terminal.size()?;
    state.update(Msg::Resize {
        width: size.width,
        height: size.height,
    });
    state.update(Msg::Tick {
        now_ms: now_millis(),
    });
    if let Some(key) = &options.expert_key {
        let effects = match &options.query {
            Some(query) => state.start_query(key, query.clone()),
            None => state.start_query_box(key),
        };
        for effect in effects {
            runner.perform(effect);
        }
    }
    // A remote store is for reading jobs recorded elsewhere: start by choosing one.
    if options.expert_key.is_none() && options.overrides.storage.is_some() {
        for effect in state.open_job_picker() {
            runner.perform(effect);
        }
    }
    let mut input = EventStream::new();
    let mut term_signal = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut dirty = true;
    let mut first_frame = true;
    let mut reload_seen: Option<Instant> = None;
    let mut last_draw = Instant::now() - FRAME;
    loop {
        if dirty && last_draw.elapsed() >= FRAME {
            let ctx = Ctx {
                theme,
                highlighter: &highlighter,
            };
            terminal
                .terminal
                .draw(|frame| panes::draw_app(frame, &state, &ctx))?;
            dirty = false;
            last_draw = Instant::now();
            if let Some(seen) = reload_seen.take() {
                tracing::info!(
                    "reload drawn {:?} after the watcher reported it",
                    seen.elapsed()
                );
            }
            if first_frame {
                first_frame = false;
                tracing::info!("first frame after {:?}", options.started.elapsed());
                // Debug builds only: lets the end-to-end test check the panic path.
                #[cfg(debug_assertions)]
                if std::env::var_os("PERSTACK_WORKBENCH_TEST_PANIC").is_some() {
                    panic!("test panic after the first frame");
                }
            }
        }
        let frame_due = last_draw + FRAME;
        let running = state.job_state.active();
        let mut msgs = Vec::new();
        tokio::select! {
            event = input.next() => match event {
                Some(Ok(event)) => msgs.extend(input_msg(event)),
                Some(Err(err)) => return Err(err),
                None => return Ok(()),
            },
            Some(event) = events_rx.recv() => {
                msgs.push(Msg::Run(Box::new(event)));
                // Take what else is queued: one redraw for a burst of deltas.
                while msgs.len() < 4096 {
                    match events_rx.try_recv() {
                        Ok(event) => msgs.push(Msg::Run(Box::new(event))),
                        Err(_) => break,
                    }
                }
            },
            Some(msg) = msgs_rx.recv() => msgs.push(msg),
            Some(reload) = reload_rx.recv() => {
                reload_seen = Some(Instant::now());
                runner.on_reload(reload);
            },
            _ = tokio::time::sleep_until(frame_due.into()), if dirty => {},
            _ = tokio::time::sleep(Duration::from_secs(1)), if running && !dirty => {
                msgs.push(Msg::Tick { now_ms: now_millis() });
            },
            _ = term_signal.recv() => { tracing::info!("SIGTERM: restoring the terminal"); return Ok(()); },
            _ = hangup.recv() => { tracing::info!("SIGHUP: restoring the terminal"); return Ok(()); },
        }
        if msgs.is_empty() {
            continue;
        }
        dirty = true;
        state.now_ms = now_millis();
        for msg in msgs {
            for effect in state.update(msg) {
                if let app::Effect::OpenInEditor(target) = effect {
                    input =
                        open_in_editor(&mut terminal, input, &target, &config_path, &mut state)?;
                    continue;
                }
                if let app::Effect::EditVariantInstruction { expert_key } = effect {
                    let (handed_back, forks) = edit_variant_instruction(
                        &mut terminal,
                        input,
                        &expert_key,
                        &workspace,
                        &runner,
                        &mut state,
                    )?;
                    input = handed_back;
                    for fork in forks {
                        runner.perform(fork);
                    }
                    continue;
                }
                if let app::Effect::EditRequest { body } = effect {
                    input = edit_in_terminal(
                        &mut terminal,
                        input,
                        &body,
                        &workspace,
                        &mut runner,
                        &mut state,
                    )?;
                    continue;
                }
                if !runner.perform(effect) {
                    return Ok(());
                }
            }
        }
    }
}

/// `o`: hands the terminal to $EDITOR at the line of a definition or a diagnostic, and takes it
/// back. The save is picked up by the watcher like any edit, so it reloads as it always does.
fn open_in_editor(
    terminal: &mut TerminalGuard,
    input: EventStream,
    target: &app::EditorTarget,
    config_path: &std::path::Path,
    state: &mut AppState,
) -> io::Result<EventStream> {
    let (path, line) = match target {
        app::EditorTarget::File { path, line } => (path.clone(), *line),
        app::EditorTarget::Definition { expert, skill } => {
            let text = std::fs::read_to_string(config_path).unwrap_or_default();
            match goto::definition_line(&text, expert, skill.as_deref()) {
                Some(line) => (config_path.to_path_buf(), line),
                None => {
                    state.status = Some(format!(
                        "{expert} is not written in {} (a registry Expert? V vendors it)",
                        config_path.display()
                    ));
                    return Ok(input);
                }
            }
        }
    };
    drop(input);
    restore();
    let result = crate::editor::open_at(&path, line);
    TerminalGuard::resume()?;
    execute!(
        io::stdout(),
        crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
    )?;
    terminal.terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    state.status = Some(match result {
        Ok(()) => format!("back from {}:{line}", path.display()),
        Err(e) => format!("editor: {e}"),
    });
    Ok(EventStream::new())
}

/// Hands the terminal to $EDITOR with the pending request body, takes it back, and gives the
/// edit to the paused run (which checks it against the provider's format before anything is
/// sent). Returns the new input stream: the old one is dropped so it cannot steal the editor's
/// keys.
fn edit_in_terminal(
    terminal: &mut TerminalGuard,
    input: EventStream,
    body: &str,
    workspace: &std::path::Path,
    runner: &mut Runner,
    state: &mut AppState,
) -> io::Result<EventStream> {
    let dir = workspace.join("perstack").join("requests");
    let (input, result) = hand_to_editor(terminal, input, || {
        crate::editor::edit_text(body, &dir, "json")
    })?;
    let message = match result {
        Ok(Edited::Changed(edited)) => match serde_json::from_str::<serde_json::Value>(&edited) {
            Ok(_) => {
                runner.send_edit(edited);
                "edit sent to the paused run; c continues with it".to_string()
            }
            // Refused here too, so a typo costs no round trip; nothing is sent.
            Err(err) => format!("edit refused, nothing sent: not valid JSON: {err}"),
        },
        Ok(Edited::Unchanged) => "the request was not changed".to_string(),
        Err(err) => format!("cannot edit the request: {err}"),
    };
    state.update(Msg::Status(message));
    Ok(input)
}

/// Leaves the screen to `edit` (an editor in the terminal) and takes it back.
fn hand_to_editor<T>(
    terminal: &mut TerminalGuard,
    input: EventStream,
    edit: impl FnOnce() -> T,
) -> io::Result<(EventStream, T)> {
    drop(input);
    restore();
    let result = edit();
    TerminalGuard::resume()?;
    // A fresh terminal has empty buffers, so the next frame is drawn whole on the cleared
    // screen. (`Terminal::clear` would ask the terminal for the cursor position, and the
    // answer can be lost to the input reader that is still shutting down.)
    execute!(
        io::stdout(),
        crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
    )?;
    terminal.terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    Ok((EventStream::new(), result))
}

/// A/B with an instruction: the Expert's instruction in $EDITOR; a changed text starts both
/// forks (returned as effects), B with it.
fn edit_variant_instruction(
    terminal: &mut TerminalGuard,
    input: EventStream,
    expert_key: &str,
    workspace: &std::path::Path,
    runner: &Runner,
    state: &mut AppState,
) -> io::Result<(EventStream, Vec<app::Effect>)> {
    let current = runner
        .runtime
        .lock()
        .ok()
        .and_then(|runtime| {
            let runtime = runtime.as_ref()?;
            Some(runtime.config.experts.get(expert_key)?.instruction.clone())
        })
        .unwrap_or_default();
    let dir = workspace.join("perstack").join("requests");
    let (input, result) = hand_to_editor(terminal, input, || {
        crate::editor::edit_text(&current, &dir, "md")
    })?;
    let effects = match result {
        Ok(Edited::Changed(text)) => state.instruction_edited(Some(text)),
        Ok(Edited::Unchanged) => state.instruction_edited(None),
        Err(err) => {
            state.update(Msg::Status(format!("cannot edit the instruction: {err}")));
            Vec::new()
        }
    };
    Ok((input, effects))
}

fn signal(kind: tokio::signal::unix::SignalKind) -> io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind)
}

fn input_msg(event: Event) -> Option<Msg> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => Some(Msg::Key(key)),
        Event::Paste(text) => Some(Msg::Paste(text)),
        Event::Resize(width, height) => Some(Msg::Resize { width, height }),
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::Down(MouseButton::Left) => Some(Msg::Click {
                col: mouse.column,
                row: mouse.row,
            }),
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => Some(Msg::Wheel {
                col: mouse.column,
                row: mouse.row,
                down: mouse.kind == MouseEventKind::ScrollDown,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// The terminal in raw mode on the alternate screen; dropping it restores everything.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<io::Stdout>>,
}

impl TerminalGuard {
    /// Raw mode and the alternate screen: at start, and again after the terminal was lent out.
    fn resume() -> io::Result<()> {
        enable_raw_mode()?;
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste
        )
    }

    fn enter() -> io::Result<Self> {
        install_panic_hook();
        if let Err(err) = TerminalGuard::resume() {
            restore();
            return Err(err);
        }
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(err) => {
                restore();
                Err(err)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen. Safe to call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let mut stdout = io::stdout();
    let _ = execute!(
        stdout,
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = stdout.flush();
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The screen first, so the message is readable.
        restore();
        previous(info);
    }));
}
