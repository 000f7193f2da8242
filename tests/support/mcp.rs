//! Helpers for the MCP integration tests: the test server, Experts with skills, process checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use perstack::definition::{Expert, parse_str};
use perstack::skills::mcp::McpOptions;
use perstack::skills::workspace::Workspace;
use perstack::skills::{SkillEvent, SkillEventKind, SkillManager, SkillManagerOptions};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// The test server binary, built by `cargo test` (or `cargo build --example mcp_test_server`).
pub fn test_server() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let debug_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let server = debug_dir.join("examples").join("mcp_test_server");
    assert!(
        server.is_file(),
        "{} is missing: run `cargo build --example mcp_test_server` (plain `cargo test` builds it)",
        server.display()
    );
    server
}

/// The directory tests/support/install-mcp-servers.sh installs into.
pub fn third_party_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp-servers")
}

/// Runs the install script once, under a file lock: test binaries run in parallel, and the
/// script itself returns at once when everything is there.
pub fn ensure_third_party_servers() {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let result = DONE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(third_party_dir()).map_err(|e| e.to_string())?;
        let lock = std::fs::File::create(third_party_dir().join(".install.lock"))
            .map_err(|e| e.to_string())?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        let output = std::process::Command::new("bash")
            .arg(root.join("tests/support/install-mcp-servers.sh"))
            .output()
            .map_err(|e| format!("cannot run the install script: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "tests/support/install-mcp-servers.sh failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// An Expert `t` with the base skill and the given skill tables (TOML under
/// `[experts.t.skills]`, e.g. `[experts.t.skills.s]\ntype = ...`).
pub fn expert(skills: &str) -> Expert {
    let source = format!(
        "[experts.t]\ninstruction = \"test\"\n\
         [experts.t.skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\n\
         command = \"npx\"\npackageName = \"@perstack/base\"\n{skills}"
    );
    let (config, _) = parse_str(&source, Path::new("perstack.toml"))
        .unwrap_or_else(|d| panic!("bad test config: {d:?}\n{source}"));
    config.experts["t"].clone()
}

/// A stdio skill table running the test server with extra TOML lines.
pub fn server_skill(name: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[experts.t.skills.{name}]\ntype = \"mcpStdioSkill\"\ncommand = {:?}\nargs = [{}]\n{extra}\n",
        test_server().display().to_string(),
        args.join(", ")
    )
}

/// PATH and HOME from the test process, plus whatever the test adds.
pub fn env_with(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = ["PATH", "HOME"]
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

pub struct Started {
    pub manager: SkillManager,
    pub events: UnboundedReceiver<SkillEvent>,
    pub dir: tempfile::TempDir,
}

pub async fn start(expert: &Expert, env: &HashMap<String, String>) -> Started {
    start_with(expert, env, SkillManagerOptions::default())
        .await
        .unwrap_or_else(|e| panic!("skills failed to start: {e}"))
}

pub async fn start_with(
    expert: &Expert,
    env: &HashMap<String, String>,
    options: SkillManagerOptions,
) -> Result<Started, perstack::skills::SkillError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let workspace = Workspace::new(dir.path()).expect("workspace");
    let (sender, events) = unbounded_channel();
    let manager = SkillManager::start(expert, workspace, env, sender, options).await?;
    Ok(Started {
        manager,
        events,
        dir,
    })
}

pub fn short_timeouts(call_ms: u64) -> SkillManagerOptions {
    SkillManagerOptions {
        mcp: McpOptions {
            init_timeout: Duration::from_secs(20),
            call_timeout: Duration::from_millis(call_ms),
            cwd: None,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Every event received so far.
pub fn drain(events: &mut UnboundedReceiver<SkillEvent>) -> Vec<SkillEvent> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}

pub fn count(events: &[SkillEvent], pred: impl Fn(&SkillEventKind) -> bool) -> usize {
    events.iter().filter(|e| pred(&e.kind)).count()
}

/// Waits until `pid` no longer runs, up to `limit`. A zombie is dead (its parent has not
/// reaped it yet, as an init process in a container may never do) and counts as gone.
pub async fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let (_, rest) = stat.rsplit_once(')')?;
                rest.split_whitespace().next().map(str::to_string)
            });
        if state.is_none_or(|s| s == "Z" || s == "X") {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Live (non-zombie) processes whose command line contains `marker`.
pub fn live_processes_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()? == "Z"))
            .unwrap_or(true);
        if cmdline.contains(marker) && !zombie && pid != std::process::id() {
            out.push(pid);
        }
    }
    out
}
