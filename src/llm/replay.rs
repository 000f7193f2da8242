//! Offline answers from a script file, and a recorder that writes such files.
//!
//! A script is TOML (or JSON when the file ends in `.json`): an ordered list of responses, each
//! tagged with the Expert it answers. A run of Expert X takes X's responses in order: its first
//! request gets the first response not yet taken by an earlier run of X (a delegate asked twice
//! answers the second time from where the first left off), and a request whose conversation
//! already holds K answers gets the run's (K+1)th. So a fork or a resumed run from a checkpoint
//! is answered as the original was at that point, and the same query asked again (a new job in
//! the workbench) gets the same answers. A new query for an Expert whose responses are all taken
//! starts its responses over.
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
    positions: Mutex<Positions>,
}

/// Where each run stands in the script.
#[derive(Default)]
struct Positions {
    /// Per Expert: the first response no run has taken yet.
    next_free: HashMap<String, usize>,
    /// Per Expert and opening message (the run's query): the response its first request got.
    run_starts: HashMap<(String, String), usize>,
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
            positions: Mutex::new(Positions::default()),
        }
    }

    /// Starts every Expert from its first response again.
    pub fn reset(&self) {
        if let Ok(mut positions) = self.positions.lock() {
            *positions = Positions::default();
        }
    }

    /// The response for a request of `expert` whose conversation opens with `opening` and
    /// already holds `answered` answers.
    fn response_for(
        &self,
        expert: &str,
        opening: String,
        answered: usize,
    ) -> Result<(usize, &ScriptResponse), LlmError> {
        let mut positions = self.positions.lock().map_err(|_| LlmError::Replay {
            message: "replay state poisoned by an earlier panic".into(),
        })?;
        let responses: Vec<&ScriptResponse> = self
            .script
            .responses
            .iter()
            .filter(|r| r.expert == expert)
            .collect();
        let run = (expert.to_string(), opening);
        let start = match positions.run_starts.get(&run) {
            Some(start) => *start,
            None => {
                let free = positions.next_free.get(expert).copied().unwrap_or(0);
                // A new query after every response is taken: the script starts over.
                let start = if answered == 0 && free >= responses.len() {
                    0
                } else {
                    free.saturating_sub(answered)
                };
                positions.run_starts.insert(run, start);
                start
            }
        };
        let index = start + answered;
        let free = positions.next_free.entry(expert.to_string()).or_insert(0);
        *free = (*free).max(index + 1);
        match responses.get(index) {
            Some(response) => Ok((index, *response)),
            None => Err(LlmError::Replay {
                message: format!(
                    "script {} has no response {} for Expert {expert:?} (it has {}); record \
                     one with --record",
                    self.path.display(),
                    index + 1,
                    responses.len()
                ),
            }),
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
            let body = serde_json::from_slice::<serde_json::Value>(prepared.body()).ok();
            let expert = body
                .as_ref()
                .and_then(|v| v.get("expertKey")?.as_str().map(str::to_string))
                .filter(|k| !k.is_empty())
                .unwrap_or(prepared.expert_key);
            let messages = body
                .as_ref()
                .and_then(|v| v.get("messages")?.as_array())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let opening = messages.first().map(|m| m.to_string()).unwrap_or_default();
            let answered = messages
                .iter()
                .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some("assistant"))
                .count();
            let (n, response) = self.response_for(&expert, opening, answered)?;
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

    fn script_of(tagged: &[(&str, &str)]) -> Replay {
        let script = Script {
            responses: tagged
                .iter()
                .map(|(expert, text)| ScriptResponse {
                    expert: expert.to_string(),
                    text: text.to_string(),
                    ..ScriptResponse::default()
                })
                .collect(),
        };
        Replay::from_script(script, "demo.replay.toml", "replay")
    }

    fn answer(replay: &Replay, expert: &str, query: &str, answered: usize) -> String {
        match replay.response_for(expert, query.to_string(), answered) {
            Ok((_, response)) => response.text.clone(),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_run_takes_its_experts_responses_in_order() {
        let replay = script_of(&[("lead", "l1"), ("lead", "l2"), ("lead", "l3")]);
        let got: Vec<String> = (0..3).map(|k| answer(&replay, "lead", "q", k)).collect();
        assert_eq!(got, ["l1", "l2", "l3"]);
        assert!(answer(&replay, "lead", "q", 3).contains("has no response 4"));
    }

    #[test]
    fn a_delegate_asked_twice_answers_from_where_it_left_off() {
        let replay = script_of(&[("reader", "r1"), ("reader", "r2"), ("reader", "r3")]);
        assert_eq!(answer(&replay, "reader", "first", 0), "r1");
        assert_eq!(answer(&replay, "reader", "first", 1), "r2");
        assert_eq!(answer(&replay, "reader", "second", 0), "r3");
    }

    #[test]
    fn a_fork_is_answered_as_the_original_was_at_that_point() {
        let replay = script_of(&[("lead", "l1"), ("lead", "l2"), ("lead", "l3")]);
        for k in 0..3 {
            answer(&replay, "lead", "q", k);
        }
        // Two forks from the checkpoint after the first answer, one after the other.
        assert_eq!(answer(&replay, "lead", "q", 1), "l2");
        assert_eq!(answer(&replay, "lead", "q", 1), "l2");
        assert_eq!(answer(&replay, "lead", "q", 2), "l3");
    }

    #[test]
    fn the_same_query_again_gets_the_same_answers_and_a_new_one_starts_over() {
        let replay = script_of(&[("lead", "l1"), ("lead", "l2")]);
        answer(&replay, "lead", "q", 0);
        answer(&replay, "lead", "q", 1);
        assert_eq!(answer(&replay, "lead", "q", 0), "l1");
        assert_eq!(answer(&replay, "lead", "another query", 0), "l1");
        assert_eq!(answer(&replay, "lead", "another query", 1), "l2");
    }

    #[test]
    fn a_run_resumed_by_a_new_process_is_answered_at_its_place() {
        let replay = script_of(&[("lead", "l1"), ("lead", "l2"), ("lead", "l3")]);
        assert_eq!(answer(&replay, "lead", "q", 2), "l3");
    }

    async fn text(replay: &Replay, request: &Request) -> String {
        let prepared = replay.prepare(request).expect("prepare");
        let stream = replay.send(prepared).await.expect("send");
        let chunks: Vec<StreamChunk> = stream.map(|c| c.expect("chunk")).collect().await;
        chunks
            .into_iter()
            .filter_map(|c| match c {
                StreamChunk::TextDelta { text } => Some(text),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn the_place_is_read_from_the_request_sent() {
        use crate::llm::Message;
        let replay = script_of(&[("lead", "l1"), ("lead", "l2")]);
        let mut request = Request {
            expert_key: "lead".into(),
            messages: vec![Message::user_text("q")],
            ..Request::default()
        };
        assert_eq!(text(&replay, &request).await, "l1");
        request.messages.push(Message::assistant_text("l1"));
        request.messages.push(Message::user_text("go on"));
        assert_eq!(text(&replay, &request).await, "l2");
        request.messages.truncate(1);
        assert_eq!(text(&replay, &request).await, "l1");
    }

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
