//! Real third-party MCP servers through the SkillManager. They are installed at pinned versions
//! by tests/support/install-mcp-servers.sh, which these tests run themselves when the servers
//! are missing (so a plain `cargo test` works on a fresh machine); if the install fails, they
//! fail and say why.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use perstack::skills::{SkillEventKind, SkillManagerOptions};
use serde_json::json;
use support::*;

fn installed(relative: &str) -> PathBuf {
    ensure_third_party_servers();
    let path = third_party_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run tests/support/install-mcp-servers.sh to install the MCP test servers",
        path.display()
    );
    path
}

fn everything() -> PathBuf {
    installed("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

fn node() -> String {
    "node".to_string()
}

fn stdio_skill(name: &str, command: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[experts.t.skills.{name}]\ntype = \"mcpStdioSkill\"\ncommand = {command:?}\n\
         args = [{}]\n{extra}\n",
        args.join(", ")
    )
}

fn options() -> SkillManagerOptions {
    let mut options = SkillManagerOptions::default();
    options.mcp.init_timeout = Duration::from_secs(60);
    options
}

#[tokio::test]
async fn server_everything_over_stdio() {
    let script = everything().display().to_string();
    let skill = stdio_skill("everything", &node(), &[&script, "stdio"], "");
    let mut s = start_with(&expert(&skill), &env_with(&[]), options())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = s.manager.tools().into_iter().map(|t| t.name).collect();
    for tool in ["echo", "get-sum", "get-tiny-image"] {
        assert!(
            names.contains(&tool.to_string()),
            "{tool} missing: {names:?}"
        );
    }
    let out = s.manager.call("echo", json!({"message": "hi there"})).await;
    assert!(!out.is_error, "{out:?}");
    assert!(out.joined_text().contains("hi there"), "{out:?}");
    let out = s.manager.call("get-sum", json!({"a": 19, "b": 23})).await;
    assert!(!out.is_error && out.joined_text().contains("42"), "{out:?}");
    let events = drain(&mut s.events);
    let connected = events.iter().find_map(|e| match &e.kind {
        SkillEventKind::Connected(info) if e.skill_name == "everything" => Some(info.clone()),
        _ => None,
    });
    assert!(connected.and_then(|c| c.server_name).is_some());
    s.manager.shutdown().await;
}

/// A server process killed on drop, so a failing test leaves nothing behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Starts server-everything over HTTP and waits for its "listening" line on stderr.
fn spawn_everything_http(transport: &str) -> (Server, u16) {
    let port = free_port();
    let mut child = Command::new(node())
        .arg(everything())
        .arg(transport)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") || line.contains("running") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("server-everything did not start listening");
    (server, port)
}

#[tokio::test]
async fn server_everything_over_streamable_http() {
    let (_server, port) = spawn_everything_http("streamableHttp");
    let skill = format!(
        "[experts.t.skills.remote]\ntype = \"mcpSseSkill\"\nendpoint = \"http://127.0.0.1:{port}/mcp\"\n"
    );
    let s = start_with(&expert(&skill), &env_with(&[]), options())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = s
        .manager
        .call("echo", json!({"message": "over http"}))
        .await;
    assert!(
        !out.is_error && out.joined_text().contains("over http"),
        "{out:?}"
    );
    let out = s.manager.call("get-sum", json!({"a": 1, "b": 2})).await;
    assert!(!out.is_error && out.joined_text().contains('3'), "{out:?}");
    let out = s.manager.call("get-tiny-image", json!({})).await;
    assert!(
        out.contents
            .iter()
            .any(|c| matches!(c, perstack::tool::ToolContent::Image { .. })),
        "{out:?}"
    );
    s.manager.shutdown().await;
}

#[tokio::test]
async fn the_old_sse_transport_is_named_in_the_error() {
    let (_server, port) = spawn_everything_http("sse");
    let skill = format!(
        "[experts.t.skills.legacy]\ntype = \"mcpSseSkill\"\nendpoint = \"http://127.0.0.1:{port}/sse\"\n"
    );
    let err = start_with(&expert(&skill), &env_with(&[]), options())
        .await
        .err()
        .expect("the old transport must be refused");
    let text = err.to_string();
    assert!(
        text.contains("HTTP+SSE") && text.contains("2024-11-05"),
        "{text}"
    );
}

#[tokio::test]
async fn server_filesystem_reads_and_lists_inside_a_temp_dir() {
    let script =
        installed("node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    let data = tempfile::tempdir().expect("temp dir");
    let root = data.path().canonicalize().expect("canonical");
    std::fs::write(root.join("note.txt"), "hello from a file").expect("write");
    std::fs::create_dir(root.join("sub")).expect("mkdir");
    let root_str = root.display().to_string();
    let skill = stdio_skill(
        "fs",
        &node(),
        &[&script.display().to_string(), &root_str],
        "",
    );
    let s = start_with(&expert(&skill), &env_with(&[]), options())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let note = Path::new(&root_str).join("note.txt").display().to_string();
    let out = s
        .manager
        .call("read_text_file", json!({"path": note}))
        .await;
    assert!(!out.is_error, "{out:?}");
    assert!(out.joined_text().contains("hello from a file"), "{out:?}");
    let out = s
        .manager
        .call("list_directory", json!({"path": root_str}))
        .await;
    let listing = out.joined_text();
    assert!(
        listing.contains("note.txt") && listing.contains("sub"),
        "{listing}"
    );
    let outside = s
        .manager
        .call("read_text_file", json!({"path": "/etc/hostname"}))
        .await;
    assert!(outside.is_error, "outside the allowed dir: {outside:?}");
    s.manager.shutdown().await;
}

#[tokio::test]
async fn mcp_server_time_over_stdio() {
    let bin = installed("venv/bin/mcp-server-time").display().to_string();
    let skill = stdio_skill("time", &bin, &["--local-timezone", "UTC"], "");
    let s = start_with(&expert(&skill), &env_with(&[]), options())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = s.manager.tools().into_iter().map(|t| t.name).collect();
    assert!(names.contains(&"get_current_time".to_string()), "{names:?}");
    let out = s
        .manager
        .call("get_current_time", json!({"timezone": "Europe/London"}))
        .await;
    assert!(
        !out.is_error && out.joined_text().contains("Europe/London"),
        "{out:?}"
    );
    let out = s
        .manager
        .call(
            "convert_time",
            json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
        )
        .await;
    assert!(
        !out.is_error && out.joined_text().contains("21:00"),
        "{out:?}"
    );
    s.manager.shutdown().await;
}
