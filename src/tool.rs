//! Tool types shared by the model layer (tool definitions and results in requests) and the
//! skills that implement tools.

use serde::{Deserialize, Serialize};

/// A tool as offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    /// A JSON Schema of type `object`.
    pub input_schema: serde_json::Value,
}

/// One piece of a tool's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToolContent {
    Text {
        text: String,
    },
    /// Base64-encoded image bytes.
    Image {
        #[serde(rename = "mimeType")]
        mime_type: String,
        data: String,
    },
}

impl ToolContent {
    pub fn text(text: impl Into<String>) -> Self {
        ToolContent::Text { text: text.into() }
    }

    /// The text pieces of `contents`, a line apart (for wire formats whose tool results take
    /// text only; their images go separately).
    pub fn joined_text(contents: &[ToolContent]) -> String {
        let texts: Vec<&str> = contents
            .iter()
            .filter_map(|c| match c {
                ToolContent::Text { text } => Some(text.as_str()),
                ToolContent::Image { .. } => None,
            })
            .collect();
        texts.join("\n")
    }
}

/// What a tool call produced. A failure is still an output (`is_error`), never a crash: the
/// model reads it and decides what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolOutput {
    pub contents: Vec<ToolContent>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl ToolOutput {
    pub fn text(text: impl Into<String>) -> Self {
        ToolOutput {
            contents: vec![ToolContent::text(text)],
            is_error: false,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        ToolOutput {
            contents: vec![ToolContent::text(message)],
            is_error: true,
        }
    }

    /// All text parts joined, for logs and for providers that take a string result.
    pub fn joined_text(&self) -> String {
        let mut out = String::new();
        for content in &self.contents {
            if let ToolContent::Text { text } = content {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(text);
            }
        }
        out
    }
}
