//! Starting one connection to an MCP server: spawn (stdio) or HTTP set-up, handshake, tool
//! discovery.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};

use super::McpError;
use super::convert::tool_definition;
use super::process::ProcessGroup;
use super::wire::{TeeReader, TeeWriter, WireTap};
use crate::sandbox::proxy::{Denied, ProxyListener};
use crate::sandbox::{Confinement, SandboxPolicy};
use crate::skills::event::{ConnectedInfo, EventSink, SkillEventKind};
use crate::tool::ToolDefinition;

/// A stderr line longer than this is cut, so one runaway line cannot flood the event channel.
const MAX_STDERR_LINE: usize = 8 * 1024;
/// How long a failed start waits for the server's last stderr lines.
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// How to reach a server.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Stdio {
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
        policy: SandboxPolicy,
    },
    Http {
        endpoint: String,
    },
}

impl Target {
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Stdio { program, args, .. } => std::iter::once(program.as_str())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            Target::Http { endpoint } => endpoint.clone(),
        }
    }

    /// How a stdio server is confined; HTTP skills start no process.
    pub(crate) fn policy(&self) -> Option<&SandboxPolicy> {
        match self {
            Target::Stdio { policy, .. } => Some(policy),
            Target::Http { .. } => None,
        }
    }
}

/// The server's tool list, shared with the notification handler so a `list_changed` can
/// refresh it while calls go on. Listings are numbered so a slow, older listing never
/// overwrites a newer one.
#[derive(Debug, Default)]
pub(crate) struct ToolCache {
    next_ticket: AtomicU64,
    current: Mutex<(u64, Vec<ToolDefinition>)>,
}

impl ToolCache {
    pub(crate) fn get(&self) -> Vec<ToolDefinition> {
        self.lock().1.clone()
    }

    pub(crate) fn contains(&self, tool_name: &str) -> bool {
        self.lock().1.iter().any(|t| t.name == tool_name)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().1.is_empty()
    }

    pub(crate) fn set_initial(&self, tools: Vec<ToolDefinition>) {
        let ticket = self.next_ticket.fetch_add(1, Ordering::SeqCst) + 1;
        *self.lock() = (ticket, tools);
    }

    async fn refresh(
        &self,
        peer: &Peer<RoleClient>,
        timeout: Duration,
    ) -> Result<Vec<ToolDefinition>, McpError> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::SeqCst) + 1;
        let tools = tokio::time::timeout(timeout, peer.list_all_tools())
            .await
            .map_err(|_| McpError::Timeout {
                phase: "tool discovery",
                after_ms: millis(timeout),
            })?
            .map_err(|e| McpError::ListTools(e.to_string()))?;
        let tools: Vec<ToolDefinition> = tools.iter().map(tool_definition).collect();
        let mut current = self.lock();
        if ticket > current.0 {
            *current = (ticket, tools.clone());
        }
        Ok(tools)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Vec<ToolDefinition>)> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Answers server notifications; only the tool list matters to us.
#[derive(Debug, Clone)]
pub(crate) struct Handler {
    tools: Arc<ToolCache>,
    list_timeout: Duration,
}

