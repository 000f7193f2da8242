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
