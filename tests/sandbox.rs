//! The sandbox with real processes: base `exec` and stdio MCP servers, confined by the kernel
//! (namespaces, Landlock, seccomp) and reaching the network only through the filtering proxy.
//! Nothing here relies on file permissions: the tests run as root, and Landlock denies root too.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perstack::definition::parse_str;
use perstack::sandbox::Sandbox;
use perstack::skills::base::BaseSkill;
use perstack::skills::workspace::Workspace;
use perstack::skills::{SkillEventKind, SkillManager, SkillManagerOptions};
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A workspace outside /tmp, so the private temp directory can be bound over /tmp.
fn workspace_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("workspace dir")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{:x}", std::process::id(), fastrand::u64(..))
}

async fn exec(skill: &BaseSkill, command: &str, args: &[&str]) -> (bool, String) {
    let out = skill
        .call(
            "exec",
            json!({"command": command, "args": args, "env": {}, "cwd": ".",
                   "stdout": true, "stderr": true}),
        )
        .await;
    (!out.is_error, out.joined_text())
}

async fn sh(skill: &BaseSkill, script: &str) -> (bool, String) {
    exec(skill, "sh", &["-c", script]).await
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").expect("HOME is set"))
}

#[tokio::test]
async fn exec_writes_only_inside_the_workspace_and_its_own_tmp() {
    let dir = workspace_dir();
    let skill = BaseSkill::new(dir.path()).expect("skill");
    let owned = unique("perstack-owned");
    let (ok, text) = sh(&skill, &format!("echo x > \"$HOME/{owned}\"")).await;
    assert!(!ok, "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    assert!(!home().join(&owned).exists());

    let (ok, text) = sh(&skill, "echo inside > made.txt").await;
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("made.txt")).expect("made"),
        "inside\n"
    );

    let name = unique("perstack-tmpfile");
    if dir.path().starts_with("/tmp") {
        // A workspace under /tmp cannot have /tmp replaced (that would hide it): the private
        // temp dir is TMPDIR, and the rest of the host's /tmp stays out of reach.
        let (ok, text) = sh(
            &skill,
            &format!(
                "echo t > \"$TMPDIR/{name}\" && cat \"$TMPDIR/{name}\" && echo \"tmpdir=$TMPDIR\""
            ),
        )
        .await;
        assert!(ok, "{text}");
        assert!(text.contains("t\ntmpdir=/"), "{text}");
        assert!(!text.contains("tmpdir=/tmp\n"), "{text}");
        let (ok, text) = sh(&skill, &format!("echo t > /tmp/{name}")).await;
        assert!(!ok, "{text}");
        assert!(text.contains("Permission denied"), "{text}");
    } else {
        // /tmp inside is the private temp dir: writable, empty, gone after the call.
        let (ok, text) = sh(
            &skill,
            &format!(
                "echo t > /tmp/{name} && cat /tmp/{name} && echo \"tmpdir=$TMPDIR\" && ls /tmp"
            ),
        )
        .await;
        assert!(ok, "{text}");
        assert!(text.contains("t\ntmpdir=/tmp\n"), "{text}");
    }
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "landed in the host /tmp"
    );
}

#[tokio::test]
async fn exec_has_no_network_and_runs_with_no_new_privs_and_seccomp() {
    let dir = workspace_dir();
    let skill = BaseSkill::new(dir.path()).expect("skill");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let script = format!(
        "import socket\n\
         try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('tcp connected')\n\
         except OSError as e:\n    print('tcp refused', e)\n\
         try:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', 53)); print('udp sent')\n\
         except OSError as e:\n    print('udp refused', e)\n"
    );
    let (ok, text) = exec(&skill, "python3", &["-c", &script]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("tcp refused [Errno 13] Permission denied"),
        "{text}"
    );
    assert!(
        text.contains("udp refused [Errno 1] Operation not permitted"),
        "{text}"
    );
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );

    let (ok, text) = exec(
        &skill,
        "grep",
        &["-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status"],
    )
    .await;
    assert!(ok, "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
}

#[tokio::test]
async fn children_are_confined_and_die_with_the_call() {
    let dir = workspace_dir();
    let skill = BaseSkill::new(dir.path()).expect("skill");
    // A shell started by a shell started by exec.
    let owned = unique("perstack-grandchild");
    let (ok, text) = sh(&skill, &format!("sh -c 'echo x > \"$HOME/{owned}\"'")).await;
    assert!(!ok, "{text}");
    assert!(!home().join(&owned).exists());

    // setsid leaves the process group, but not the PID namespace.
    let started = Instant::now();
    let (ok, text) = sh(&skill, "setsid -f sleep 300.37; echo started").await;
    assert!(ok, "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_processes_with("sleep 300.37").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        live_processes_with("sleep 300.37").is_empty(),
        "setsid -f sleep outlived the call"
    );
}

