//! Arize Phoenix (PyPI `arize-phoenix`), a real OTLP backend, for the tracing tests: started
//! once per test binary on 127.0.0.1, read back through its REST API, and stopped when the test
//! binary exits.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where `.ci/run` installs it.
pub fn phoenix_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv-phoenix/bin/phoenix")
}

pub struct Phoenix {
    pub port: u16,
    /// Closing this pipe (when the test binary exits) makes the watcher stop Phoenix by its pid.
    _watcher: Mutex<(Child, ChildStdin)>,
}

impl Phoenix {
    /// The OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`): Phoenix takes OTLP/HTTP on its port.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET path`, parsed as JSON, when it answers 200.
    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let (status, body) = http_get(self.port, path)?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// Every span of a project, waiting until at least `expected` have landed (Phoenix
    /// ingests in the background).
    pub fn spans(&self, project: &str, expected: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self
                .get_json(&format!("/v1/projects/{project}/spans?limit=1000"))
                .and_then(|page| page["data"].as_array().cloned())
                .unwrap_or_default();
            if spans.len() >= expected || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The shared Phoenix, started on first use. `None` (with a message saying why) when it is not
/// installed outside CI; under `CI=true` a missing or broken Phoenix fails the test.
pub fn phoenix() -> Option<&'static Phoenix> {
    static PHOENIX: OnceLock<Result<Phoenix, String>> = OnceLock::new();
    match PHOENIX.get_or_init(start) {
        Ok(phoenix) => Some(phoenix),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("Phoenix is required under CI=true: {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn start() -> Result<Phoenix, String> {
    let bin = phoenix_bin();
    if !bin.is_file() {
        return Err(format!(
            "{} is not installed; run .ci/run, or: python3 -m venv target/venv-phoenix && \
             target/venv-phoenix/bin/pip install arize-phoenix==20.26.1",
            bin.display()
        ));
    }
    let (port, grpc_port) = (free_port()?, free_port()?);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/tmp")
        .join(format!("phoenix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The watcher starts Phoenix, waits for its stdin to close (this process ending), then
    // stops Phoenix by its pid and removes its working directory.
    let script = r#""$0" serve </dev/null >"$1/phoenix.log" 2>&1 & pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null; wait "$pid"; rm -rf "$1""#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&bin)
        .arg(&dir)
        .env("PHOENIX_HOST", "127.0.0.1")
        .env("PHOENIX_PORT", port.to_string())
        .env("PHOENIX_GRPC_PORT", grpc_port.to_string())
        .env("PHOENIX_WORKING_DIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdin = child.stdin.take().ok_or("no stdin for the watcher")?;
    let phoenix = Phoenix {
        port,
        _watcher: Mutex::new((child, stdin)),
    };
    // About 20 s on an idle machine (database migrations); more on a busy one.
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if phoenix.get_json("/v1/projects").is_some() {
            return Ok(phoenix);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(dir.join("phoenix.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
    Err(format!(
        "Phoenix did not answer on port {port} within 180 s; its log ends:\n{tail}"
    ))
}

/// A plain HTTP/1.0 GET on loopback: the answer's status and body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Milliseconds since the epoch of Phoenix's times (`2026-11-30T15:30:39.493000+00:00`).
pub fn epoch_ms(iso: &str) -> Option<u64> {
    let (date, time) = iso.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let time = time.trim_end_matches("+00:00").trim_end_matches('Z');
    let mut hms = time.split(':');
    let (h, min) = (
        hms.next()?.parse::<i64>().ok()?,
        hms.next()?.parse::<i64>().ok()?,
    );
    let seconds: f64 = hms.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 24 + h) * 60 + min) * 60_000 + (seconds * 1000.0).round() as i64;
    u64::try_from(ms).ok()
}
