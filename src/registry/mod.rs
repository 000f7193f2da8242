//! The Registry: Experts published as text and referenced by key as delegates.
//!
//! One model, two backends: Perstack's hosted registry API v1 ([`perstack_api`]) and any OCI
//! Distribution registry ([`oci`]). Either way a published Expert version is one canonical TOML
//! text ([`artifact`]) named by the sha256 of its bytes. `perstack install` resolves delegates
//! into perstack.lock ([`resolve`]); runs take the text from the cache ([`cache`]) by that digest,
//! offline, and the runtime sees registry Experts as ordinary entries of the config.

pub mod artifact;
pub mod cache;
mod fetch;
pub mod key;
pub mod oci;
pub mod perstack_api;
pub mod resolve;

use std::fmt;

pub use artifact::{Artifact, Requirements};
pub use key::ExpertKey;
pub use resolve::{RegistryEntry, ResolveError, attach, registry_experts, vendored_text};

/// Where a registry lives, as written in `registry = "..."`, `PERSTACK_REGISTRY` or the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `oci://HOST[:PORT]/NAMESPACE`.
    Oci { host: String, namespace: String },
    /// The base URL of Perstack's registry API (`perstackApiBaseUrl`).
    PerstackApi { base_url: String },
}

/// The hosted registry when nothing else is configured.
pub const DEFAULT_API_BASE_URL: &str = "https://api.perstack.ai";

impl Address {
    pub fn parse(text: &str) -> Result<Address, RegistryError> {
        let bad = |why: &str| RegistryError::BadAddress {
            address: text.to_string(),
            why: why.to_string(),
        };
        if let Some(rest) = text.strip_prefix("oci://") {
            let (host, namespace) = rest.split_once('/').unwrap_or((rest, ""));
            if host.is_empty() {
                return Err(bad("it names no host"));
            }
            let namespace = namespace.trim_matches('/');
            if !namespace.is_empty() && !key::valid_repository_path(namespace) {
                return Err(bad(
                    "the namespace must be lowercase letters, digits and . _ - separated by /",
                ));
            }
            return Ok(Address::Oci {
                host: host.to_ascii_lowercase(),
                namespace: namespace.to_string(),
            });
        }
        match url::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Ok(Address::PerstackApi {
                    base_url: text.trim_end_matches('/').to_string(),
                })
            }
            _ => Err(bad("use oci://HOST[:PORT]/NAMESPACE or an http(s):// URL")),
        }
    }

    /// The registry a project uses: `PERSTACK_REGISTRY`, else `registry` in perstack.toml, else
    /// `perstackApiBaseUrl`, else the hosted registry.
    pub fn of_config(config: &crate::definition::Config) -> Result<Address, RegistryError> {
        if let Ok(from_env) = std::env::var("PERSTACK_REGISTRY") {
            if !from_env.trim().is_empty() {
                return Address::parse(from_env.trim());
            }
        }
        if let Some(address) = &config.registry {
            return Address::parse(address);
        }
        Address::parse(
            config
                .perstack_api_base_url
                .as_deref()
                .unwrap_or(DEFAULT_API_BASE_URL),
        )
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Oci { host, namespace } if namespace.is_empty() => write!(f, "oci://{host}"),
            Address::Oci { host, namespace } => write!(f, "oci://{host}/{namespace}"),
            Address::PerstackApi { base_url } => f.write_str(base_url),
        }
    }
}

/// Whether a host is this machine, where plain http is allowed without asking.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .map(|(h, _)| h)
        .unwrap_or_else(|| host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host));
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// How a registry Expert version may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Available,
    /// Still runs, with a warning.
    Deprecated,
    /// Refused by install and run.
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Available => "available",
            Status::Deprecated => "deprecated",
            Status::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "available" => Some(Status::Available),
            "deprecated" => Some(Status::Deprecated),
            "disabled" => Some(Status::Disabled),
            _ => None,
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Status::parse(text).ok_or_else(|| {
            format!("\"{text}\" is not a status; use available, deprecated or disabled")
        })
    }
}

/// One published version as a registry answers for it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub artifact: Artifact,
    pub status: Status,
    /// Tags besides the version (e.g. "latest"), where the backend tells.
    pub tags: Vec<String>,
}

/// A version in a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    pub version: String,
    pub status: Status,
    pub description: Option<String>,
}

/// An Expert name in a search result, with its versions, newest last.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub name: String,
    pub description: Option<String>,
    pub versions: Vec<String>,
}

/// The operations every backend offers (or refuses clearly with [`RegistryError::Unsupported`]).
#[allow(async_fn_in_trait)] // used with concrete types only; no need for Send bounds on a dyn
pub trait Registry {
    /// The published text of one version, checked against its digest.
    async fn get(&self, key: &ExpertKey) -> Result<Fetched, RegistryError>;
    /// Every version of a name, oldest first.
    async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, RegistryError>;
    /// Names whose name or description contains `text` (all when empty).
    async fn search(&self, text: &str) -> Result<Vec<Listing>, RegistryError>;
    /// Publishes a new version. Versions are write-once: an existing one is refused.
    async fn publish(&self, artifact: &Artifact) -> Result<(), RegistryError>;
    /// Adds tags to a version.
    async fn tag(&self, key: &ExpertKey, tags: &[String]) -> Result<(), RegistryError>;
    /// Marks a version available, deprecated or disabled.
    async fn set_status(&self, key: &ExpertKey, status: Status) -> Result<(), RegistryError>;
    /// Removes a version.
    async fn unpublish(&self, key: &ExpertKey) -> Result<(), RegistryError>;
}

/// A registry of either kind, chosen by its address.
pub enum AnyRegistry {
    Oci(oci::OciRegistry),
    PerstackApi(perstack_api::PerstackApi),
}

