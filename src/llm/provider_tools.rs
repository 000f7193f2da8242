//! Provider tools (Perstack's `providerTools` / `providerToolOptions`) and Anthropic Agent
//! Skills (`providerSkills`), put into each provider's own request shape. The names are
//! Perstack's; the definition layer has already refused names a provider does not offer.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::definition::{Expert, ProviderSkill};

/// One tool the provider runs itself, with its options as written (camelCase keys).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProviderTool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub options: Map<String, Value>,
}

impl ProviderTool {
    /// The provider tools of `expert`, each with its `providerToolOptions` entry.
    pub fn of_expert(expert: &Expert) -> Vec<ProviderTool> {
        let options = expert.provider_tool_options.as_ref();
        expert
            .provider_tools
            .iter()
            .flatten()
            .map(|name| ProviderTool {
                name: name.clone(),
                options: options
                    .and_then(|o| o.get(name))
                    .and_then(|v| serde_json::to_value(v).ok())
                    .and_then(|v| match v {
                        Value::Object(map) => Some(map),
                        _ => None,
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn option(&self, key: &str) -> Option<&Value> {
        self.options.get(key)
    }
}

/// Copies the options named in `keys` (Perstack name → wire name) into `into`.
fn copy(tool: &ProviderTool, keys: &[(&str, &str)], into: &mut Value) {
    for (ours, theirs) in keys {
        if let Some(value) = tool.option(ours) {
            into[*theirs] = value.clone();
        }
    }
}

pub const ANTHROPIC_WEB_FETCH_BETA: &str = "web-fetch-2025-09-10";
pub const ANTHROPIC_CODE_EXECUTION_BETA: &str = "code-execution-2025-08-25";
pub const ANTHROPIC_SKILLS_BETA: &str = "skills-2025-10-02";

/// Anthropic server tools, and the `anthropic-beta` values the request then needs.
pub fn anthropic_tools(
    tools: &[ProviderTool],
    skills: &[ProviderSkill],
) -> (Vec<Value>, Vec<&'static str>) {
    let mut out = Vec::new();
    let mut betas = Vec::new();
    let mut code_execution = false;
    for tool in tools {
        match tool.name.as_str() {
            "webSearch" => {
                let mut v = json!({"type": "web_search_20250305", "name": "web_search"});
                copy(
                    tool,
                    &[
                        ("maxUses", "max_uses"),
                        ("allowedDomains", "allowed_domains"),
                        ("blockedDomains", "blocked_domains"),
                    ],
                    &mut v,
                );
                out.push(v);
            }
            "webFetch" => {
                let mut v = json!({"type": "web_fetch_20250910", "name": "web_fetch"});
                copy(
                    tool,
                    &[
                        ("maxUses", "max_uses"),
                        ("allowedDomains", "allowed_domains"),
                        ("blockedDomains", "blocked_domains"),
                    ],
                    &mut v,
                );
                out.push(v);
                betas.push(ANTHROPIC_WEB_FETCH_BETA);
            }
            "codeExecution" => code_execution = true,
            _ => {}
        }
    }
    // Agent Skills run in the code-execution container.
    if code_execution || !skills.is_empty() {
        out.push(json!({"type": "code_execution_20250825", "name": "code_execution"}));
        betas.push(ANTHROPIC_CODE_EXECUTION_BETA);
    }
    if !skills.is_empty() {
        betas.push(ANTHROPIC_SKILLS_BETA);
    }
    (out, betas)
}

/// The request's `container`, holding the Agent Skills.
pub fn anthropic_container(skills: &[ProviderSkill]) -> Option<Value> {
    if skills.is_empty() {
        return None;
    }
    let skills: Vec<Value> = skills
        .iter()
        .map(|skill| match skill {
            ProviderSkill::Builtin { skill_id } => {
                json!({"type": "anthropic", "skill_id": skill_id, "version": "latest"})
            }
            ProviderSkill::Custom { name, .. } => {
                json!({"type": "custom", "skill_id": name, "version": "latest"})
            }
        })
        .collect();
    Some(json!({ "skills": skills }))
}

/// Gemini tools: each is its own entry of `tools`, beside the function declarations.
pub fn google_tools(tools: &[ProviderTool]) -> Vec<Value> {
    tools
        .iter()
        .filter_map(|tool| {
            Some(match tool.name.as_str() {
                "googleSearch" => json!({"googleSearch": {}}),
                "codeExecution" => json!({"codeExecution": {}}),
                "urlContext" => json!({"urlContext": {}}),
                "googleMaps" => json!({"googleMaps": {}}),
                "fileSearch" => {
                    let mut v = json!({});
                    copy(
                        tool,
                        &[
                            ("vectorStoreIds", "fileSearchStoreNames"),
                            ("maxNumResults", "topK"),
                        ],
                        &mut v,
                    );
                    json!({ "fileSearch": v })
                }
                _ => return None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, options: Value) -> ProviderTool {
        ProviderTool {
            name: name.into(),
            options: options.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn options_are_renamed_into_each_providers_shape() {
        let (tools, betas) = anthropic_tools(
            &[
                tool(
                    "webSearch",
                    json!({"maxUses": 3, "allowedDomains": ["docs.rs"]}),
                ),
                tool("webFetch", json!({"maxUses": 2})),
            ],
            &[],
        );
        assert_eq!(
            tools,
            vec![
                json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 3, "allowed_domains": ["docs.rs"]}),
                json!({"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2}),
            ]
        );
        assert_eq!(betas, vec![ANTHROPIC_WEB_FETCH_BETA]);
        assert_eq!(
            google_tools(&[tool(
                "fileSearch",
                json!({"vectorStoreIds": ["fileSearchStores/a"], "maxNumResults": 5})
            )]),
            vec![
                json!({"fileSearch": {"fileSearchStoreNames": ["fileSearchStores/a"], "topK": 5}})
            ]
        );
    }

    #[test]
    fn skills_bring_the_container_and_code_execution() {
        let skills = [
            ProviderSkill::Builtin {
                skill_id: "pdf".into(),
            },
            ProviderSkill::Custom {
                name: "house-style".into(),
                definition: "Write plainly.".into(),
            },
        ];
        let (tools, betas) = anthropic_tools(&[], &skills);
        assert_eq!(
            tools,
            vec![json!({"type": "code_execution_20250825", "name": "code_execution"})]
        );
        assert_eq!(
            betas,
            vec![ANTHROPIC_CODE_EXECUTION_BETA, ANTHROPIC_SKILLS_BETA]
        );
        assert_eq!(
            anthropic_container(&skills),
            Some(json!({"skills": [
                {"type": "anthropic", "skill_id": "pdf", "version": "latest"},
                {"type": "custom", "skill_id": "house-style", "version": "latest"},
            ]}))
        );
    }
}
