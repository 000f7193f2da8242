//! Amazon Bedrock Runtime `ConverseStream`: a JSON request signed with SigV4, answered in AWS
//! event-stream frames (`eventstream.rs`).
//!
//! The request is signed in `send`, not in `prepare`: the shown (and editable) request carries
//! no signature, and every attempt (a retry, an edited body) is signed afresh with its own time.

use std::collections::VecDeque;
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::aws::{self, AwsCredentials};
use super::http::{self, ChunkDecoder, ErrorContext, parse_args, parse_json};
use super::sse::SseEvent;
use super::{
    ChunkStream, FinishReason, LanguageModel, LlmError, Message, Part, PreparedRequest, Request,
    Role, StreamChunk, Usage,
};
use crate::tool::ToolContent;

const PROVIDER: &str = "amazon-bedrock";
/// The SigV4 service name of the Bedrock Runtime endpoints.
pub const SIGNING_NAME: &str = "bedrock";

pub struct Bedrock {
    pub model: String,
    pub region: String,
    /// `https://bedrock-runtime.REGION.amazonaws.com`, or an override (VPC endpoint, proxy).
    pub endpoint: String,
    pub credentials: AwsCredentials,
    pub extra_headers: Vec<(String, String)>,
    /// How much of an answer is taken; see [`http::StreamLimits`].
    pub limits: http::StreamLimits,
    client: reqwest::Client,
}

impl Bedrock {
    pub fn new(
        model: impl Into<String>,
        region: impl Into<String>,
        endpoint: impl Into<String>,
        credentials: AwsCredentials,
        extra_headers: Vec<(String, String)>,
    ) -> Result<Self, LlmError> {
        Ok(Bedrock {
            model: model.into(),
            region: region.into(),
            endpoint: endpoint.into(),
            credentials,
            extra_headers,
            limits: http::StreamLimits::default(),
            client: http::client()?,
        })
    }

    /// The default endpoint of a region.
    pub fn regional_endpoint(region: &str) -> String {
        format!("https://bedrock-runtime.{region}.amazonaws.com")
    }

    /// `/model/{modelId}/converse-stream`, the id percent-encoded (ids carry `:`, ARNs `/`).
    pub fn url(&self) -> String {
        let id: String = url::form_urlencoded::byte_serialize(self.model.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        format!(
            "{}/model/{id}/converse-stream",
            self.endpoint.trim_end_matches('/')
        )
    }

    pub fn body(&self, req: &Request) -> Value {
        let mut body = json!({
            "messages": req.messages.iter().map(message).collect::<Vec<_>>(),
        });
        if !req.system.is_empty() {
            body["system"] = json!([{"text": req.system}]);
        }
        if let Some(max) = req.max_tokens {
            body["inferenceConfig"] = json!({"maxTokens": max});
        }
        if !req.tools.is_empty() {
            let tools: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    json!({"toolSpec": {
                        "name": t.name,
                        "description": t.description,
                        "inputSchema": {"json": t.input_schema},
                    }})
                })
                .collect();
            body["toolConfig"] = json!({"tools": tools, "toolChoice": {"auto": {}}});
        }
        // Reasoning is a model-specific field; Claude on Bedrock takes Anthropic's `thinking`.
        if let Some(budget) = req.reasoning.and_then(|r| r.budget_tokens())
            && self.model.contains("anthropic.")
        {
            let budget = budget.max(1024);
            body["additionalModelRequestFields"] =
                json!({"thinking": {"type": "enabled", "budget_tokens": budget}});
            let max = req.max_tokens.unwrap_or(0);
            if max <= budget {
                body["inferenceConfig"] =
                    json!({"maxTokens": budget + super::anthropic::DEFAULT_MAX_TOKENS});
            }
        }
        body
    }

    /// The signed copy of `prepared`, signed at `time`.
    pub fn sign(
        &self,
        prepared: &PreparedRequest,
        time: SystemTime,
    ) -> Result<PreparedRequest, LlmError> {
        let mut headers: Vec<(String, String)> = prepared
            .headers()
            .iter()
            .filter(|(k, _)| !is_signature_header(k))
            .cloned()
            .collect();
        let added = aws::sign_request(
            &self.credentials,
            &aws::Scope {
                region: &self.region,
                service: SIGNING_NAME,
            },
            &prepared.method,
            &prepared.url,
            &headers,
            prepared.body(),
            time,
        )
        .map_err(|message| LlmError::Request {
            provider: PROVIDER.into(),
            message: format!("cannot sign the request: {message}"),
        })?;
        headers.extend(added);
        Ok(PreparedRequest::new(
            PROVIDER,
            prepared.method.clone(),
            prepared.url.clone(),
            headers,
            prepared.body().clone(),
        )
        .with_expert_key(&prepared.expert_key))
    }
}

/// Headers a previous signature left (an edited request may carry them).
fn is_signature_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization" || name == "x-amz-date" || name == "x-amz-security-token"
}

