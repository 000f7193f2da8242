//! A real OCI registry for tests: Debian's `docker-registry` (Distribution 2.8) on 127.0.0.1
//! with a free port and a temporary storage dir, optionally behind htpasswd basic auth. Stopped
//! by its pid when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BINARY: &str = "docker-registry";

pub struct LocalRegistry {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl LocalRegistry {
    /// Anonymous access: anyone may pull and push.
    pub fn start() -> LocalRegistry {
        LocalRegistry::launch(None)
    }

    /// Basic auth with one user (bcrypt htpasswd, as `htpasswd -B` writes it).
    pub fn start_with_basic_auth(user: &str, password: &str) -> LocalRegistry {
        LocalRegistry::launch(Some((user, password)))
    }

    fn launch(auth: Option<(&str, &str)>) -> LocalRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let output = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd runs (Debian apache2-utils; .ci/run installs it)");
            assert!(output.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &output.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{REGISTRY_BINARY} does not start ({e}); install it: apt-get install -y docker-registry (.ci/run does)")
            });
        let registry = LocalRegistry {
            child: Some(child),
            port,
            dir,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Some(status) = http_status(self.port, "/v2/") {
                if status == 200 || status == 401 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!(
            "the registry on port {} did not become ready:\n{log}",
            self.port
        );
    }

    /// `oci://127.0.0.1:PORT/<namespace>`.
    pub fn address(&self, namespace: &str) -> String {
        format!("oci://127.0.0.1:{}/{namespace}", self.port)
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the registry process (by its pid) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// The status code of a plain GET, or None when nothing answers yet.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
