//! What a confined process may do: where it may write, which hosts it may reach, and what it
//! must not see. Built by the skill that spawns the process; applied by [`super::linux`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The npm registry, reachable by a skill launched through `npx`/`packageName` (as Perstack's
/// own runtime allows).
pub const NPM_REGISTRY: &str = "registry.npmjs.org";

/// Whether child processes are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum SandboxMode {
    /// Confined: Landlock, seccomp, namespaces and the filtering proxy.
    #[default]
    Confined,
    /// Unconfined: `runtime = "local"` or `--sandbox off`.
    Off,
}

impl SandboxMode {
    pub fn is_confined(self) -> bool {
        self == SandboxMode::Confined
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Confined => "confined",
            SandboxMode::Off => "off",
        }
    }
}

/// The policy of one process, as `skillStarting` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct SandboxPolicy {
    pub mode: SandboxMode,
    /// Directories the process may write below (the workspace, its temp dir, its cache).
    pub writable_paths: Vec<PathBuf>,
    /// Directories inside a writable path that stay read-only (the job store `perstack/`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read_only_paths: Vec<PathBuf>,
    /// Files replaced by an empty one inside (the dotenv files).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hidden_paths: Vec<PathBuf>,
    /// Hosts reachable through the proxy: exact names or `*.` wildcards.
    pub allowed_domains: Vec<String>,
}

impl SandboxPolicy {
    /// An unconfined policy: the process runs as perstack itself does.
    pub fn off() -> Self {
        SandboxPolicy {
            mode: SandboxMode::Off,
            ..SandboxPolicy::default()
        }
    }

    pub fn is_confined(&self) -> bool {
        self.mode.is_confined()
    }

    /// True when `host` is on the allow-list. Names compare case-insensitively with trailing
    /// dots ignored; `*.example.com` matches every subdomain of example.com, not example.com.
    pub fn allows(&self, host: &str) -> bool {
        domain_allowed(&self.allowed_domains, host)
    }
}

/// Whether `host` matches one of `domains` (see [`SandboxPolicy::allows`]).
pub fn domain_allowed(domains: &[String], host: &str) -> bool {
    let host = normalise(host);
    if host.is_empty() {
        return false;
    }
    domains.iter().any(|rule| {
        let rule = normalise(rule);
        match rule.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
            None => !rule.is_empty() && rule == host,
        }
    })
}

fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The user's cache directory for skills' own caches: `$XDG_CACHE_HOME/perstack` or
/// `~/.cache/perstack`; the system temp dir when neither is known.
pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| Path::new(&home).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("perstack")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_names_and_wildcards_match_like_perstack() {
        let domains = list(&["api.example.com", "*.github.com.", "LOCALHOST"]);
        assert!(domain_allowed(&domains, "api.example.com"));
        assert!(domain_allowed(&domains, "API.Example.com."));
        assert!(!domain_allowed(&domains, "example.com"));
        assert!(!domain_allowed(&domains, "evil-api.example.com"));
        assert!(domain_allowed(&domains, "raw.github.com"));
        assert!(domain_allowed(&domains, "a.b.github.com"));
        assert!(!domain_allowed(&domains, "github.com"));
        assert!(!domain_allowed(&domains, "evilgithub.com"));
        assert!(domain_allowed(&domains, "localhost"));
        assert!(!domain_allowed(&domains, ""));
        assert!(!domain_allowed(&[], "localhost"));
    }

    #[test]
    fn the_policy_serialises_in_camel_case() {
        let policy = SandboxPolicy {
            writable_paths: vec![PathBuf::from("/w")],
            allowed_domains: list(&["x.org"]),
            ..SandboxPolicy::default()
        };
        let value = serde_json::to_value(&policy).expect("serialises");
        assert_eq!(value["mode"], "confined");
        assert_eq!(value["writablePaths"][0], "/w");
        assert_eq!(value["allowedDomains"][0], "x.org");
        assert!(value.get("hiddenPaths").is_none());
        assert_eq!(
            serde_json::to_value(SandboxPolicy::off()).expect("serialises")["mode"],
            "off"
        );
    }
}
