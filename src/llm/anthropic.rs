//! Anthropic Messages API, streamed.

use std::collections::VecDeque;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self, ChunkDecoder, ErrorContext, parse_args, parse_json};
use super::provider_tools;
use super::sse::SseEvent;
use super::{
    ChunkStream, FinishReason, LanguageModel, LlmError, Message, Part, PreparedRequest, Request,
    Role, StreamChunk, Usage,
};
use crate::tool::ToolContent;

pub const API_VERSION: &str = "2023-06-01";
/// Used when the request sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 8192;
const PROVIDER: &str = "anthropic";

pub struct Anthropic {
    pub model: String,
    pub base_url: String,
    pub api_key: String,
    pub extra_headers: Vec<(String, String)>,
    /// How much of an answer is taken; see [`http::StreamLimits`].
    pub limits: http::StreamLimits,
    client: reqwest::Client,
}

impl Anthropic {
    pub fn new(
        model: impl Into<String>,
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        extra_headers: Vec<(String, String)>,
    ) -> Result<Self, LlmError> {
        Ok(Anthropic {
            model: model.into(),
            base_url: base_url.into(),
            api_key: api_key.into(),
            extra_headers,
            limits: http::StreamLimits::default(),
            client: http::client()?,
        })
    }

    pub fn body(&self, req: &Request) -> Value {
        let mut body = json!({
            "model": self.model,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "messages": req.messages.iter().map(message).collect::<Vec<_>>(),
            "stream": true,
        });
        // The API refuses an empty system block; a cached one saves cost on every step.
        if !req.system.is_empty() {
            body["system"] = json!([{
                "type": "text",
                "text": req.system,
                "cache_control": {"type": "ephemeral"},
            }]);
        }
        let mut max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if !req.tools.is_empty() {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
                .collect();
            body["tool_choice"] = json!({"type": "auto"});
        }
        // Server tools (web search, code execution) and Agent Skills' container.
        let (server_tools, _) =
            provider_tools::anthropic_tools(&req.provider_tools, &req.provider_skills);
        if !server_tools.is_empty() {
            let mut tools = body["tools"].as_array().cloned().unwrap_or_default();
            tools.extend(server_tools);
            body["tools"] = Value::Array(tools);
        }
        if let Some(container) =
            provider_tools::anthropic_container(&req.provider_skills, &req.custom_skill_ids)
        {
            body["container"] = container;
        }
        if let Some(budget) = req.reasoning.and_then(|r| r.budget_tokens()) {
            // The API refuses budgets under 1024 and max_tokens not above the budget.
            let budget = budget.max(1024);
            if max_tokens <= budget {
                max_tokens = budget + DEFAULT_MAX_TOKENS;
            }
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        }
        body["max_tokens"] = json!(max_tokens);
        body
    }
}

impl Anthropic {
    /// `POST /v1/skills`: uploads one custom Agent Skill, returns its id.
    async fn upload(&self, name: &str, skill_md: &str) -> Result<String, LlmError> {
        let url = format!("{}/skills", self.base_url.trim_end_matches('/'));
        let boundary = format!("perstack-{:016x}", fastrand::u64(..));
        let mut request = self
            .client
            .post(&url)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("anthropic-version", API_VERSION)
            .header("anthropic-beta", provider_tools::ANTHROPIC_SKILLS_BETA)
            .header("x-api-key", &self.api_key);
        for (header, value) in &self.extra_headers {
            request = request.header(header.as_str(), value.as_str());
        }
        let connection = |e: reqwest::Error| LlmError::Connection {
            provider: PROVIDER.into(),
            message: format!(
                "uploading Agent Skill {name:?} to {url}: {}",
                e.without_url()
            ),
        };
        let response = request
            .body(super::agent_skills::multipart_body(
                &boundary, name, skill_md,
            ))
            .send()
            .await
            .map_err(connection)?;
        let status = response.status();
        let retry_after = super::retry::retry_after(response.headers());
        let body = response.bytes().await.map_err(connection)?;
        let ctx = ErrorContext {
            provider: PROVIDER,
            key_env: Some("ANTHROPIC_API_KEY"),
        };
        if !status.is_success() {
            return Err(http::http_error(&ctx, status.as_u16(), &body, retry_after));
        }
        let answer: Value = serde_json::from_slice(&body).map_err(|e| LlmError::Protocol {
            provider: PROVIDER.into(),
            message: format!("the Skills API answered Agent Skill {name:?} with no JSON: {e}"),
        })?;
        answer["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| LlmError::Protocol {
                provider: PROVIDER.into(),
                message: format!("the Skills API answered Agent Skill {name:?} without an id"),
            })
    }
}

