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

/// The request's `container`, holding the Agent Skills. A custom skill goes by its uploaded
/// id from `ids`; one not uploaded (only in a body shown before the run) by its name.
pub fn anthropic_container(
    skills: &[ProviderSkill],
    ids: &std::collections::BTreeMap<String, String>,
) -> Option<Value> {
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
                let id = ids.get(name).unwrap_or(name);
                json!({"type": "custom", "skill_id": id, "version": "latest"})
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

/// Whose wire shape a provider tool's result has: only that provider takes it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// An Anthropic result block (`web_search_tool_result`, `code_execution_tool_result`, ...).
    Anthropic,
    /// A Gemini part (`codeExecutionResult`) or a Gemini answer's `groundingMetadata`.
    Google,
    /// An OpenAI Responses output item (`web_search_call`, `code_interpreter_call`, ...).
    OpenAi,
}

/// The wire a stored result came from, read from its shape.
pub fn wire_of(result: &Value) -> Option<Wire> {
    let kind = result.get("type").and_then(Value::as_str).unwrap_or("");
    if kind.ends_with("_tool_result") {
        Some(Wire::Anthropic)
    } else if kind.ends_with("_call") {
        Some(Wire::OpenAi)
    } else if result.get("codeExecutionResult").is_some()
        || result.get("groundingMetadata").is_some()
    {
        Some(Wire::Google)
    } else {
        None
    }
}

/// The Anthropic content blocks that send a provider tool use back in the assistant turn:
/// the `server_tool_use` and its result block, verbatim. A use without an Anthropic result
/// is left out (the API refuses a `server_tool_use` with no result after it).
pub fn anthropic_blocks(id: &str, name: &str, args: &Value, result: Option<&Value>) -> Vec<Value> {
    match result {
        Some(result) if wire_of(result) == Some(Wire::Anthropic) => vec![
            json!({"type": "server_tool_use", "id": id, "name": name, "input": args}),
            result.clone(),
        ],
        _ => Vec::new(),
    }
}

/// The Gemini parts that send a provider tool use back in the model turn: code execution
/// goes back as its `executableCode` and `codeExecutionResult` parts; search grounding is
/// answer metadata, not a part, so nothing goes back for it.
pub fn google_parts(name: &str, args: &Value, result: Option<&Value>) -> Vec<Value> {
    match result {
        Some(result) if name == "codeExecution" && result.get("codeExecutionResult").is_some() => {
            vec![json!({"executableCode": args}), result.clone()]
        }
        _ => Vec::new(),
    }
}

/// What a person reads of a provider tool's result, and whether it failed: search hits as
/// `title — url`, code output with its return code, and the ids of files it produced.
pub fn describe_result(result: Option<&Value>) -> (String, bool) {
    let Some(result) = result else {
        return ("(the provider sent no result)".into(), false);
    };
    let mut lines = Vec::new();
    let mut failed = false;
    let kind = result.get("type").and_then(Value::as_str).unwrap_or("");
    match wire_of(result) {
        Some(Wire::Anthropic) => {
            let content = &result["content"];
            let content_kind = content.get("type").and_then(Value::as_str).unwrap_or("");
            if content_kind.ends_with("_error") {
                failed = true;
                lines.push(format!(
                    "error: {}",
                    content["error_code"].as_str().unwrap_or("unknown")
                ));
            } else if let Some(hits) = content.as_array() {
                hits.iter().for_each(|hit| lines.push(hit_line(hit)));
            } else if kind == "web_fetch_tool_result" {
                let title = content["content"]["title"].as_str().unwrap_or("");
                lines.push(format!("fetched {} {title}", text_of(&content["url"])));
            } else {
                code_output(content, &mut lines);
            }
        }
        Some(Wire::Google) => {
            if let Some(run) = result.get("codeExecutionResult") {
                let outcome = run["outcome"].as_str().unwrap_or("");
                failed = !outcome.is_empty() && outcome != "OUTCOME_OK";
                lines.push(format!("outcome: {outcome}"));
                push_text(&mut lines, &run["output"]);
            }
            if let Some(grounding) = result.get("groundingMetadata") {
                for query in grounding["webSearchQueries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    lines.push(format!("searched: {}", text_of(query)));
                }
                for chunk in grounding["groundingChunks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let web = &chunk["web"];
                    lines.push(format!(
                        "{} — {}",
                        text_of(&web["title"]),
                        text_of(&web["uri"])
                    ));
                }
            }
        }
        Some(Wire::OpenAi) => {
            failed = result["status"].as_str() == Some("failed");
            let action = &result["action"];
            if let Some(query) = action["query"].as_str() {
                lines.push(format!("searched: {query}"));
            }
            for source in action["sources"].as_array().into_iter().flatten() {
                lines.push(text_of(&source["url"]));
            }
            for query in result["queries"].as_array().into_iter().flatten() {
                lines.push(format!("searched: {}", text_of(query)));
            }
            for hit in result["results"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "{} ({})",
                    text_of(&hit["filename"]),
                    text_of(&hit["file_id"])
                ));
            }
            for output in result["outputs"].as_array().into_iter().flatten() {
                match output["type"].as_str() {
                    Some("logs") => push_text(&mut lines, &output["logs"]),
                    Some("image") => lines.push(format!("image {}", text_of(&output["url"]))),
                    _ => {}
                }
            }
            if kind == "image_generation_call" {
                let bytes = result["result"].as_str().map_or(0, str::len);
                lines.push(format!("image, {bytes} bytes base64"));
            }
            if lines.is_empty() {
                lines.push(format!("status: {}", text_of(&result["status"])));
            }
        }
        None => lines.push(serde_json::to_string_pretty(result).unwrap_or_default()),
    }
    (lines.join("\n"), failed)
}

