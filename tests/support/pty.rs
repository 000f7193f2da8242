//! The real binary in a pseudo-terminal: what it writes, and keys typed into it.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Pty {
    pub child: Child,
    /// The screen as a terminal would show it, fed with the output read so far.
    screen: Mutex<(vt100::Parser, usize)>,
    writer: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
    pub spawned: Instant,
}

impl Pty {
    pub fn spawn(args: &[&str], cols: u16, rows: u16) -> Pty {
        Pty::spawn_with_env(args, cols, rows, &[])
    }

    pub fn spawn_with_env(args: &[&str], cols: u16, rows: u16, env: &[(&str, &str)]) -> Pty {
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
        // PERSTACK_BIN points the tests at another build (a release one, to time it).
        let binary = std::env::var("PERSTACK_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_perstack").to_string());
        let mut command = Command::new(binary);
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
            screen: Mutex::new((
                vt100::Parser::new(
                    std::num::NonZeroU16::new(rows).expect("rows"),
                    std::num::NonZeroU16::new(cols).expect("cols"),
                    0,
                ),
                0,
            )),
            writer: std::fs::File::from(master),
            output,
            spawned,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output after `from` holds `needle`; returns where the output ended.
    /// Polls every millisecond without copying, so it can time what it waits for.
    pub fn wait_for(&self, needle: &str, from: usize, timeout: Duration) -> usize {
        let start = Instant::now();
        let needle = needle.as_bytes();
        loop {
            {
                let output = self.output.lock().unwrap();
                let after = output.get(from..).unwrap_or(&[]);
                if after.windows(needle.len()).any(|w| w == needle) {
                    return output.len();
                }
            }
            if start.elapsed() > timeout {
                let text = self.text();
                panic!(
                    "timed out waiting for {:?}; output so far:\n{}",
                    String::from_utf8_lossy(needle),
                    text.get(text.len().saturating_sub(3000)..).unwrap_or(&text)
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The text on the screen now, row by row.
    pub fn screen(&self) -> String {
        let output = self.output.lock().unwrap();
        let mut screen = self.screen.lock().unwrap();
        let (parser, fed) = &mut *screen;
        parser.process(&output[*fed..]);
        *fed = output.len();
        parser.screen().contents()
    }

    /// Waits until the screen shows `needle`; polls every millisecond.
    pub fn wait_screen(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {needle:?} on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Where the output ends now.
    pub fn len(&self) -> usize {
        self.output.lock().unwrap().len()
    }

    pub fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Give the reader thread the last bytes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(start.elapsed() < timeout, "the process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A test that fails must not leave its workbench running.
impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