#[tokio::test]
async fn other_processes_the_job_store_and_dotenv_files_are_out_of_reach() {
    let dir = workspace_dir();
    std::fs::create_dir_all(dir.path().join("perstack/jobs/j1")).expect("store");
    std::fs::write(dir.path().join("perstack/jobs/j1/job.json"), "{}").expect("job");
    std::fs::write(dir.path().join(".env"), "API_KEY=s3cr3t-value\n").expect("env");
    let skill = BaseSkill::new(dir.path()).expect("skill");

    let (ok, text) = sh(&skill, "tr '\\0' '\\n' </proc/$PPID/environ").await;
    assert!(!ok, "{text}");
    let me = std::process::id();
    let (ok, text) = sh(&skill, &format!("cat /proc/{me}/environ; ls /proc")).await;
    assert!(!text.contains("CARGO_"), "{text}");
    let _ = ok;

    let (ok, text) = sh(&skill, "echo x > perstack/jobs/j1/evil").await;
    assert!(!ok, "{text}");
    assert!(text.contains("Read-only file system"), "{text}");
    let (ok, text) = sh(&skill, "rm -rf perstack").await;
    assert!(!ok, "{text}");
    assert!(dir.path().join("perstack/jobs/j1/job.json").is_file());

    let (_, text) = exec(&skill, "cat", &[".env"]).await;
    assert!(!text.contains("s3cr3t"), "{text}");
    let out = skill.call("readTextFile", json!({"path": ".env"})).await;
    assert!(out.is_error);
    assert!(!out.joined_text().contains("s3cr3t"));
    assert!(
        out.joined_text().contains("dotenv"),
        "{}",
        out.joined_text()
    );
    let out = skill
        .call(
            "writeTextFile",
            json!({"path": "perstack/jobs/j1/job.json", "text": "{\"x\":1}"}),
        )
        .await;
    assert!(out.is_error, "{}", out.joined_text());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("perstack/jobs/j1/job.json")).expect("job"),
        "{}"
    );
}

#[tokio::test]
async fn sandbox_off_runs_unconfined() {
    let dir = workspace_dir();
    let outside = tempfile::tempdir().expect("outside");
    let skill = BaseSkill::new(dir.path())
        .expect("skill")
        .with_sandbox(Sandbox::off());
    let target = outside.path().join("written");
    let (ok, text) = sh(
        &skill,
        &format!(
            "echo x > {}; grep NoNewPrivs /proc/self/status",
            target.display()
        ),
    )
    .await;
    assert!(ok, "{text}");
    assert!(text.contains("NoNewPrivs:\t0"), "{text}");
    assert!(target.is_file());
}

/// A loopback HTTP server answering every request with `hello`.
async fn hello_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    port
}

async fn start_server(
    extra: &str,
    dir: &Path,
) -> (
    SkillManager,
    tokio::sync::mpsc::UnboundedReceiver<perstack::skills::SkillEvent>,
) {
    let skill = server_skill("net", &["--sandbox-tools"], extra);
    let expert = expert(&skill);
    let workspace = Workspace::new(dir).expect("workspace");
    let (sender, events) = tokio::sync::mpsc::unbounded_channel();
    let manager = SkillManager::start(
        &expert,
        workspace,
        &env_with(&[]),
        sender,
        SkillManagerOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    (manager, events)
}

#[tokio::test]
async fn the_proxy_relays_allowed_hosts_and_refuses_the_rest() {
    let dir = workspace_dir();
    let port = hello_server().await;
    let (manager, mut events) = start_server("allowedDomains = [\"localhost\"]", dir.path()).await;
    let starting = drain(&mut events)
        .into_iter()
        .find_map(|e| match e.kind {
            SkillEventKind::Starting { sandbox } => sandbox,
            _ => None,
        })
        .expect("skillStarting carries the policy");
    assert!(starting.is_confined());
    assert_eq!(starting.allowed_domains, ["localhost"]);

    let allowed = manager
        .call(
            "fetch",
            json!({"url": format!("http://localhost:{port}/x")}),
        )
        .await;
    assert!(!allowed.is_error, "{}", allowed.joined_text());
    assert!(
        allowed.joined_text().starts_with("HTTP/1.1 200"),
        "{}",
        allowed.joined_text()
    );
    assert!(allowed.joined_text().ends_with("hello"));

    let denied = manager
        .call(
            "fetch",
            json!({"url": format!("http://127.0.0.1:{port}/x")}),
        )
        .await;
    let text = denied.joined_text();
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.contains("allowedDomains of skill net"), "{text}");
    let denial = drain(&mut events)
        .into_iter()
        .find_map(|e| match e.kind {
            SkillEventKind::SandboxDenied { host, port } => Some((e.skill_name, host, port)),
            _ => None,
        })
        .expect("a sandboxDenied event");
    assert_eq!(denial, ("net".to_string(), "127.0.0.1".to_string(), port));

    // Around the proxy: Landlock allows no other port.
    let direct = manager
        .call(
            "fetch",
            json!({"url": format!("http://localhost:{port}/x"), "direct": true}),
        )
        .await;
    assert!(direct.is_error, "{}", direct.joined_text());
    assert!(
        direct.joined_text().contains("Permission denied"),
        "{}",
        direct.joined_text()
    );
    manager.shutdown().await;
}

