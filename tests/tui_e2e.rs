//! End to end: the real binary in a pseudo-terminal, on the example project with the replay
//! provider. Types a query, waits for the run to complete, quits, and checks that the terminal
//! was given back (the alternate screen left) and the process exited 0.

#![cfg(unix)]

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

struct Pty {
    child: Child,
    writer: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
    spawned: Instant,
}

impl Pty {
    fn spawn(args: &[&str], cols: u16, rows: u16) -> Pty {
        Pty::spawn_with_env(args, cols, rows, &[])
    }

    fn spawn_with_env(args: &[&str], cols: u16, rows: u16, env: &[(&str, &str)]) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors, which we own from here on.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty failed");
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut command = Command::new(env!("CARGO_BIN_EXE_perstack"));
        command
            .args(args)
            .env("TERM", "xterm-256color")
            .env_remove("ANTHROPIC_API_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY as _, 0);
                Ok(())
            });
        }
        let spawned = Instant::now();
        let child = command.spawn().unwrap();
        let reader_fd = master.try_clone().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut reader = std::fs::File::from(reader_fd);
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            child,
            writer: std::fs::File::from(master),
            output,
            spawned,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output after `from` holds `needle`; returns where the output ended.
    fn wait_for(&self, needle: &str, from: usize, timeout: Duration) -> usize {
        let start = Instant::now();
        loop {
            let text = self.text();
            if text.get(from..).is_some_and(|t| t.contains(needle)) {
                return text.len();
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {needle:?}; output so far:\n{}",
                text.get(text.len().saturating_sub(3000)..).unwrap_or(&text)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }
}

#[test]
fn start_runs_the_example_offline_and_restores_the_terminal() {
    let workspace = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{REPO}/CHANGELOG.md"),
        workspace.path().join("CHANGELOG.md"),
    )
    .unwrap();
    let replay = format!("{REPO}/assets/demo.replay.toml");
    let config = format!("{REPO}/perstack.toml");
    let ws = workspace.path().to_str().unwrap();
    let mut pty = Pty::spawn(
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
