//! Custom Anthropic Agent Skills (`providerSkills = [{type = "custom", name, definition}]`).
//! Anthropic runs a custom skill only once it is uploaded (`POST /v1/skills`, multipart, with
//! the `skills-2025-10-02` beta); the request's container then names it by the returned id.
//! Ids are cached per definition hash in `perstack/provider-skills.json`, so a skill is
//! uploaded once, not on every run, and again only when its definition changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{LanguageModel, LlmError};
use crate::definition::ProviderSkill;

/// The cache file, under the workspace's `perstack/` directory.
pub fn cache_path(workspace: &Path) -> PathBuf {
    workspace.join("perstack").join("provider-skills.json")
}

/// The SKILL.md uploaded for a custom skill: the definition as written when it already has
/// the YAML front matter Anthropic requires (`name`, `description`), else the definition under
/// a front matter made from the skill's name.
pub fn skill_md(name: &str, definition: &str) -> String {
    if definition.trim_start().starts_with("---") {
        return definition.to_string();
    }
    let first_line = definition
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(name)
        .trim_start_matches('#')
        .trim();
    let description = first_line.replace('"', "'");
    format!("---\nname: {name}\ndescription: \"{description}\"\n---\n\n{definition}\n")
}

/// The cache key of one skill on one provider endpoint: SHA-256 of both, hex.
pub fn definition_hash(endpoint: &str, name: &str, skill_md: &str) -> String {
    let mut bytes = Vec::with_capacity(endpoint.len() + name.len() + skill_md.len() + 2);
    for piece in [endpoint, name, skill_md] {
        bytes.extend_from_slice(piece.as_bytes());
        bytes.push(0);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The multipart body of `POST /v1/skills`: the display title and SKILL.md inside a folder
/// named after the skill (the API wants every file under one top-level folder).
pub fn multipart_body(boundary: &str, name: &str, skill_md: &str) -> Vec<u8> {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"display_title\"\r\n\r\n{name}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"files[]\"; filename=\"{name}/SKILL.md\"\r\n\
         Content-Type: text/markdown\r\n\r\n{skill_md}\r\n--{boundary}--\r\n"
    )
    .into_bytes()
}

/// The skill ids of the custom skills in `skills` (name → id), uploading those not cached yet.
/// Built-in skills need no upload and are not in the map.
pub async fn resolve(
    model: &dyn LanguageModel,
    endpoint: &str,
    skills: &[ProviderSkill],
    cache: &Path,
) -> Result<BTreeMap<String, String>, LlmError> {
    let mut ids = BTreeMap::new();
    let custom: Vec<(&String, &String)> = skills
        .iter()
        .filter_map(|s| match s {
            ProviderSkill::Custom { name, definition } => Some((name, definition)),
            ProviderSkill::Builtin { .. } => None,
        })
        .collect();
    if custom.is_empty() {
        return Ok(ids);
    }
    let mut cached = read_cache(cache);
    let mut changed = false;
    for (name, definition) in custom {
        let body = skill_md(name, definition);
        let key = definition_hash(endpoint, name, &body);
        let id = match cached.get(&key).and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                let id = model.upload_skill(name, &body).await?;
                cached.insert(key, Value::String(id.clone()));
                changed = true;
                id
            }
        };
        ids.insert(name.clone(), id);
    }
    if changed {
        write_cache(cache, &cached).map_err(|e| LlmError::Config {
            provider: model.provider().to_string(),
            message: format!(
                "cannot write the skill id cache {}: {e}; check that the directory is writable",
                cache.display()
            ),
        })?;
    }
    Ok(ids)
}

fn read_cache(path: &Path) -> serde_json::Map<String, Value> {
    // A missing or damaged cache only costs an upload.
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default()
}

fn write_cache(path: &Path, map: &serde_json::Map<String, Value>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(map).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_without_front_matter_gets_one() {
        let md = skill_md("house-style", "# Write plainly\nShort sentences.");
        assert!(md.starts_with("---\nname: house-style\ndescription: \"Write plainly\"\n---\n"));
        assert!(md.ends_with("# Write plainly\nShort sentences.\n"));
        let own = "---\nname: x\ndescription: y\n---\nbody";
        assert_eq!(skill_md("x", own), own);
        let a = definition_hash("https://api.anthropic.com/v1", "x", "a");
        assert_eq!(a.len(), 64);
        assert_ne!(a, definition_hash("https://api.anthropic.com/v1", "x", "b"));
        let body = String::from_utf8(multipart_body("B", "x", "md")).expect("utf8");
        assert!(
            body.contains("name=\"files[]\"; filename=\"x/SKILL.md\""),
            "{body}"
        );
        assert!(body.ends_with("--B--\r\n"));
    }
}
