//! OpenAI Chat Completions, streamed: OpenAI, Azure OpenAI, DeepSeek, Ollama and any
//! OpenAI-compatible server (vLLM, llama.cpp, OpenRouter, ...).

use std::collections::VecDeque;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self, ChunkDecoder, ErrorContext, parse_args, parse_json};
use super::sse::SseEvent;
use super::{
    ChunkStream, FinishReason, LanguageModel, LlmError, Message, Part, PreparedRequest, Request,
    Role, StreamChunk, Usage,
};
use crate::definition::ReasoningBudget;
use crate::tool::ToolContent;

pub struct OpenAi {
    /// Provider name for errors and display.
    pub provider: String,
    pub model: String,
    /// The full chat-completions URL.
    pub url: String,
    /// The auth header (`authorization: Bearer ...` or Azure's `api-key`), if any.
    pub auth: Option<(String, String)>,
    pub extra_headers: Vec<(String, String)>,
    /// The env var named in the 401 fix.
    pub key_env: Option<&'static str>,
    /// OpenAI (any base URL) and Azure: reasoning models get `max_completion_tokens` and
    /// `reasoning_effort`.
    pub openai_dialect: bool,
    /// How much of an answer is taken; see [`http::StreamLimits`].
    pub limits: http::StreamLimits,
    /// OpenAI's own `/responses` URL: requests with provider tools go there, in the Responses
    /// format ([`super::openai_responses`]). `None` where no Responses API is offered.
    pub responses_url: Option<String>,
    client: reqwest::Client,
}

impl OpenAi {
    /// `base_url` ends with the API version segment (`.../v1`); `/chat/completions` is added.
    pub fn new(
        provider: impl Into<String>,
        model: impl Into<String>,
        base_url: &str,
        api_key: Option<String>,
        extra_headers: Vec<(String, String)>,
    ) -> Result<Self, LlmError> {
        Ok(OpenAi {
            provider: provider.into(),
            model: model.into(),
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            auth: api_key.map(|k| ("authorization".to_string(), format!("Bearer {k}"))),
            extra_headers,
            key_env: None,
            openai_dialect: false,
            limits: http::StreamLimits::default(),
            responses_url: None,
            client: http::client()?,
        })
    }

    /// Azure: `{base}/openai/deployments/{deployment}/chat/completions?api-version=...`, where
    /// `base` is `https://{resource}.openai.azure.com` (a base already ending in `/openai` is
    /// taken as is), and the key goes in the `api-key` header.
    pub fn azure(
        model: impl Into<String>,
        base_url: &str,
        deployment: &str,
        api_version: &str,
        api_key: String,
        extra_headers: Vec<(String, String)>,
    ) -> Result<Self, LlmError> {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/openai").unwrap_or(base);
        Ok(OpenAi {
            provider: "azure-openai".into(),
            model: model.into(),
            url: format!(
                "{base}/openai/deployments/{deployment}/chat/completions?api-version={api_version}"
            ),
            auth: Some(("api-key".to_string(), api_key)),
            extra_headers,
            key_env: Some("AZURE_API_KEY"),
            openai_dialect: true,
            limits: http::StreamLimits::default(),
            responses_url: None,
            client: http::client()?,
        })
    }

    /// o-series and gpt-5 models take `reasoning_effort`.
    fn is_reasoning_model(&self) -> bool {
        let m = self.model.to_ascii_lowercase();
        let m = m.rsplit('/').next().unwrap_or(&m);
        m.starts_with("o1") || m.starts_with("o3") || m.starts_with("o4") || m.starts_with("gpt-5")
    }

    pub fn body(&self, req: &Request) -> Value {
        let mut messages = vec![json!({"role": "system", "content": req.system})];
        for msg in &req.messages {
            push_message(&mut messages, msg);
        }
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !req.tools.is_empty() {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.input_schema,
                    }})
                })
                .collect();
        }
        if let Some(max) = req.max_tokens {
            // OpenAI's reasoning models refuse `max_tokens`; others (and most compatible
            // servers) take it.
            let key = if self.openai_dialect && self.is_reasoning_model() {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            body[key] = json!(max);
        }
        let effort = req.reasoning.and_then(|r| effort(r, &self.model));
        if let (true, Some(effort)) = (self.openai_dialect && self.is_reasoning_model(), effort) {
            body["reasoning_effort"] = json!(effort);
        }
        body
    }
}

/// Maps the budget to an effort; token counts fall in the nearest band.
fn effort(budget: ReasoningBudget, model: &str) -> Option<&'static str> {
    Some(match budget {
        ReasoningBudget::None | ReasoningBudget::Tokens(0) => return None,
        // Only gpt-5 knows "minimal"; o-series models get "low".
        ReasoningBudget::Minimal if model.contains("gpt-5") => "minimal",
        ReasoningBudget::Minimal | ReasoningBudget::Low => "low",
        ReasoningBudget::Medium => "medium",
        ReasoningBudget::High => "high",
        ReasoningBudget::Tokens(n) if n <= 2048 => "low",
        ReasoningBudget::Tokens(n) if n <= 5000 => "medium",
        ReasoningBudget::Tokens(_) => "high",
    })
}

