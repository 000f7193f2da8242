//! OpenAI Responses API (`POST /v1/responses`), streamed. OpenAI runs its own tools
//! (`webSearch`, `fileSearch`, `codeInterpreter`, `imageGeneration`) only here, so an OpenAI
//! Expert with `providerTools` speaks this format; one without keeps Chat Completions, which
//! every OpenAI-compatible server (and every recorded body) shares.
//!
//! Requests are stateless (`store: false`): the whole conversation goes as `input` items.
//! The provider's own tool items are not sent back: the API does not need them, and a
//! reasoning model refuses a `web_search_call` item without the reasoning item before it.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{ChunkDecoder, parse_args, parse_json};
use super::provider_tools::ProviderTool;
use super::sse::SseEvent;
use super::{FinishReason, LlmError, Message, Part, Request, Role, StreamChunk, Usage};
use crate::tool::ToolContent;

/// The request body. `effort` is the reasoning effort of a reasoning model, if any.
pub fn body(model: &str, req: &Request, effort: Option<&str>) -> Value {
    let mut input = Vec::new();
    for msg in &req.messages {
        push_items(&mut input, msg);
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            json!({"type": "function", "name": t.name, "description": t.description,
                "parameters": t.input_schema, "strict": false})
        })
        .collect();
    tools.extend(openai_tools(&req.provider_tools));
    let mut body = json!({
        "model": model,
        "instructions": req.system,
        "input": input,
        "stream": true,
        "store": false,
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = json!("auto");
    }
    if let Some(max) = req.max_tokens {
        body["max_output_tokens"] = json!(max);
    }
    if let Some(effort) = effort {
        body["reasoning"] = json!({ "effort": effort });
    }
    body
}

/// OpenAI's tools in the Responses shape, options renamed to the wire's names.
pub fn openai_tools(tools: &[ProviderTool]) -> Vec<Value> {
    tools
        .iter()
        .filter_map(|tool| {
            let option = |key: &str| tool.options.get(key).cloned();
            Some(match tool.name.as_str() {
                "webSearch" => json!({"type": "web_search"}),
                "fileSearch" => {
                    let mut v = json!({
                        "type": "file_search",
                        "vector_store_ids": option("vectorStoreIds").unwrap_or_else(|| json!([])),
                    });
                    if let Some(max) = option("maxNumResults") {
                        v["max_num_results"] = max;
                    }
                    v
                }
                "codeInterpreter" => {
                    json!({"type": "code_interpreter", "container": {"type": "auto"}})
                }
                "imageGeneration" => json!({"type": "image_generation"}),
                _ => return None,
            })
        })
        .collect()
}

fn push_items(input: &mut Vec<Value>, msg: &Message) {
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
            if !text.is_empty() {
                input.push(json!({"role": "assistant", "content": [
                    {"type": "output_text", "text": text}]}));
            }
            for part in &msg.parts {
                if let Part::ToolCall { id, name, args } = part {
                    input.push(json!({"type": "function_call", "call_id": id, "name": name,
                        "arguments": args.to_string()}));
                }
            }
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
                        input.push(json!({"type": "function_call_output",
                            "call_id": tool_call_id, "output": text}));
                        // Function outputs take text here: images follow as user content.
                        for c in contents {
                            if let ToolContent::Image { mime_type, data } = c {
                                content.push(image(mime_type, data));
                            }
                        }
                    }
                    Part::Text { text } => {
                        content.push(json!({"type": "input_text", "text": text}))
                    }
                    Part::Image { mime_type, data } => content.push(image(mime_type, data)),
                    Part::ToolCall { .. } | Part::Thinking { .. } | Part::ProviderTool { .. } => {}
                }
            }
            if !content.is_empty() {
                input.push(json!({"role": "user", "content": content}));
            }
        }
    }
}

fn image(mime: &str, data: &str) -> Value {
    json!({"type": "input_image", "image_url": format!("data:{mime};base64,{data}")})
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Event {
    // `output_index` names an item in OpenAI's stream; some compatible servers (llama.cpp)
    // leave it out, and the item's id names it instead.
    #[serde(rename = "response.output_item.added")]
    ItemAdded {
        #[serde(default)]
        output_index: Option<usize>,
        item: Value,
    },
    #[serde(rename = "response.output_item.done")]
    ItemDone {
        #[serde(default)]
        output_index: Option<usize>,
        item: Value,
    },
    #[serde(rename = "response.output_text.delta")]
    TextDelta { delta: String },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningDelta { delta: String },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        #[serde(default)]
        output_index: Option<usize>,
        #[serde(default)]
        item_id: Option<String>,
        delta: String,
    },
    #[serde(rename = "response.completed")]
    Completed { response: WireResponse },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: WireResponse },
    #[serde(rename = "response.failed")]
    Failed { response: WireResponse },
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct WireResponse {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    incomplete_details: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<Value>,
    #[serde(default)]
    output_tokens_details: Option<Value>,
}

