//! `perstack install` writes perstack.lock, and a lazy skill started from it waits for its
//! first call.

mod support;

use std::process::Command;

use perstack::definition::parse_str;
use perstack::skills::SkillManagerOptions;
use perstack::skills::lock::{LOCK_FILE_NAME, read_lock};
use serde_json::json;
use support::*;

#[tokio::test]
async fn install_writes_the_lock_and_lazy_skills_use_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let toml = format!(
        "[experts.t]\ninstruction = \"test\"\n\
         [experts.t.skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\n\
         command = \"npx\"\npackageName = \"@perstack/base\"\npick = [\"readTextFile\"]\n{}",
        server_skill("lazy", &[], "lazyInit = true\npick = [\"echo\", \"add\"]")
    );
    let config = dir.path().join("perstack.toml");
    std::fs::write(&config, &toml).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_perstack"))
        .arg("install")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .expect("run perstack install");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("t: 3 tool(s) from 2 skill(s)"), "{stdout}");

    let lock = read_lock(&dir.path().join(LOCK_FILE_NAME))
        .expect("readable lock")
        .expect("lock written");
    let locked = lock.experts["t"].clone();
    let lazy: Vec<&str> = locked
        .tools_of("lazy")
        .expect("lazy skill locked")
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(lazy, ["add", "echo"]);

    let (config, _) = parse_str(&toml, &config).expect("valid config");
    let expert = config.experts["t"].clone();
    let options = SkillManagerOptions {
        lock: Some(locked),
        ..Default::default()
    };
    let s = start_with(&expert, &env_with(&[]), options)
        .await
        .expect("start");
    let skill = s.manager.mcp_skills().next().expect("lazy skill");
    assert!(skill.pid().await.is_none());
    let out = s.manager.call("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(out.joined_text(), "3");
    s.manager.shutdown().await;
}

#[test]
fn install_fails_without_writing_when_a_skill_cannot_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("perstack.toml");
    std::fs::write(
        &config,
        "[experts.t]\ninstruction = \"test\"\n\
         [experts.t.skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\n\
         command = \"npx\"\npackageName = \"@perstack/base\"\n\
         [experts.t.skills.ghost]\ntype = \"mcpStdioSkill\"\n\
         command = \"/nonexistent/server\"\nargs = []\n",
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["install", "--config"])
        .arg(&config)
        .output()
        .expect("run perstack install");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("ghost") && stderr.contains("not written"),
        "{stderr}"
    );
    assert!(!dir.path().join(LOCK_FILE_NAME).exists());
}

/// Pids whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces) start past the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// `perstack install` with one slow-starting server, interrupted by `signal` while it waits.
async fn interrupted_install_leaves_no_server(signal: i32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("perstack.toml");
    std::fs::write(
        &config,
        format!(
            "[experts.t]\ninstruction = \"test\"\n\
             [experts.t.skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\n\
             command = \"npx\"\npackageName = \"@perstack/base\"\n{}",
            server_skill("slow", &["--startup-delay-ms", "20000"], "")
        ),
    )
    .expect("write config");
    let mut perstack = Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["install", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run perstack install");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let server = loop {
        if let Some(pid) = children_of(perstack.id()).first() {
            break *pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no server was spawned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let perstack_pid = i32::try_from(perstack.id()).expect("pid");
    // SAFETY: signalling a child process we spawned.
    unsafe {
        libc::kill(perstack_pid, signal);
    }
    let status = perstack.wait().expect("perstack exits");
    assert!(!status.success());
    assert!(
        wait_gone(server, std::time::Duration::from_secs(5)).await,
        "server {server} outlived perstack (signal {signal})"
    );
    assert!(!dir.path().join(LOCK_FILE_NAME).exists());
}

#[tokio::test]
async fn ctrl_c_during_install_leaves_no_server() {
    interrupted_install_leaves_no_server(libc::SIGINT).await;
}

#[tokio::test]
async fn a_killed_perstack_leaves_no_server() {
    interrupted_install_leaves_no_server(libc::SIGKILL).await;
}