fn hit_line(hit: &Value) -> String {
    format!("{} — {}", text_of(&hit["title"]), text_of(&hit["url"]))
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn push_text(lines: &mut Vec<String>, value: &Value) {
    if let Some(text) = value.as_str().filter(|t| !t.is_empty()) {
        lines.push(text.trim_end().to_string());
    }
}

/// Code execution output (plain, bash or text editor): stdout, stderr, return code and the
/// `file_id`s of the files it wrote (Agent Skills produce their documents this way).
fn code_output(content: &Value, lines: &mut Vec<String>) {
    push_text(lines, &content["stdout"]);
    if let Some(stderr) = content["stderr"].as_str().filter(|t| !t.is_empty()) {
        lines.push(format!("stderr: {}", stderr.trim_end()));
    }
    if let Some(code) = content["return_code"].as_i64() {
        lines.push(format!("return code {code}"));
    }
    let files: Vec<String> = content["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["file_id"].as_str().map(str::to_string))
        .collect();
    if !files.is_empty() {
        lines.push(format!("files: {}", files.join(", ")));
    }
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
            anthropic_container(&skills, &Default::default()),
            Some(json!({"skills": [
                {"type": "anthropic", "skill_id": "pdf", "version": "latest"},
                {"type": "custom", "skill_id": "house-style", "version": "latest"},
            ]}))
        );
    }

    #[test]
    fn results_go_back_only_to_their_own_provider_and_read_plainly() {
        let search = json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
            "content": [{"type": "web_search_result", "title": "Rust", "url": "https://rust-lang.org", "encrypted_content": "x"}]});
        let args = json!({"query": "rust"});
        let blocks = anthropic_blocks("srvtoolu_1", "web_search", &args, Some(&search));
        assert_eq!(
            blocks[0],
            json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "rust"}})
        );
        assert_eq!(blocks[1], search);
        assert!(google_parts("web_search", &args, Some(&search)).is_empty());
        assert!(anthropic_blocks("srvtoolu_1", "web_search", &args, None).is_empty());
        assert_eq!(
            describe_result(Some(&search)),
            ("Rust — https://rust-lang.org".into(), false)
        );

        let code = json!({"type": "bash_code_execution_tool_result", "tool_use_id": "t",
            "content": {"type": "bash_code_execution_result", "stdout": "ok\n", "stderr": "", "return_code": 0,
                "content": [{"type": "bash_code_execution_output", "file_id": "file_011"}]}});
        assert_eq!(
            describe_result(Some(&code)).0,
            "ok\nreturn code 0\nfiles: file_011"
        );
        let failed = json!({"type": "web_search_tool_result", "tool_use_id": "t",
            "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}});
        assert_eq!(
            describe_result(Some(&failed)),
            ("error: max_uses_exceeded".into(), true)
        );

        let gemini = json!({"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "4\n"}});
        let code_args = json!({"language": "PYTHON", "code": "print(2+2)"});
        assert_eq!(
            google_parts("codeExecution", &code_args, Some(&gemini)),
            vec![json!({"executableCode": code_args}), gemini.clone()]
        );
        assert_eq!(describe_result(Some(&gemini)).0, "outcome: OUTCOME_OK\n4");
    }
}
