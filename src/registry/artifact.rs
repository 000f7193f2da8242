//! What is published: one Expert as canonical TOML text, the same shape as perstack.toml
//! (`[experts."<name>"]` and nothing else), so it reads, audits and vendors as any local Expert.

use std::path::Path;

use indexmap::IndexMap;
use serde::Serialize;

use super::key::{ExpertKey, is_registry_key};
use super::{RegistryError, sha256_digest};
use crate::definition::{self, Config, Expert, Skill};

/// The OCI artifact type and layer media type of a published Expert.
pub const ARTIFACT_TYPE: &str = "application/vnd.perstack.expert.v1";
pub const TEXT_MEDIA_TYPE: &str = "application/vnd.perstack.expert.v1+toml";

/// One published Expert version: its text, the digest of that text, and the Expert it defines.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub key: ExpertKey,
    pub text: String,
    /// `sha256:<hex>` of `text`'s bytes.
    pub digest: String,
    pub expert: Expert,
    pub requirements: Requirements,
}

/// What a registry Expert's skills will get from this machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirements {
    /// Every `requiredEnv` of its skills, sorted.
    pub required_env: Vec<String>,
    /// Every domain its skills may reach (`allowedDomains`, and the hosts of HTTP skills), sorted.
    pub allowed_domains: Vec<String>,
}

impl Requirements {
    /// What `self` asks for beyond `locked`, each as `env NAME` or `domain NAME`.
    pub fn added_since(&self, locked: &Requirements) -> Vec<String> {
        let env = self
            .required_env
            .iter()
            .filter(|e| !locked.required_env.contains(e))
            .map(|e| format!("env {e}"));
        let domains = self
            .allowed_domains
            .iter()
            .filter(|d| !locked.allowed_domains.contains(d))
            .map(|d| format!("domain {d}"));
        env.chain(domains).collect()
    }
}

#[derive(Serialize)]
struct Document<'a> {
    experts: IndexMap<&'a str, &'a Expert>,
}

/// The canonical text of `expert` published as `name`: its version written out, nothing else.
pub fn render(name: &str, expert: &Expert) -> Result<String, RegistryError> {
    let mut expert = expert.clone();
    expert.version = Some(expert.version().to_string());
    let document = Document {
        experts: IndexMap::from([(name, &expert)]),
    };
    toml::to_string(&document).map_err(|err| RegistryError::BadArtifact {
        key: name.to_string(),
        detail: err.to_string(),
    })
}

impl Artifact {
    /// A local Expert made ready to publish under `name`. Delegates must be registry keys.
    pub fn from_local(name: &str, expert: &Expert) -> Result<Artifact, RegistryError> {
        let key = ExpertKey::new(name, expert.version())?;
        let text = render(name, expert)?;
        Artifact::parse(&key, text)
    }

    /// Reads published text as the Expert `key`, refusing anything but one Expert of that name
    /// and version with registry delegates: a published Expert cannot carry top-level settings
    /// (no `runtime`, no provider) nor name Experts of somebody's local file.
    pub fn parse(key: &ExpertKey, text: String) -> Result<Artifact, RegistryError> {
        let bad = |detail: String| RegistryError::BadArtifact {
            key: key.to_string(),
            detail,
        };
        let label = format!("{key}.toml");
        let (mut config, _warnings) =
            definition::parse_str(&text, Path::new(&label)).map_err(|diagnostics| {
                let rendered: Vec<String> = diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.render())
                    .collect();
                bad(rendered.join("\n"))
            })?;
        let experts = std::mem::take(&mut config.experts);
        if config != Config::default() {
            return Err(bad(
                "it sets top-level keys; a published Expert may only contain [experts.\"<name>\"]"
                    .into(),
            ));
        }
        if experts.len() != 1 {
            return Err(bad(format!(
                "it defines {} Experts; a published text holds exactly one",
                experts.len()
            )));
        }
        let Some(expert) = experts.get(&key.name) else {
            return Err(bad(format!(
                "it defines [experts.\"{}\"], not \"{}\"",
                experts.keys().next().map(String::as_str).unwrap_or(""),
                key.name
            )));
        };
        if expert.version() != key.version {
            return Err(bad(format!(
                "it says version {}, not {}",
                expert.version(),
                key.version
            )));
        }
        let local: Vec<&str> = expert
            .delegates()
            .iter()
            .filter(|d| !is_registry_key(d))
            .map(String::as_str)
            .collect();
        if !local.is_empty() {
            return Err(bad(format!(
                "its delegates {} are not registry keys (@scope/name@1.2.0)",
                local.join(", ")
            )));
        }
        let requirements = requirements_of(expert);
        Ok(Artifact {
            key: key.clone(),
            digest: sha256_digest(text.as_bytes()),
            expert: expert.clone(),
            text,
            requirements,
        })
    }
}

