//! MCP skills: a server spawned over stdio (`mcpStdioSkill`) or reached over Streamable HTTP
//! (`mcpSseSkill`), through the rmcp client.
//!
//! A skill connects on [`McpSkill::start`] or on its first call. A server that crashes, hangs
//! past the call timeout or loses its transport turns that call into an error output, emits
//! `Disconnected`, and is started again on its next use. Stdio servers see only a safe
//! environment plus their `requiredEnv`, and are killed with their whole process group when
//! the skill is shut down or dropped.

mod connect;
mod convert;
mod legacy;
mod process;
pub mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::service::ServiceError;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use self::connect::{Connection, Target, ToolCache, connect, millis};
pub(crate) use self::convert::filter_tools;
use self::wire::WireTap;
use crate::definition::{McpSseSkill, McpStdioSkill};
use crate::sandbox::{NPM_REGISTRY, Sandbox, SandboxError, SandboxPolicy, cache_root};
use crate::skills::event::{EventSink, SkillEvent, SkillEventKind};
use crate::tool::{ToolDefinition, ToolOutput};

pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a shut-down server may take to exit on stdin EOF before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Variables every stdio server sees when they are set; anything else must be in its
/// `requiredEnv`.
pub const SAFE_ENV: [&str; 11] = [
    "PATH",
    "HOME",
    "SHELL",
    "TERM",
    "LANG",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("cannot start `{command}`: {source} (is it installed and on PATH?)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("MCP handshake with `{target}` failed: {}", tidy(message))]
    Handshake { target: String, message: String },
    #[error(
        "cannot connect to MCP endpoint {endpoint} over Streamable HTTP: {}",
        tidy(message)
    )]
    Http { endpoint: String, message: String },
    #[error(
        "{endpoint} speaks only the old HTTP+SSE transport (protocol 2024-11-05), which is not \
         supported; point `endpoint` at the server's Streamable HTTP URL (often ending in /mcp)"
    )]
    LegacySse { endpoint: String },
    #[error("{phase} timed out after {after_ms} ms")]
    Timeout { phase: &'static str, after_ms: u64 },
    #[error("listing tools failed: {}", tidy(.0))]
    ListTools(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// Timeouts and the working directory for stdio servers.
#[derive(Debug, Clone)]
pub struct McpOptions {
    /// Spawn + handshake + tool discovery.
    pub init_timeout: Duration,
    /// One tool call; a server that takes longer is treated as hung and restarted.
    pub call_timeout: Duration,
    /// Working directory of stdio servers (default: inherited); the workspace a confined
    /// server may write in.
    pub cwd: Option<PathBuf>,
    /// How stdio servers are confined (default: confined).
    pub sandbox: Sandbox,
    /// Record every JSON-RPC frame of stdio servers as `Frame` events (off by default).
    pub trace: bool,
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            init_timeout: DEFAULT_INIT_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            cwd: None,
            sandbox: Sandbox::default(),
            trace: false,
        }
    }
}

/// One MCP server as a skill.
pub struct McpSkill {
    name: String,
    target: Target,
    pick: Option<Vec<String>>,
    omit: Option<Vec<String>>,
    options: McpOptions,
    sink: EventSink,
    tools: Arc<ToolCache>,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// pick/omit warnings are given once, not on every restart.
    warned: AtomicBool,
    /// Records the wire when tracing is on; `None` costs nothing.
    tap: Option<Arc<WireTap>>,
}

impl McpSkill {
    /// A stdio skill. `env` is the process environment merged with the dotenv files; the
    /// server gets [`SAFE_ENV`] and its `requiredEnv` from it, nothing else.
    pub fn stdio(
        name: &str,
        definition: &McpStdioSkill,
        env: &HashMap<String, String>,
        options: McpOptions,
        events: Option<UnboundedSender<SkillEvent>>,
    ) -> Self {
        let sink = EventSink::new(name, events);
        let required = definition.required_env.as_deref().unwrap_or_default();
        let mut child_env = Vec::new();
        for key in SAFE_ENV
            .iter()
            .copied()
            .chain(required.iter().map(String::as_str))
        {
            match env.get(key) {
                Some(value) => child_env.push((key.to_string(), value.clone())),
                None if required.iter().any(|r| r == key) => sink.warn(format!(
                    "requiredEnv {key} is not set in the environment or the env files"
                )),
                None => {}
            }
        }
        let (program, args) = definition.command_line();
        let policy = stdio_policy(definition, &program, &options, &mut child_env);
        let target = Target::Stdio {
            program,
            args,
            env: child_env,
            cwd: options.cwd.clone(),
            policy,
        };
        Self::new(
            name,
            target,
            definition.pick.clone(),
            definition.omit.clone(),
            options,
            sink,
        )
    }

