//! Google Gemini `streamGenerateContent` with `alt=sse`.

use std::collections::VecDeque;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::{self, ChunkDecoder, ErrorContext, parse_json};
use super::sse::SseEvent;
use super::{
    ChunkStream, FinishReason, LanguageModel, LlmError, Part, PreparedRequest, Request, Role,
    StreamChunk, Usage,
};
use crate::tool::ToolContent;

const PROVIDER: &str = "google";

pub struct Google {
    pub model: String,
    pub base_url: String,
    pub api_key: String,
    pub extra_headers: Vec<(String, String)>,
    /// How much of an answer is taken; see [`http::StreamLimits`].
    pub limits: http::StreamLimits,
    client: reqwest::Client,
}

impl Google {
    pub fn new(
        model: impl Into<String>,
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        extra_headers: Vec<(String, String)>,
    ) -> Result<Self, LlmError> {
        Ok(Google {
            model: model.into(),
            base_url: base_url.into(),
            api_key: api_key.into(),
            extra_headers,
            limits: http::StreamLimits::default(),
            client: http::client()?,
        })
    }

    pub fn body(&self, req: &Request) -> Value {
        let mut contents = Vec::new();
        for msg in &req.messages {
            let role = match msg.role {
                Role::User => "user",
                Role::Assistant => "model",
            };
            // A thought signature rides on the first function call (or text) that follows it.
            let mut signature: Option<&str> = None;
            let mut parts = Vec::new();
            for part in &msg.parts {
                let mut p = match part {
                    Part::Text { text } if text.is_empty() => continue,
                    Part::Text { text } => json!({"text": text}),
                    Part::ToolCall { name, args, .. } => {
                        json!({"functionCall": {"name": name, "args": args}})
                    }
                    Part::ToolResult {
                        tool_name,
                        contents: results,
                        is_error,
                        ..
                    } => {
                        let text = ToolContent::joined_text(results);
                        let key = if *is_error { "error" } else { "content" };
                        parts.push(json!({"functionResponse": {"name": tool_name, "response": {key: text}}}));
                        for c in results {
                            if let ToolContent::Image { mime_type, data } = c {
                                parts.push(
                                    json!({"inlineData": {"mimeType": mime_type, "data": data}}),
                                );
                            }
                        }
                        continue;
                    }
                    Part::Thinking { signature: sig, .. } => {
                        signature = sig.as_deref();
                        continue;
                    }
                    Part::Image { mime_type, data } => {
                        json!({"inlineData": {"mimeType": mime_type, "data": data}})
                    }
                    Part::ProviderTool {
                        name, args, result, ..
                    } => {
                        parts.extend(super::provider_tools::google_parts(
                            name,
                            args,
                            result.as_ref(),
                        ));
                        continue;
                    }
                };
                if let Some(sig) = signature.take() {
                    p["thoughtSignature"] = json!(sig);
                }
                parts.push(p);
            }
            if !parts.is_empty() {
                contents.push(json!({"role": role, "parts": parts}));
            }
        }
        let mut body = json!({
            "systemInstruction": {"parts": [{"text": req.system}]},
            "contents": contents,
        });
        if !req.tools.is_empty() {
            let decls: Vec<Value> = req
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "parameters": clean_schema(&t.input_schema)}))
                .collect();
            body["tools"] = json!([{"functionDeclarations": decls}]);
        }
        let builtin = super::provider_tools::google_tools(&req.provider_tools);
        if !builtin.is_empty() {
            let mut tools = body["tools"].as_array().cloned().unwrap_or_default();
            tools.extend(builtin);
            body["tools"] = Value::Array(tools);
        }
        let mut config = Map::new();
        if let Some(max) = req.max_tokens {
            config.insert("maxOutputTokens".into(), json!(max));
        }
        if let Some(budget) = req.reasoning.and_then(|r| r.budget_tokens()) {
            config.insert(
                "thinkingConfig".into(),
                json!({"thinkingBudget": budget, "includeThoughts": true}),
            );
        }
        if !config.is_empty() {
            body["generationConfig"] = Value::Object(config);
        }
        body
    }
}