/// `requiredEnv` of stdio skills, `allowedDomains` of any skill and the hosts of HTTP skills.
fn requirements_of(expert: &Expert) -> Requirements {
    let mut required_env = Vec::new();
    let mut allowed_domains = Vec::new();
    for skill in expert.effective_skills().values() {
        match skill {
            Skill::McpStdio(stdio) => {
                required_env.extend(stdio.required_env.iter().flatten().cloned());
                allowed_domains.extend(stdio.allowed_domains.iter().flatten().cloned());
            }
            Skill::McpSse(sse) => {
                if let Some(host) = url::Url::parse(&sse.endpoint)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                {
                    allowed_domains.push(host);
                }
                allowed_domains.extend(sse.allowed_domains.iter().flatten().cloned());
            }
            Skill::Interactive(_) => {}
        }
    }
    required_env.sort();
    required_env.dedup();
    allowed_domains.sort();
    allowed_domains.dedup();
    Requirements {
        required_env,
        allowed_domains,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(source: &str) -> Expert {
        let (config, _) = definition::parse_str(source, Path::new("perstack.toml")).unwrap();
        config.experts.into_values().next().unwrap()
    }

    #[test]
    fn renders_canonical_text_that_parses_back_the_same() {
        let expert = local(
            r#"
[experts."@acme/reviewer"]
version = "1.2.0"
description = "Reviews"
instruction = """
Review the diff.
Be kind."""
delegates = ["@acme/linter@0.3.0"]
[experts."@acme/reviewer".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
[experts."@acme/reviewer".skills.gh]
type = "mcpStdioSkill"
command = "gh-mcp"
args = []
requiredEnv = ["GH_TOKEN"]
allowedDomains = ["api.github.com"]
[experts."@acme/reviewer".skills.web]
type = "mcpSseSkill"
endpoint = "https://tools.example.com/mcp"
"#,
        );
        let artifact = Artifact::from_local("@acme/reviewer", &expert).unwrap();
        assert!(
            artifact.text.starts_with("[experts.\"@acme/reviewer\"]"),
            "{}",
            artifact.text
        );
        let again = Artifact::parse(&artifact.key, artifact.text.clone()).unwrap();
        assert_eq!(again.expert, artifact.expert);
        assert_eq!(
            render("@acme/reviewer", &again.expert).unwrap(),
            artifact.text
        );
        assert_eq!(artifact.digest, sha256_digest(artifact.text.as_bytes()));
        assert_eq!(artifact.requirements.required_env, vec!["GH_TOKEN"]);
        // A skill's allowedDomains is published, and counted with the host of an HTTP skill.
        assert!(
            artifact
                .text
                .contains("allowedDomains = [\"api.github.com\"]")
        );
        assert_eq!(
            artifact.requirements.allowed_domains,
            vec![
                "api.github.com".to_string(),
                "tools.example.com".to_string()
            ]
        );
    }

    #[test]
    fn refuses_local_delegates_settings_and_wrong_names() {
        let key = ExpertKey::parse("helper@1.0.0").unwrap();
        let with_local = "[experts.helper]\nversion = \"1.0.0\"\ninstruction = \"x\"\ndelegates = [\"mine\"]\n[experts.mine]\ninstruction = \"y\"\n";
        let err = Artifact::parse(&key, with_local.into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one"), "{err}");
        let local_delegate =
            "[experts.helper]\nversion = \"1.0.0\"\ninstruction = \"x\"\ndelegates = [\"mine\"]\n";
        let err = Artifact::parse(&key, local_delegate.into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("mine"), "{err}");
        let runtime =
            "runtime = \"local\"\n[experts.helper]\nversion = \"1.0.0\"\ninstruction = \"x\"\n";
        let err = Artifact::parse(&key, runtime.into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("top-level"), "{err}");
        let other = "[experts.other]\nversion = \"1.0.0\"\ninstruction = \"x\"\n";
        assert!(Artifact::parse(&key, other.into()).is_err());
        let version = "[experts.helper]\nversion = \"2.0.0\"\ninstruction = \"x\"\n";
        assert!(Artifact::parse(&key, version.into()).is_err());
        assert!(Artifact::parse(&key, "not toml [".into()).is_err());
    }

    #[test]
    fn allowed_domains_in_published_text_are_counted() {
        let key = ExpertKey::parse("fetcher@1.0.0").unwrap();
        let text = "[experts.fetcher]\nversion = \"1.0.0\"\ninstruction = \"x\"\n\
            [experts.fetcher.skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\ncommand = \"npx\"\npackageName = \"@perstack/base\"\n\
            [experts.fetcher.skills.web]\ntype = \"mcpStdioSkill\"\ncommand = \"web\"\nargs = []\nallowedDomains = [\"b.example\", \"a.example\"]\n";
        let artifact = Artifact::parse(&key, text.into()).unwrap();
        assert_eq!(
            artifact.requirements.allowed_domains,
            vec!["a.example", "b.example"]
        );
    }

    #[test]
    fn requirements_that_grew_are_listed() {
        let locked = Requirements {
            required_env: vec!["A".into()],
            allowed_domains: vec![],
        };
        let now = Requirements {
            required_env: vec!["A".into(), "B".into()],
            allowed_domains: vec!["x.com".into()],
        };
        assert_eq!(now.added_since(&locked), vec!["env B", "domain x.com"]);
        assert!(locked.added_since(&now).is_empty());
    }
}
