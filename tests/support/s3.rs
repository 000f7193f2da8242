//! A real S3-API server for tests: moto (PyPI `moto[server]`, installed by `.ci/run` into
//! `target/venv-moto`), started on 127.0.0.1 and stopped when dropped.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Moto {
    /// The running server; replaced by `restart`.
    child: Mutex<Child>,
    pub endpoint: String,
    port: u16,
    /// Where the server records every request it is sent, when started with `start_recording`.
    recording: Option<tempfile::NamedTempFile>,
}

fn server_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv-moto/bin/moto_server")
}

impl Moto {
    /// The server, or `None` (saying why) when it is not installed and CI is not set. Under
    /// CI a missing server is a failure.
    pub fn start() -> Option<Moto> {
        Self::launch(false)
    }

    /// As `start`, with moto's recorder on from the first request (`MOTO_ENABLE_RECORDING`):
    /// every request it is sent, body included, is appended to a file, so `restart` can bring
    /// back what a killed server held.
    pub fn start_recording() -> Option<Moto> {
        Self::launch(true)
    }

    fn launch(recording: bool) -> Option<Moto> {
        let server = server_path();
        if !server.is_file() {
            let message = format!(
                "{} is missing; install it with `python3 -m venv target/venv-moto && \
                 target/venv-moto/bin/pip install 'moto[server]==5.2.5'` (or run .ci/run)",
                server.display()
            );
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let recording = recording.then(|| tempfile::NamedTempFile::new().expect("recording file"));
        let moto = Moto {
            child: Mutex::new(Self::spawn(port, recording.as_ref())),
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            recording,
        };
        moto.wait_until_up();
        Some(moto)
    }

    fn spawn(port: u16, recording: Option<&tempfile::NamedTempFile>) -> Child {
        let mut command = Command::new(server_path());
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(file) = recording {
            command
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", file.path());
        }
        command.spawn().expect("moto_server starts")
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.request("GET", "/").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the server dies mid-request as a crashed service does, and its memory (every
    /// bucket and object) with it; the port refuses connections until `restart`.
    pub fn kill(&self) {
        let mut child = self.child.lock().expect("lock");
        child.kill().expect("moto_server is killed");
        child.wait().expect("moto_server is reaped");
    }

    /// A new server on the same port, given back what the killed one held: moto replays its
    /// recording (`/moto-api/recorder/replay-recording`, in the order the requests came; the
    /// replay itself is not recorded). Requests that reach the new server before the replay
    /// ends are served as usual, on top of what is replayed.
    pub fn restart(&self) {
        let recording = self
            .recording
            .as_ref()
            .expect("restart needs a server started with `start_recording`");
        // SIGKILL may cut the record being written: drop the unfinished last line. Moto
        // records a request before handling it, so a request whose record was cut was never
        // answered and its sender tries again.
        let recorded = std::fs::read_to_string(recording.path()).expect("read the recording");
        let whole = recorded.rfind('\n').map_or("", |end| &recorded[..=end]);
        std::fs::write(recording.path(), whole).expect("write the recording");
        *self.child.lock().expect("lock") = Self::spawn(self.port, Some(recording));
        self.wait_until_up();
        assert_eq!(
            self.request_waiting(
                "POST",
                "/moto-api/recorder/replay-recording",
                Duration::from_secs(60)
            ),
            Some(200),
            "moto replays its recording"
        );
    }

    /// One plain HTTP request; the status line's code, or `None` when nothing answered.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        self.request_waiting(method, path, Duration::from_secs(5))
    }

    fn request_waiting(&self, method: &str, path: &str, wait: Duration) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(wait)).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn create_bucket(&self, bucket: &str) {
        assert_eq!(self.request("PUT", &format!("/{bucket}")), Some(200));
    }

    /// The environment a `perstack` process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// The same settings, named as `object_store` names them.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A door in front of a server on loopback: `close` makes the service unreachable as a killed
/// server is (open connections are cut, new ones reset at once), `open` brings it back on the
/// same port with everything it stored.
pub struct Gate {
    pub endpoint: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Gate {
    pub fn new(target: &str) -> Gate {
        use std::sync::atomic::Ordering;
        use std::sync::{Arc, Mutex, atomic::AtomicBool};
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("address").port();
        let open = Arc::new(AtomicBool::new(true));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (is_open, kept) = (open.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !is_open.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for stream in [&client, &server] {
                    if let Ok(clone) = stream.try_clone() {
                        kept.lock().expect("lock").push(clone);
                    }
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Gate {
            endpoint: format!("http://127.0.0.1:{port}"),
            open,
            streams,
        }
    }

    pub fn close(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for stream in self.streams.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The environment a `perstack` process needs to reach the server through this gate.
    pub fn env(&self, moto: &Moto) -> Vec<(&'static str, String)> {
        let mut env = moto.env();
        for (key, value) in &mut env {
            if *key == "AWS_ENDPOINT_URL" {
                *value = self.endpoint.clone();
            }
        }
        env
    }
}

fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
