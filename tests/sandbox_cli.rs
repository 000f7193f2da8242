//! The sandbox switch end to end: `perstack run` with `--sandbox off`, `runtime = "local"`,
//! the default, and a kernel that lacks Landlock (forced by the test hook), answered by a
//! replay script that calls `exec`.

use std::path::Path;
use std::process::Command;

const REPLAY: &str = r#"
[[responses]]
expert = "solo"
toolCalls = [{ name = "exec", args = { command = "grep", args = ["-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status"], env = {}, cwd = ".", stdout = true, stderr = true } }]

[[responses]]
expert = "solo"
toolCalls = [{ name = "attemptCompletion", args = {} }]

[[responses]]
expert = "solo"
text = "done"
"#;

fn project(settings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!("{settings}\n[experts.solo]\ninstruction = \"Check the sandbox\"\n");
    std::fs::write(dir.path().join("perstack.toml"), config).expect("config");
    std::fs::write(dir.path().join("run.replay.toml"), REPLAY).expect("replay");
    dir
}

/// Runs the replayed job; returns stdout (JSON events) and the exit code.
fn run(dir: &Path, extra: &[&str], pretend: Option<&str>) -> (String, Option<i32>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_perstack"));
    command
        .args(["run", "solo", "check", "--replay", "run.replay.toml"])
        .args(extra)
        .current_dir(dir)
        .env_remove("PERSTACK_SANDBOX_PRETEND_KERNEL");
    if let Some(feature) = pretend {
        command.env("PERSTACK_SANDBOX_PRETEND_KERNEL", feature);
    }
    let output = command.output().expect("perstack runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.code(),
    )
}

fn event_types(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["type"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn runs_are_confined_by_default() {
    let dir = project("");
    let (stdout, code) = run(dir.path(), &[], None);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains(r"NoNewPrivs:\t1"), "{stdout}");
    assert!(stdout.contains(r"Seccomp:\t2"), "{stdout}");
    assert!(!event_types(&stdout).contains(&"sandboxDisabled".to_string()));
}

#[test]
fn sandbox_off_and_runtime_local_run_unconfined_and_say_so() {
    for (settings, flags) in [
        ("", &["--sandbox", "off"][..]),
        ("runtime = \"local\"", &[][..]),
    ] {
        let dir = project(settings);
        let (stdout, code) = run(dir.path(), flags, None);
        assert_eq!(code, Some(0), "{stdout}");
        assert!(
            stdout.contains(r"NoNewPrivs:\t0"),
            "{settings} {flags:?}: {stdout}"
        );
        assert!(
            event_types(&stdout).contains(&"sandboxDisabled".to_string()),
            "{stdout}"
        );
    }
    // --sandbox on wins over runtime = "local".
    let dir = project("runtime = \"local\"");
    let (stdout, _) = run(dir.path(), &["--sandbox", "on"], None);
    assert!(stdout.contains(r"Seccomp:\t2"), "{stdout}");
}

#[test]
fn a_kernel_without_landlock_refuses_with_the_feature_and_the_opt_out() {
    let dir = project("");
    let (stdout, _) = run(dir.path(), &[], Some("no-landlock"));
    assert!(!stdout.contains(r"NoNewPrivs:\t"), "exec ran: {stdout}");
    assert!(stdout.contains("the sandbox needs Landlock"), "{stdout}");
    assert!(stdout.contains("--sandbox off"), "{stdout}");
    // The opt-out works on that kernel.
    let (stdout, code) = run(dir.path(), &["--sandbox", "off"], Some("no-landlock"));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains(r"NoNewPrivs:\t0"), "{stdout}");
}

#[test]
fn sandbox_check_reports_this_kernel() {
    let output = Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["sandbox", "check"])
        .env_remove("PERSTACK_SANDBOX_PRETEND_KERNEL")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("landlock: ABI"), "{text}");
    assert_eq!(output.status.code(), Some(0), "{text}");
    let output = Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(["sandbox", "check"])
        .env("PERSTACK_SANDBOX_PRETEND_KERNEL", "no-userns")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("namespaces: no"), "{text}");
    assert!(text.contains("sandbox: not supported"), "{text}");
    assert_eq!(output.status.code(), Some(1));
}