/// Gemini's schema dialect refuses some JSON Schema keywords; they are dropped.
fn clean_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "$schema" | "additionalProperties" | "$id"))
                .map(|(k, v)| (k.clone(), clean_schema(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

impl LanguageModel for Google {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn check_body(&self, body: &[u8]) -> Result<(), String> {
        use super::prepared::{Required, check_json_body};
        check_json_body(body, &[Required::List("contents")])
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError> {
        let url = format!(
            "{}/models/{}:streamGenerateContent?alt=sse",
            self.base_url.trim_end_matches('/'),
            self.model
        );
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("accept".to_string(), "text/event-stream".to_string()),
            ("x-goog-api-key".to_string(), self.api_key.clone()),
        ];
        headers.extend(self.extra_headers.iter().cloned());
        let body = serde_json::to_vec(&self.body(req)).map_err(|e| LlmError::Request {
            provider: PROVIDER.into(),
            message: e.to_string(),
        })?;
        Ok(PreparedRequest::new(PROVIDER, "POST", url, headers, body)
            .with_expert_key(&req.expert_key))
    }

    fn send(&self, prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        Box::pin(http::send_sse(
            &self.client,
            prepared,
            ErrorContext {
                provider: PROVIDER,
                key_env: Some("GOOGLE_GENERATIVE_AI_API_KEY"),
            },
            Decoder::default(),
            self.limits,
        ))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
    /// What a `googleSearch` found: the queries run and the pages used, kept whole.
    #[serde(default)]
    grounding_metadata: Option<Value>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    thought_signature: Option<String>,
    #[serde(default)]
    function_call: Option<FunctionCall>,
    /// Code the model wrote for the `codeExecution` tool, which Google runs.
    #[serde(default)]
    executable_code: Option<Value>,
    #[serde(default)]
    code_execution_result: Option<Value>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
}

/// Gemini response chunks → neutral chunks. Calls arrive whole, so each yields its three
/// chunks at once.
#[derive(Default)]
pub struct Decoder {
    next_tool: usize,
    /// The id given to the last `executableCode`, which the next result answers.
    open_code: Option<String>,
    /// The latest grounding metadata: reported once, as one `googleSearch`, at the finish.
    grounding: Option<Value>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    done: bool,
}

impl Decoder {
    fn finish(&mut self, out: &mut VecDeque<StreamChunk>) {
        if let Some(grounding) = self.grounding.take() {
            let id = format!("search_{:016x}", fastrand::u64(..));
            let queries = grounding
                .get("webSearchQueries")
                .cloned()
                .unwrap_or_else(|| json!([]));
            out.push_back(StreamChunk::ProviderToolCall {
                id: id.clone(),
                name: "googleSearch".into(),
                args: json!({ "queries": queries }),
            });
            out.push_back(StreamChunk::ProviderToolResult {
                tool_call_id: id,
                result: json!({ "groundingMetadata": grounding }),
            });
        }
        if let Some(usage) = self.usage {
            out.push_back(StreamChunk::Usage(usage));
        }
        let reason = match self.finish_reason.as_deref() {
            Some("STOP") | None if self.next_tool > 0 => FinishReason::ToolUse,
            Some("STOP") | None => FinishReason::Stop,
            Some("MAX_TOKENS") => FinishReason::Length,
            Some(
                "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII"
                | "IMAGE_SAFETY",
            ) => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_string()),
        };
        out.push_back(StreamChunk::Finish { reason });
        self.done = true;
    }
}

/// Grounding metadata that records a search (not an empty or retrieval-only one).
fn searched(grounding: &Value) -> bool {
    let has = |key: &str| grounding[key].as_array().is_some_and(|a| !a.is_empty());
    has("webSearchQueries") || has("groundingChunks")
}

impl ChunkDecoder for Decoder {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        if event.data.trim().is_empty() {
            return Ok(());
        }
        let chunk: Chunk = parse_json(PROVIDER, &event.data)?;
        if let Some(error) = chunk.error {
            return Err(LlmError::Provider {
                provider: PROVIDER.into(),
                kind: error.status,
                message: error.message,
            });
        }
        if let Some(u) = chunk.usage_metadata {
            self.usage = Some(Usage {
                input: u.prompt_token_count,
                output: u.candidates_token_count + u.thoughts_token_count,
                reasoning: u.thoughts_token_count,
                cached_input: u.cached_content_token_count,
            });
        }
        if let Some(reason) = chunk.prompt_feedback.and_then(|f| f.block_reason) {
            self.finish_reason = Some(if reason == "SAFETY" {
                reason
            } else {
                "PROHIBITED_CONTENT".into()
            });
        }
        for candidate in chunk.candidates.into_iter().take(1) {
            if let Some(grounding) = candidate.grounding_metadata.filter(searched) {
                self.grounding = Some(grounding);
            }
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(code) = part.executable_code {
                    let id = format!("code_{:016x}", fastrand::u64(..));
                    self.open_code = Some(id.clone());
                    out.push_back(StreamChunk::ProviderToolCall {
                        id,
                        name: "codeExecution".into(),
                        args: code,
                    });
                    continue;
                }
                if let Some(result) = part.code_execution_result {
                    if let Some(id) = self.open_code.take() {
                        out.push_back(StreamChunk::ProviderToolResult {
                            tool_call_id: id,
                            result: json!({ "codeExecutionResult": result }),
                        });
                    }
                    continue;
                }
                if let Some(call) = part.function_call {
                    if let Some(sig) = part.thought_signature {
                        out.push_back(StreamChunk::ReasoningDelta {
                            text: String::new(),
                            signature: Some(sig),
                        });
                    }
                    let index = self.next_tool;
                    self.next_tool += 1;
                    let id = call
                        .id
                        .filter(|id| !id.is_empty())
                        .unwrap_or_else(|| format!("call_{:016x}", fastrand::u64(..)));
                    let args = call.args.unwrap_or_else(|| json!({}));
                    out.push_back(StreamChunk::ToolCallStarted {
                        index,
                        id: id.clone(),
                        name: call.name.clone(),
                    });
                    out.push_back(StreamChunk::ToolCallArgumentsDelta {
                        index,
                        delta: args.to_string(),
                    });
                    out.push_back(StreamChunk::ToolCallFinished {
                        index,
                        id,
                        name: call.name,
                        args,
                    });
                    continue;
                }
                let text = part.text.unwrap_or_default();
                if part.thought || (text.is_empty() && part.thought_signature.is_some()) {
                    out.push_back(StreamChunk::ReasoningDelta {
                        text,
                        signature: part.thought_signature,
                    });
                } else if !text.is_empty() {
                    out.push_back(StreamChunk::TextDelta { text });
                    // A signed text part: keep the signature for the next request.
                    if let Some(sig) = part.thought_signature {
                        out.push_back(StreamChunk::ReasoningDelta {
                            text: String::new(),
                            signature: Some(sig),
                        });
                    }
                }
            }
            if let Some(reason) = candidate.finish_reason {
                self.finish_reason = Some(reason);
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        // Gemini has no end marker: the stream is complete when a finish reason came.
        if self.done {
            return Ok(());
        }
        if self.finish_reason.is_some() {
            self.finish(out);
            return Ok(());
        }
        Err(LlmError::StreamCut {
            provider: PROVIDER.into(),
            detail: Some("no finishReason".into()),
        })
    }

    fn done(&self) -> bool {
        self.done
    }
}
