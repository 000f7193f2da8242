//! Messages and parts in Perstack's checkpoint format (`instructionMessage`, `toolCallPart`, ...).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::id::{Clock, SystemClock};
use crate::tool::{ToolContent, ToolOutput};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Message {
    InstructionMessage {
        id: String,
        contents: Vec<Part>,
        #[serde(default)]
        cache: bool,
    },
    UserMessage {
        id: String,
        contents: Vec<Part>,
    },
    ExpertMessage {
        id: String,
        contents: Vec<Part>,
    },
    ToolMessage {
        id: String,
        contents: Vec<Part>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Part {
    TextPart {
        id: String,
        text: String,
    },
    ImageInlinePart {
        id: String,
        encoded_data: String,
        mime_type: String,
    },
    ToolCallPart {
        id: String,
        tool_call_id: String,
        tool_name: String,
        args: Value,
    },
    ToolResultPart {
        id: String,
        tool_call_id: String,
        tool_name: String,
        contents: Vec<Part>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    ThinkingPart {
        id: String,
        thinking: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// A tool the provider ran itself during the answer (web search, code execution), kept in
    /// the expert message with its result as the provider sent it (`result`), so the next
    /// request can send both back verbatim. Never run here and never answered by a
    /// `toolMessage`: a reader that does not know this part can skip it.
    ProviderToolPart {
        id: String,
        tool_call_id: String,
        tool_name: String,
        args: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
    },
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    pub id: String,
    pub skill_name: String,
    pub tool_name: String,
    pub args: Value,
}

/// What came back for one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    pub id: String,
    pub skill_name: String,
    pub tool_name: String,
    pub result: ToolOutput,
}

impl Message {
    pub fn instruction(text: impl Into<String>) -> Self {
        Self::instruction_with(&SystemClock, text)
    }

    pub fn instruction_with(clock: &dyn Clock, text: impl Into<String>) -> Self {
        Message::InstructionMessage {
            id: clock.new_id(),
            contents: vec![Part::text_with(clock, text)],
            cache: true,
        }
    }

    pub fn user(text: impl Into<String>) -> Self {
        Self::user_with(&SystemClock, text)
    }

    /// A user message whose ids come from `clock`.
    pub fn user_with(clock: &dyn Clock, text: impl Into<String>) -> Self {
        Message::UserMessage {
            id: clock.new_id(),
            contents: vec![Part::text_with(clock, text)],
        }
    }

    pub fn expert(contents: Vec<Part>) -> Self {
        Self::expert_with(&SystemClock, contents)
    }

    pub fn expert_with(clock: &dyn Clock, contents: Vec<Part>) -> Self {
        Message::ExpertMessage {
            id: clock.new_id(),
            contents,
        }
    }

    pub fn tool_results(results: &[ToolResult]) -> Self {
        Self::tool_results_with(&SystemClock, results)
    }

    pub fn tool_results_with(clock: &dyn Clock, results: &[ToolResult]) -> Self {
        Message::ToolMessage {
            id: clock.new_id(),
            contents: results
                .iter()
                .map(|r| Part::tool_result_with(clock, r))
                .collect(),
        }
    }

    pub fn contents(&self) -> &[Part] {
        match self {
            Message::InstructionMessage { contents, .. }
            | Message::UserMessage { contents, .. }
            | Message::ExpertMessage { contents, .. }
            | Message::ToolMessage { contents, .. } => contents,
        }
    }

    /// The text parts joined: what a person reads of this message.
    pub fn text(&self) -> String {
        self.contents()
            .iter()
            .filter_map(|p| match p {
                Part::TextPart { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Part {
    pub fn text(text: impl Into<String>) -> Self {
        Self::text_with(&SystemClock, text)
    }

    pub fn text_with(clock: &dyn Clock, text: impl Into<String>) -> Self {
        Part::TextPart {
            id: clock.new_id(),
            text: text.into(),
        }
    }

    pub fn tool_call(call: &ToolCall) -> Self {
        Part::ToolCallPart {
            id: SystemClock.new_id(),
            tool_call_id: call.id.clone(),
            tool_name: call.tool_name.clone(),
            args: call.args.clone(),
        }
    }

    pub fn provider_tool_with(clock: &dyn Clock, used: &crate::llm::ProviderToolUse) -> Self {
        Part::ProviderToolPart {
            id: clock.new_id(),
            tool_call_id: used.id.clone(),
            tool_name: used.name.clone(),
            args: used.args.clone(),
            result: used.result.clone(),
        }
    }

    pub fn tool_result(result: &ToolResult) -> Self {
        Self::tool_result_with(&SystemClock, result)
    }

    pub fn tool_result_with(clock: &dyn Clock, result: &ToolResult) -> Self {
        Part::ToolResultPart {
            id: clock.new_id(),
            tool_call_id: result.id.clone(),
            tool_name: result.tool_name.clone(),
            contents: result
                .result
                .contents
                .iter()
                .map(|content| match content {
                    ToolContent::Text { text } => Part::text_with(clock, text.clone()),
                    ToolContent::Image { mime_type, data } => Part::ImageInlinePart {
                        id: clock.new_id(),
                        encoded_data: data.clone(),
                        mime_type: mime_type.clone(),
                    },
                })
                .collect(),
            is_error: result.result.is_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_serialise_in_perstack_shape() {
        let call = ToolCall {
            id: "call_1".into(),
            skill_name: "@perstack/base".into(),
            tool_name: "readTextFile".into(),
            args: serde_json::json!({"path": "a.txt"}),
        };
        let message = Message::expert(vec![Part::tool_call(&call)]);
        let json = serde_json::to_value(&message).expect("serialises");
        assert_eq!(json["type"], "expertMessage");
        assert_eq!(json["contents"][0]["type"], "toolCallPart");
        assert_eq!(json["contents"][0]["toolCallId"], "call_1");
        assert_eq!(json["contents"][0]["toolName"], "readTextFile");
        let back: Message = serde_json::from_value(json).expect("parses back");
        assert_eq!(back, message);

        let result = ToolResult {
            id: "call_1".into(),
            skill_name: "@perstack/base".into(),
            tool_name: "readTextFile".into(),
            result: ToolOutput::error("no such file"),
        };
        let json = serde_json::to_value(Message::tool_results(&[result])).expect("serialises");
        assert_eq!(json["type"], "toolMessage");
        assert_eq!(json["contents"][0]["type"], "toolResultPart");
        assert_eq!(json["contents"][0]["isError"], true);
        assert_eq!(json["contents"][0]["contents"][0]["text"], "no such file");
        let used = crate::llm::ProviderToolUse {
            id: "srvtoolu_1".into(),
            name: "web_search".into(),
            args: serde_json::json!({"query": "rust"}),
            result: Some(serde_json::json!({"type": "web_search_tool_result", "content": []})),
        };
        let message = Message::expert(vec![Part::provider_tool_with(&SystemClock, &used)]);
        let json = serde_json::to_value(&message).expect("serialises");
        assert_eq!(json["contents"][0]["type"], "providerToolPart");
        assert_eq!(json["contents"][0]["toolCallId"], "srvtoolu_1");
        assert_eq!(
            json["contents"][0]["result"]["type"],
            "web_search_tool_result"
        );
        let back: Message = serde_json::from_value(json).expect("parses back");
        assert_eq!(back, message);
        let instruction = serde_json::to_value(Message::instruction("x")).expect("serialises");
        assert_eq!(instruction["type"], "instructionMessage");
        assert_eq!(instruction["cache"], true);
    }
}
