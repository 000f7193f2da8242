//! The command line: parsing, and the commands that need no runtime.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::definition::{self, ConfigError, Diagnostic, LoadedConfig};

mod diff;
mod experts;
pub mod export;
mod install;
pub mod jobs;
mod log;
pub mod logging;
pub mod registry;
pub mod run;
pub mod sandbox;

#[derive(Debug, Parser)]
#[command(
    name = "perstack",
    version,
    about = "Author, run and debug Perstack Experts defined in perstack.toml",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How much to log: to stderr (default warn), or to perstack/workbench.log for `start`
    /// (default info)
    #[arg(long, global = true, value_enum, value_name = "LEVEL")]
    pub log_level: Option<logging::LogLevel>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check perstack.toml and report every problem with its file, line and fix
    Validate(ValidateArgs),
    /// Show every Expert's delegation tree, skills and model
    Experts(ConfigArgs),
    /// Run an Expert headless, printing every event as one JSON line on stdout
    ///
    /// Exit codes: 0 completed, 1 error, 3 maxSteps exceeded, 4 waiting for an interactive
    /// answer (continue with --continue -i '<answer>'), 130 cancelled.
    Run(Box<run::RunArgs>),
    /// Read the stored events of a job (the latest by default), filtered
    Log(log::LogArgs),
    /// Compare two runs (two forks of one checkpoint with different --variant) step by step
    Diff(diff::DiffArgs),
    /// List the stored jobs, newest first: status, Expert, steps, tokens and start time
    Jobs(jobs::JobsArgs),
    /// Resolve registry delegates, start every Expert's skills and write perstack.lock
    Install(install::InstallArgs),
    /// Publish an Expert to the registry (versions are write-once)
    Publish(registry::PublishArgs),
    /// Remove a published version from the registry
    Unpublish(registry::KeyArgs),
    /// Add tags to a published version
    Tag(registry::TagArgs),
    /// Mark a published version available, deprecated or disabled
    Status(registry::StatusArgs),
    /// Find Experts in the registry by name or description
    Search(registry::SearchArgs),
    /// Show a registry Expert: versions, description, delegates, skills, env vars and domains
    Info(registry::KeyArgs),
    /// Export a stored job: `perstack export otel [--job ID]` sends it as an OpenTelemetry trace
    Export(export::ExportArgs),
    /// Open the workbench: a full-screen view of Experts, prompts, tool calls and checkpoints
    ///
    /// With an Expert and a query, the run starts at once; otherwise type it in (i).
    Start(Box<StartArgs>),
    /// The sandbox skill processes run in: `perstack sandbox check` shows what this kernel supports
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The Expert to select (a key of [experts] in perstack.toml)
    pub expert_key: Option<String>,
    /// A task to start at once
    pub query: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overrides: crate::runtime::Overrides,
    /// Colours: dark (default), light, high-contrast, or the path of a theme file
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// Breakpoints to start with, as for `perstack run --break` (b, t, a, e toggle them later)
    #[arg(long = "break", value_name = "POINT")]
    pub breakpoints: Vec<crate::runtime::control::Breakpoint>,
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Path to perstack.toml (default: the nearest one from the current directory upwards)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print diagnostics as JSON (one object with `ok`, `summary` and `diagnostics`)
    #[arg(long)]
    pub json: bool,
}

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    /// The definitions are invalid, or the run failed.
    pub const INVALID: u8 = 1;
}

/// Commands that only print end quietly when their reader goes away (`perstack log | head`), as
/// other command-line tools do, instead of panicking on the closed pipe. `run` keeps the default:
/// a closed stdout must not stop the run.
fn quiet_on_closed_pipe() {
    // SAFETY: restores the default action of one signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Validate(_)
            | Command::Experts(_)
            | Command::Log(_)
            | Command::Jobs(_)
            | Command::Diff(_)
    ) {
        quiet_on_closed_pipe();
    }
    if !matches!(cli.command, Command::Start(_)) {
        logging::to_stderr(cli.log_level.unwrap_or(logging::LogLevel::Warn));
    }
    match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Experts(args) => experts_command(&args),
        Command::Run(args) => run::run(&args),
        Command::Log(args) => log::log(&args),
        Command::Jobs(args) => jobs::jobs(&args),
        Command::Diff(args) => diff::diff(&args),
        Command::Install(args) => install::run(&args),
        Command::Export(args) => export::export(&args),
        Command::Publish(args) => registry::publish(&args),
        Command::Unpublish(args) => registry::unpublish(&args),
        Command::Tag(args) => registry::tag(&args),
        Command::Status(args) => registry::status(&args),
        Command::Search(args) => registry::search(&args),
        Command::Info(args) => registry::info(&args),
        Command::Start(args) => start(&args, cli.log_level.unwrap_or(logging::LogLevel::Info)),
        Command::Sandbox(command) => sandbox::run(&command),
    }
}