/// Connection settings shared by both backends.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Allow plain http to hosts other than loopback.
    pub insecure: bool,
}

impl Options {
    /// `--insecure-registry`, or `PERSTACK_INSECURE_REGISTRY=1` for runs that fetch a cache miss.
    pub fn from_env(insecure_flag: bool) -> Options {
        let from_env = std::env::var("PERSTACK_INSECURE_REGISTRY")
            .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
        Options {
            insecure: insecure_flag || from_env,
        }
    }
}

impl AnyRegistry {
    pub fn open(address: &Address, options: &Options) -> Result<AnyRegistry, RegistryError> {
        Ok(match address {
            Address::Oci { host, namespace } => AnyRegistry::Oci(oci::OciRegistry::new(
                host,
                namespace,
                address.to_string(),
                options,
            )?),
            Address::PerstackApi { base_url } => {
                AnyRegistry::PerstackApi(perstack_api::PerstackApi::new(
                    base_url,
                    std::env::var("PERSTACK_API_KEY").ok(),
                    options,
                )?)
            }
        })
    }
}

impl Registry for AnyRegistry {
    async fn get(&self, key: &ExpertKey) -> Result<Fetched, RegistryError> {
        match self {
            AnyRegistry::Oci(r) => r.get(key).await,
            AnyRegistry::PerstackApi(r) => r.get(key).await,
        }
    }
    async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, RegistryError> {
        match self {
            AnyRegistry::Oci(r) => r.versions(name).await,
            AnyRegistry::PerstackApi(r) => r.versions(name).await,
        }
    }
    async fn search(&self, text: &str) -> Result<Vec<Listing>, RegistryError> {
        match self {
            AnyRegistry::Oci(r) => r.search(text).await,
            AnyRegistry::PerstackApi(r) => r.search(text).await,
        }
    }
    async fn publish(&self, artifact: &Artifact) -> Result<(), RegistryError> {
        match self {
            AnyRegistry::Oci(r) => r.publish(artifact).await,
            AnyRegistry::PerstackApi(r) => r.publish(artifact).await,
        }
    }
    async fn tag(&self, key: &ExpertKey, tags: &[String]) -> Result<(), RegistryError> {
        match self {
            AnyRegistry::Oci(r) => r.tag(key, tags).await,
            AnyRegistry::PerstackApi(r) => r.tag(key, tags).await,
        }
    }
    async fn set_status(&self, key: &ExpertKey, status: Status) -> Result<(), RegistryError> {
        match self {
            AnyRegistry::Oci(r) => r.set_status(key, status).await,
            AnyRegistry::PerstackApi(r) => r.set_status(key, status).await,
        }
    }
    async fn unpublish(&self, key: &ExpertKey) -> Result<(), RegistryError> {
        match self {
            AnyRegistry::Oci(r) => r.unpublish(key).await,
            AnyRegistry::PerstackApi(r) => r.unpublish(key).await,
        }
    }
}

/// Everything that can go wrong talking to a registry or reading what it sent.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry address \"{address}\": {why}")]
    BadAddress { address: String, why: String },
    #[error(
        "{url}: plain http is allowed only for loopback hosts; use https, or pass --insecure-registry (PERSTACK_INSECURE_REGISTRY=1) if you trust the network"
    )]
    InsecureRefused { url: String },
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} refused the credentials (HTTP {status}); {hint}")]
    Unauthorized {
        url: String,
        status: u16,
        hint: String,
    },
    #[error("{key} is not in the registry {registry}")]
    NotFound { registry: String, key: String },
    #[error(
        "{key} is already published to {registry}; versions are write-once: bump `version` and publish again"
    )]
    AlreadyExists { registry: String, key: String },
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} sent something that is not {expected}: {detail}")]
    BadResponse {
        url: String,
        expected: String,
        detail: String,
    },
    #[error("{url} sent more than {limit} bytes for {what}; refused")]
    TooLarge {
        url: String,
        what: String,
        limit: usize,
    },
    #[error(
        "{key}: the registry's content does not match its digest (expected {expected}, got {actual}); the blob or tag was changed, nothing was cached"
    )]
    DigestMismatch {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("{key}: the published text is not a valid Expert definition: {detail}")]
    BadArtifact { key: String, detail: String },
    #[error("{registry} does not support {operation}")]
    Unsupported { registry: String, operation: String },
    #[error("{0}")]
    BadKey(#[from] key::KeyError),
    #[error(
        "\"{tag}\" is not a valid tag: use letters, digits, '.', '_' and '-', at most 128, not starting with '.' or '-'"
    )]
    BadTag { tag: String },
}

/// The `sha256:<hex>` digest of some bytes, as OCI and the lock write it.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_display() {
        assert_eq!(
            Address::parse("oci://127.0.0.1:5000/team/experts").unwrap(),
            Address::Oci {
                host: "127.0.0.1:5000".into(),
                namespace: "team/experts".into()
            }
        );
        assert_eq!(
            Address::parse("oci://ghcr.io/acme").unwrap().to_string(),
            "oci://ghcr.io/acme"
        );
        assert!(matches!(
            Address::parse("https://api.perstack.ai/").unwrap(),
            Address::PerstackApi { base_url } if base_url == "https://api.perstack.ai"
        ));
        assert!(Address::parse("oci:///x").is_err());
        assert!(Address::parse("oci://h/Upper").is_err());
        assert!(Address::parse("ftp://h").is_err());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("[::1]:80"));
        assert!(!is_loopback_host("ghcr.io"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
    }

    #[test]
    fn digest_of_empty_json() {
        assert_eq!(
            sha256_digest(b"{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