#[tokio::test]
async fn a_refused_write_is_an_error_result_and_the_server_goes_on() {
    let dir = workspace_dir();
    let (manager, _events) = start_server("", dir.path()).await;
    let owned = home().join(unique("perstack-mcp-owned"));
    let out = manager
        .call(
            "write",
            json!({"path": owned.display().to_string(), "text": "x"}),
        )
        .await;
    assert!(out.is_error);
    assert!(
        out.joined_text().contains("Permission denied"),
        "{}",
        out.joined_text()
    );
    assert!(!owned.exists());
    // No allowedDomains: no proxy and no network at all.
    let out = manager
        .call("fetch", json!({"url": "http://localhost:9/"}))
        .await;
    assert!(out.is_error, "{}", out.joined_text());
    let inside = dir.path().join("ok.txt");
    let out = manager
        .call(
            "write",
            json!({"path": inside.display().to_string(), "text": "fine"}),
        )
        .await;
    assert!(!out.is_error, "{}", out.joined_text());
    let echo = manager.call("echo", json!({"text": "still here"})).await;
    assert_eq!(echo.joined_text(), "still here");
    manager.shutdown().await;
}

#[test]
fn runtime_local_in_perstack_toml_turns_the_sandbox_off() {
    let parse = |extra: &str| {
        let source = format!("{extra}\n[experts.t]\ninstruction = \"x\"\n");
        parse_str(&source, Path::new("perstack.toml"))
            .expect("config")
            .0
    };
    assert!(Sandbox::from_config(&parse("")).is_confined());
    assert!(Sandbox::from_config(&parse("runtime = \"docker\"")).is_confined());
    assert!(!Sandbox::from_config(&parse("runtime = \"local\"")).is_confined());
    let custom = Sandbox::from_config(&parse("envPath = [\"secrets.env\"]"));
    assert_eq!(custom.env_files, ["secrets.env"]);
}

#[test]
fn an_sse_endpoint_outside_its_allowed_domains_is_an_error_at_its_line() {
    let source = "[experts.t]\ninstruction = \"x\"\n\
                  [experts.t.skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\n\
                  command = \"npx\"\npackageName = \"@perstack/base\"\n\
                  [experts.t.skills.remote]\ntype = \"mcpSseSkill\"\n\
                  endpoint = \"https://mcp.evil.example/mcp\"\n\
                  allowedDomains = [\"*.good.example\"]\n";
    let diagnostics = parse_str(source, Path::new("perstack.toml")).expect_err("refused");
    let diagnostic = diagnostics
        .iter()
        .find(|d| d.code == "endpoint-not-allowed")
        .expect("the endpoint is refused");
    assert_eq!(diagnostic.location.as_ref().map(|l| l.line), Some(9));
    assert!(
        diagnostic.message.contains("mcp.evil.example"),
        "{}",
        diagnostic.message
    );

    let allowed = source.replace("*.good.example", "*.evil.example");
    let (config, warnings) = parse_str(&allowed, Path::new("perstack.toml")).expect("valid");
    assert!(
        warnings
            .iter()
            .all(|w| !w.message.contains("allowedDomains")),
        "{warnings:?}"
    );
    let skills = config.experts["t"].skills.as_ref().expect("skills");
    let perstack::definition::Skill::McpSse(remote) = &skills["remote"] else {
        panic!("an SSE skill");
    };
    assert_eq!(
        remote.allowed_domains.as_deref(),
        Some(&["*.evil.example".to_string()][..])
    );
}
