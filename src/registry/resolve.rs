//! Delegates to the lock (`perstack install`, online) and the lock to Experts (every run,
//! offline).
//!
//! Install walks every delegate that is not a local Expert, recursively, fetches each version
//! once (a level at a time, in parallel), checks its digest against any earlier lock, caches its
//! text by digest and records what its skills will get. A run takes each locked text from the
//! cache, checks it still asks for no more than the lock says, and adds it to the config under
//! its full key, so the runtime treats it as any other Expert.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use super::artifact::{Artifact, Requirements};
use super::cache::{Cache, CacheError};
use super::key::{ExpertKey, is_registry_key};
use super::{Address, AnyRegistry, Fetched, Options, Registry, RegistryError, Status};
use crate::definition::{Config, Expert};
use crate::skills::lock::{LockedRegistryExpert, RegistryPins};

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "delegate \"{key}\" of expert \"{by}\" is not in perstack.lock; run `perstack install` to fetch and pin it"
    )]
    NotLocked { key: String, by: String },
    #[error(
        "{key} now asks for more than perstack.lock allows ({}); run `perstack install` to review and accept it",
        added.join(", ")
    )]
    RequirementsGrew { key: String, added: Vec<String> },
    #[error("{key} is disabled by its publisher and cannot be used; pick another version")]
    Disabled { key: String },
    #[error(
        "delegation cycle among registry Experts: {}; no Expert in it can finish without its own caller",
        chain.join(" → ")
    )]
    Cycle { chain: Vec<String> },
    #[error("{key}: {source}")]
    Registry {
        key: String,
        #[source]
        source: RegistryError,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("perstack.lock entry {key}: {detail}; run `perstack install` to rewrite it")]
    BadLockEntry { key: String, detail: String },
}

/// What install found: lock entries, the Experts themselves, and what to tell the user.
#[derive(Debug, Default)]
pub struct Installed {
    pub locked: IndexMap<String, LockedRegistryExpert>,
    pub experts: IndexMap<String, Expert>,
    pub warnings: Vec<String>,
}

/// Every delegate of a local Expert that names a registry Expert, with who names it.
fn registry_delegates(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, expert) in &config.experts {
        for delegate in expert.delegates() {
            if !config.experts.contains_key(delegate) && is_registry_key(delegate) {
                out.push((delegate.clone(), name.clone()));
            }
        }
    }
    out
}

/// Resolves every registry delegate of `config` (and `pinned`, installed by name) through
/// `registry`, recursively. Nothing is written to the lock here; texts go to `cache` only once
/// verified.
pub async fn install(
    config: &Config,
    previous: &RegistryPins,
    pinned: &[ExpertKey],
    registry: &AnyRegistry,
    address: &Address,
    cache: &Cache,
) -> Result<Installed, ResolveError> {
    let mut frontier: Vec<ExpertKey> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut pinned_keys: HashSet<String> = pinned.iter().map(ToString::to_string).collect();
    pinned_keys.extend(
        previous
            .iter()
            .filter(|(_, e)| e.pinned)
            .map(|(k, _)| k.clone()),
    );
    let roots = registry_delegates(config)
        .into_iter()
        .map(|(key, _)| key)
        .chain(pinned_keys.iter().cloned());
    for key in roots {
        if seen.insert(key.clone()) {
            let parsed = ExpertKey::parse(&key).map_err(|e| ResolveError::Registry {
                key: key.clone(),
                source: e.into(),
            })?;
            frontier.push(parsed);
        }
    }
    let mut installed = Installed::default();
    let mut edges: IndexMap<String, Vec<String>> = IndexMap::new();
    while !frontier.is_empty() {
        let level = std::mem::take(&mut frontier);
        let fetched =
            futures_util::future::join_all(level.iter().map(|key| registry.get(key))).await;
        for (key, result) in level.into_iter().zip(fetched) {
            let name = key.to_string();
            let Fetched {
                artifact, status, ..
            } = result.map_err(|source| ResolveError::Registry {
                key: name.clone(),
                source,
            })?;
            if let Some(before) = previous.get(&name) {
                if before.digest != artifact.digest {
                    return Err(ResolveError::Registry {
                        key: name.clone(),
                        source: RegistryError::DigestMismatch {
                            key: name.clone(),
                            expected: before.digest.clone(),
                            actual: artifact.digest.clone(),
                        },
                    });
                }
            }
            match status {
                Status::Disabled => return Err(ResolveError::Disabled { key: name }),
                Status::Deprecated => installed.warnings.push(format!(
                    "{name} is deprecated by its publisher; consider another version"
                )),
                Status::Available => {}
            }
            cache.put(&artifact.text)?;
            let delegates = artifact.expert.delegates().to_vec();
            for delegate in &delegates {
                if seen.insert(delegate.clone()) {
                    let parsed =
                        ExpertKey::parse(delegate).map_err(|e| ResolveError::Registry {
                            key: name.clone(),
                            source: e.into(),
                        })?;
                    frontier.push(parsed);
                }
            }
            edges.insert(name.clone(), delegates);
            installed.locked.insert(
                name.clone(),
                locked_entry(&artifact, status, address, pinned_keys.contains(&name)),
            );
            installed.experts.insert(name, artifact.expert);
        }
    }
    if let Some(chain) = find_cycle(&edges) {
        return Err(ResolveError::Cycle { chain });
    }
    Ok(installed)
}

