//! Provider-neutral request, stream and response types.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::definition::ReasoningBudget;
use crate::tool::{ToolContent, ToolDefinition};

/// One generation request, before any provider has shaped it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub system: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "reasoning_serde"
    )]
    pub reasoning: Option<ReasoningBudget>,
    /// Which Expert asks. Only the replay provider reads it; no wire format carries it.
    #[serde(default)]
    pub expert_key: String,
    /// Tools the provider runs itself (`providerTools`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_tools: Vec<super::provider_tools::ProviderTool>,
    /// Anthropic Agent Skills (`providerSkills`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_skills: Vec<crate::definition::ProviderSkill>,
    /// The uploaded ids of the custom skills among them (name → skill id).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub custom_skill_ids: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            parts: vec![Part::Text { text: text.into() }],
        }
    }

    pub fn assistant_text(text: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            parts: vec![Part::Text { text: text.into() }],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Part {
    Text {
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    ToolCall {
        id: String,
        name: String,
        args: serde_json::Value,
    },
    #[serde(rename_all = "camelCase")]
    ToolResult {
        tool_call_id: String,
        tool_name: String,
        contents: Vec<ToolContent>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    Thinking {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Image {
        mime_type: String,
        /// Base64-encoded bytes.
        data: String,
    },
    /// A tool the provider ran itself, with its result in the provider's own wire shape. Each
    /// provider sends back the ones whose shape is its own (see `provider_tools::wire_of`) and
    /// leaves the others out.
    #[serde(rename_all = "camelCase")]
    ProviderTool {
        id: String,
        name: String,
        args: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<serde_json::Value>,
    },
}

/// Token counts of one generation. `input` counts every prompt token, cached ones included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(default)]
    pub input: u64,
    #[serde(default)]
    pub output: u64,
    #[serde(default)]
    pub reasoning: u64,
    #[serde(default)]
    pub cached_input: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FinishReason {
    #[default]
    Stop,
    ToolUse,
    Length,
    ContentFilter,
    Other(String),
}

impl FinishReason {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::ToolUse => "toolUse",
            Self::Length => "length",
            Self::ContentFilter => "contentFilter",
            Self::Other(s) => s,
        }
    }

    pub fn from_name(name: &str) -> Self {
        match name {
            "stop" => Self::Stop,
            "toolUse" => Self::ToolUse,
            "length" => Self::Length,
            "contentFilter" => Self::ContentFilter,
            other => Self::Other(other.to_string()),
        }
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_name(&String::deserialize(d)?))
    }
}

/// One piece of a streamed answer. `index` numbers tool calls from 0 within one response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum StreamChunk {
    TextDelta {
        text: String,
    },
    /// Thinking text; `signature` arrives (usually alone) when the provider signs the block.
    ReasoningDelta {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    ToolCallStarted {
        index: usize,
        id: String,
        name: String,
    },
    ToolCallArgumentsDelta {
        index: usize,
        delta: String,
    },
    ToolCallFinished {
        index: usize,
        id: String,
        name: String,
        args: serde_json::Value,
    },
    /// A tool the provider ran itself (`providerTools`: web search, code execution): never run
    /// here, never answered by us.
    ProviderToolCall {
        id: String,
        name: String,
        args: serde_json::Value,
    },
    /// What the provider's own tool returned: the provider's result block, as sent.
    ProviderToolResult {
        tool_call_id: String,
        result: serde_json::Value,
    },
    Usage(Usage),
    /// Always the last chunk of a complete stream.
    Finish {
        reason: FinishReason,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub args: serde_json::Value,
}

/// A whole answer, as collected from a stream.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub text: String,
    pub thinking: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_signature: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// Tools the provider ran itself during this answer, with their results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_tools: Vec<ProviderToolUse>,
    pub usage: Usage,
    pub finish_reason: FinishReason,
}

/// One call of a provider-run tool and, once it came, its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderToolUse {
    pub id: String,
    pub name: String,
    pub args: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

impl Response {
    /// The assistant message to append to the conversation.
    pub fn to_message(&self) -> Message {
        let mut parts = Vec::new();
        if !self.thinking.is_empty() || self.thinking_signature.is_some() {
            parts.push(Part::Thinking {
                text: self.thinking.clone(),
                signature: self.thinking_signature.clone(),
            });
        }
        // The provider's own tool uses come before the text that draws on them.
        for used in &self.provider_tools {
            parts.push(Part::ProviderTool {
                id: used.id.clone(),
                name: used.name.clone(),
                args: used.args.clone(),
                result: used.result.clone(),
            });
        }
        if !self.text.is_empty() {
            parts.push(Part::Text {
                text: self.text.clone(),
            });
        }
        for call in &self.tool_calls {
            parts.push(Part::ToolCall {
                id: call.id.clone(),
                name: call.name.clone(),
                args: call.args.clone(),
            });
        }
        Message {
            role: Role::Assistant,
            parts,
        }
    }
}

/// Builds a [`Response`] chunk by chunk, so a caller can forward chunks and still get the whole.
#[derive(Debug, Default)]
pub struct ResponseBuilder {
    response: Response,
    /// Calls started but not finished: (index, id, name, raw args).
    open: Vec<(usize, String, String, String)>,
    finished: bool,
}

impl ResponseBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, chunk: &StreamChunk) {
        match chunk {
            StreamChunk::TextDelta { text } => self.response.text.push_str(text),
            StreamChunk::ReasoningDelta { text, signature } => {
                self.response.thinking.push_str(text);
                if let Some(sig) = signature {
                    self.response
                        .thinking_signature
                        .get_or_insert_with(String::new)
                        .push_str(sig);
                }
            }
            StreamChunk::ToolCallStarted { index, id, name } => {
                self.open
                    .push((*index, id.clone(), name.clone(), String::new()));
            }
            StreamChunk::ToolCallArgumentsDelta { index, delta } => {
                if let Some(open) = self.open.iter_mut().find(|o| o.0 == *index) {
                    open.3.push_str(delta);
                }
            }
            StreamChunk::ToolCallFinished {
                index,
                id,
                name,
                args,
            } => {
                self.open.retain(|o| o.0 != *index);
                self.response.tool_calls.push(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    args: args.clone(),
                });
            }
            StreamChunk::ProviderToolCall { id, name, args } => {
                self.response.provider_tools.push(ProviderToolUse {
                    id: id.clone(),
                    name: name.clone(),
                    args: args.clone(),
                    result: None,
                });
            }
            StreamChunk::ProviderToolResult {
                tool_call_id,
                result,
            } => {
                if let Some(call) = self
                    .response
                    .provider_tools
                    .iter_mut()
                    .find(|c| c.id == *tool_call_id)
                {
                    call.result = Some(result.clone());
                }
            }
            StreamChunk::Usage(usage) => self.response.usage = *usage,
            StreamChunk::Finish { reason } => {
                self.response.finish_reason = reason.clone();
                self.finished = true;
            }
        }
    }

    /// True once the `Finish` chunk was seen.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn finish(mut self) -> Response {
        // Providers always finish their calls; this only rescues a hand-made stream.
        for (_, id, name, raw) in std::mem::take(&mut self.open) {
            let args = serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw));
            self.response.tool_calls.push(ToolCall { id, name, args });
        }
        self.response
    }
}

/// `reasoning` is written as Perstack writes `reasoningBudget`: a name or a token count.
mod reasoning_serde {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<ReasoningBudget>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<ReasoningBudget>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Tokens(u64),
        }
        Ok(match Option::<Raw>::deserialize(d)? {
            None => None,
            Some(Raw::Tokens(n)) => Some(ReasoningBudget::Tokens(n)),
            Some(Raw::Name(name)) => Some(ReasoningBudget::from_name(&name).ok_or_else(|| {
                serde::de::Error::custom(format!("unknown reasoning budget {name:?}"))
            })?),
        })
    }
}
