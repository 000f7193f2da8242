//! Delegates as tools. Each delegate Expert is offered to its parent as a tool named after the
//! last `/` segment of its key, taking `{ "query": string }`. Calling it starts a child run (the
//! runtime's job: `runtime::run`) whose messages are only the child's own system prompt and that
//! query, and whose final text is the tool's result.

use crate::definition::delegate_tool_name;
use crate::tool::ToolDefinition;

/// The tool a delegate is offered as.
pub fn delegate_tool(key: &str, description: Option<&str>) -> ToolDefinition {
    ToolDefinition {
        name: delegate_tool_name(key).to_string(),
        description: description
            .map(str::to_string)
            .unwrap_or_else(|| format!("Delegate a task to the Expert \"{key}\"")),
        input_schema: serde_json::json!({
            "type": "object",
            "properties": {
                "query": { "type": "string", "description": "The task for this Expert, with everything it needs to know" }
            },
            "required": ["query"]
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delegate_tool_takes_a_query() {
        let tool = delegate_tool("@acme/writer@1.0.0", None);
        assert_eq!(tool.name, "writer");
        assert!(tool.description.contains("@acme/writer@1.0.0"));
        assert_eq!(tool.input_schema["required"], serde_json::json!(["query"]));
        assert_eq!(delegate_tool("reader", Some("Reads")).description, "Reads");
    }
}