fn message(msg: &Message) -> Value {
    let role = match msg.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let content: Vec<Value> = msg.parts.iter().filter_map(part).collect();
    json!({"role": role, "content": content})
}

fn part(part: &Part) -> Option<Value> {
    Some(match part {
        Part::Text { text } if text.is_empty() => return None,
        Part::Text { text } => json!({"text": text}),
        Part::ToolCall { id, name, args } => {
            json!({"toolUse": {"toolUseId": id, "name": name, "input": args}})
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
                    ToolContent::Text { text } => json!({"text": text}),
                    ToolContent::Image { mime_type, data } => image(mime_type, data),
                })
                .collect();
            let mut result = json!({"toolUseId": tool_call_id, "content": content});
            if *is_error {
                result["status"] = json!("error");
            }
            json!({ "toolResult": result })
        }
        Part::Thinking {
            text,
            signature: Some(signature),
        } => json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}}),
        Part::Thinking { .. } => return None,
        Part::Image { mime_type, data } => image(mime_type, data),
        // Converse has no provider-run tools: another provider's are not sent.
        Part::ProviderTool { .. } => return None,
    })
}

fn image(mime: &str, data: &str) -> Value {
    let format = mime.strip_prefix("image/").unwrap_or(mime);
    let format = if format == "jpg" { "jpeg" } else { format };
    json!({"image": {"format": format, "source": {"bytes": data}}})
}

