//! The tool calls of one step, run concurrently: skills through the skill manager, delegates as
//! child runs.

use std::time::Instant;

use futures_util::future::join_all;
use serde_json::Value;

use super::checkpoint::{CheckpointStatus, DelegatedBy, ExpertRef, Usage};
use super::event::EventKind;
use super::id::{new_id, now_millis};
use super::job::{MAX_DELEGATION_DEPTH, Parent, RunSpec, RunStart};
use super::machine::{Input, ToolKind};
use super::message::{ToolCall, ToolResult};
use super::run::{Driver, run_expert};
use crate::skills::base::ATTEMPT_COMPLETION;
use crate::tool::ToolOutput;

/// What the concurrent calls of one step report besides their results.
#[derive(Default)]
pub(super) struct CallsState {
    completion_accepted: Option<bool>,
    delegated_usage: Usage,
}

/// Where delegate calls come from, for the child's `delegatedBy`.
pub(super) struct Origin {
    pub(super) expert: ExpertRef,
    pub(super) checkpoint_id: String,
}

impl Driver {
    pub(super) async fn call_tools(
        &self,
        step: u64,
        calls: Vec<ToolCall>,
        origin: Origin,
    ) -> Input {
        let shared = std::sync::Mutex::new(CallsState::default());
        let futures = calls.into_iter().map(|call| {
            let origin = &origin;
            let shared = &shared;
            async move {
                let started_at = now_millis();
                let clock = Instant::now();
                let output = self.call_one(step, &call, origin, shared).await;
                self.emit(
                    step,
                    EventKind::ToolCallTiming {
                        tool_call_id: call.id.clone(),
                        skill_name: call.skill_name.clone(),
                        tool_name: call.tool_name.clone(),
                        started_at,
                        duration_ms: clock.elapsed().as_millis() as u64,
                        is_error: output.is_error,
                    },
                );
                ToolResult {
                    id: call.id,
                    skill_name: call.skill_name,
                    tool_name: call.tool_name,
                    result: output,
                }
            }
        });
        let results = join_all(futures).await;
        let state = shared.into_inner().unwrap_or_else(|e| e.into_inner());
        Input::ToolsDone {
            results,
            completion_accepted: state.completion_accepted,
            delegated_usage: state.delegated_usage,
        }
    }

    async fn call_one(
        &self,
        step: u64,
        call: &ToolCall,
        origin: &Origin,
        shared: &std::sync::Mutex<CallsState>,
    ) -> ToolOutput {
        match self.kinds.get(&call.tool_name) {
            Some(ToolKind::Skill { .. }) => {
                let Some(skills) = &self.skills else {
                    return ToolOutput::error(format!(
                        "the skill of tool `{}` is not available",
                        call.tool_name
                    ));
                };
                if call.tool_name == ATTEMPT_COMPLETION {
                    let completion = skills.base().attempt_completion();
                    if let Ok(mut state) = shared.lock() {
                        state.completion_accepted = Some(completion.is_accepted());
                    }
                    return completion.into_output();
                }
                skills
                    .call_as(Some(&call.id), &call.tool_name, call.args.clone())
                    .await
            }
            Some(ToolKind::Delegate { expert_key }) => {
                let (output, usage) = self.delegate(step, call, expert_key, origin).await;
                if let Ok(mut state) = shared.lock() {
                    state.delegated_usage.add(&usage);
                }
                output
            }
            Some(ToolKind::Interactive { .. }) => ToolOutput::error(format!(
                "`{}` is answered by a person, not called",
                call.tool_name
            )),
            None => {
                let mut names: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
                names.sort();
                ToolOutput::error(format!(
                    "there is no tool named `{}`; the tools are: {}",
                    call.tool_name,
                    names.join(", ")
                ))
            }
        }
    }

    async fn delegate(
        &self,
        step: u64,
        call: &ToolCall,
        expert_key: &str,
        origin: &Origin,
    ) -> (ToolOutput, Usage) {
        let depth = self.spec.parent.as_ref().map_or(0, |p| p.depth) + 1;
        if depth > MAX_DELEGATION_DEPTH {
            let message = format!(
                "delegation is nested more than {MAX_DELEGATION_DEPTH} levels deep; answer without delegating further"
            );
            return (ToolOutput::error(message), Usage::default());
        }
        let Some(query) = call.args.get("query").and_then(Value::as_str) else {
            let message = format!(
                "`{}` takes {{\"query\": \"...\"}}: a string saying what to do",
                call.tool_name
            );
            return (ToolOutput::error(message), Usage::default());
        };
        let child_run_id = new_id();
        let spec = RunSpec {
            expert_key: expert_key.to_string(),
            run_id: Some(child_run_id.clone()),
            start: RunStart::Query(query.to_string()),
            parent: Some(Parent {
                run_id: self.ids.run_id.clone(),
                depth,
                delegated_by: DelegatedBy {
                    expert: origin.expert.clone(),
                    tool_call_id: call.id.clone(),
                    tool_name: call.tool_name.clone(),
                    checkpoint_id: origin.checkpoint_id.clone(),
                    run_id: self.ids.run_id.clone(),
                },
            }),
        };
        let child = run_expert(self.job.clone(), spec);
        self.emit(
            step,
            EventKind::CallDelegate {
                tool_call: call.clone(),
                delegate_run_id: child_run_id,
                delegate_expert_key: expert_key.to_string(),
                query: query.to_string(),
            },
        );
        let outcome = child.await;
        let usage = outcome
            .checkpoint
            .as_ref()
            .map(|c| c.usage)
            .unwrap_or_default();
        let output = match (outcome.status, outcome.text) {
            (CheckpointStatus::Completed, Some(text)) => ToolOutput::text(text),
            (status, _) => ToolOutput::error(format!(
                "the Expert \"{expert_key}\" did not complete ({status:?}){}",
                outcome.error.map(|e| format!(": {e}")).unwrap_or_default()
            )),
        };
        (output, usage)
    }
}
