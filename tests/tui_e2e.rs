//! End to end: the real binary in a pseudo-terminal, on the example project with the replay
//! provider. Types a query, waits for the run to complete, quits, and checks that the terminal
//! was given back (the alternate screen left) and the process exited 0.

#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use support::pty::Pty;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The example project's workbench on the replay script, 120x40, in a workspace of its own
/// holding the changelog it reads.
fn example_workbench() -> (tempfile::TempDir, Pty) {
    let workspace = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{REPO}/CHANGELOG.md"),
        workspace.path().join("CHANGELOG.md"),
    )
    .unwrap();
    let replay = format!("{REPO}/assets/demo.replay.toml");
    let config = format!("{REPO}/perstack.toml");
    let ws = workspace.path().to_str().unwrap();
    let pty = Pty::spawn(
        &[
            "start",
            "release-notes",
            "--replay",
            &replay,
            "--config",
            &config,
            "--workspace",
            ws,
        ],
        120,
        40,
    );
    (workspace, pty)
}

#[test]
fn start_runs_the_example_offline_and_restores_the_terminal() {
    let (workspace, mut pty) = example_workbench();
    let seen = pty.wait_for("Experts", 0, Duration::from_secs(20));
    eprintln!("first frame {:?} after spawn", pty.spawned.elapsed());
    // Only an Expert was given: the query box is open.
    let seen = pty.wait_for(
        "Query for release-notes",
        seen.saturating_sub(4000),
        Duration::from_secs(10),
    );
    pty.send("Write release notes for developers");
    pty.send("\r");
    pty.wait_for("completed", seen, Duration::from_secs(30));
    pty.send("q");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = pty.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the workbench did not quit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    // Give the reader thread the last bytes.
    std::thread::sleep(Duration::from_millis(100));
    let text = pty.text();
    assert!(
        text.contains("\x1b[?1049h"),
        "the alternate screen was entered"
    );
    assert!(
        text.contains("\x1b[?1049l"),
        "the alternate screen was left"
    );
    assert!(workspace.path().join("RELEASE_NOTES.md").exists());
    assert!(workspace.path().join("perstack/workbench.log").exists());
}

/// The query box edits like a line editor: a word inserted after a cursor move, a second line
/// with Alt-Enter, submitted as one query; reopened, ↑ brings that query back from the history.
#[test]
fn the_query_box_edits_lines_and_recalls_the_last_query() {
    let (workspace, mut pty) = example_workbench();
    pty.wait_screen("Query for release-notes", Duration::from_secs(20));
    pty.send("Write notes for developers");
    // Home, then Alt-f over "Write": the word goes in before "notes".
    pty.send("\x1b[H");
    pty.send("\x1bf");
    pty.send("release ");
    // End, then Alt-Enter: a second line.
    pty.send("\x1b[F");
    pty.send("\x1b\r");
    pty.send("Keep it short");
    pty.wait_screen(
        "│> Write release notes for developers",
        Duration::from_secs(10),
    );
    pty.wait_screen("│  Keep it short", Duration::from_secs(10));
    let before_run = pty.len();
    pty.send("\r");
    pty.wait_for("completed", before_run, Duration::from_secs(30));
    let history = workspace.path().join("perstack/history.jsonl");
    let start = Instant::now();
    while !history.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(&history).unwrap(),
        "\"Write release notes for developers\\nKeep it short\"\n"
    );
    // Reopened, the box is empty; ↑ recalls the query, both lines.
    pty.send("i");
    pty.wait_screen("Query for release-notes", Duration::from_secs(10));
    pty.send("\x1b[A");
    pty.wait_screen(
        "│> Write release notes for developers",
        Duration::from_secs(10),
    );
    pty.wait_screen("│  Keep it short", Duration::from_secs(10));
    pty.send("\x1b");
    std::thread::sleep(Duration::from_millis(100));
    pty.send("q");
    let status = pty.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sigterm_and_sighup_restore_the_terminal() {
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let workspace = tempfile::tempdir().unwrap();
        let config = format!("{REPO}/perstack.toml");
        let ws = workspace.path().to_str().unwrap();
        let mut pty = Pty::spawn(&["start", "--config", &config, "--workspace", ws], 80, 24);
        // No key and no --replay: the workbench opens anyway and offers the replay provider.
        pty.wait_for("replay provider", 0, Duration::from_secs(20));
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(pty.child.id() as i32, signal);
        }
        let start = Instant::now();
        let status = loop {
            if let Some(status) = pty.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "signal {signal} did not stop the workbench"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(status.success(), "signal {signal}: exit status {status:?}");
        assert!(
            pty.text().contains("\x1b[?1049l"),
            "signal {signal}: the alternate screen was left"
        );
    }
}

/// A panic leaves the alternate screen before the message is printed, and the message reaches
/// the terminal (not the log file). The trigger exists in debug builds only.
#[cfg(debug_assertions)]
#[test]
fn a_panic_restores_the_terminal_and_shows_the_message() {
    let workspace = tempfile::tempdir().unwrap();
    let config = format!("{REPO}/perstack.toml");
    let ws = workspace.path().to_str().unwrap();
    let pty = Pty::spawn_with_env(
        &["start", "--config", &config, "--workspace", ws],
        80,
        24,
        &[("PERSTACK_WORKBENCH_TEST_PANIC", "1")],
    );
    pty.wait_for(
        "test panic after the first frame",
        0,
        Duration::from_secs(20),
    );
    let mut pty = pty;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = pty.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the workbench did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(!status.success());
    let text = pty.text();
    let left = text
        .find("\x1b[?1049l")
        .expect("the alternate screen was left");
    let message = text.find("test panic after the first frame").unwrap();
    assert!(
        left < message,
        "the screen is restored before the message is printed"
    );
}