/// The `anthropic-beta` header the provider tools and skills of `req` need, if any.
pub fn betas(req: &Request) -> Option<String> {
    let (_, betas) = provider_tools::anthropic_tools(&req.provider_tools, &req.provider_skills);
    (!betas.is_empty()).then(|| betas.join(","))
}

fn message(msg: &Message) -> Value {
    let role = match msg.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let content: Vec<Value> = msg
        .parts
        .iter()
        .flat_map(|p| match p {
            // Sent back verbatim: the API wants each server tool use with its result block.
            Part::ProviderTool {
                id,
                name,
                args,
                result,
            } => provider_tools::anthropic_blocks(id, name, args, result.as_ref()),
            other => part(other).into_iter().collect(),
        })
        .collect();
    json!({"role": role, "content": content})
}

fn part(part: &Part) -> Option<Value> {
    Some(match part {
        // The API refuses empty text blocks.
        Part::Text { text } if text.is_empty() => return None,
        Part::Text { text } => json!({"type": "text", "text": text}),
        Part::ToolCall { id, name, args } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": args})
        }
        Part::ToolResult {
            tool_call_id,
            contents,
            is_error,
            ..
        } => {
            let content: Vec<Value> = contents
                .iter()
                .map(|c| match c {
                    ToolContent::Text { text } => json!({"type": "text", "text": text}),
                    ToolContent::Image { mime_type, data } => image(mime_type, data),
                })
                .collect();
            let mut v =
                json!({"type": "tool_result", "tool_use_id": tool_call_id, "content": content});
            if *is_error {
                v["is_error"] = json!(true);
            }
            v
        }
        // Thinking goes back only when signed (the API rejects unsigned thinking blocks).
        Part::Thinking {
            text,
            signature: Some(signature),
        } => json!({"type": "thinking", "thinking": text, "signature": signature}),
        Part::Thinking { .. } => return None,
        Part::Image { mime_type, data } => image(mime_type, data),
        Part::ProviderTool { .. } => return None,
    })
}

fn image(mime: &str, data: &str) -> Value {
    json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}})
}

impl LanguageModel for Anthropic {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn check_body(&self, body: &[u8]) -> Result<(), String> {
        use super::prepared::{Required, check_json_body};
        check_json_body(body, &[Required::Text("model"), Required::List("messages")])
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError> {
        let url = format!("{}/messages", self.base_url.trim_end_matches('/'));
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("accept".to_string(), "text/event-stream".to_string()),
            ("anthropic-version".to_string(), API_VERSION.to_string()),
            ("x-api-key".to_string(), self.api_key.clone()),
        ];
        if let Some(betas) = betas(req) {
            headers.push(("anthropic-beta".to_string(), betas));
        }
        headers.extend(self.extra_headers.iter().cloned());
        let body = serde_json::to_vec(&self.body(req)).map_err(|e| LlmError::Request {
            provider: PROVIDER.into(),
            message: e.to_string(),
        })?;
        Ok(PreparedRequest::new(PROVIDER, "POST", url, headers, body)
            .with_expert_key(&req.expert_key))
    }

    fn skills_endpoint(&self) -> Option<String> {
        Some(format!("{}/skills", self.base_url.trim_end_matches('/')))
    }

