//! exec: arguments, environment, output caps, timeouts and process cleanup.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{err, exec_args, ok, root, setup};
use crate::skills::base::EXEC_MAX_OUTPUT_BYTES;

#[tokio::test]
async fn exec_runs_without_a_shell_and_reports_exit_codes() {
    let (_dir, skill) = setup();
    let text = ok(&skill, "exec", exec_args("echo", &["hello", "$HOME", "*"])).await;
    assert_eq!(text, "exit code: 0\nstdout:\nhello $HOME *\n\nstderr:\n");

    let output = skill
        .call("exec", exec_args("sh", &["-c", "echo oops >&2; exit 3"]))
        .await;
    assert!(output.is_error);
    let text = output.joined_text();
    assert!(text.starts_with("exit code: 3"), "{text}");
    assert!(text.contains("stderr:\noops"), "{text}");

    let text = err(
        &skill,
        "exec",
        exec_args("definitely-not-a-program-xyz", &[]),
    )
    .await;
    assert!(
        text.contains("cannot run `definitely-not-a-program-xyz`"),
        "{text}"
    );
    let text = err(&skill, "exec", json!({"command": "true"})).await;
    assert_eq!(
        text,
        "invalid arguments for exec: missing required argument `args`"
    );
}

#[tokio::test]
async fn exec_respects_stream_flags_env_and_cwd() {
    let (_dir, skill) = setup();
    std::fs::create_dir(root(&skill).join("sub")).expect("mkdir");
    let args = json!({
        "command": "sh",
        "args": ["-c", "pwd; echo \"$GREETING\"; echo host=${CARGO_MANIFEST_DIR:-unset}; echo err >&2"],
        "env": {"GREETING": "hi"},
        "cwd": "sub",
        "stdout": true,
        "stderr": false,
    });
    // The test runner sets CARGO_MANIFEST_DIR; exec must not pass host variables on.
    let text = ok(&skill, "exec", args).await;
    let expected_dir = root(&skill).join("sub");
    assert_eq!(
        text,
        format!(
            "exit code: 0\nstdout:\n{}\nhi\nhost=unset\n",
            expected_dir.display()
        )
    );
    let text = err(
        &skill,
        "exec",
        json!({"command": "true", "args": [], "env": {}, "cwd": "missing", "stdout": true, "stderr": true}),
    )
    .await;
    assert!(text.contains("not an existing directory"), "{text}");
    let text = err(
        &skill,
        "exec",
        json!({"command": "true", "args": [], "env": {"N": 1}, "cwd": ".", "stdout": true, "stderr": true}),
    )
    .await;
    assert!(text.contains("`env.N` must be a string"), "{text}");
}

#[tokio::test]
async fn exec_runs_relative_programs_from_cwd() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, skill) = setup();
    std::fs::create_dir(root(&skill).join("bin")).expect("mkdir");
    let script = root(&skill).join("bin/hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho from-script\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let args = json!({"command": "./hello.sh", "args": [], "env": {}, "cwd": "bin",
                      "stdout": true, "stderr": true});
    let text = ok(&skill, "exec", args).await;
    assert!(text.contains("from-script"), "{text}");
}

#[tokio::test]
async fn exec_caps_output() {
    let (_dir, skill) = setup();
    // 300 000 bytes on stdout: 100 KiB kept, the rest counted.
    let args = exec_args("sh", &["-c", "head -c 300000 /dev/zero | tr '\\0' a"]);
    let text = ok(&skill, "exec", args).await;
    let dropped = 300_000 - EXEC_MAX_OUTPUT_BYTES;
    assert!(
        text.contains(&format!("[truncated {dropped} bytes]")),
        "{}",
        &text[text.len() - 80..]
    );
    assert!(text.len() < EXEC_MAX_OUTPUT_BYTES + 200);
}

fn process_alive(pid: u32) -> bool {
    // A killed process may stay a zombie until its parent (or init) reaps it; that is dead too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or("?");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Host pids of live processes whose command line is exactly `argv`. Inside the sandbox a
/// program sees its own PID namespace, so the pid it reports means nothing out here; a
/// command line unique to the test finds it instead.
pub(super) fn live_processes(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .filter(|pid| process_alive(*pid))
        .collect()
}

/// Waits up to 5 s for every process running `argv` to be gone.
pub(super) async fn gone(argv: &[&str]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_processes(argv).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    live_processes(argv).is_empty()
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_process_group() {
    let (_dir, skill) = setup();
    // The shell records the background sleep's pid, then waits on a second sleep.
    let args = json!({
        "command": "sh",
        "args": ["-c", "sleep 30.101 & echo $! > grandchild.pid; sleep 30"],
        "env": {}, "cwd": ".", "stdout": true, "stderr": true, "timeout": 500,
    });
    let started = Instant::now();
    let text = err(&skill, "exec", args).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.starts_with("timed out after 500 ms"), "{text}");
    assert!(root(&skill).join("grandchild.pid").exists());
    assert!(
        gone(&["sleep", "30.101"]).await,
        "the grandchild survived the timeout"
    );
}

#[tokio::test]
async fn exec_returns_promptly_when_a_background_child_holds_the_output() {
    let (_dir, skill) = setup();
    let args = exec_args("sh", &["-c", "sleep 30.102 & echo $! > bg.pid; echo done"]);
    let started = Instant::now();
    let text = ok(&skill, "exec", args).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.contains("done"), "{text}");
    assert!(root(&skill).join("bg.pid").exists());
    assert!(
        gone(&["sleep", "30.102"]).await,
        "the background child was left running"
    );
}

#[tokio::test]
async fn exec_rejects_zero_timeout() {
    let (_dir, skill) = setup();
    let mut args = exec_args("true", &[]);
    args["timeout"] = json!(0);
    let text = err(&skill, "exec", args).await;
    assert!(text.contains("`timeout` must be at least 1 ms"), "{text}");
}
