//! Where diagnostics go: the workbench logs to `perstack/workbench.log` (the screen is the
//! workbench's), every other command to stderr. Code below the command line logs through
//! `tracing` and never prints.

use std::path::Path;

use tracing_subscriber::filter::LevelFilter;

/// `--log-level`: how much is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Off => LevelFilter::OFF,
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

/// Logs to stderr, one short line each: `perstack: WARN the job record was not saved: ...`.
pub fn to_stderr(level: LogLevel) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level.filter())
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// Logs to `<workspace>/perstack/workbench.log` (or the temp dir when that cannot be made),
/// appended, on a thread of its own so the screen never waits for the disk. Keep the guard
/// until the workbench closes: dropping it writes what is queued.
pub fn to_workbench_file(
    workspace: &Path,
    level: LogLevel,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let dir = workspace.join("perstack");
    let dir = if std::fs::create_dir_all(&dir).is_ok() {
        dir
    } else {
        std::env::temp_dir()
    };
    let appender = tracing_appender::rolling::never(&dir, "workbench.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    tracing_subscriber::fmt()
        .with_max_level(level.filter())
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .ok()?;
    Some(guard)
}