fn push_message(messages: &mut Vec<Value>, msg: &Message) {
    match msg.role {
        Role::Assistant => {
            let text: String = msg
                .parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            let calls: Vec<Value> = msg
                .parts
                .iter()
                .filter_map(|p| match p {
                    Part::ToolCall { id, name, args } => Some(json!({
                        "id": id, "type": "function",
                        "function": {"name": name, "arguments": args.to_string()},
                    })),
                    _ => None,
                })
                .collect();
            // Thinking is not sent back: DeepSeek refuses reasoning_content in the input.
            let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                m["tool_calls"] = json!(calls);
            }
            messages.push(m);
        }
        Role::User => {
            let mut content = Vec::new();
            for part in &msg.parts {
                match part {
                    Part::ToolResult {
                        tool_call_id,
                        contents,
                        ..
                    } => {
                        let text = ToolContent::joined_text(contents);
                        messages.push(
                            json!({"role": "tool", "tool_call_id": tool_call_id, "content": text}),
                        );
                        // Tool messages take text only: images follow as user content.
                        for c in contents {
                            if let ToolContent::Image { mime_type, data } = c {
                                content.push(image(mime_type, data));
                            }
                        }
                    }
                    Part::Text { text } => content.push(json!({"type": "text", "text": text})),
                    Part::Image { mime_type, data } => content.push(image(mime_type, data)),
                    Part::ToolCall { .. } | Part::Thinking { .. } | Part::ProviderTool { .. } => {}
                }
            }
            match content.as_slice() {
                [] => {}
                [single] if single["type"] == "text" => {
                    messages.push(json!({"role": "user", "content": single["text"]}))
                }
                _ => messages.push(json!({"role": "user", "content": content})),
            }
        }
    }
}

fn image(mime: &str, data: &str) -> Value {
    json!({"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{data}")}})
}

impl LanguageModel for OpenAi {
    fn provider(&self) -> &str {
        &self.provider
    }

    fn check_body(&self, body: &[u8]) -> Result<(), String> {
        use super::prepared::{Required, check_json_body};
        // A Responses body carries `input` where a Chat Completions one has `messages`.
        let responses = serde_json::from_slice::<Value>(body)
            .is_ok_and(|v| v.get("input").is_some() && v.get("messages").is_none());
        let list = if responses { "input" } else { "messages" };
        check_json_body(body, &[Required::Text("model"), Required::List(list)])
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError> {
        // OpenAI runs its tools only through the Responses API; Chat Completions has none.
        let responses_url = match (req.provider_tools.first(), &self.responses_url) {
            (None, _) => None,
            (Some(_), Some(url)) => Some(url),
            (Some(tool), None) => {
                return Err(LlmError::Config {
                    provider: self.provider.clone(),
                    message: format!(
                        "provider tool \"{}\" needs OpenAI's Responses API, which {} does not offer; remove it from providerTools",
                        tool.name, self.provider
                    ),
                });
            }
        };
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("accept".to_string(), "text/event-stream".to_string()),
        ];
        headers.extend(self.auth.iter().cloned());
        headers.extend(self.extra_headers.iter().cloned());
        let (url, body) = match responses_url {
            Some(url) => {
                let effort = req.reasoning.and_then(|r| effort(r, &self.model));
                let effort = effort.filter(|_| self.is_reasoning_model());
                (url, super::openai_responses::body(&self.model, req, effort))
            }
            None => (&self.url, self.body(req)),
        };
        let body = serde_json::to_vec(&body).map_err(|e| LlmError::Request {
            provider: self.provider.clone(),
            message: e.to_string(),
        })?;
        Ok(
            PreparedRequest::new(self.provider.clone(), "POST", url, headers, body)
                .with_expert_key(&req.expert_key),
        )
    }