/// `perstack start`: loads and prepares here, at the edge, then hands the screen to the
/// workbench.
fn start(args: &StartArgs, log_level: logging::LogLevel) -> ExitCode {
    let started = std::time::Instant::now();
    let theme = match crate::tui::theme::Theme::load(args.theme.as_deref()) {
        Ok(theme) => theme,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(exit::INVALID);
        }
    };
    let loaded = match load_or_report(&args.config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // The workbench shows the MCP wire unless told not to (`--trace-mcp=false`).
    let mut overrides = args.overrides.clone();
    overrides.trace_mcp.get_or_insert(true);
    let runtime = crate::runtime::Runtime::prepare(&loaded, &overrides);
    let workspace = match &runtime {
        Ok(runtime) => runtime.workspace.clone(),
        Err(_) => args
            .overrides
            .workspace
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(std::env::temp_dir),
    };
    let _log = logging::to_workbench_file(&workspace, log_level);
    if let Ok(Some(warning)) = runtime.as_ref().map(|r| r.lock_warning.as_ref()) {
        tracing::warn!("{warning}");
    }
    let options = crate::tui::WorkbenchOptions {
        expert_key: args.expert_key.clone(),
        query: args.query.clone(),
        theme,
        breakpoints: args.breakpoints.clone(),
        overrides,
        started,
    };
    match crate::tui::start(loaded, runtime, workspace, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(exit::INVALID)
        }
    }
}

/// The job store of `--storage`, or of the workspace (`--workspace`, default the current
/// directory), saying on stderr why it cannot be opened.
fn open_store(
    storage: Option<&str>,
    workspace: Option<&Path>,
) -> Result<Box<dyn crate::store::Store>, ExitCode> {
    let workspace = match workspace {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    crate::store::open(storage, &workspace).map_err(|err| {
        eprintln!("error: {err}");
        ExitCode::from(exit::INVALID)
    })
}

/// Load the config named by the flags, printing diagnostics to stderr when it fails.
pub fn load_or_report(args: &ConfigArgs) -> Result<LoadedConfig, ExitCode> {
    let result = current_dir()
        .and_then(|cwd| definition::discover(args.config.as_deref(), &cwd))
        .and_then(|path| definition::load_file(&path));
    match result {
        Ok(loaded) => {
            print_diagnostics(&loaded.warnings);
            Ok(loaded)
        }
        Err(err) => {
            report_config_error(&err);
            Err(ExitCode::from(exit::INVALID))
        }
    }
}

fn current_dir() -> Result<PathBuf, ConfigError> {
    std::env::current_dir().map_err(|_| ConfigError::NotFound {
        start: PathBuf::from("."),
    })
}

pub fn report_config_error(err: &ConfigError) {
    match err {
        ConfigError::Invalid { diagnostics, .. } => {
            print_diagnostics(diagnostics);
            eprintln!("{err}");
        }
        ConfigError::NotFound { .. } => eprintln!("error: {err}"),
    }
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    let mut stderr = std::io::stderr().lock();
    for diagnostic in diagnostics {
        let _ = writeln!(stderr, "{}", diagnostic.render());
    }
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let result = current_dir()
        .and_then(|cwd| definition::discover(args.config.config.as_deref(), &cwd))
        .and_then(|path| definition::load_file(&path));
    if args.json {
        let (ok, summary, diagnostics) = match &result {
            Ok(loaded) => (true, Some(Summary::of(loaded)), loaded.warnings.clone()),
            Err(ConfigError::Invalid { diagnostics, .. }) => (false, None, diagnostics.clone()),
            Err(err @ ConfigError::NotFound { .. }) => (
                false,
                None,
                vec![Diagnostic::for_file(
                    args.config.config.as_deref().unwrap_or(Path::new(".")),
                    "not-found",
                    err.to_string(),
                    None,
                )],
            ),
        };
        let report =
            serde_json::json!({ "ok": ok, "summary": summary, "diagnostics": diagnostics });
        println!("{report}");
        return ExitCode::from(if ok { exit::OK } else { exit::INVALID });
    }
    match result {
        Ok(loaded) => {
            print_diagnostics(&loaded.warnings);
            println!("{}", Summary::of(&loaded).render(&loaded));
            ExitCode::from(exit::OK)
        }
        Err(err) => {
            report_config_error(&err);
            ExitCode::from(exit::INVALID)
        }
    }
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    file: PathBuf,
    experts: usize,
    skills: usize,
    delegations: usize,
    warnings: usize,
}

impl Summary {
    fn of(loaded: &LoadedConfig) -> Self {
        let experts = &loaded.config.experts;
        Summary {
            file: loaded.path.clone(),
            experts: experts.len(),
            skills: experts.values().map(|e| e.effective_skills().len()).sum(),
            delegations: experts.values().map(|e| e.delegates().len()).sum(),
            warnings: loaded.warnings.len(),
        }
    }

    fn render(&self, loaded: &LoadedConfig) -> String {
        let mut out = format!(
            "{} is valid: {} expert(s), {} skill(s), {} delegation(s), {} warning(s)\n",
            self.file.display(),
            self.experts,
            self.skills,
            self.delegations,
            self.warnings
        );
        for (key, expert) in &loaded.config.experts {
            let skills: Vec<String> = expert.effective_skills().keys().cloned().collect();
            out.push_str(&format!(
                "  {key}  skills: {}  delegates: {}\n",
                skills.join(", "),
                if expert.delegates().is_empty() {
                    "-".to_string()
                } else {
                    expert.delegates().join(", ")
                }
            ));
        }
        out.trim_end().to_string()
    }
}

fn experts_command(args: &ConfigArgs) -> ExitCode {
    match load_or_report(args) {
        Ok(loaded) => {
            print!("{}", experts::render_tree(&loaded.config));
            ExitCode::from(exit::OK)
        }
        Err(code) => code,
    }
}