fn locked_entry(
    artifact: &Artifact,
    status: Status,
    address: &Address,
    pinned: bool,
) -> LockedRegistryExpert {
    LockedRegistryExpert {
        registry: address.to_string(),
        name: artifact.key.name.clone(),
        version: artifact.key.version.clone(),
        digest: artifact.digest.clone(),
        required_env: artifact.requirements.required_env.clone(),
        allowed_domains: artifact.requirements.allowed_domains.clone(),
        status: status.as_str().to_string(),
        pinned,
    }
}

/// The first cycle in the delegation graph, as a closed chain (`a → b → a`).
fn find_cycle(edges: &IndexMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnPath,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    for start in edges.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        // Iterative depth-first search: (node, index of the next child).
        let mut path: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        marks.insert(start, Mark::OnPath);
        while let Some((node, next)) = path.last_mut() {
            let children = edges.get(*node).map(Vec::as_slice).unwrap_or(&[]);
            let Some(child) = children.get(*next) else {
                marks.insert(node, Mark::Done);
                path.pop();
                continue;
            };
            *next += 1;
            match marks.get(child.as_str()) {
                Some(Mark::OnPath) => {
                    let from = path.iter().position(|(n, _)| *n == child).unwrap_or(0);
                    let mut chain: Vec<String> =
                        path[from..].iter().map(|(n, _)| n.to_string()).collect();
                    chain.push(child.clone());
                    return Some(chain);
                }
                Some(Mark::Done) => {}
                None => {
                    marks.insert(child, Mark::OnPath);
                    path.push((child.as_str(), 0));
                }
            }
        }
    }
    None
}

/// Adds every locked registry Expert to `config` under its full key, from the user cache (a
/// cache miss is fetched from the registry it was locked from and checked against the digest).
/// Returns warnings (deprecated versions). Costs nothing when there is nothing to resolve.
pub fn attach(config: &mut Config, locked: &RegistryPins) -> Result<Vec<String>, ResolveError> {
    if locked.is_empty() {
        return match registry_delegates(config).into_iter().next() {
            Some((key, by)) => Err(ResolveError::NotLocked { key, by }),
            None => Ok(Vec::new()),
        };
    }
    attach_from(config, locked, &Cache::user()?, &Options::from_env(false))
}

/// [`attach`] with an explicit cache and connection options.
pub fn attach_from(
    config: &mut Config,
    locked: &IndexMap<String, LockedRegistryExpert>,
    cache: &Cache,
    options: &Options,
) -> Result<Vec<String>, ResolveError> {
    for (key, by) in registry_delegates(config) {
        if !locked.contains_key(&key) {
            return Err(ResolveError::NotLocked { key, by });
        }
    }
    let mut texts: HashMap<&str, String> = HashMap::new();
    let mut missing = Vec::new();
    for (key, entry) in locked {
        match cache.get(&entry.digest) {
            Some(text) => {
                texts.insert(key.as_str(), text);
            }
            None => missing.push((key.clone(), entry.clone())),
        }
    }
    if !missing.is_empty() {
        for (key, text) in fetch_missing(missing, cache, options)? {
            if let Some((locked_key, _)) = locked.get_key_value(&key) {
                texts.insert(locked_key.as_str(), text);
            }
        }
    }
    let mut warnings = Vec::new();
    for (key, entry) in locked {
        let bad = |detail: String| ResolveError::BadLockEntry {
            key: key.clone(),
            detail,
        };
        let parsed = ExpertKey::new(&entry.name, &entry.version).map_err(|e| bad(e.to_string()))?;
        if parsed.to_string() != *key {
            return Err(bad(format!("it names {parsed}")));
        }
        let Some(text) = texts.remove(key.as_str()) else {
            return Err(bad("its text is neither cached nor fetched".into()));
        };
        let artifact = Artifact::parse(&parsed, text).map_err(|source| ResolveError::Registry {
            key: key.clone(),
            source,
        })?;
        let granted = Requirements {
            required_env: entry.required_env.clone(),
            allowed_domains: entry.allowed_domains.clone(),
        };
        let added = artifact.requirements.added_since(&granted);
        if !added.is_empty() {
            return Err(ResolveError::RequirementsGrew {
                key: key.clone(),
                added,
            });
        }
        match Status::parse(&entry.status) {
            Some(Status::Disabled) => return Err(ResolveError::Disabled { key: key.clone() }),
            Some(Status::Deprecated) => warnings.push(format!(
                "{key} is deprecated by its publisher; consider another version"
            )),
            _ => {}
        }
        for delegate in artifact.expert.delegates() {
            if !locked.contains_key(delegate) {
                return Err(ResolveError::NotLocked {
                    key: delegate.clone(),
                    by: key.clone(),
                });
            }
        }
        config.experts.insert(key.clone(), artifact.expert);
    }
    Ok(warnings)
}

