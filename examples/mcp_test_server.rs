//! A small MCP server for the skill tests and benchmarks.
//!
//! Usage: `mcp_test_server [--startup-delay-ms N] [--http PORT] [--sandbox-tools]`. Over stdio
//! by default; with `--http` it serves Streamable HTTP at `http://127.0.0.1:PORT/mcp` and
//! prints the bound address (`listening on 127.0.0.1:PORT`) on stdout, so port 0 works.
//! `--sandbox-tools` also lists `write` and `fetch`, which try what the sandbox refuses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{
    ErrorData, Peer, RoleServer, ServerHandler, ServiceExt, schemars, tool, tool_handler,
    tool_router,
};

/// Tools are listed in pages of this size, so clients must follow cursors.
const PAGE_SIZE: usize = 3;
/// `late` is listed only after `reveal` was called (which sends `tools/list_changed`).
static REVEALED: AtomicBool = AtomicBool::new(false);
/// `write` and `fetch` are listed only with `--sandbox-tools`.
static SANDBOX_TOOLS: AtomicBool = AtomicBool::new(false);

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct WriteArgs {
    /// Absolute path of the file to write.
    path: String,
    text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct FetchArgs {
    /// An http:// URL.
    url: String,
    /// Connect to the host itself instead of through $HTTP_PROXY.
    direct: Option<bool>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// Text to send back.
    text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct SleepArgs {
    /// Milliseconds to sleep before answering.
    ms: u64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct BigArgs {
    /// Bytes of text to return (default 1 MiB).
    bytes: Option<usize>,
}

#[derive(Debug, Clone)]
struct TestServer {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl TestServer {
    fn new() -> Self {
        TestServer {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Returns the text it is given")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Adds two integers")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        a.saturating_add(b).to_string()
    }

    #[tool(description = "Sleeps, then answers")]
    async fn sleep(
        &self,
        Parameters(SleepArgs { ms }): Parameters<SleepArgs>,
        context: RequestContext<RoleServer>,
    ) -> String {
        // A request with a progressToken hears halfway through, as long-running tools say.
        let token = context.meta.get_progress_token();
        tokio::time::sleep(Duration::from_millis(ms / 2)).await;
        if let Some(token) = token {
            let param = ProgressNotificationParam::new(token, 1.0).with_total(2.0);
            let _ = context.peer.notify_progress(param).await;
        }
        tokio::time::sleep(Duration::from_millis(ms - ms / 2)).await;
        format!("slept {ms} ms")
    }

    #[tool(description = "Exits the process without answering")]
    fn crash(&self) -> String {
        eprintln!("crashing on request");
        std::process::exit(3)
    }

    #[tool(description = "Returns a large text")]
    fn big(&self, Parameters(BigArgs { bytes }): Parameters<BigArgs>) -> String {
        "x".repeat(bytes.unwrap_or(1024 * 1024))
    }

    #[tool(description = "Returns the names of the environment variables it sees, one a line")]
    fn env(&self) -> String {
        let mut names: Vec<String> = std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.join("\n")
    }

    #[tool(description = "Returns a one-pixel PNG and a text")]
    fn image(&self) -> CallToolResult {
        const PIXEL: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        CallToolResult::success(vec![
            ContentBlock::image(PIXEL, "image/png"),
            ContentBlock::text("a pixel"),
        ])
    }

    #[tool(description = "Lists the tool `late` from now on and tells the client")]
    async fn reveal(&self, peer: Peer<RoleServer>) -> String {
        REVEALED.store(true, Ordering::SeqCst);
        match peer.notify_tool_list_changed().await {
            Ok(()) => "revealed".into(),
            Err(e) => format!("notify failed: {e}"),
        }
    }

    #[tool(description = "Only listed after reveal")]
    fn late(&self) -> String {
        "late tool".into()
    }

    #[tool(description = "Writes a file")]
    fn write(&self, Parameters(WriteArgs { path, text }): Parameters<WriteArgs>) -> CallToolResult {
        match std::fs::write(&path, text) {
            Ok(()) => CallToolResult::success(vec![ContentBlock::text(format!("wrote {path}"))]),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(format!(
                "cannot write {path}: {e}"
            ))]),
        }
    }

    #[tool(description = "GETs an http:// URL and returns the whole response")]
    async fn fetch(
        &self,
        Parameters(FetchArgs { url, direct }): Parameters<FetchArgs>,
    ) -> CallToolResult {
        match fetch_url(&url, direct.unwrap_or(false)).await {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
        }
    }

    #[tool(description = "Answers with a tool-level error")]
    fn fail(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("this tool always fails")])
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.tool_router.list_all();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        if !REVEALED.load(Ordering::SeqCst) {
            tools.retain(|t| t.name != "late");
        }
        if !SANDBOX_TOOLS.load(Ordering::SeqCst) {
            tools.retain(|t| t.name != "write" && t.name != "fetch");
        }
        let start: usize = match request.and_then(|r| r.cursor) {
            Some(cursor) => cursor
                .parse()
                .map_err(|_| ErrorData::invalid_params("bad cursor", None))?,
            None => 0,
        };
        let end = (start + PAGE_SIZE).min(tools.len());
        let page = tools.get(start..end).unwrap_or_default().to_vec();
        let mut result = ListToolsResult::with_all_items(page);
        result.next_cursor = (end < tools.len()).then(|| end.to_string());
        Ok(result)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(rmcp::model::Implementation::new("mcp-test-server", "0.1.0"))
    }
}

struct Flags {
    http: Option<u16>,
    startup_delay: Duration,
}

fn flags() -> Result<Flags, String> {
    let mut flags = Flags {
        http: None,
        startup_delay: Duration::ZERO,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--http" => flags.http = Some(value()?.parse().map_err(|e| format!("--http: {e}"))?),
            "--startup-delay-ms" => {
                let ms = value()?
                    .parse()
                    .map_err(|e| format!("--startup-delay-ms: {e}"))?;
                flags.startup_delay = Duration::from_millis(ms);
            }
            "--sandbox-tools" => SANDBOX_TOOLS.store(true, Ordering::SeqCst),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(flags)
}

/// A plain HTTP/1.1 GET, through `$HTTP_PROXY` unless `direct`.
async fn fetch_url(url: &str, direct: bool) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let proxy = std::env::var("HTTP_PROXY").ok().filter(|_| !direct);
    let (address, target) = match &proxy {
        Some(proxy) => (
            proxy
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            url.to_string(),
        ),
        None => (host_port.to_string(), path.to_string()),
    };
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = flags()?;
    tokio::time::sleep(flags.startup_delay).await;
    eprintln!("mcp-test-server starting");
    match flags.http {
        None => {
            let service = TestServer::new().serve(rmcp::transport::stdio()).await?;
            service.waiting().await?;
        }
        Some(port) => {
            let service: StreamableHttpService<TestServer, LocalSessionManager> =
                StreamableHttpService::new(
                    || Ok(TestServer::new()),
                    Default::default(),
                    StreamableHttpServerConfig::default(),
                );
            let router = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            println!("listening on {}", listener.local_addr()?);
            axum::serve(listener, router).await?;
        }
    }
    Ok(())
}