struct OpenCall {
    output_index: Option<usize>,
    item_id: Option<String>,
    index: usize,
    id: String,
    name: String,
    args: String,
}

/// Responses SSE events → neutral chunks.
pub struct Decoder {
    provider: String,
    open: Vec<OpenCall>,
    next_tool: usize,
    done: bool,
}

impl OpenCall {
    /// The call is the item at `output_index`, or where the stream gives no index, the item
    /// with id `item_id`.
    fn is(&self, output_index: Option<usize>, item_id: Option<&str>) -> bool {
        match (self.output_index, output_index) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => item_id.is_some() && self.item_id.as_deref() == item_id,
        }
    }
}

impl Decoder {
    pub fn new(provider: &str) -> Self {
        Decoder {
            provider: provider.to_string(),
            open: Vec::new(),
            next_tool: 0,
            done: false,
        }
    }

    fn item_added(
        &mut self,
        output_index: Option<usize>,
        item: &Value,
        out: &mut VecDeque<StreamChunk>,
    ) {
        if item["type"] != "function_call" {
            return;
        }
        let index = self.next_tool;
        self.next_tool += 1;
        let id = text(&item["call_id"]).unwrap_or_else(|| format!("call_{index}"));
        let name = text(&item["name"]).unwrap_or_default();
        out.push_back(StreamChunk::ToolCallStarted {
            index,
            id: id.clone(),
            name: name.clone(),
        });
        self.open.push(OpenCall {
            output_index,
            item_id: text(&item["id"]),
            index,
            id,
            name,
            args: String::new(),
        });
    }

    fn item_done(
        &mut self,
        output_index: Option<usize>,
        item: Value,
        out: &mut VecDeque<StreamChunk>,
    ) -> Result<(), LlmError> {
        let kind = item["type"].as_str().unwrap_or_default().to_string();
        if kind == "function_call" {
            // The whole arguments come again here; they win over the deltas.
            let item_id = text(&item["id"]);
            let call = match self
                .open
                .iter()
                .position(|c| c.is(output_index, item_id.as_deref()))
            {
                Some(pos) => self.open.remove(pos),
                None => {
                    self.item_added(output_index, &item, out);
                    self.open
                        .pop()
                        .ok_or_else(|| self.protocol("a lost call"))?
                }
            };
            let raw = text(&item["arguments"]).unwrap_or(call.args);
            let args = parse_args(&self.provider, &call.name, &raw)?;
            out.push_back(StreamChunk::ToolCallFinished {
                index: call.index,
                id: call.id,
                name: call.name,
                args,
            });
        } else if kind.ends_with("_call") {
            // Run by OpenAI (web search, file search, code interpreter, image generation):
            // the item is both the call and its result.
            let id = text(&item["id"])
                .unwrap_or_else(|| format!("{kind}_{}", output_index.unwrap_or(self.next_tool)));
            let args = if item["action"].is_object() {
                item["action"].clone()
            } else if item["queries"].is_array() {
                json!({"queries": item["queries"]})
            } else if item["code"].is_string() {
                json!({"code": item["code"]})
            } else {
                json!({})
            };
            out.push_back(StreamChunk::ProviderToolCall {
                id: id.clone(),
                name: kind.trim_end_matches("_call").to_string(),
                args,
            });
            out.push_back(StreamChunk::ProviderToolResult {
                tool_call_id: id,
                result: item,
            });
        }
        Ok(())
    }

