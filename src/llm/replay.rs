//! Offline answers from a script file, and a recorder that writes such files.
//!
//! A script is TOML (or JSON when the file ends in `.json`): an ordered list of responses, each
//! tagged with the Expert it answers. The Nth request of Expert X gets the Nth response tagged X.
//!
//! ```toml
//! [[responses]]
//! expert = "writer"
//! thinking = "The user wants a file."   # optional
//! text = "Writing it now."              # optional
//! toolCalls = [{ name = "writeTextFile", args = { path = "a.txt", text = "hi" } }]
//!
//! [[responses]]
//! expert = "writer"
//! text = "Done: a.txt holds the greeting."
//! ```
//!
//! Optional per response: `thinkingSignature`, `usage = { input = 10, output = 5 }`,
//! `finishReason` ("stop", "toolUse", "length", ...; by default "toolUse" when there are tool
//! calls, else "stop"); per tool call: `id` (default `replay_<n>_<i>`), and `argsJson` (a JSON
//! string) where `args` cannot be written in TOML (JSON `null`).
//!
//! Tools the provider ran itself are kept as `providerTools = [{ id, name, args, result }]`
//! (`argsJson` / `resultJson` where TOML cannot hold the value), so a recorded answer with a
//! web search replays with the same call and result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::{
    ChunkStream, FinishReason, LanguageModel, LlmError, PreparedRequest, Request, Response,
    ResponseBuilder, StreamChunk, Usage,
};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Script {
    #[serde(default)]
    pub responses: Vec<ScriptResponse>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptResponse {
    pub expert: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_signature: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ScriptToolCall>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_tools: Vec<ScriptProviderTool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_json: Option<String>,
}

/// A tool the provider ran during a recorded answer, with its result as the provider sent it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptProviderTool {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_json: Option<String>,
}

/// A value as TOML can hold it: itself, or a JSON string when it holds a `null`.
fn tomlable(value: &serde_json::Value) -> (Option<serde_json::Value>, Option<String>) {
    if has_null(value) {
        (None, Some(value.to_string()))
    } else {
        (Some(value.clone()), None)
    }
}

fn from_tomlable(
    value: &Option<serde_json::Value>,
    json: &Option<String>,
    what: &str,
) -> Result<Option<serde_json::Value>, LlmError> {
    match (value, json) {
        (Some(value), _) => Ok(Some(value.clone())),
        (None, Some(raw)) => serde_json::from_str(raw)
            .map(Some)
            .map_err(|e| LlmError::Replay {
                message: format!("{what} is not JSON: {e}"),
            }),
        (None, None) => Ok(None),
    }
}