/// Fetches texts the cache lacks from the registries they were locked from, refusing any whose
/// digest differs from the lock's. Runs on its own thread: callers may be inside a runtime.
fn fetch_missing(
    missing: Vec<(String, LockedRegistryExpert)>,
    cache: &Cache,
    options: &Options,
) -> Result<Vec<(String, String)>, ResolveError> {
    let options = options.clone();
    let worker = std::thread::spawn(move || -> Result<Vec<(String, String)>, ResolveError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ResolveError::Registry {
                key: "(registry)".into(),
                source: RegistryError::Unreachable {
                    url: "(async runtime)".into(),
                    message: e.to_string(),
                },
            })?;
        runtime.block_on(async move {
            let mut registries: HashMap<String, AnyRegistry> = HashMap::new();
            let mut out = Vec::new();
            for (key, entry) in missing {
                let wrap = |source| ResolveError::Registry {
                    key: key.clone(),
                    source,
                };
                if !registries.contains_key(&entry.registry) {
                    let address = Address::parse(&entry.registry).map_err(wrap)?;
                    let opened = AnyRegistry::open(&address, &options).map_err(wrap)?;
                    registries.insert(entry.registry.clone(), opened);
                }
                let Some(registry) = registries.get(&entry.registry) else {
                    continue;
                };
                let parsed =
                    ExpertKey::new(&entry.name, &entry.version).map_err(|e| wrap(e.into()))?;
                let fetched = registry.get(&parsed).await.map_err(wrap)?;
                if fetched.artifact.digest != entry.digest {
                    return Err(wrap(RegistryError::DigestMismatch {
                        key: key.clone(),
                        expected: entry.digest.clone(),
                        actual: fetched.artifact.digest.clone(),
                    }));
                }
                out.push((key, fetched.artifact.text));
            }
            Ok(out)
        })
    });
    let fetched = worker.join().map_err(|_| ResolveError::Registry {
        key: "(registry)".into(),
        source: RegistryError::Unreachable {
            url: "(fetch thread)".into(),
            message: "the fetch stopped unexpectedly".into(),
        },
    })??;
    for (_, text) in &fetched {
        cache.put(text)?;
    }
    Ok(fetched)
}

/// A registry Expert as the workbench lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEntry {
    /// The full key, as delegates name it (`@acme/reviewer@1.2.0`).
    pub key: String,
    pub version: String,
    /// The registry it was locked from.
    pub source: String,
    /// The first 12 hex digits of the digest.
    pub short_digest: String,
    pub digest: String,
    /// The published definition, when it is in the cache.
    pub text: Option<String>,
    pub required_env: Vec<String>,
    pub allowed_domains: Vec<String>,
}

/// The published text of `entry` rewritten as a local Expert under its full key, so the
/// delegates that name it find the local copy first: what vendoring appends to perstack.toml.
pub fn vendored_text(entry: &RegistryEntry) -> Result<String, ResolveError> {
    let in_registry = |source: RegistryError| ResolveError::Registry {
        key: entry.key.clone(),
        source,
    };
    let text = entry
        .text
        .clone()
        .ok_or_else(|| ResolveError::BadLockEntry {
            key: entry.key.clone(),
            detail: "its published text is not in the cache".into(),
        })?;
    let key = ExpertKey::parse(&entry.key).map_err(|err| in_registry(err.into()))?;
    let artifact = Artifact::parse(&key, text).map_err(in_registry)?;
    let body = super::artifact::render(&entry.key, &artifact.expert).map_err(in_registry)?;
    Ok(format!(
        "\n# Vendored from {} ({}): edit freely; delegates naming {} now use this copy.\n{body}",
        entry.source, entry.digest, entry.key
    ))
}