impl ClientHandler for Handler {
    fn on_tool_list_changed(
        &self,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + Send + '_ {
        // Listing is a request; making it here would wait on the loop that delivers its reply.
        let peer = context.peer.clone();
        let tools = self.tools.clone();
        let timeout = self.list_timeout;
        tokio::spawn(async move {
            let _ = tools.refresh(&peer, timeout).await;
        });
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("perstack", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// One live connection. Dropping it kills the server's process group.
pub(crate) struct Connection {
    pub(crate) service: RunningService<RoleClient, Handler>,
    pub(crate) group: Option<ProcessGroup>,
    /// A traced server's process, which we spawned ourselves to tee its stdio; waited for on
    /// close so it does not linger as a zombie.
    child: Option<tokio::sync::Mutex<tokio::process::Child>>,
    /// Owns the server's private temp directory and proxy listener while it runs.
    pub(crate) _confinement: Option<Confinement>,
}

impl Connection {
    pub(crate) fn is_alive(&self) -> bool {
        !self.service.is_closed() && !self.service.peer().is_transport_closed()
    }

    /// Stops the connection: stdin is closed (stdio servers exit on EOF), then after `grace`
    /// whatever is left of the process group is killed.
    pub(crate) async fn close(&self, grace: Duration) {
        self.service.cancellation_token().cancel();
        if let Some(child) = &self.child {
            let mut child = child.lock().await;
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(STDERR_GRACE, child.wait()).await;
            }
        }
        if let Some(group) = &self.group {
            group.wait_gone(grace).await;
            group.kill();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.service.cancellation_token().cancel();
    }
}

pub(crate) struct Connected {
    pub(crate) connection: Connection,
    pub(crate) info: ConnectedInfo,
}

/// Spawns or contacts the server, runs the handshake and lists its tools into `tools`.
/// The caller bounds the whole thing with the initialize timeout; dropping this future part
/// way kills whatever was spawned.
/// With a `tap`, a stdio server's every frame is recorded (see [`super::wire`]).
pub(crate) async fn connect(
    target: &Target,
    tools: &Arc<ToolCache>,
    list_timeout: Duration,
    sink: &EventSink,
    tap: Option<&Arc<WireTap>>,
) -> Result<Connected, McpError> {
    let started = Instant::now();
    if let Some(tap) = tap {
        tap.reset();
    }
    let handler = Handler {
        tools: tools.clone(),
        list_timeout,
    };
    let (service, group, child, spawned, confinement) = match target {
        Target::Stdio {
            program,
            args,
            env,
            cwd,
            policy,
        } => {
            let confinement = confine(policy, sink).await?;
            let command = command(program, args, env, cwd.as_ref(), confinement.as_ref());
            let (transport, group, stderr) = match tap {
                None => {
                    let (transport, group, stderr) = spawn(command, target)?;
                    (ServerStdio::Plain(transport), group, stderr)
                }
                Some(tap) => {
                    let (child, reader, writer, group, stderr) = spawn_teed(command, target)?;
                    let reader = TeeReader::new(reader, tap.clone());
                    let writer = TeeWriter::new(writer, tap.clone());
                    (
                        ServerStdio::Teed(Box::new((child, reader, writer))),
                        group,
                        stderr,
                    )
                }
            };
            let tail = StderrTail::default();
            let reader = stderr
                .map(|stderr| tokio::spawn(forward_stderr(stderr, sink.clone(), tail.clone())));
            let spawned = started.elapsed();
            let (served, child) = match transport {
                ServerStdio::Plain(transport) => (handler.serve(transport).await, None),
                ServerStdio::Teed(teed) => {
                    let (child, reader, writer) = *teed;
                    (handler.serve((reader, writer)).await, Some(child))
                }
            };
            let service = match served {
                Ok(service) => service,
                Err(e) => {
                    // A server that dies at start usually says why on stderr: let the reader
                    // catch up, then quote the end of it.
                    if let Some(reader) = reader {
                        let _ = tokio::time::timeout(STDERR_GRACE, reader).await;
                    }
                    let mut message = e.to_string();
                    let lines = tail.lines();
                    if !lines.is_empty() {
                        message.push_str("; the server's last stderr lines: ");
                        message.push_str(&lines.join(" | "));
                    }
                    return Err(McpError::Handshake {
                        target: target.describe(),
                        message,
                    });
                }
            };
            let child = child.map(tokio::sync::Mutex::new);
            (service, Some(group), child, spawned, confinement)
        }
        Target::Http { endpoint } => {
            let client = crate::http::client_builder()
                .build()
                .map_err(|e| McpError::Http {
                    endpoint: endpoint.clone(),
                    message: e.to_string(),
                })?;
            let config = StreamableHttpClientTransportConfig::with_uri(endpoint.as_str());
            let transport = StreamableHttpClientTransport::with_client(client, config);
            let spawned = started.elapsed();
            let service = match handler.serve(transport).await {
                Ok(service) => service,
                Err(e) => return Err(super::legacy::classify(endpoint, e.to_string()).await),
            };
            (service, None, None, spawned, None)
        }
    };
    let handshake_done = started.elapsed();
    let listed = tools.refresh(service.peer(), list_timeout).await?;
    tools.set_initial(listed);
    let total = started.elapsed();
    let server = service
        .peer()
        .peer_info()
        .and_then(|p| p.server_info.clone());
    Ok(Connected {
        info: ConnectedInfo {
            server_name: server.as_ref().map(|s| s.name.clone()),
            server_version: server.as_ref().map(|s| s.version.clone()),
            spawn_duration_ms: millis(spawned),
            handshake_duration_ms: millis(handshake_done - spawned),
            tool_discovery_duration_ms: millis(total - handshake_done),
            total_duration_ms: millis(total),
        },
        connection: Connection {
            service,
            group,
            child,
            _confinement: confinement,
        },
    })
}

/// Prepares a confined server: its proxy listener (when it may reach any host) reports
/// refusals as `SandboxDenied`.
async fn confine(
    policy: &SandboxPolicy,
    sink: &EventSink,
) -> Result<Option<Confinement>, McpError> {
    if !policy.is_confined() {
        return Ok(None);
    }
    let proxy = if policy.allowed_domains.is_empty() {
        None
    } else {
        let reporter = sink.clone();
        let on_denied = Arc::new(move |denied: Denied| {
            reporter.send(SkillEventKind::SandboxDenied {
                host: denied.host,
                port: denied.port,
            });
        });
        let listener =
            ProxyListener::start(sink.skill_name(), policy.allowed_domains.clone(), on_denied)
                .await
                .map_err(|e| {
                    crate::sandbox::SandboxError::Setup(format!(
                        "cannot listen for the skill's proxy on 127.0.0.1: {e}"
                    ))
                })?;
        Some(listener)
    };
    Ok(Some(Confinement::prepare(policy, proxy)?))
}

/// A stdio server's transport: rmcp's own child process, or (when traced) our child with its
/// stdin and stdout teed.
enum ServerStdio {
    Plain(TokioChildProcess),
    Teed(
        Box<(
            tokio::process::Child,
            TeeReader<ChildStdout>,
            TeeWriter<ChildStdin>,
        )>,
    ),
}

fn command(
    program: &str,
    args: &[String],
    env: &[(String, String)],
    cwd: Option<&PathBuf>,
    confinement: Option<&Confinement>,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    super::process::isolate(&mut command);
    if let Some(confinement) = confinement {
        confinement.apply(command.as_std_mut());
    }
    command
}

fn spawn(
    command: tokio::process::Command,
    target: &Target,
) -> Result<(TokioChildProcess, ProcessGroup, Option<ChildStderr>), McpError> {
    let spawn_error = |source| McpError::Spawn {
        command: target.describe(),
        source,
    };
    let (transport, stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let pid = transport
        .id()
        .ok_or_else(|| spawn_error(std::io::Error::other("the process exited at once")))?;
    Ok((transport, ProcessGroup::new(pid), stderr))
}

type TeedChild = (
    tokio::process::Child,
    ChildStdout,
    ChildStdin,
    ProcessGroup,
    Option<ChildStderr>,
);

/// Spawns a server whose stdio we keep, so it can be teed.
fn spawn_teed(
    mut command: tokio::process::Command,
    target: &Target,
) -> Result<TeedChild, McpError> {
    let spawn_error = |source| McpError::Spawn {
        command: target.describe(),
        source,
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let gone = || spawn_error(std::io::Error::other("the process exited at once"));
    let pid = child.id().ok_or_else(gone)?;
    let stdout = child.stdout.take().ok_or_else(gone)?;
    let stdin = child.stdin.take().ok_or_else(gone)?;
    let stderr = child.stderr.take();
    Ok((child, stdout, stdin, ProcessGroup::new(pid), stderr))
}

/// The last few stderr lines of a server, quoted when its start fails.
#[derive(Debug, Clone, Default)]
struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    const LINES: usize = 5;

    fn push(&self, line: &str) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == Self::LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }

    fn lines(&self) -> Vec<String> {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect()
    }
}

async fn forward_stderr(stderr: ChildStderr, sink: EventSink, tail: StderrTail) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(mut line)) = lines.next_line().await {
        if line.len() > MAX_STDERR_LINE {
            let mut cut = MAX_STDERR_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [cut]");
        }
        tail.push(&line);
        sink.send(SkillEventKind::Stderr { line });
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