    fn send(&self, prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        if self.responses_url.as_deref() == Some(prepared.url.as_str()) {
            return Box::pin(http::send_sse(
                &self.client,
                prepared,
                ErrorContext {
                    provider: &self.provider,
                    key_env: self.key_env,
                },
                super::openai_responses::Decoder::new(&self.provider),
                self.limits,
            ));
        }
        Box::pin(http::send_sse(
            &self.client,
            prepared,
            ErrorContext {
                provider: &self.provider,
                key_env: self.key_env,
            },
            Decoder::new(&self.provider),
            self.limits,
        ))
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

struct OpenTool {
    /// The wire index.
    wire: usize,
    index: usize,
    id: String,
    name: String,
    args: String,
    started: bool,
}

/// OpenAI chat-completion chunks → neutral chunks.
pub struct Decoder {
    provider: String,
    tools: Vec<OpenTool>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    tools_closed: bool,
    done: bool,
}

impl Decoder {
    pub fn new(provider: &str) -> Self {
        Decoder {
            provider: provider.to_string(),
            tools: Vec::new(),
            usage: None,
            finish_reason: None,
            tools_closed: false,
            done: false,
        }
    }

    fn tool_delta(&mut self, pos: usize, call: ToolCallDelta, out: &mut VecDeque<StreamChunk>) {
        // Some servers omit `index` when they send each call whole.
        let wire = call.index.unwrap_or(pos);
        let slot = match self.tools.iter().position(|t| t.wire == wire) {
            Some(i) => i,
            None => {
                let index = self.tools.len();
                self.tools.push(OpenTool {
                    wire,
                    index,
                    id: String::new(),
                    name: String::new(),
                    args: String::new(),
                    started: false,
                });
                index
            }
        };
        let tool = &mut self.tools[slot];
        if let Some(id) = call.id.filter(|id| !id.is_empty() && tool.id.is_empty()) {
            tool.id = id;
        }
        let (name, args) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        if let Some(name) = name {
            tool.name.push_str(&name);
        }
        if !tool.started && !tool.name.is_empty() {
            tool.started = true;
            if tool.id.is_empty() {
                tool.id = format!("call_{}", tool.index);
            }
            out.push_back(StreamChunk::ToolCallStarted {
                index: tool.index,
                id: tool.id.clone(),
                name: tool.name.clone(),
            });
            // Arguments that came before the name are released now.
            if !tool.args.is_empty() {
                out.push_back(StreamChunk::ToolCallArgumentsDelta {
                    index: tool.index,
                    delta: tool.args.clone(),
                });
            }
        }
        if let Some(args) = args.filter(|a| !a.is_empty()) {
            tool.args.push_str(&args);
            if tool.started {
                out.push_back(StreamChunk::ToolCallArgumentsDelta {
                    index: tool.index,
                    delta: args,
                });
            }
        }
    }

    fn close_tools(&mut self, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        if self.tools_closed {
            return Ok(());
        }
        self.tools_closed = true;
        for tool in &self.tools {
            if !tool.started {
                out.push_back(StreamChunk::ToolCallStarted {
                    index: tool.index,
                    id: tool.id.clone(),
                    name: tool.name.clone(),
                });
            }
            out.push_back(StreamChunk::ToolCallFinished {
                index: tool.index,
                id: if tool.id.is_empty() {
                    format!("call_{}", tool.index)
                } else {
                    tool.id.clone()
                },
                name: tool.name.clone(),
                args: parse_args(&self.provider, &tool.name, &tool.args)?,
            });
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        self.close_tools(out)?;
        if let Some(usage) = self.usage {
            out.push_back(StreamChunk::Usage(usage));
        }
        let has_tools = !self.tools.is_empty();
        let reason = match self.finish_reason.as_deref() {
            // Some servers say "stop" after tool calls.
            Some("stop") | None if has_tools => FinishReason::ToolUse,
            Some("stop") | None => FinishReason::Stop,
            Some("tool_calls" | "function_call") => FinishReason::ToolUse,
            Some("length") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_string()),
        };
        out.push_back(StreamChunk::Finish { reason });
        self.done = true;
        Ok(())
    }
}

impl ChunkDecoder for Decoder {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return self.finish(out);
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Chunk = parse_json(&self.provider, data)?;
        if let Some(error) = chunk.error {
            let message = http::error_message(error.to_string().as_bytes());
            let kind = error
                .get("type")
                .or_else(|| error.get("code"))
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_else(|| "error".into());
            return Err(LlmError::Provider {
                provider: self.provider.clone(),
                kind,
                message,
            });
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                let reasoning = delta.reasoning_content.or(delta.reasoning);
                if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
                    out.push_back(StreamChunk::ReasoningDelta {
                        text,
                        signature: None,
                    });
                }
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push_back(StreamChunk::TextDelta { text });
                }
                for (pos, call) in delta.tool_calls.into_iter().flatten().enumerate() {
                    self.tool_delta(pos, call, out);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
                self.close_tools(out)?;
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(Usage {
                input: u.prompt_tokens,
                output: u.completion_tokens,
                reasoning: u
                    .completion_tokens_details
                    .and_then(|d| d.reasoning_tokens)
                    .unwrap_or(0),
                cached_input: u
                    .prompt_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
            });
        }
        Ok(())
    }

    fn end(&mut self, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        // Servers that close without [DONE] are fine once a finish_reason came.
        if self.finish_reason.is_some() {
            return self.finish(out);
        }
        Err(LlmError::StreamCut {
            provider: self.provider.clone(),
            detail: Some("no finish_reason and no [DONE]".into()),
        })
    }

    fn done(&self) -> bool {
        self.done
    }
}
