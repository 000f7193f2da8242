//! MCP wire types to the crate's shared tool types.

use rmcp::model::{CallToolResult, Tool};
use serde_json::Value;

use crate::tool::{ToolContent, ToolDefinition, ToolOutput};

pub(crate) fn tool_definition(tool: &Tool) -> ToolDefinition {
    ToolDefinition {
        name: tool.name.to_string(),
        description: tool
            .description
            .as_deref()
            .or(tool.title.as_deref())
            .unwrap_or_default()
            .to_string(),
        input_schema: Value::Object((*tool.input_schema).clone()),
    }
}

/// Maps a result by its wire form (`type` of each content block), which is stable across
/// protocol versions: text and images pass through, embedded resources become text, anything
/// else (audio, links, blobs) is described in a line of text so the model knows it was there.
pub(crate) fn tool_output(result: CallToolResult) -> ToolOutput {
    let mut contents = Vec::with_capacity(result.content.len());
    for block in result.content {
        let value = match serde_json::to_value(&block) {
            Ok(value) => value,
            Err(e) => {
                contents.push(ToolContent::text(format!("[unreadable content: {e}]")));
                continue;
            }
        };
        contents.push(content(value));
    }
    if contents.is_empty()
        && let Some(structured) = result.structured_content
    {
        contents.push(ToolContent::text(structured.to_string()));
    }
    ToolOutput {
        contents,
        is_error: result.is_error.unwrap_or(false),
    }
}

fn content(mut value: Value) -> ToolContent {
    let str_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    match value.get("type").and_then(Value::as_str) {
        Some("text") => match value.get_mut("text").map(Value::take) {
            Some(Value::String(text)) => ToolContent::Text { text },
            _ => ToolContent::text(""),
        },
        Some("image") => match (str_of(&value, "mimeType"), str_of(&value, "data")) {
            (Some(mime_type), Some(data)) => ToolContent::Image { mime_type, data },
            _ => ToolContent::text("[image without data]"),
        },
        Some("resource") => {
            let resource = value.get("resource").cloned().unwrap_or(Value::Null);
            let uri = str_of(&resource, "uri").unwrap_or_default();
            match str_of(&resource, "text") {
                Some(text) => ToolContent::text(format!("[resource {uri}]\n{text}")),
                None => ToolContent::text(format!(
                    "[binary resource {uri} ({}) omitted]",
                    str_of(&resource, "mimeType").unwrap_or_else(|| "unknown type".into())
                )),
            }
        }
        Some("resource_link") => ToolContent::text(format!(
            "[resource link {} {}]",
            str_of(&value, "uri").unwrap_or_default(),
            str_of(&value, "name").unwrap_or_default()
        )),
        Some(other) => ToolContent::text(format!(
            "[{other} content ({}) omitted]",
            str_of(&value, "mimeType").unwrap_or_else(|| "unknown type".into())
        )),
        None => ToolContent::text(value.to_string()),
    }
}

/// `omit` first, then `pick`; returns the kept tools and a warning for every entry that names
/// no tool the server offers.
pub(crate) fn filter_tools(
    tools: Vec<ToolDefinition>,
    pick: Option<&[String]>,
    omit: Option<&[String]>,
) -> (Vec<ToolDefinition>, Vec<String>) {
    let mut warnings = Vec::new();
    for (list, key) in [(omit, "omit"), (pick, "pick")] {
        for name in list.unwrap_or_default() {
            if !tools.iter().any(|t| &t.name == name) {
                warnings.push(format!(
                    "{key} names tool {name:?}, which the server does not offer; available: {}",
                    tools
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    let kept = tools
        .into_iter()
        .filter(|t| !omit.unwrap_or_default().contains(&t.name))
        .filter(|t| pick.is_none_or(|pick| pick.contains(&t.name)))
        .collect();
    (kept, warnings)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(name: &str) -> ToolDefinition {
        ToolDefinition {
            name: name.into(),
            description: String::new(),
            input_schema: json!({"type": "object"}),
        }
    }

    #[test]
    fn omit_then_pick_with_warnings() {
        let tools = vec![tool("a"), tool("b"), tool("c")];
        let pick = vec!["a".to_string(), "b".to_string(), "zz".to_string()];
        let omit = vec!["b".to_string()];
        let (kept, warnings) = filter_tools(tools, Some(&pick), Some(&omit));
        assert_eq!(kept.iter().map(|t| &t.name).collect::<Vec<_>>(), ["a"]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("\"zz\""));
    }

    #[test]
    fn contents_map_by_wire_type() {
        assert_eq!(
            content(json!({"type": "text", "text": "hi"})),
            ToolContent::text("hi")
        );
        assert_eq!(
            content(json!({"type": "image", "data": "AAA=", "mimeType": "image/png"})),
            ToolContent::Image {
                mime_type: "image/png".into(),
                data: "AAA=".into()
            }
        );
        let ToolContent::Text { text } = content(json!({
            "type": "resource",
            "resource": {"uri": "file:///x", "text": "body"}
        })) else {
            panic!("resource should become text")
        };
        assert!(text.contains("file:///x") && text.ends_with("body"));
    }
}