    /// A Streamable HTTP skill.
    pub fn http(
        name: &str,
        definition: &McpSseSkill,
        options: McpOptions,
        events: Option<UnboundedSender<SkillEvent>>,
    ) -> Self {
        let target = Target::Http {
            endpoint: definition.endpoint.clone(),
        };
        Self::new(
            name,
            target,
            definition.pick.clone(),
            definition.omit.clone(),
            options,
            EventSink::new(name, events),
        )
    }

    fn new(
        name: &str,
        target: Target,
        pick: Option<Vec<String>>,
        omit: Option<Vec<String>>,
        options: McpOptions,
        sink: EventSink,
    ) -> Self {
        let tap = options.trace.then(|| Arc::new(WireTap::new(sink.clone())));
        McpSkill {
            tap,
            name: name.to_string(),
            target,
            pick,
            omit,
            options,
            sink,
            tools: Arc::default(),
            connection: tokio::sync::Mutex::new(None),
            warned: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connects unless already connected.
    pub async fn start(&self) -> Result<(), McpError> {
        self.connected().await.map(|_| ())
    }

    /// The tools offered, after `omit` and `pick`; empty until the first connection.
    pub fn tools(&self) -> Vec<ToolDefinition> {
        convert::filter_tools(self.tools.get(), self.pick.as_deref(), self.omit.as_deref()).0
    }

    /// True when `tool_name` is one of [`Self::tools`] (without copying the list: this is on
    /// every call's path).
    pub fn offers(&self, tool_name: &str) -> bool {
        let omitted = self
            .omit
            .as_deref()
            .is_some_and(|omit| omit.iter().any(|n| n == tool_name));
        let picked = self
            .pick
            .as_deref()
            .is_none_or(|pick| pick.iter().any(|n| n == tool_name));
        !omitted && picked && self.tools.contains(tool_name)
    }

    /// True once a tool list has been received from the server.
    pub fn has_tool_list(&self) -> bool {
        !self.tools.is_empty()
    }

    /// The pid of the running server process (stdio only), for diagnostics and tests.
    pub async fn pid(&self) -> Option<u32> {
        let connection = self.connection.lock().await;
        connection
            .as_ref()
            .and_then(|c| c.group.as_ref())
            .map(|g| g.pid())
    }

    /// Calls a tool. Every failure is an error output; a crash or hang also stops the server,
    /// which starts again on the next call.
    pub async fn call(&self, tool_name: &str, args: Value) -> ToolOutput {
        self.call_as(None, tool_name, args).await
    }

    /// [`Self::call`] for the tool call `tool_call_id`: when tracing, its frames name it.
    pub async fn call_as(
        &self,
        tool_call_id: Option<&str>,
        tool_name: &str,
        args: Value,
    ) -> ToolOutput {
        let traced = self.tap.as_ref().zip(tool_call_id);
        if let Some((tap, id)) = traced {
            tap.expect_call(tool_name, id);
        }
        let output = self.call_untraced(tool_name, args).await;
        if let Some((tap, id)) = traced {
            tap.forget_call(id);
        }
        output
    }

    async fn call_untraced(&self, tool_name: &str, args: Value) -> ToolOutput {
        let arguments = match args {
            Value::Object(map) => Some(map),
            Value::Null => None,
            other => {
                return ToolOutput::error(format!(
                    "arguments for {tool_name} must be a JSON object, not {other}"
                ));
            }
        };
        let connection = match self.connected().await {
            Ok(connection) => connection,
            Err(e) => {
                return ToolOutput::error(format!("skill {} is not available: {e}", self.name));
            }
        };
        let mut params = CallToolRequestParams::new(tool_name.to_string());
        params.arguments = arguments;
        let call = connection.service.peer().call_tool(params);
        match tokio::time::timeout(self.options.call_timeout, call).await {
            Ok(Ok(result)) => convert::tool_output(result),
            // The server answered with an error: it is alive, keep it.
            Ok(Err(ServiceError::McpError(e))) => {
                ToolOutput::error(format!("{tool_name} failed: {}", e.message))
            }
            Ok(Err(e)) => {
                let reason = format!(
                    "the connection failed during {tool_name}: {}",
                    tidy(&e.to_string())
                );
                self.disconnect(&connection, &reason).await;
                ToolOutput::error(format!(
                    "{tool_name} failed: {reason}; skill {} will be restarted on its next use",
                    self.name
                ))
            }
            Err(_) => {
                let reason = format!(
                    "{tool_name} did not answer within {} ms",
                    millis(self.options.call_timeout)
                );
                self.disconnect(&connection, &reason).await;
                ToolOutput::error(format!(
                    "{reason}; skill {} was stopped and will be restarted on its next use",
                    self.name
                ))
            }
        }
    }

    /// Closes the connection, if any, and kills the server's process group.
    pub async fn shutdown(&self) {
        let taken = self.connection.lock().await.take();
        if let Some(connection) = taken {
            connection.close(SHUTDOWN_GRACE).await;
            self.sink.send(SkillEventKind::Disconnected {
                reason: "shut down".into(),
            });
        }
    }

    /// The live connection, starting the server when there is none or it has died.
    async fn connected(&self) -> Result<Arc<Connection>, McpError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            if connection.is_alive() {
                return Ok(connection.clone());
            }
            if let Some(dead) = slot.take() {
                dead.close(Duration::ZERO).await;
            }
            self.sink.send(SkillEventKind::Disconnected {
                reason: "the server closed the connection".into(),
            });
        }
        self.sink.send(SkillEventKind::Starting {
            sandbox: self.target.policy().cloned(),
        });
        let timeout = self.options.init_timeout;
        let attempt = connect(
            &self.target,
            &self.tools,
            timeout,
            &self.sink,
            self.tap.as_ref(),
        );
        let connected =
            tokio::time::timeout(timeout, attempt)
                .await
                .map_err(|_| McpError::Timeout {
                    phase: "MCP initialize",
                    after_ms: millis(timeout),
                })??;
        if !self.warned.swap(true, Ordering::SeqCst) {
            let (_, warnings) =
                convert::filter_tools(self.tools.get(), self.pick.as_deref(), self.omit.as_deref());
            for warning in warnings {
                self.sink.warn(warning);
            }
        }
        self.sink.send(SkillEventKind::Connected(connected.info));
        let connection = Arc::new(connected.connection);
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Drops `failed` if it is still the current connection (a concurrent call may already
    /// have replaced it) and kills its server.
    async fn disconnect(&self, failed: &Arc<Connection>, reason: &str) {
        let mut slot = self.connection.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed)) {
            slot.take();
            failed.close(Duration::ZERO).await;
            self.sink.send(SkillEventKind::Disconnected {
                reason: reason.to_string(),
            });
        }
    }
}

