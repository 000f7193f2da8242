//! MCP skill overhead: a stdio round trip to the test server's `echo` tool (through the
//! SkillManager, with and without the wire traced, and through a bare rmcp client for
//! comparison), and the cost of starting three servers concurrently compared with starting one.
//!
//! Uses examples/mcp_test_server.rs, preferring a release build of it
//! (`cargo build --release --example mcp_test_server`) and falling back to the debug one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use perstack::definition::{Expert, parse_str};
use perstack::skills::workspace::Workspace;
use perstack::skills::{SkillEvent, SkillEventKind, SkillManager, SkillManagerOptions};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;

/// Start-up delay each server sleeps before serving, in the start benchmarks.
const STARTUP_DELAY_MS: u64 = 200;

fn test_server() -> PathBuf {
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"));
    ["release", "debug"]
        .iter()
        .map(|profile| target.join(profile).join("examples/mcp_test_server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("build the test server first: cargo build --release --example mcp_test_server")
        })
}

fn expert(server: &Path, servers: &[(&str, &str)], delay_ms: u64) -> Expert {
    let mut source = String::from(
        "[experts.b]\ninstruction = \"bench\"\n\
         [experts.b.skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\n\
         command = \"npx\"\npackageName = \"@perstack/base\"\n",
    );
    for (name, tool) in servers {
        source.push_str(&format!(
            "[experts.b.skills.{name}]\ntype = \"mcpStdioSkill\"\ncommand = {:?}\n\
             args = [\"--startup-delay-ms\", \"{delay_ms}\"]\npick = [\"{tool}\"]\n",
            server.display().to_string()
        ));
    }
    let (config, _) = parse_str(&source, Path::new("perstack.toml")).expect("bench config");
    config.experts["b"].clone()
}

fn env() -> HashMap<String, String> {
    std::env::vars().filter(|(k, _)| k == "PATH").collect()
}

async fn start(expert: &Expert, dir: &Path) -> SkillManager {
    start_traced(expert, dir, false).await.0
}

/// The skills, and the receiver of their events (frames among them when `trace`).
async fn start_traced(
    expert: &Expert,
    dir: &Path,
    trace: bool,
) -> (SkillManager, UnboundedReceiver<SkillEvent>) {
    let (sender, events) = tokio::sync::mpsc::unbounded_channel();
    let workspace = Workspace::new(dir).expect("workspace");
    let mut options = SkillManagerOptions::default();
    options.mcp.trace = trace;
    let manager = SkillManager::start(expert, workspace, &env(), sender, options)
        .await
        .expect("skills start");
    (manager, events)
}

fn round_trip(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let expert = expert(&test_server(), &[("test", "echo")], 0);
    let manager = runtime.block_on(start(&expert, dir.path()));
    let mut group = c.benchmark_group("mcp");
    group.bench_function("stdio echo round trip", |b| {
        b.iter(|| {
            let out = runtime.block_on(manager.call("echo", json!({"text": "ping"})));
            assert_eq!(out.joined_text(), "ping");
        })
    });
    runtime.block_on(manager.shutdown());

    // Tracing on and off, each call named as the runtime names it, its events taken off the
    // channel as the runtime's forwarder does: the difference is what tracing costs a call.
    for trace in [false, true] {
        let (manager, mut events) = runtime.block_on(start_traced(&expert, dir.path(), trace));
        while events.try_recv().is_ok() {}
        let label = if trace {
            "stdio echo round trip, wire traced"
        } else {
            "stdio echo round trip, wire not traced"
        };
        let mut frames = 0usize;
        group.bench_function(label, |b| {
            b.iter(|| {
                let call = manager.call_as(Some("call-1"), "echo", json!({"text": "ping"}));
                let out = runtime.block_on(call);
                assert_eq!(out.joined_text(), "ping");
                // A frame sent from another thread may show on the next turn: count them all.
                while let Ok(event) = events.try_recv() {
                    frames += usize::from(matches!(event.kind, SkillEventKind::Frame(_)));
                }
            })
        });
        assert_eq!(frames > 0, trace, "frames only when traced");
        runtime.block_on(manager.shutdown());
    }

    // The same call through a bare rmcp client: the difference is the skill layer's cost.
    let client = runtime.block_on(async {
        let command = tokio::process::Command::new(test_server());
        let (transport, _stderr) = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the test server");
        ().serve(transport).await.expect("handshake")
    });
    group.bench_function("stdio echo round trip, bare rmcp client", |b| {
        b.iter(|| {
            let mut params = CallToolRequestParams::new("echo");
            params.arguments = json!({"text": "ping"}).as_object().cloned();
            let result = runtime.block_on(client.call_tool(params));
            assert!(result.is_ok());
        })
    });
    group.finish();
    let _ = runtime.block_on(client.cancel());
}

fn concurrent_start(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = test_server();
    let one = expert(&server, &[("a", "echo")], STARTUP_DELAY_MS);
    let three = expert(
        &server,
        &[("a", "echo"), ("b", "add"), ("c", "env")],
        STARTUP_DELAY_MS,
    );
    let mut group = c.benchmark_group("mcp start");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (label, expert) in [("one server", &one), ("three servers", &three)] {
        group.bench_function(label, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    let manager = runtime.block_on(start(expert, dir.path()));
                    total += started.elapsed();
                    runtime.block_on(manager.shutdown());
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip, concurrent_start);
criterion_main!(benches);