    fn finish(&mut self, response: WireResponse, out: &mut VecDeque<StreamChunk>, cut: bool) {
        if let Some(usage) = response.usage {
            let cached = usage
                .input_tokens_details
                .as_ref()
                .and_then(|d| d["cached_tokens"].as_u64())
                .unwrap_or(0);
            let reasoning = usage
                .output_tokens_details
                .as_ref()
                .and_then(|d| d["reasoning_tokens"].as_u64())
                .unwrap_or(0);
            out.push_back(StreamChunk::Usage(Usage {
                input: usage.input_tokens,
                output: usage.output_tokens,
                reasoning,
                cached_input: cached,
            }));
        }
        let reason = match response
            .incomplete_details
            .as_ref()
            .and_then(|d| d["reason"].as_str())
        {
            Some("max_output_tokens") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_string()),
            None if cut => FinishReason::Other("incomplete".into()),
            None if self.next_tool > 0 => FinishReason::ToolUse,
            None => FinishReason::Stop,
        };
        out.push_back(StreamChunk::Finish { reason });
        self.done = true;
    }

    fn protocol(&self, message: &str) -> LlmError {
        LlmError::Protocol {
            provider: self.provider.clone(),
            message: message.to_string(),
        }
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

impl ChunkDecoder for Decoder {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        if event.data.trim().is_empty() || event.data.trim() == "[DONE]" {
            return Ok(());
        }
        match parse_json::<Event>(&self.provider, &event.data)? {
            Event::ItemAdded { output_index, item } => self.item_added(output_index, &item, out),
            Event::ItemDone { output_index, item } => self.item_done(output_index, item, out)?,
            Event::TextDelta { delta } if !delta.is_empty() => {
                out.push_back(StreamChunk::TextDelta { text: delta })
            }
            Event::ReasoningDelta { delta } if !delta.is_empty() => {
                out.push_back(StreamChunk::ReasoningDelta {
                    text: delta,
                    signature: None,
                })
            }
            Event::ArgumentsDelta {
                output_index,
                item_id,
                delta,
            } => {
                if let Some(call) = self
                    .open
                    .iter_mut()
                    .find(|c| c.is(output_index, item_id.as_deref()))
                {
                    call.args.push_str(&delta);
                    out.push_back(StreamChunk::ToolCallArgumentsDelta {
                        index: call.index,
                        delta,
                    });
                }
            }
            Event::Completed { response } => self.finish(response, out, false),
            Event::Incomplete { response } => self.finish(response, out, true),
            Event::Failed { response } => {
                let error = response.error.unwrap_or_default();
                return Err(LlmError::Provider {
                    provider: self.provider.clone(),
                    kind: text(&error["code"]).unwrap_or_else(|| "response_failed".into()),
                    message: text(&error["message"]).unwrap_or_default(),
                });
            }
            Event::Error { code, message } => {
                return Err(LlmError::Provider {
                    provider: self.provider.clone(),
                    kind: code.unwrap_or_else(|| "error".into()),
                    message,
                });
            }
            Event::TextDelta { .. } | Event::ReasoningDelta { .. } | Event::Other => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut VecDeque<StreamChunk>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        Err(LlmError::StreamCut {
            provider: self.provider.clone(),
            detail: Some("no response.completed".into()),
        })
    }

    fn done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(events: &[Value]) -> Result<Vec<StreamChunk>, LlmError> {
        let mut decoder = Decoder::new("openai");
        let mut out = VecDeque::new();
        for event in events {
            decoder.event(
                SseEvent {
                    event: event["type"].as_str().unwrap_or_default().to_string(),
                    data: event.to_string(),
                },
                &mut out,
            )?;
        }
        decoder.end(&mut out)?;
        Ok(out.into_iter().collect())
    }

    #[test]
    fn the_whole_arguments_of_item_done_win_over_lost_deltas() {
        let chunks = decode(&[
            json!({"type": "response.output_item.added", "output_index": 0,
                "item": {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "f", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "{\"a\""}),
            json!({"type": "response.output_item.done", "output_index": 0,
                "item": {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "f", "arguments": "{\"a\": 1}"}}),
            json!({"type": "response.completed", "response": {"usage": {"input_tokens": 3, "output_tokens": 2}}}),
        ])
        .expect("decodes");
        assert!(chunks.contains(&StreamChunk::ToolCallFinished {
            index: 0,
            id: "call_a".into(),
            name: "f".into(),
            args: json!({"a": 1}),
        }));
        assert_eq!(
            chunks.last(),
            Some(&StreamChunk::Finish {
                reason: FinishReason::ToolUse
            })
        );
        let cut = decode(&[json!({"type": "response.output_text.delta", "delta": "hi"})]);
        assert!(matches!(cut, Err(LlmError::StreamCut { .. })), "{cut:?}");
    }

    /// llama.cpp's server streams the Responses format without `output_index`: items are
    /// named by their ids, and two calls' deltas still go to the right call.
    #[test]
    fn a_stream_without_output_index_is_followed_by_item_ids() {
        let added = |id: &str, call: &str| {
            json!({"type": "response.output_item.added",
                "item": {"type": "function_call", "id": id, "call_id": call, "name": "f", "arguments": "", "status": "in_progress"}})
        };
        let delta = |id: &str, piece: &str| json!({"type": "response.function_call_arguments.delta", "item_id": id, "delta": piece});
        let done = |id: &str, call: &str| {
            json!({"type": "response.output_item.done",
                "item": {"type": "function_call", "id": id, "call_id": call, "name": "f", "status": "completed"}})
        };
        let chunks = decode(&[
            json!({"type": "response.output_item.added",
                "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": [], "status": "in_progress"}}),
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Two calls."}),
            added("fc_1", "call_a"),
            added("fc_2", "call_b"),
            delta("fc_1", "{\"n\":"),
            delta("fc_2", "{\"n\": 2}"),
            delta("fc_1", " 1}"),
            done("fc_1", "call_a"),
            done("fc_2", "call_b"),
            json!({"type": "response.completed", "response": {"usage": {"input_tokens": 3, "output_tokens": 2}}}),
        ])
        .expect("decodes");
        let finished: Vec<(String, Value)> = chunks
            .iter()
            .filter_map(|c| match c {
                StreamChunk::ToolCallFinished { id, args, .. } => Some((id.clone(), args.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            finished,
            [
                ("call_a".to_string(), json!({"n": 1})),
                ("call_b".to_string(), json!({"n": 2}))
            ]
        );
        assert!(chunks.contains(&StreamChunk::TextDelta {
            text: "Two calls.".into()
        }));
    }
}
