//! The sandbox: every process a skill starts (base `exec`, `mcpStdioSkill` servers and what
//! they start, commands run by `perstack install`) runs confined, while perstack itself (which
//! talks to the provider) does not.
//!
//! A confined process may read what the user can read, but write only below the workspace, a
//! private temp directory (`TMPDIR`) and its skill's cache; the job store `perstack/` is
//! read-only and the dotenv files are empty inside. It cannot see other processes (own PID
//! namespace with a fresh `/proc`), dies with its caller along with all it started, and reaches
//! the network only through a filtering proxy ([`proxy`]) that checks its skill's
//! `allowedDomains`. [`linux`] applies all this between fork and exec; [`check`] says whether
//! the kernel can.

pub mod check;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod policy;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use check::{KernelSupport, SandboxError, kernel_support};
pub use policy::{NPM_REGISTRY, SandboxMode, SandboxPolicy, cache_root, domain_allowed};

/// The name of the job store directory in the workspace, read-only inside the sandbox.
pub const STORE_DIR: &str = "perstack";

/// How a job confines the processes of its skills. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub mode: SandboxMode,
    /// The dotenv files (`envPath`), relative to the workspace or absolute: hidden inside.
    pub env_files: Vec<String>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::confined()
    }
}

impl Sandbox {
    /// Confined, hiding the default dotenv files.
    pub fn confined() -> Self {
        Sandbox {
            mode: SandboxMode::Confined,
            env_files: crate::definition::DEFAULT_ENV_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// Unconfined (`runtime = "local"`, `--sandbox off`).
    pub fn off() -> Self {
        Sandbox {
            mode: SandboxMode::Off,
            ..Sandbox::confined()
        }
    }

    /// The mode a perstack.toml asks for: `runtime = "local"` runs unconfined; `"docker"`
    /// (Perstack's default), an absent `runtime` or anything else runs confined.
    pub fn from_config(config: &crate::definition::Config) -> Self {
        let local = config
            .runtime
            .as_ref()
            .and_then(|r| r.as_str())
            .is_some_and(|r| r.eq_ignore_ascii_case("local"));
        let mut sandbox = if local {
            Sandbox::off()
        } else {
            Sandbox::confined()
        };
        sandbox.env_files = config.env_paths();
        sandbox
    }

    pub fn is_confined(&self) -> bool {
        self.mode.is_confined()
    }

    /// The policy of a process working in `workspace`, writing also below `extra_writable`
    /// and reaching `domains` through the proxy.
    pub fn policy(
        &self,
        workspace: &Path,
        extra_writable: Vec<PathBuf>,
        domains: Vec<String>,
    ) -> SandboxPolicy {
        if !self.is_confined() {
            return SandboxPolicy::off();
        }
        let mut writable_paths = vec![workspace.to_path_buf()];
        writable_paths.extend(extra_writable);
        SandboxPolicy {
            mode: SandboxMode::Confined,
            writable_paths,
            read_only_paths: vec![workspace.join(STORE_DIR)],
            hidden_paths: self
                .env_files
                .iter()
                .map(|file| workspace.join(file))
                .collect(),
            allowed_domains: domains,
        }
    }
}

/// A private temp directory, removed when dropped.
#[derive(Debug)]
pub struct PrivateTmp(PathBuf);

impl PrivateTmp {
    pub fn create() -> Result<Self, SandboxError> {
        let base = std::env::temp_dir();
        for _ in 0..8 {
            let dir = base.join(format!("perstack-tmp-{:016x}", fastrand::u64(..)));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(PrivateTmp(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(SandboxError::Setup(format!(
                        "cannot create a private temp directory in {}: {e}",
                        base.display()
                    )));
                }
            }
        }
        Err(SandboxError::Setup(format!(
            "cannot find a free private temp directory name in {}",
            base.display()
        )))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One process's confinement, ready to be applied to a command. Keep it alive as long as the
/// process runs: it owns the private temp directory and the proxy listener.
pub struct Confinement {
    #[cfg(target_os = "linux")]
    prepared: Arc<linux::Prepared>,
    tmp: PrivateTmp,
    tmp_inside: PathBuf,
    proxy: Option<proxy::ProxyListener>,
}

impl Confinement {
    /// Checks the kernel and prepares `policy`. `proxy` carries the skill's allow-list; with
    /// none, the process has no network at all.
    pub fn prepare(
        policy: &SandboxPolicy,
        proxy: Option<proxy::ProxyListener>,
    ) -> Result<Self, SandboxError> {
        let support = kernel_support();
        support.require()?;
        let tmp = PrivateTmp::create()?;
        #[cfg(target_os = "linux")]
        {
            let port = proxy.as_ref().map(|p| p.port());
            let (prepared, tmp_inside) =
                linux::Prepared::new(policy, tmp.path(), port, support.landlock_abi)?;
            Ok(Confinement {
                prepared: Arc::new(prepared),
                tmp,
                tmp_inside,
                proxy,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (policy, tmp, proxy);
            Err(SandboxError::Unsupported {
                feature: "Linux",
                kernel: std::env::consts::OS.to_string(),
            })
        }
    }

    /// The private temp directory on the host side.
    pub fn tmp_dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Variables the process gets: `TMPDIR` and, with a proxy, the proxy variables in both
    /// cases (`NO_PROXY` emptied, so nothing bypasses it).
    pub fn env(&self) -> Vec<(String, String)> {
        let tmp = self.tmp_inside.display().to_string();
        let mut env = vec![("TMPDIR".to_string(), tmp)];
        if let Some(proxy) = &self.proxy {
            let url = proxy.url();
            for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
                env.push((name.to_string(), url.clone()));
                env.push((name.to_ascii_lowercase(), url.clone()));
            }
            env.push(("NO_PROXY".to_string(), String::new()));
            env.push(("no_proxy".to_string(), String::new()));
        }
        env
    }

    /// Sets the environment and the confinement on `command`. Call it after any other
    /// `pre_exec` step, so those run first and the confinement last.
    pub fn apply(&self, command: &mut std::process::Command) {
        command.envs(self.env());
        #[cfg(target_os = "linux")]
        linux::confine(command, self.prepared.clone());
    }
}

impl std::fmt::Debug for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confinement")
            .field("tmp", &self.tmp)
            .field("proxy", &self.proxy.as_ref().map(|p| p.port()))
            .finish_non_exhaustive()
    }
}

/// `--sandbox on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxSwitch {
    /// Confine every skill process (the default, as `runtime = "docker"`)
    On,
    /// Run skill processes unconfined (as `runtime = "local"`)
    Off,
}

impl SandboxSwitch {
    /// The `runtime` value of perstack.toml this switch stands for.
    pub fn runtime(self) -> &'static str {
        match self {
            SandboxSwitch::On => "docker",
            SandboxSwitch::Off => "local",
        }
    }
}
