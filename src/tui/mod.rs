//! `perstack start`: the workbench. This file owns the terminal (setup, and restore on quit,
//! error, panic and SIGTERM/SIGHUP) and the loop: one `select!` over terminal input, runtime
//! events, results of effects and frame deadlines. There is no fixed tick: a frame is drawn
//! only when something changed, at most 60 times a second, plus once a second while a run is
//! active so elapsed times move.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
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

use crate::cli::{self, StartArgs, run::prepare_loaded};
use crate::definition::watch::{ConfigWatcher, Reload};
use crate::editor::Edited;
use crate::runtime::event::RunEvent;
use crate::runtime::id::now_millis;

pub mod app;
pub mod highlight;
pub mod keymap;
pub mod layout;
pub mod panes;
pub mod pricing;
pub mod runner;
pub mod theme;

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod authoring_tests;
#[cfg(test)]
mod snapshot_tests;
/// Scripted event streams, shared by the tests and the benchmark (`--features test-support`).
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod test_support;

use app::{AppState, Msg};
use highlight::Highlighter;
use panes::Ctx;
use runner::{Ready, Runner, log};
use theme::Theme;

/// 60 frames a second at most.
const FRAME: Duration = Duration::from_millis(16);

/// Editors write a file in several events; this is long enough to see them as one save and short
/// enough to keep a reload well under a tenth of a second.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(30);

pub fn start(args: &StartArgs) -> ExitCode {
    let started = Instant::now();
    let theme = match Theme::load(args.theme.as_deref()) {
        Ok(theme) => theme,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(cli::exit::INVALID);
        }
    };
    let loaded = match cli::load_or_report(&args.config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // Without a key the workbench still opens: it shows the error and offers replay.
    let (ready, provider_error) = match prepare_loaded(loaded.clone(), &args.overrides) {
        Ok(prepared) => (Some(Ready::from(prepared)), None),
        Err(err) => (None, Some(err.trim_start_matches("error: ").to_string())),
    };
    let workspace = ready
        .as_ref()
        .map(|r| r.workspace.clone())
        .or_else(|| args.overrides.workspace.clone())
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(std::env::temp_dir);
    let model = ready
        .as_ref()
        .map(|r| model_label(r.model.as_ref()))
        .or_else(|| args.overrides.model.clone())
        .or_else(|| loaded.config.model.clone())
        .unwrap_or_default();
    let mut state = AppState::new(&loaded.config, model);
    state.breakpoints = args.breakpoints.clone();
    // A small file read once, before the first frame.
    if let Ok(Some(lock)) =
        crate::skills::lock::read_lock(&crate::skills::lock::lock_path(&loaded.path))
    {
        state.use_lock(&lock);
    }
    state.provider_error = provider_error;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(cli::exit::INVALID);
        }
    };
    let log_path = log_file(&workspace);
    let _stderr = StderrToFile::new(&log_path);
    log(&format!("workbench starting; log {}", log_path.display()));
    let terminal = match TerminalGuard::enter() {
        Ok(terminal) => terminal,
        Err(err) => {
            drop(_stderr);
            eprintln!("error: cannot open the terminal: {err}");
            return ExitCode::from(cli::exit::INVALID);
        }
    };
    let result = runtime.block_on(run_loop(
        terminal, state, theme, args, loaded, ready, workspace, started,
    ));
    // The guard inside run_loop restored the terminal; say why we stopped, if it was an error.
    drop(_stderr);
    // Background tasks (a cancelled run writing its checkpoint) get a moment, then stop.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(cli::exit::INVALID)
        }
    }
}

/// The model as shown and priced: a replayed run costs nothing.
pub fn model_label(model: &dyn crate::llm::LanguageModel) -> String {
    if model.provider() == "replay" {
        "replay".into()
    } else {
        model.model().to_string()
    }
}