    fn upload_skill<'a>(
        &'a self,
        name: &'a str,
        skill_md: &'a str,
    ) -> BoxFuture<'a, Result<String, LlmError>> {
        Box::pin(self.upload(name, skill_md))
    }

    fn send(&self, prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        Box::pin(http::send_sse(
            &self.client,
            prepared,
            ErrorContext {
                provider: PROVIDER,
                key_env: Some("ANTHROPIC_API_KEY"),
            },
            Decoder::default(),
            self.limits,
        ))
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: MessageStart,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: WireError,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct MessageStart {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize, Default)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    /// A call of a provider tool (web search, web fetch, code execution), run by Anthropic.
    ServerToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    WebSearchToolResult(ServerResult),
    WebFetchToolResult(ServerResult),
    CodeExecutionToolResult(ServerResult),
    BashCodeExecutionToolResult(ServerResult),
    TextEditorCodeExecutionToolResult(ServerResult),
    #[serde(other)]
    Unknown,
}

/// The result block of a provider tool; `content` is kept whole.
#[derive(Deserialize)]
struct ServerResult {
    #[serde(default)]
    tool_use_id: String,
    #[serde(default)]
    content: Value,
}

// The variant names are the wire's own delta types.
#[allow(clippy::enum_variant_names)]
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

struct OpenTool {
    block: usize,
    /// Run by the provider: reported as a provider tool call, never run here.
    server: bool,
    index: usize,
    id: String,
    name: String,
    args: String,
    /// `input` given whole in the start event (used when no deltas follow).
    initial: Option<Value>,
}

/// Anthropic SSE events → neutral chunks.
#[derive(Default)]
pub struct Decoder {
    tools: Vec<OpenTool>,
    next_tool: usize,
    /// Usage fields as last reported (message_delta repeats them cumulatively).
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    stop_reason: Option<String>,
    done: bool,
}

impl Decoder {
    fn finish_tool(
        &mut self,
        block: usize,
        out: &mut VecDeque<StreamChunk>,
    ) -> Result<(), LlmError> {
        let Some(pos) = self.tools.iter().position(|t| t.block == block) else {
            return Ok(());
        };
        let tool = self.tools.remove(pos);
        let args = match (tool.args.trim().is_empty(), tool.initial) {
            (true, Some(initial)) => initial,
            _ => parse_args(PROVIDER, &tool.name, &tool.args)?,
        };
        if tool.server {
            out.push_back(StreamChunk::ProviderToolCall {
                id: tool.id,
                name: tool.name,
                args,
            });
            return Ok(());
        }
        out.push_back(StreamChunk::ToolCallFinished {
            index: tool.index,
            id: tool.id,
            name: tool.name,
            args,
        });
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        let blocks: Vec<usize> = self.tools.iter().map(|t| t.block).collect();
        for block in blocks {
            self.finish_tool(block, out)?;
        }
        out.push_back(StreamChunk::Usage(Usage {
            input: self.input + self.cache_read + self.cache_write,
            output: self.output,
            reasoning: 0,
            cached_input: self.cache_read,
        }));
        let reason = match self.stop_reason.as_deref() {
            Some("end_turn" | "stop_sequence") | None => FinishReason::Stop,
            Some("tool_use") => FinishReason::ToolUse,
            Some("max_tokens") => FinishReason::Length,
            Some("refusal") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_string()),
        };
        out.push_back(StreamChunk::Finish { reason });
        self.done = true;
        Ok(())
    }

    fn usage(&mut self, usage: WireUsage) {
        let keep = |new: Option<u64>, old: u64| new.unwrap_or(old);
        self.input = keep(usage.input_tokens, self.input);
        self.cache_read = keep(usage.cache_read_input_tokens, self.cache_read);
        self.cache_write = keep(usage.cache_creation_input_tokens, self.cache_write);
        self.output = keep(usage.output_tokens, self.output);
    }
}

/// A provider tool's result, its block rebuilt as Anthropic sent it.
fn server_result(kind: &str, result: ServerResult, out: &mut VecDeque<StreamChunk>) {
    out.push_back(StreamChunk::ProviderToolResult {
        result: json!({"type": kind, "tool_use_id": result.tool_use_id, "content": result.content}),
        tool_call_id: result.tool_use_id,
    });
}