impl LanguageModel for Bedrock {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn check_body(&self, body: &[u8]) -> Result<(), String> {
        use super::prepared::{Required, check_json_body};
        check_json_body(body, &[Required::List("messages")])
    }

    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError> {
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            (
                "accept".to_string(),
                "application/vnd.amazon.eventstream".to_string(),
            ),
        ];
        headers.extend(self.extra_headers.iter().cloned());
        let body = serde_json::to_vec(&self.body(req)).map_err(|e| LlmError::Request {
            provider: PROVIDER.into(),
            message: e.to_string(),
        })?;
        Ok(
            PreparedRequest::new(PROVIDER, "POST", self.url(), headers, body)
                .with_expert_key(&req.expert_key),
        )
    }

    fn send(&self, prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        Box::pin(async move {
            let signed = self.sign(&prepared, SystemTime::now())?;
            http::send_event_stream(
                &self.client,
                signed,
                ErrorContext {
                    provider: PROVIDER,
                    key_env: Some("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"),
                },
                Decoder::default(),
                self.limits,
            )
            .await
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    #[serde(default)]
    content_block_index: usize,
    #[serde(default)]
    start: Option<StartBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBody {
    #[serde(default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    #[serde(default)]
    tool_use_id: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    #[serde(default)]
    content_block_index: usize,
    #[serde(default)]
    delta: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStop {
    #[serde(default)]
    content_block_index: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default, alias = "Message")]
    message: String,
}

struct OpenTool {
    block: usize,
    index: usize,
    id: String,
    name: String,
    args: String,
}

/// Bedrock stream events (one per event-stream message) → neutral chunks.
#[derive(Default)]
pub struct Decoder {
    tools: Vec<OpenTool>,
    next_tool: usize,
    stop_reason: Option<String>,
    usage: Usage,
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
        let args = parse_args(PROVIDER, &tool.name, &tool.args)?;
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
        out.push_back(StreamChunk::Usage(self.usage));
        let reason = match self.stop_reason.as_deref() {
            Some("end_turn" | "stop_sequence") | None => FinishReason::Stop,
            Some("tool_use") => FinishReason::ToolUse,
            Some("max_tokens") => FinishReason::Length,
            Some("guardrail_intervened" | "content_filtered") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_string()),
        };
        out.push_back(StreamChunk::Finish { reason });
        self.done = true;
        Ok(())
    }

    fn delta(&mut self, d: BlockDelta, out: &mut VecDeque<StreamChunk>) {
        let text_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        for (kind, value) in d.delta {
            match kind.as_str() {
                "text" => {
                    if let Some(text) = value.as_str() {
                        out.push_back(StreamChunk::TextDelta { text: text.into() });
                    }
                }
                "toolUse" => {
                    let Some(partial) = text_of(&value, "input") else {
                        continue;
                    };
                    if let Some(tool) = self
                        .tools
                        .iter_mut()
                        .find(|t| t.block == d.content_block_index)
                    {
                        tool.args.push_str(&partial);
                        out.push_back(StreamChunk::ToolCallArgumentsDelta {
                            index: tool.index,
                            delta: partial,
                        });
                    }
                }
                "reasoningContent" => {
                    let text = text_of(&value, "text");
                    let signature = text_of(&value, "signature");
                    if text.is_some() || signature.is_some() {
                        out.push_back(StreamChunk::ReasoningDelta {
                            text: text.unwrap_or_default(),
                            signature,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

impl ChunkDecoder for Decoder {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        match event.event.as_str() {
            "messageStart" => {}
            "contentBlockStart" => {
                let start: BlockStart = parse_json(PROVIDER, &event.data)?;
                if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                    let index = self.next_tool;
                    self.next_tool += 1;
                    let id = if tool.tool_use_id.is_empty() {
                        format!("tooluse_{index}")
                    } else {
                        tool.tool_use_id
                    };
                    out.push_back(StreamChunk::ToolCallStarted {
                        index,
                        id: id.clone(),
                        name: tool.name.clone(),
                    });
                    self.tools.push(OpenTool {
                        block: start.content_block_index,
                        index,
                        id,
                        name: tool.name,
                        args: String::new(),
                    });
                }
            }
            "contentBlockDelta" => {
                let delta: BlockDelta = parse_json(PROVIDER, &event.data)?;
                self.delta(delta, out);
            }
            "contentBlockStop" => {
                let stop: BlockStop = parse_json(PROVIDER, &event.data)?;
                self.finish_tool(stop.content_block_index, out)?;
            }
            "messageStop" => {
                let stop: MessageStop = parse_json(PROVIDER, &event.data)?;
                self.stop_reason = stop.stop_reason.or(Some("end_turn".into()));
            }
            "metadata" => {
                let meta: Metadata = parse_json(PROVIDER, &event.data)?;
                if let Some(u) = meta.usage {
                    self.usage = Usage {
                        input: u.input_tokens
                            + u.cache_read_input_tokens
                            + u.cache_write_input_tokens,
                        output: u.output_tokens,
                        reasoning: 0,
                        cached_input: u.cache_read_input_tokens,
                    };
                }
                // Metadata is the last event of a stream.
                if self.stop_reason.is_some() {
                    self.finish(out)?;
                }
            }
            other => {
                if let Some(kind) = other
                    .strip_prefix("exception:")
                    .or_else(|| other.strip_prefix("error:"))
                {
                    let message = serde_json::from_str::<WireError>(&event.data)
                        .map(|e| e.message)
                        .unwrap_or_else(|_| event.data.chars().take(500).collect());
                    return Err(LlmError::Provider {
                        provider: PROVIDER.into(),
                        kind: kind.to_string(),
                        message,
                    });
                }
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        // A stream may end without metadata: the stop reason says it was complete.
        if self.stop_reason.is_some() {
            return self.finish(out);
        }
        Err(LlmError::StreamCut {
            provider: PROVIDER.into(),
            detail: Some("no messageStop".into()),
        })
    }

    fn done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::super::eventstream::{EventStreamParser, encode_event};
    use super::*;

    fn decode(frames: &[Vec<u8>]) -> Result<Vec<StreamChunk>, LlmError> {
        let bytes: Vec<u8> = frames.concat();
        http::decode_all_with(
            PROVIDER,
            EventStreamParser::with_max_message(1 << 20),
            Decoder::default(),
            &[&bytes],
        )
    }

    #[test]
    fn text_reasoning_and_usage() {
        let chunks = decode(&[
            encode_event("messageStart", r#"{"role":"assistant"}"#),
            encode_event(
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hmm"}}}"#,
            ),
            encode_event(
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"sig"}}}"#,
            ),
            encode_event(
                "contentBlockDelta",
                r#"{"contentBlockIndex":1,"delta":{"text":"Hi"}}"#,
            ),
            encode_event("messageStop", r#"{"stopReason":"max_tokens"}"#),
            encode_event(
                "metadata",
                r#"{"usage":{"inputTokens":10,"outputTokens":3,"cacheReadInputTokens":4},"metrics":{"latencyMs":5}}"#,
            ),
        ])
        .expect("decode");
        assert_eq!(
            chunks,
            vec![
                StreamChunk::ReasoningDelta {
                    text: "hmm".into(),
                    signature: None
                },
                StreamChunk::ReasoningDelta {
                    text: String::new(),
                    signature: Some("sig".into())
                },
                StreamChunk::TextDelta { text: "Hi".into() },
                StreamChunk::Usage(Usage {
                    input: 14,
                    output: 3,
                    reasoning: 0,
                    cached_input: 4
                }),
                StreamChunk::Finish {
                    reason: FinishReason::Length
                },
            ]
        );
    }

    #[test]
    fn an_exception_frame_is_a_provider_error() {
        let frame = super::super::eventstream::encode_message(
            &[
                (":exception-type", "modelStreamErrorException"),
                (":message-type", "exception"),
            ],
            br#"{"message":"model failed"}"#,
        );
        let err = decode(&[frame]).expect_err("exception");
        assert!(
            matches!(&err, LlmError::Provider { kind, message, .. } if kind == "modelStreamErrorException" && message == "model failed"),
            "{err}"
        );
    }

    #[test]
    fn model_ids_are_encoded_in_the_path() {
        let model = Bedrock::new(
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-east-1",
            Bedrock::regional_endpoint("us-east-1"),
            AwsCredentials {
                access_key_id: "a".into(),
                secret_access_key: "b".into(),
                session_token: None,
            },
            Vec::new(),
        )
        .expect("client");
        assert_eq!(
            model.url(),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
        );
    }
}