fn log_file(workspace: &std::path::Path) -> PathBuf {
    let dir = workspace.join("perstack");
    if std::fs::create_dir_all(&dir).is_ok() {
        dir.join("workbench.log")
    } else {
        std::env::temp_dir().join("perstack-workbench.log")
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_loop(
    mut terminal: TerminalGuard,
    mut state: AppState,
    theme: Theme,
    args: &StartArgs,
    loaded: crate::definition::LoadedConfig,
    ready: Option<Ready>,
    workspace: PathBuf,
    started: Instant,
) -> io::Result<()> {
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
    let mut runner = Runner::new(
        loaded,
        args.overrides.clone(),
        ready,
        workspace.clone(),
        events_tx,
        msgs_tx,
        args.breakpoints.clone(),
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
    if let Some(key) = &args.expert_key {
        let effects = match &args.query {
            Some(query) => state.start_query(key, query.clone()),
            None => state.start_query_box(key),
        };
        for effect in effects {
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
                theme: &theme,
                highlighter: &highlighter,
            };
            terminal
                .terminal
                .draw(|frame| panes::draw_app(frame, &state, &ctx))?;
            dirty = false;
            last_draw = Instant::now();
            if let Some(seen) = reload_seen.take() {
                log(&format!(
                    "reload drawn {:?} after the watcher reported it",
                    seen.elapsed()
                ));
            }
            if first_frame {
                first_frame = false;
                log(&format!("first frame after {:?}", started.elapsed()));
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
            _ = term_signal.recv() => { log("SIGTERM: restoring the terminal"); return Ok(()); },
            _ = hangup.recv() => { log("SIGHUP: restoring the terminal"); return Ok(()); },
        }
        if msgs.is_empty() {
            continue;
        }
        dirty = true;
        state.now_ms = now_millis();
        for msg in msgs {
            for effect in state.update(msg) {
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
    drop(input);
    restore();
    let dir = workspace.join("perstack").join("requests");
    let result = crate::editor::edit_text(body, &dir, "json");
    TerminalGuard::resume()?;
    // A fresh terminal has empty buffers, so the next frame is drawn whole on the cleared
    // screen. (`Terminal::clear` would ask the terminal for the cursor position, and the
    // answer can be lost to the input reader that is still shutting down.)
    execute!(
        io::stdout(),
        crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
    )?;
    terminal.terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
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
    Ok(EventStream::new())
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
        // The screen first, so the message is readable; then stderr back to the terminal.
        restore();
        StderrToFile::restore_saved();
        previous(info);
    }));
}

/// While the workbench owns the screen, anything written to stderr goes to the log file.
struct StderrToFile {
    active: bool,
}

static SAVED_STDERR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

impl StderrToFile {
    fn new(path: &std::path::Path) -> Self {
        use std::os::fd::IntoRawFd as _;
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        else {
            return StderrToFile { active: false };
        };
        let fd = file.into_raw_fd();
        // SAFETY: dup/dup2/close on descriptors this process owns; no Rust object aliases them.
        unsafe {
            let saved = libc::dup(2);
            if saved < 0 || libc::dup2(fd, 2) < 0 {
                libc::close(fd);
                if saved >= 0 {
                    libc::close(saved);
                }
                return StderrToFile { active: false };
            }
            libc::close(fd);
            SAVED_STDERR.store(saved, std::sync::atomic::Ordering::SeqCst);
        }
        StderrToFile { active: true }
    }

    fn restore_saved() {
        let saved = SAVED_STDERR.swap(-1, std::sync::atomic::Ordering::SeqCst);
        if saved >= 0 {
            // SAFETY: `saved` is the descriptor dup'ed in `new` and not yet closed.
            unsafe {
                libc::dup2(saved, 2);
                libc::close(saved);
            }
        }
    }
}

impl Drop for StderrToFile {
    fn drop(&mut self) {
        if self.active {
            StderrToFile::restore_saved();
        }
    }
}