impl ChunkDecoder for Decoder {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        let parsed: Event = parse_json(PROVIDER, &event.data)?;
        match parsed {
            Event::MessageStart { message } => {
                if let Some(usage) = message.usage {
                    self.usage(usage);
                }
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::Text { text } if !text.is_empty() => {
                    out.push_back(StreamChunk::TextDelta { text })
                }
                Block::ToolUse { id, name, input } => {
                    let tool_index = self.next_tool;
                    self.next_tool += 1;
                    let id = if id.is_empty() {
                        format!("toolu_{tool_index}")
                    } else {
                        id
                    };
                    out.push_back(StreamChunk::ToolCallStarted {
                        index: tool_index,
                        id: id.clone(),
                        name: name.clone(),
                    });
                    // An empty `{}` start is the normal case; a filled one is kept as fallback.
                    let initial = input.filter(|v| v.as_object().is_none_or(|o| !o.is_empty()));
                    self.tools.push(OpenTool {
                        block: index,
                        server: false,
                        index: tool_index,
                        id,
                        name,
                        args: String::new(),
                        initial,
                    });
                }
                Block::ServerToolUse { id, name, input } => {
                    let initial = input.filter(|v| v.as_object().is_none_or(|o| !o.is_empty()));
                    self.tools.push(OpenTool {
                        block: index,
                        server: true,
                        index: usize::MAX,
                        id,
                        name,
                        args: String::new(),
                        initial,
                    });
                }
                Block::WebSearchToolResult(result) => {
                    server_result("web_search_tool_result", result, out)
                }
                Block::WebFetchToolResult(result) => {
                    server_result("web_fetch_tool_result", result, out)
                }
                Block::CodeExecutionToolResult(result) => {
                    server_result("code_execution_tool_result", result, out)
                }
                Block::BashCodeExecutionToolResult(result) => {
                    server_result("bash_code_execution_tool_result", result, out)
                }
                Block::TextEditorCodeExecutionToolResult(result) => {
                    server_result("text_editor_code_execution_tool_result", result, out)
                }
                Block::Thinking {
                    thinking,
                    signature,
                } if !thinking.is_empty() || signature.is_some() => {
                    out.push_back(StreamChunk::ReasoningDelta {
                        text: thinking,
                        signature,
                    })
                }
                _ => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                Delta::TextDelta { text } => out.push_back(StreamChunk::TextDelta { text }),
                Delta::InputJsonDelta { partial_json } => {
                    if let Some(tool) = self.tools.iter_mut().find(|t| t.block == index) {
                        tool.args.push_str(&partial_json);
                        if tool.server {
                            return Ok(());
                        }
                        out.push_back(StreamChunk::ToolCallArgumentsDelta {
                            index: tool.index,
                            delta: partial_json,
                        });
                    }
                }
                Delta::ThinkingDelta { thinking } => out.push_back(StreamChunk::ReasoningDelta {
                    text: thinking,
                    signature: None,
                }),
                Delta::SignatureDelta { signature } => out.push_back(StreamChunk::ReasoningDelta {
                    text: String::new(),
                    signature: Some(signature),
                }),
                Delta::Unknown => {}
            },
            Event::ContentBlockStop { index } => self.finish_tool(index, out)?,
            Event::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if let Some(usage) = usage {
                    self.usage(usage);
                }
            }
            Event::MessageStop => self.finish(out)?,
            Event::Ping | Event::Unknown => {}
            Event::Error { error } => {
                return Err(LlmError::Provider {
                    provider: PROVIDER.into(),
                    kind: error.kind,
                    message: error.message,
                });
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        // Some servers close right after message_delta: the stop reason says it was complete.
        if self.stop_reason.is_some() {
            return self.finish(out);
        }
        Err(LlmError::StreamCut {
            provider: PROVIDER.into(),
            detail: Some("no message_stop".into()),
        })
    }

    fn done(&self) -> bool {
        self.done
    }
}