/// The sandbox policy of a stdio server: the workspace (its working directory) and its own
/// cache are writable; it reaches its `allowedDomains`, and a server run by `npx` also the npm
/// registry, with an npm cache of its own under the user's cache directory (not `~/.npm`).
/// A `uvx` server keeps uv's cache writable, so tools uv already installed start offline.
fn stdio_policy(
    definition: &McpStdioSkill,
    program: &str,
    options: &McpOptions,
    child_env: &mut Vec<(String, String)>,
) -> SandboxPolicy {
    if !options.sandbox.is_confined() {
        return SandboxPolicy::off();
    }
    let workspace = options
        .cwd
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut domains = definition.allowed_domains.clone().unwrap_or_default();
    let mut writable = Vec::new();
    match program.rsplit('/').next().unwrap_or(program) {
        "npx" | "npm" => {
            if !domains.iter().any(|d| d == NPM_REGISTRY) {
                domains.push(NPM_REGISTRY.to_string());
            }
            let cache = cache_root().join("npm");
            // A cache that cannot be created stays unwritable; npm then says why.
            let _ = std::fs::create_dir_all(&cache);
            child_env.push(("npm_config_cache".into(), cache.display().to_string()));
            writable.push(cache);
        }
        "uvx" | "uv" => {
            let cache = std::env::var_os("UV_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| cache_root().with_file_name("uv"));
            let _ = std::fs::create_dir_all(&cache);
            child_env.push(("UV_CACHE_DIR".into(), cache.display().to_string()));
            writable.push(cache);
        }
        _ => {}
    }
    options.sandbox.policy(&workspace, writable, domains)
}

/// Drops the transport's Rust type name that rmcp puts in its error text; it tells a user
/// nothing.
pub(crate) fn tidy(message: &str) -> String {
    let mut out = message.to_string();
    while let Some(start) = out.find("Transport [") {
        let Some(end) = out[start..].find("] error: ") else {
            break;
        };
        out.replace_range(start..start + end + "] error: ".len(), "");
    }
    out
}

impl std::fmt::Debug for McpSkill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSkill")
            .field("name", &self.name)
            .field("target", &self.target.describe())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tidy_drops_transport_type_names() {
        assert_eq!(
            super::tidy("Transport send error: Transport [a::B<c::D>] error: Client error: x"),
            "Transport send error: Client error: x"
        );
        assert_eq!(super::tidy("plain"), "plain");
    }
}
