//! What this kernel can enforce, detected once per process.
//!
//! `PERSTACK_SANDBOX_PRETEND_KERNEL=no-landlock` (or `no-userns`) makes the detection report
//! that feature as missing, so the refusal path can be tested on a kernel that has it.

use std::sync::OnceLock;

/// Landlock ABI with TCP connect rules (Linux 6.7).
pub const NETWORK_LANDLOCK_ABI: u32 = 4;
/// The environment variable that pretends a feature is missing (for tests).
pub const PRETEND_VAR: &str = "PERSTACK_SANDBOX_PRETEND_KERNEL";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSupport {
    /// 0 when Landlock is absent or disabled.
    pub landlock_abi: u32,
    pub seccomp_filter: bool,
    /// Unprivileged user, mount and PID namespaces can be created.
    pub namespaces: bool,
    pub kernel_release: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "the sandbox needs {feature}, which this kernel ({kernel}) does not provide; \
         `perstack sandbox check` shows what it supports. To run skills unconfined instead, \
         pass `--sandbox off` or set `runtime = \"local\"` in perstack.toml"
    )]
    Unsupported {
        feature: &'static str,
        kernel: String,
    },
    #[error("cannot prepare the sandbox: {0}")]
    Setup(String),
}

impl KernelSupport {
    /// The first feature a confined process needs that is missing.
    pub fn require(&self) -> Result<(), SandboxError> {
        let missing = if self.landlock_abi == 0 {
            Some("Landlock (Linux 5.13+, enabled in the `lsm=` boot list)")
        } else if self.landlock_abi < NETWORK_LANDLOCK_ABI {
            Some("Landlock ABI 4 for network rules (Linux 6.7+)")
        } else if !self.seccomp_filter {
            Some("seccomp filters")
        } else if !self.namespaces {
            Some("unprivileged user namespaces (sysctl user.max_user_namespaces > 0)")
        } else {
            None
        };
        match missing {
            Some(feature) => Err(SandboxError::Unsupported {
                feature,
                kernel: self.kernel_release.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A short report, one feature a line, for `perstack sandbox check`.
    pub fn report(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let mut out = format!("kernel: {}\n", self.kernel_release);
        out.push_str(&format!(
            "landlock: {}\n",
            if self.landlock_abi == 0 {
                "no".to_string()
            } else {
                format!("ABI {}", self.landlock_abi)
            }
        ));
        out.push_str(&format!(
            "landlock network rules: {}\n",
            yes_no(self.landlock_abi >= NETWORK_LANDLOCK_ABI)
        ));
        out.push_str(&format!(
            "seccomp filters: {}\n",
            yes_no(self.seccomp_filter)
        ));
        out.push_str(&format!(
            "user, mount and PID namespaces: {}\n",
            yes_no(self.namespaces)
        ));
        match self.require() {
            Ok(()) => out.push_str("sandbox: supported; skills run confined by default\n"),
            Err(e) => out.push_str(&format!("sandbox: not supported: {e}\n")),
        }
        out
    }
}

/// The support of this machine, detected on first use.
pub fn kernel_support() -> &'static KernelSupport {
    static SUPPORT: OnceLock<KernelSupport> = OnceLock::new();
    SUPPORT.get_or_init(detect)
}

fn detect() -> KernelSupport {
    let pretend = std::env::var(PRETEND_VAR).unwrap_or_default();
    let landlock_abi = if pretend == "no-landlock" {
        0
    } else {
        landlock_abi()
    };
    let namespaces = pretend != "no-userns" && namespaces_work();
    KernelSupport {
        landlock_abi,
        seccomp_filter: seccomp_available(),
        namespaces,
        kernel_release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
    }
}

#[cfg(target_os = "linux")]
fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute and the VERSION flag the call only returns a number.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(abi).unwrap_or(0)
}

#[cfg(not(target_os = "linux"))]
fn landlock_abi() -> u32 {
    0
}

fn seccomp_available() -> bool {
    cfg!(target_os = "linux")
        && std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
            .unwrap_or(false)
}

/// Tries the unshare a confined process does, in a throw-away child.
#[cfg(target_os = "linux")]
fn namespaces_work() -> bool {
    // SAFETY: the child only calls unshare and _exit, both async-signal-safe.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID;
            libc::_exit(if libc::unshare(flags) == 0 { 0 } else { 1 });
        }
        if pid < 0 {
            return false;
        }
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) == -1 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return false;
            }
        }
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn namespaces_work() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> KernelSupport {
        KernelSupport {
            landlock_abi: 7,
            seccomp_filter: true,
            namespaces: true,
            kernel_release: "6.18".into(),
        }
    }

    #[test]
    fn a_missing_feature_is_named_with_the_opt_out() {
        assert!(full().require().is_ok());
        let old = KernelSupport {
            landlock_abi: 3,
            ..full()
        };
        let message = old.require().expect_err("unsupported").to_string();
        assert!(message.contains("Landlock ABI 4"), "{message}");
        assert!(message.contains("--sandbox off"), "{message}");
        assert!(message.contains("runtime = \"local\""), "{message}");
        let none = KernelSupport {
            namespaces: false,
            ..full()
        };
        assert!(
            none.require()
                .expect_err("unsupported")
                .to_string()
                .contains("user namespaces")
        );
        assert!(old.report().contains("landlock network rules: no"));
        assert!(full().report().contains("sandbox: supported"));
    }

    #[test]
    fn this_machine_is_detected() {
        let support = kernel_support();
        assert!(!support.kernel_release.is_empty());
        assert!(support.report().starts_with("kernel: "));
    }
}
