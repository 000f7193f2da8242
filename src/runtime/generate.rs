//! One generation: the exact request is built, shown, sent with retries, and streamed back
//! as events; the answer goes back to the machine.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use futures_util::StreamExt;

use super::checkpoint::{CheckpointError, Usage};
use super::control::{Control, PausePoint};
use super::event::{EventKind, WireRequest};
use super::frozen::Frozen;
use super::machine::{GeneratedCall, Generation, Input};
use super::message::{Message, ToolCall, ToolResult};
use super::run::Driver;
use crate::llm::retry::{RetryHook, send_with_retry};
use crate::llm::{self, ResponseBuilder, StreamChunk};
use crate::tool::ToolOutput;

impl Driver {
    pub(super) async fn generate(
        &self,
        step: u64,
        messages: &[Frozen<Message>],
        run_result: bool,
    ) -> Input {
        let model = &self.job.model;
        let prepared = self
            .request
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .prepare(model.as_ref(), messages, !run_result);
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(err) => return Input::GenerationFailed(llm_error(&err)),
        };
        let mut pending = PendingRequest {
            prepared,
            edited: false,
        };
        self.emit(step, pending.event(model.as_ref()));
        let paused = self
            .pause_with(step, PausePoint::BeforeLlm, Some(&mut pending))
            .await;
        if paused == Some(Control::Abort) {
            return Input::Cancelled;
        }
        let PendingRequest { prepared, edited } = pending;
        let emitter = self.emitter();
        let counted = self.provider_retries.clone();
        let hook: RetryHook = Arc::new(move |info| {
            counted.fetch_add(1, Ordering::Relaxed);
            emitter.emit(
                step,
                EventKind::Retry {
                    reason: info.error.to_string(),
                    attempt: u64::from(info.attempt),
                    delay_ms: Some(info.delay.as_millis() as u64),
                },
            );
        });
        let mut stream =
            match send_with_retry(model.as_ref(), prepared, &self.job.retry, Some(&hook)).await {
                Ok(stream) => stream,
                Err(err) => return Input::GenerationFailed(llm_error(&err)),
            };
        let mut builder = ResponseBuilder::new();
        let (mut text_started, mut reasoning_started) = (false, false);
        let (mut streamed_text, mut streamed_reasoning) = (String::new(), String::new());
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => return Input::GenerationFailed(llm_error(&err)),
            };
            match &chunk {
                StreamChunk::TextDelta { text } if !text.is_empty() => {
                    if !text_started {
                        text_started = true;
                        self.emit(step, EventKind::StartStreamingRunResult);
                    }
                    streamed_text.push_str(text);
                    self.emit(
                        step,
                        EventKind::StreamRunResult {
                            delta: text.clone(),
                        },
                    );
                }
                StreamChunk::ReasoningDelta { text, .. } if !text.is_empty() => {
                    if !reasoning_started {
                        reasoning_started = true;
                        self.emit(step, EventKind::StartStreamingReasoning);
                    }
                    streamed_reasoning.push_str(text);
                    self.emit(
                        step,
                        EventKind::StreamReasoning {
                            delta: text.clone(),
                        },
                    );
                }
                _ => {}
            }
            builder.push(&chunk);
        }
        if reasoning_started {
            self.emit(
                step,
                EventKind::CompleteStreamingReasoning {
                    text: streamed_reasoning,
                },
            );
        }
        if text_started {
            self.emit(
                step,
                EventKind::CompleteStreamingRunResult {
                    text: streamed_text,
                },
            );
        }
        if !builder.is_finished() {
            return Input::GenerationFailed(CheckpointError {
                name: "StreamCut".into(),
                message: format!(
                    "{}: the answer stream ended before its finish",
                    model.provider()
                ),
                status_code: None,
                is_retryable: true,
            });
        }
        let response = builder.finish();
        for used in &response.provider_tools {
            self.emit(step, provider_tool_event(model.provider(), used));
        }
        Input::Generated(Generation {
            text: response.text.clone(),
            thinking: if response.thinking.is_empty() {
                Vec::new()
            } else {
                vec![(
                    response.thinking.clone(),
                    response.thinking_signature.clone(),
                )]
            },
            tool_calls: response
                .tool_calls
                .iter()
                .map(|call| GeneratedCall {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    args: call.args.clone(),
                })
                .collect(),
            provider_tools: response.provider_tools.clone(),
            usage: Usage {
                input_tokens: response.usage.input,
                output_tokens: response.usage.output,
                reasoning_tokens: response.usage.reasoning,
                total_tokens: response.usage.input + response.usage.output,
                cached_input_tokens: response.usage.cached_input,
            },
            truncated: response.finish_reason == llm::FinishReason::Length,
            edited_request: edited,
            paused_by_provider: response.finish_reason
                == llm::FinishReason::Other("pause_turn".into()),
        })
    }
}

/// The request about to be sent, and whether a person edited it while the run was paused.
pub struct PendingRequest {
    pub prepared: llm::PreparedRequest,
    pub edited: bool,
}

impl PendingRequest {
    pub fn edit(&mut self, body: String) {
        self.prepared = self.prepared.clone().with_body(body);
        self.edited = true;
    }

    /// The `llmRequest` event that shows it: headers redacted, the body as it will go.
    pub fn event(&self, model: &dyn llm::LanguageModel) -> EventKind {
        let prepared = &self.prepared;
        EventKind::LlmRequest {
            request: WireRequest {
                provider: model.provider().to_string(),
                model: model.model().to_string(),
                method: prepared.method.clone(),
                url: prepared.redacted_url(),
                headers: prepared.redacted_headers(),
                body: prepared.body_text(),
                edited: self.edited,
            },
            attempt: 1,
        }
    }
}

/// The `providerToolCall` event of one tool the provider ran: the call under the provider's
/// name (so it reads `anthropic/web_search`), and its result as a person reads it.
fn provider_tool_event(provider: &str, used: &llm::ProviderToolUse) -> EventKind {
    let (text, is_error) = llm::provider_tools::describe_result(used.result.as_ref());
    let mut output = ToolOutput::text(text);
    output.is_error = is_error;
    EventKind::ProviderToolCall {
        tool_call: ToolCall {
            id: used.id.clone(),
            skill_name: provider.to_string(),
            tool_name: used.name.clone(),
            args: used.args.clone(),
        },
        tool_result: Box::new(ToolResult {
            id: used.id.clone(),
            skill_name: provider.to_string(),
            tool_name: used.name.clone(),
            result: output,
        }),
        raw_result: used.result.clone(),
    }
}

fn llm_error(err: &llm::LlmError) -> CheckpointError {
    CheckpointError {
        name: "ModelError".into(),
        message: err.to_string(),
        status_code: err.status(),
        is_retryable: err.is_retryable(),
    }
}
