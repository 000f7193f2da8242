//! `perstack validate` and `perstack experts`, run as the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn perstack(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("binary runs")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_the_example_with_a_summary() {
    let out = perstack(&root(), &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "perstack.toml is valid: 3 expert(s), 4 skill(s), 2 delegation(s), 0 warning(s)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains(
        "release-notes  skills: @perstack/base, ask-user  delegates: changelog-reader, writer"
    ));
    assert!(
        out.stderr.is_empty(),
        "no warnings expected: {}",
        text(&out.stderr)
    );
}

#[test]
fn validate_json_reports_summary() {
    let out = perstack(&root(), &["validate", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["ok"], true);
    assert_eq!(report["summary"]["experts"], 3);
    assert_eq!(report["diagnostics"], serde_json::json!([]));
}

#[test]
fn validate_reports_every_error_with_place_and_fix() {
    let fixture = root().join("tests/fixtures/bad/45-many-errors-one-pass.toml");
    let out = perstack(
        &root(),
        &[
            "validate",
            "--config",
            fixture.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("45-many-errors-one-pass.toml:6:12"),
        "{stderr}"
    );
    assert!(stderr.contains("45-many-errors-one-pass.toml:8:16"));
    assert!(stderr.contains("8 | providerName = \"antropic\""));
    assert!(stderr.contains("help: did you mean \"anthropic\"?"));
    assert!(stderr.contains("has 5 error(s)"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn validate_json_lists_diagnostics_on_failure() {
    let fixture = root().join("tests/fixtures/bad/04-unknown-delegate.toml");
    let out = perstack(
        &root(),
        &[
            "validate",
            "--json",
            "--config",
            fixture.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["ok"], false);
    let first = &report["diagnostics"][0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["code"], "unknown-delegate");
    assert_eq!(first["location"]["line"], 4);
    assert_eq!(first["location"]["column"], 14);
    assert_eq!(first["help"], "did you mean \"researcher\"?");
}

#[test]
fn config_is_found_in_a_parent_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("perstack.toml"),
        "[experts.a]\ninstruction = \"x\"\n",
    )
    .expect("write");
    let nested = dir.path().join("src/deep");
    std::fs::create_dir_all(&nested).expect("mkdir");
    let out = perstack(&nested, &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 expert(s)"));
}

#[test]
fn missing_config_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = perstack(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no perstack.toml found in"), "{stderr}");
    assert!(stderr.contains("--config PATH"));
    let out = perstack(dir.path(), &["validate", "--config", "nope.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read nope.toml"));
}

#[test]
fn non_utf8_config_is_a_diagnostic() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("perstack.toml"),
        b"[experts.a]\ninstruction = \"\xff\"\n",
    )
    .expect("write");
    let out = perstack(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not valid UTF-8"), "{stderr}");
    assert!(stderr.contains("perstack.toml:2:16"), "{stderr}");
}

#[test]
fn warnings_do_not_fail_validation() {
    let fixture = root().join("tests/fixtures/good/unknown-keys.toml");
    let out = perstack(
        &root(),
        &[
            "validate",
            "--config",
            fixture.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("warning[unknown-key]"));
    assert!(text(&out.stdout).contains("4 warning(s)"));
}

#[test]
fn experts_prints_the_delegation_tree() {
    let out = perstack(&root(), &["experts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("model claude-sonnet-4-5 · provider anthropic · maxSteps 40"));
    assert!(stdout.contains("release-notes  v1.0.0\n"));
    assert!(stdout.contains("├─ skill ask-user  (interactive: askUser)"));
    assert!(stdout.contains("├─ delegate changelog-reader  v1.0.0"));
    assert!(stdout.contains("└─ delegate writer  v1.0.0\n   ├─"));
}

#[test]
fn experts_marks_cycles_and_fails_on_bad_files() {
    let fixture = root().join("tests/fixtures/good/cycle.toml");
    let out = perstack(
        &root(),
        &["experts", "--config", fixture.to_str().expect("utf-8 path")],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("delegate planner  (cycle)"), "{stdout}");
    assert!(stdout.contains("delegate solo  (cycle)"), "{stdout}");
    let bad = root().join("tests/fixtures/bad/03-missing-instruction.toml");
    let out = perstack(
        &root(),
        &["experts", "--config", bad.to_str().expect("utf-8 path")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing-instruction"));
}

#[test]
fn help_and_version() {
    for args in [
        &["--help"][..],
        &["validate", "--help"],
        &["experts", "--help"],
    ] {
        let out = perstack(&root(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: perstack"), "{args:?}");
    }
    let out = perstack(&root(), &["--version"]);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("perstack {}", env!("CARGO_PKG_VERSION"))
    );
}