impl Script {
    pub fn load(path: &Path) -> Result<Script, LlmError> {
        let text = std::fs::read_to_string(path).map_err(|e| LlmError::Replay {
            message: format!("cannot read script {}: {e}", path.display()),
        })?;
        Script::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Script, LlmError> {
        let result = if is_json(path) {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        result.map_err(|e| LlmError::Replay {
            message: format!("script {} is not valid: {e}", path.display()),
        })
    }

    /// The text of the file, in the format its name says.
    pub fn render(&self, path: &Path) -> Result<String, LlmError> {
        let result = if is_json(path) {
            serde_json::to_string_pretty(self).map_err(|e| e.to_string())
        } else {
            toml::to_string(self).map_err(|e| e.to_string())
        };
        result.map_err(|e| LlmError::Replay {
            message: format!("cannot write script {}: {e}", path.display()),
        })
    }

    /// Appends a collected response, as the recorder does.
    pub fn push_response(&mut self, expert: &str, response: &Response) {
        let derived = derived_reason(!response.tool_calls.is_empty());
        self.responses.push(ScriptResponse {
            expert: expert.to_string(),
            thinking: response.thinking.clone(),
            thinking_signature: response.thinking_signature.clone(),
            text: response.text.clone(),
            tool_calls: response
                .tool_calls
                .iter()
                .map(|call| {
                    // TOML has no null: such arguments are kept as a JSON string.
                    let (args, args_json) = if has_null(&call.args) {
                        (None, Some(call.args.to_string()))
                    } else {
                        (Some(call.args.clone()), None)
                    };
                    ScriptToolCall {
                        id: Some(call.id.clone()),
                        name: call.name.clone(),
                        args,
                        args_json,
                    }
                })
                .collect(),
            provider_tools: response
                .provider_tools
                .iter()
                .map(|used| {
                    let (args, args_json) = tomlable(&used.args);
                    let (result, result_json) = match &used.result {
                        Some(result) => tomlable(result),
                        None => (None, None),
                    };
                    ScriptProviderTool {
                        id: used.id.clone(),
                        name: used.name.clone(),
                        args,
                        args_json,
                        result,
                        result_json,
                    }
                })
                .collect(),
            usage: (response.usage != Usage::default()).then_some(response.usage),
            finish_reason: (response.finish_reason != derived)
                .then(|| response.finish_reason.clone()),
        });
    }
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

fn has_null(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.iter().any(has_null),
        serde_json::Value::Object(map) => map.values().any(has_null),
        _ => false,
    }
}

fn derived_reason(has_calls: bool) -> FinishReason {
    if has_calls {
        FinishReason::ToolUse
    } else {
        FinishReason::Stop
    }
}

impl ScriptResponse {
    /// The chunks a streaming provider would send for this response.
    pub fn chunks(&self, n: usize) -> Result<Vec<StreamChunk>, LlmError> {
        let mut out = Vec::new();
        for piece in split(&self.thinking) {
            out.push(StreamChunk::ReasoningDelta {
                text: piece.to_string(),
                signature: None,
            });
        }
        if let Some(sig) = &self.thinking_signature {
            out.push(StreamChunk::ReasoningDelta {
                text: String::new(),
                signature: Some(sig.clone()),
            });
        }
        for used in &self.provider_tools {
            let what = format!(
                "provider tool {:?} (Expert {:?}) argsJson",
                used.name, self.expert
            );
            let args = from_tomlable(&used.args, &used.args_json, &what)?;
            out.push(StreamChunk::ProviderToolCall {
                id: used.id.clone(),
                name: used.name.clone(),
                args: args.unwrap_or_else(|| serde_json::json!({})),
            });
            let what = format!(
                "provider tool {:?} (Expert {:?}) resultJson",
                used.name, self.expert
            );
            if let Some(result) = from_tomlable(&used.result, &used.result_json, &what)? {
                out.push(StreamChunk::ProviderToolResult {
                    tool_call_id: used.id.clone(),
                    result,
                });
            }
        }
        for piece in split(&self.text) {
            out.push(StreamChunk::TextDelta {
                text: piece.to_string(),
            });
        }
        for (index, call) in self.tool_calls.iter().enumerate() {
            let args = match (&call.args, &call.args_json) {
                (Some(args), _) => args.clone(),
                (None, Some(raw)) => serde_json::from_str(raw).map_err(|e| LlmError::Replay {
                    message: format!(
                        "argsJson of tool call {:?} (Expert {:?}) is not JSON: {e}",
                        call.name, self.expert
                    ),
                })?,
                (None, None) => serde_json::json!({}),
            };
            let id = call
                .id
                .clone()
                .unwrap_or_else(|| format!("replay_{n}_{index}"));
            out.push(StreamChunk::ToolCallStarted {
                index,
                id: id.clone(),
                name: call.name.clone(),
            });
            let raw = args.to_string();
            for piece in split(&raw) {
                out.push(StreamChunk::ToolCallArgumentsDelta {
                    index,
                    delta: piece.to_string(),
                });
            }
            out.push(StreamChunk::ToolCallFinished {
                index,
                id,
                name: call.name.clone(),
                args,
            });
        }
        out.push(StreamChunk::Usage(self.usage.unwrap_or_default()));
        let reason = self
            .finish_reason
            .clone()
            .unwrap_or_else(|| derived_reason(!self.tool_calls.is_empty()));
        out.push(StreamChunk::Finish { reason });
        Ok(out)
    }
}

/// Up to four pieces on char boundaries, so streaming views see movement.
fn split(text: &str) -> Vec<&str> {
    let chars = text.chars().count();
    if chars == 0 {
        return Vec::new();
    }
    let per = chars.div_ceil(4).max(1);
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = rest
            .char_indices()
            .nth(per)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// Answers from a script: no key, no network, same answers every run.
pub struct Replay {
    path: PathBuf,
    model: String,
    script: Script,
    /// Requests served so far, per Expert.
    served: Mutex<HashMap<String, usize>>,
}

impl Replay {
    pub fn from_file(path: impl Into<PathBuf>, model: impl Into<String>) -> Result<Self, LlmError> {
        let path = path.into();
        let script = Script::load(&path)?;
        Ok(Replay::from_script(script, path, model))
    }

    pub fn from_script(script: Script, path: impl Into<PathBuf>, model: impl Into<String>) -> Self {
        Replay {
            path: path.into(),
            model: model.into(),
            script,
            served: Mutex::new(HashMap::new()),
        }
    }

    /// Starts every Expert from its first response again.
    pub fn reset(&self) {
        if let Ok(mut served) = self.served.lock() {
            served.clear();
        }
    }

    fn next_response(&self, expert: &str) -> Result<(usize, &ScriptResponse), LlmError> {
        let mut served = self.served.lock().map_err(|_| LlmError::Replay {
            message: "replay state poisoned by an earlier panic".into(),
        })?;
        let n = served.entry(expert.to_string()).or_insert(0);
        let found = self
            .script
            .responses
            .iter()
            .filter(|r| r.expert == expert)
            .nth(*n);
        match found {
            Some(response) => {
                let index = *n;
                *n += 1;
                Ok((index, response))
            }
            None => {
                let count = self
                    .script
                    .responses
                    .iter()
                    .filter(|r| r.expert == expert)
                    .count();
                Err(LlmError::Replay {
                    message: format!(
                        "script {} has no response {} for Expert {expert:?} (it has {count})",
                        self.path.display(),
                        *n + 1
                    ),
                })
            }
        }
    }
}

impl LanguageModel for Replay {
    fn provider(&self) -> &str {
        "replay"
    }

    fn model(&self) -> &str {
        &self.model
    }

    /// The neutral request as JSON, addressed to `replay:<file>`: what the script answers.
    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError> {
        let body = serde_json::to_vec_pretty(req).map_err(|e| LlmError::Replay {
            message: e.to_string(),
        })?;
        Ok(PreparedRequest::new(
            "replay",
            "POST",
            format!("replay:{}", self.path.display()),
            vec![("content-type".into(), "application/json".into())],
            body,
        )
        .with_expert_key(&req.expert_key))
    }

    fn send(&self, prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        Box::pin(async move {
            // An edited body may name another Expert; otherwise the prepared metadata counts.
            let expert = serde_json::from_slice::<serde_json::Value>(prepared.body())
                .ok()
                .and_then(|v| v.get("expertKey")?.as_str().map(str::to_string))
                .filter(|k| !k.is_empty())
                .unwrap_or(prepared.expert_key);
            let (n, response) = self.next_response(&expert)?;
            let chunks = response.chunks(n)?;
            Ok(stream::iter(chunks.into_iter().map(Ok)).boxed())
        })
    }
}

/// Wraps any provider and appends each complete answer to a script file, so the run replays
/// offline. The file is rewritten whole (temp file + rename) after each answer.
pub struct Recorder {
    inner: Arc<dyn LanguageModel>,
    path: PathBuf,
    script: Arc<Mutex<Script>>,
}

impl Recorder {
    /// Appends to `path` if it exists, else starts it.
    pub fn new(inner: Arc<dyn LanguageModel>, path: impl Into<PathBuf>) -> Result<Self, LlmError> {
        let path = path.into();
        let script = if path.exists() {
            Script::load(&path)?
        } else {
            Script::default()
        };
        Ok(Recorder {
            inner,
            path,
            script: Arc::new(Mutex::new(script)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn save(
    path: &Path,
    script: &Mutex<Script>,
    expert: &str,
    response: &Response,
) -> Result<(), LlmError> {
    let mut script = script.lock().map_err(|_| LlmError::Replay {
        message: "recording state poisoned by an earlier panic".into(),
    })?;
    script.push_response(expert, response);
    let text = script.render(path)?;
    let tmp = path.with_extension("tmp-recording");
    let io = |e: std::io::Error| LlmError::Replay {
        message: format!("cannot write recording {}: {e}", path.display()),
    };
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl LanguageModel for Recorder {
    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn check_body(&self, body: &[u8]) -> Result<(), String> {
        self.inner.check_body(body)
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError> {
        self.inner.prepare(req)
    }

    fn send(&self, prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        Box::pin(async move {
            let expert = prepared.expert_key.clone();
            let path = self.path.clone();
            let script = Arc::clone(&self.script);
            let stream = self.inner.send(prepared).await?;
            let mut builder = ResponseBuilder::new();
            let recorded = stream.map(move |item| {
                let chunk = item?;
                builder.push(&chunk);
                if matches!(chunk, StreamChunk::Finish { .. }) {
                    let response = std::mem::take(&mut builder).finish();
                    save(&path, &script, &expert, &response)?;
                }
                Ok(chunk)
            });
            Ok(recorded.boxed())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_toml_round_trips() {
        let mut script = Script::default();
        let response = Response {
            text: "Writing.\nTwo lines.".into(),
            thinking: "plan".into(),
            tool_calls: vec![
                super::super::ToolCall {
                    id: "t1".into(),
                    name: "writeTextFile".into(),
                    args: serde_json::json!({"path": "a.txt", "n": [1, 2]}),
                },
                super::super::ToolCall {
                    id: "t2".into(),
                    name: "exec".into(),
                    args: serde_json::json!({"cwd": null}),
                },
            ],
            provider_tools: vec![super::super::ProviderToolUse {
                id: "srvtoolu_1".into(),
                name: "web_search".into(),
                args: serde_json::json!({"query": "rust"}),
                result: Some(serde_json::json!({"type": "web_search_tool_result",
                    "content": [{"title": "Rust", "page_age": null}]})),
            }],
            finish_reason: FinishReason::ToolUse,
            ..Default::default()
        };
        script.push_response("writer", &response);
        let path = Path::new("rec.toml");
        let text = script.render(path).unwrap();
        println!("{text}");
        assert_eq!(Script::parse(&text, path).unwrap(), script);
        assert!(text.contains("argsJson"));
        assert!(text.contains("resultJson"));
        let chunks = script.responses[0].chunks(0).unwrap();
        let mut builder = ResponseBuilder::new();
        chunks.iter().for_each(|c| builder.push(c));
        assert_eq!(builder.finish(), response);
    }

    #[test]
    fn split_keeps_chars_whole() {
        assert_eq!(split("héllo wörld😀").concat(), "héllo wörld😀");
        assert!(split("héllo wörld😀").len() > 1);
        assert!(split("").is_empty());
        assert_eq!(split("a"), vec!["a"]);
    }
}
