//! The exec tool: run a program (no shell) with a confined working directory, a small
//! environment, a timeout and capped output.
//!
//! Under the sandbox (the default) the program runs confined (see [`crate::sandbox`]): it
//! writes only in the workspace and a private temp directory, has no network, and everything
//! it starts dies with it. Unconfined, it can touch anything the user can. Either way the call
//! ends: on timeout, and when the program exits, its whole process group (children and
//! grandchildren included) is killed, so nothing lingers holding the output.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use super::ToolError;
use super::args::Args;
use crate::sandbox::{Confinement, Sandbox};
use crate::skills::workspace::Workspace;
use crate::tool::ToolOutput;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Per stream; the rest is counted and dropped.
pub const MAX_OUTPUT_BYTES: usize = 100 * 1024;
/// Host variables a command inherits; everything else must be passed in `env`.
pub const INHERITED_ENV: [&str; 5] = ["PATH", "HOME", "SHELL", "TERM", "LANG"];
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How long output may keep flowing after the program itself exited (from children that
/// still hold the pipes) before the group is killed.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

struct Request {
    command: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    stdout: bool,
    stderr: bool,
    timeout: Duration,
}

pub async fn exec(ws: &Workspace, args: &Args, sandbox: &Sandbox) -> Result<ToolOutput, ToolError> {
    let command = args.string("command")?;
    let argv = args.string_array("args")?;
    let env = args.string_map("env")?;
    let cwd_arg = args.string("cwd")?;
    let stdout = args.bool("stdout")?;
    let stderr = args.bool("stderr")?;
    let timeout = match args.opt_u64("timeout")? {
        None => DEFAULT_TIMEOUT,
        Some(0) => return Err(ToolError::message("`timeout` must be at least 1 ms")),
        Some(ms) => Duration::from_millis(ms).min(MAX_TIMEOUT),
    };
    if command.trim().is_empty() {
        return Err(ToolError::message("`command` is empty"));
    }
    let cwd = ws.resolve(&cwd_arg)?;
    if !cwd.is_dir() {
        return Err(ToolError::message(format!(
            "cwd {cwd_arg} is not an existing directory in the workspace"
        )));
    }
    // A relative program path like ./build.sh means "in cwd", not in our own directory.
    let command = if command.contains('/') && !command.starts_with('/') {
        cwd.join(&command).display().to_string()
    } else {
        command
    };
    // Held until the call ends: it owns the private temp directory.
    let confinement = if sandbox.is_confined() {
        let policy = sandbox.policy(ws.root(), Vec::new(), Vec::new());
        Some(Confinement::prepare(&policy, None).map_err(|e| ToolError::message(e.to_string()))?)
    } else {
        None
    };
    run(
        Request {
            command,
            args: argv,
            env,
            cwd,
            stdout,
            stderr,
            timeout,
        },
        confinement.as_ref(),
    )
    .await
}

#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    dropped: u64,
}

impl Capture {
    fn render(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.dropped > 0 {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("[truncated {} bytes]", self.dropped));
        }
        text
    }
}

/// Kills the process group when dropped: on every way out of `run`, including the caller
/// dropping the future mid-call. The group id is the child's pid; after the child is reaped
/// the id stays reserved while any member lives, so killing it cannot hit another process
/// unless the pid is reused within the drain grace.
struct GroupGuard(Option<libc::pid_t>);

impl GroupGuard {
    /// Kills the group once; later calls do nothing, so a group id that a finished group left
    /// behind is not signalled again.
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: killpg has no memory-safety preconditions; an already empty group just
            // yields ESRCH, which is ignored.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn run(req: Request, confinement: Option<&Confinement>) -> Result<ToolOutput, ToolError> {
    let mut cmd = tokio::process::Command::new(&req.command);
    cmd.args(&req.args)
        .env_clear()
        .current_dir(&req.cwd)
        .stdin(Stdio::null())
        .stdout(piped_if(req.stdout))
        .stderr(piped_if(req.stderr))
        // Its own process group, so one signal reaches every descendant.
        .process_group(0)
        .kill_on_drop(true);
    for name in INHERITED_ENV {
        if let Ok(value) = std::env::var(name) {
            cmd.env(name, value);
        } else if name == "PATH" {
            cmd.env(name, FALLBACK_PATH);
        }
    }
    if let Some(confinement) = confinement {
        confinement.apply(cmd.as_std_mut());
    }
    cmd.envs(req.env.iter().map(|(k, v)| (k, v)));

    let mut child = cmd
        .spawn()
        .map_err(|e| ToolError::message(format!("cannot run `{}`: {e}", req.command)))?;
    let mut guard = GroupGuard(child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()));
    let out = Arc::new(Mutex::new(Capture::default()));
    let err = Arc::new(Mutex::new(Capture::default()));
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        readers.push(tokio::spawn(read_capped(pipe, out.clone())));
    }
    if let Some(pipe) = child.stderr.take() {
        readers.push(tokio::spawn(read_capped(pipe, err.clone())));
    }

    let status: Option<ExitStatus> = match tokio::time::timeout(req.timeout, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => {
            return Err(ToolError::message(format!(
                "waiting for `{}` failed: {e}",
                req.command
            )));
        }
        Err(_) => {
            guard.kill();
            // Reap it so no zombie stays behind.
            let _ = child.wait().await;
            None
        }
    };

    // Let output that is still in flight arrive, then stop whatever still holds the pipes.
    let mut readers = drain(readers, DRAIN_GRACE).await;
    guard.kill();
    readers = drain(readers, DRAIN_GRACE).await;
    for reader in readers {
        // Only a process that left our group can keep a pipe open this long.
        reader.abort();
    }
    drop(guard);

    let mut text = match status {
        None => format!(
            "timed out after {} ms; the command and its child processes were killed",
            req.timeout.as_millis()
        ),
        Some(status) => describe(status),
    };
    if req.stdout {
        text.push_str("\nstdout:\n");
        text.push_str(&lock(&out).render());
    }
    if req.stderr {
        text.push_str("\nstderr:\n");
        text.push_str(&lock(&err).render());
    }
    let success = status.is_some_and(|s| s.success());
    Ok(ToolOutput {
        contents: vec![crate::tool::ToolContent::text(text)],
        is_error: !success,
    })
}

fn piped_if(wanted: bool) -> Stdio {
    if wanted {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

fn lock(capture: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    capture
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code: {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "exited with an unknown status".to_string(),
    }
}

/// Waits up to `grace` for the readers; returns those still running.
async fn drain(readers: Vec<JoinHandle<()>>, grace: Duration) -> Vec<JoinHandle<()>> {
    let deadline = tokio::time::Instant::now() + grace;
    let mut pending = Vec::new();
    for mut reader in readers {
        if tokio::time::timeout_at(deadline, &mut reader)
            .await
            .is_err()
        {
            pending.push(reader);
        }
    }
    pending
}

async fn read_capped(mut pipe: impl AsyncRead + Unpin, sink: Arc<Mutex<Capture>>) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut capture = lock(&sink);
        let room = MAX_OUTPUT_BYTES.saturating_sub(capture.bytes.len());
        let kept = room.min(n);
        capture.bytes.extend_from_slice(&buf[..kept]);
        capture.dropped += (n - kept) as u64;
    }
}
