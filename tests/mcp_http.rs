//! MCP skills over Streamable HTTP, against examples/mcp_test_server.rs in `--http` mode.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use perstack::skills::SkillEventKind;
use serde_json::json;
use support::*;

/// The test server over HTTP on a free port, killed on drop.
struct HttpServer {
    child: Child,
    endpoint: String,
}

impl HttpServer {
    fn start() -> Self {
        Self::start_on("0")
    }

    fn start_on(port: &str) -> Self {
        let mut child = Command::new(test_server())
            .args(["--http", port])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the test server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the bound address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        HttpServer {
            child,
            endpoint: format!("http://{addr}/mcp"),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_skill(endpoint: &str) -> String {
    format!("[experts.t.skills.remote]\ntype = \"mcpSseSkill\"\nendpoint = \"{endpoint}\"\n")
}

#[tokio::test]
async fn echo_and_big_output_over_streamable_http() {
    let server = HttpServer::start();
    let mut s = start(&expert(&http_skill(&server.endpoint)), &env_with(&[])).await;
    let out = s.manager.call("echo", json!({"text": "over http"})).await;
    assert_eq!(out.joined_text(), "over http", "{out:?}");
    let out = s.manager.call("add", json!({"a": 20, "b": 22})).await;
    assert_eq!(out.joined_text(), "42");
    let out = s.manager.call("big", json!({})).await;
    assert_eq!(out.joined_text().len(), 1024 * 1024);
    let events = drain(&mut s.events);
    assert!(
        events.iter().any(|e| matches!(&e.kind,
        SkillEventKind::Connected(info) if info.server_name.as_deref() == Some("mcp-test-server")))
    );
    s.manager.shutdown().await;
}

#[tokio::test]
async fn a_server_that_goes_away_gives_error_outputs_not_panics() {
    let server = HttpServer::start();
    let endpoint = server.endpoint.clone();
    let mut s = start(&expert(&http_skill(&endpoint)), &env_with(&[])).await;
    drop(server);
    let out = s.manager.call("echo", json!({"text": "anyone?"})).await;
    assert!(out.is_error, "{out:?}");
    assert!(!out.joined_text().contains("rmcp::"), "{out:?}");
    let out = s.manager.call("echo", json!({"text": "still?"})).await;
    assert!(out.is_error, "{out:?}");
    let events = drain(&mut s.events);
    assert_eq!(
        count(&events, |k| matches!(
            k,
            SkillEventKind::Disconnected { .. }
        )),
        1,
        "{events:?}"
    );

    // Back on the same port: the next call reconnects.
    let port = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next());
    let _server = HttpServer::start_on(port.expect("port"));
    let out = s.manager.call("echo", json!({"text": "back"})).await;
    assert_eq!(out.joined_text(), "back", "{out:?}");
    s.manager.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_nobody_listens_on_fails_start_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}/mcp");
    let err = start_with(
        &expert(&http_skill(&endpoint)),
        &env_with(&[]),
        Default::default(),
    )
    .await
    .err()
    .expect("must fail");
    let text = err.to_string();
    assert!(
        text.contains("remote") && text.contains(&endpoint),
        "{text}"
    );
}