/// Every registry Expert of the lock, with its published text from the cache: what the
/// workbench lists beside the local Experts. One vendored into perstack.toml under the same key
/// is a local Expert now and is left out.
pub fn registry_experts(config: &Config, locked: &RegistryPins) -> Vec<RegistryEntry> {
    registry_experts_in(config, locked, Cache::user().ok().as_ref())
}

/// [`registry_experts`] with an explicit cache (texts are `None` without one).
pub fn registry_experts_in(
    config: &Config,
    locked: &RegistryPins,
    cache: Option<&Cache>,
) -> Vec<RegistryEntry> {
    locked
        .iter()
        .filter(|(key, _)| !config.experts.contains_key(key.as_str()))
        .map(|(key, entry)| RegistryEntry {
            key: key.clone(),
            version: entry.version.clone(),
            source: entry.registry.clone(),
            short_digest: entry
                .digest
                .trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect(),
            digest: entry.digest.clone(),
            text: cache.and_then(|c| c.get(&entry.digest)),
            required_env: entry.required_env.clone(),
            allowed_domains: entry.allowed_domains.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_experts_list_version_source_short_digest_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let text = "[experts.\"@acme/r\"]\ninstruction = \"R.\"\nversion = \"1.0.0\"\n";
        let digest = cache.put(text).unwrap();
        let entry = |digest: &str| LockedRegistryExpert {
            registry: "oci://ghcr.io/acme".into(),
            name: "@acme/r".into(),
            version: "1.0.0".into(),
            digest: digest.into(),
            ..Default::default()
        };
        let locked = RegistryPins::from([("@acme/r@1.0.0".to_string(), entry(&digest))]);
        let listed = registry_experts_in(&Config::default(), &locked, Some(&cache));
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].version, "1.0.0");
        assert_eq!(listed[0].source, "oci://ghcr.io/acme");
        assert_eq!(listed[0].short_digest, &digest[7..19]);
        assert_eq!(listed[0].text.as_deref(), Some(text));
        // Vendored into perstack.toml under the same key: a local Expert now.
        let mut vendored = Config::default();
        let (parsed, _) = crate::definition::parse_str(text, std::path::Path::new("x")).unwrap();
        vendored
            .experts
            .insert("@acme/r@1.0.0".into(), parsed.experts["@acme/r"].clone());
        assert!(registry_experts_in(&vendored, &locked, Some(&cache)).is_empty());
    }

    #[test]
    fn vendoring_rewrites_the_published_text_under_the_full_key() {
        let text = "[experts.\"@acme/r\"]\ninstruction = \"Review it.\"\nversion = \"1.0.0\"\n";
        let mut entry = RegistryEntry {
            key: "@acme/r@1.0.0".into(),
            version: "1.0.0".into(),
            source: "oci://ghcr.io/acme".into(),
            short_digest: "abc".into(),
            digest: "sha256:abc".into(),
            text: Some(text.into()),
            required_env: Vec::new(),
            allowed_domains: Vec::new(),
        };
        let vendored = vendored_text(&entry).expect("vendors");
        assert!(vendored.contains("# Vendored from oci://ghcr.io/acme (sha256:abc)"));
        let (config, _) =
            crate::definition::parse_str(&vendored, std::path::Path::new("perstack.toml"))
                .expect("the vendored text is a valid perstack.toml fragment");
        assert_eq!(config.experts["@acme/r@1.0.0"].instruction, "Review it.");
        entry.text = None;
        assert!(
            vendored_text(&entry).is_err(),
            "nothing to vendor without the text"
        );
    }

    #[test]
    fn cycles_are_found_with_their_chain() {
        let edges: IndexMap<String, Vec<String>> = IndexMap::from([
            ("a@1.0.0".to_string(), vec!["b@1.0.0".to_string()]),
            ("b@1.0.0".to_string(), vec!["c@1.0.0".to_string()]),
            ("c@1.0.0".to_string(), vec!["a@1.0.0".to_string()]),
        ]);
        assert_eq!(
            find_cycle(&edges),
            Some(vec![
                "a@1.0.0".to_string(),
                "b@1.0.0".to_string(),
                "c@1.0.0".to_string(),
                "a@1.0.0".to_string()
            ])
        );
        let chain: IndexMap<String, Vec<String>> = IndexMap::from([
            ("a@1.0.0".to_string(), vec!["b@1.0.0".to_string()]),
            ("b@1.0.0".to_string(), vec![]),
        ]);
        assert_eq!(find_cycle(&chain), None);
    }
}
