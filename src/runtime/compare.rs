//! Two runs from one checkpoint, step by step: each step's answer, tool calls, tokens, cost and
//! model latency, and the first step where their course differs. Read from a run's events, so
//! `perstack diff` (stored events) and the workbench's compare view (live events) agree.

use super::checkpoint::Usage;
use super::event::{EventKind, RunEvent};
use super::variant::Variant;

/// One tool call as compared: its name and its arguments as compact JSON (ids differ between
/// runs and are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    pub name: String,
    pub args: String,
}

/// What one step of a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepFacts {
    pub step: u64,
    /// The model's text in this step (the final answer on the last step).
    pub answer: String,
    pub calls: Vec<CallFacts>,
    pub usage: Usage,
    /// Dollars, for a model in the price table.
    pub cost: Option<f64>,
    /// From the step's first model request to its answer, retries included.
    pub latency_ms: Option<u64>,
    /// How the run stopped at this step, when it stopped here without completing.
    pub stop: Option<String>,
}

impl StepFacts {
    /// True when both steps took the same course: the same tool calls with the same arguments,
    /// and the same answer.
    pub fn same_course(&self, other: &StepFacts) -> bool {
        self.calls == other.calls && self.answer.trim() == other.answer.trim()
    }
}

/// One run's steps and what it ran with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFacts {
    pub run_id: String,
    pub model: String,
    pub variant: Option<Variant>,
    pub steps: Vec<StepFacts>,
    /// The event that ended the run (`completeRun`, `stopRunByError`...), while none has: None.
    pub ended: Option<&'static str>,
}

/// Sums over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub usage: Usage,
    /// Known when every step's cost is.
    pub cost: Option<f64>,
    pub latency_ms: u64,
}

impl RunFacts {
    /// The facts of run `run_id` from events in emission order (other runs' events are
    /// skipped, so a whole job's events may be given).
    pub fn from_events<'a>(
        run_id: &str,
        events: impl IntoIterator<Item = &'a RunEvent>,
        variant: Option<Variant>,
    ) -> RunFacts {
        let mut facts = RunFacts {
            run_id: run_id.to_string(),
            variant,
            ..RunFacts::default()
        };
        let mut requested_at: Vec<(u64, u64)> = Vec::new();
        for event in events.into_iter().filter(|e| e.run_id == run_id) {
            let n = event.step_number;
            match &event.kind {
                EventKind::InitializeRuntime { model, .. } if facts.model.is_empty() => {
                    facts.model = model.clone();
                }
                EventKind::LlmRequest { request, .. } => {
                    facts.model = request.model.clone();
                    if !requested_at.iter().any(|(step, _)| *step == n) {
                        requested_at.push((n, event.timestamp));
                    }
                }
                EventKind::CallTools {
                    new_message,
                    tool_calls,
                    usage,
                } => {
                    let step = facts.step_mut(n);
                    step.answer = new_message.text();
                    step.calls = tool_calls
                        .iter()
                        .map(|call| CallFacts {
                            name: call.tool_name.clone(),
                            args: call.args.to_string(),
                        })
                        .collect();
                    step.usage = *usage;
                    answered(step, &requested_at, event.timestamp);
                }
                EventKind::CompleteStreamingRunResult { text } => {
                    let step = facts.step_mut(n);
                    step.answer = text.clone();
                    answered(step, &requested_at, event.timestamp);
                }
                EventKind::ContinueToNextStep { step: done, .. }
                | EventKind::CompleteRun { step: done, .. } => {
                    let step = facts.step_mut(done.step_number);
                    step.usage = done.usage;
                    if let EventKind::CompleteRun { text, .. } = &event.kind {
                        if step.answer.trim().is_empty() {
                            step.answer = text.clone();
                        }
                    }
                    answered(step, &requested_at, event.timestamp);
                }
                EventKind::StopRunByError { error, .. } => {
                    facts.step_mut(n).stop = Some(format!("error: {}", error.message));
                }
                EventKind::StopRunByExceededMaxSteps { .. } => {
                    facts.step_mut(n).stop = Some("max steps".into());
                }
                EventKind::StopRunByInteractiveTool { .. } => {
                    facts.step_mut(n).stop = Some("waits for an answer".into());
                }
                EventKind::StopRunByCancel { .. } => {
                    facts.step_mut(n).stop = Some("cancelled".into());
                }
                _ => {}
            }
            if event.kind.is_terminal() && event.kind.name() != "stopRunByDelegate" {
                facts.ended = Some(event.kind.name());
            }
        }
        let model = facts.model.clone();
        for step in &mut facts.steps {
            step.cost = crate::llm::providers::estimate_cost(
                &model,
                step.usage.input_tokens,
                step.usage.output_tokens,
            );
        }
        facts
    }

    fn step_mut(&mut self, n: u64) -> &mut StepFacts {
        let index = match self.steps.iter().position(|s| s.step == n) {
            Some(index) => index,
            None => {
                self.steps.push(StepFacts {
                    step: n,
                    ..StepFacts::default()
                });
                self.steps.sort_by_key(|s| s.step);
                self.steps.iter().position(|s| s.step == n).unwrap_or(0)
            }
        };
        &mut self.steps[index]
    }

    /// What the run is known by: its variant, or its model.
    pub fn label(&self) -> String {
        match &self.variant {
            Some(variant) => variant.label(),
            None => format!("model={}", self.model),
        }
    }

    pub fn totals(&self) -> Totals {
        let mut totals = Totals {
            cost: Some(0.0),
            ..Totals::default()
        };
        for step in &self.steps {
            totals.usage.add(&step.usage);
            totals.latency_ms += step.latency_ms.unwrap_or(0);
            totals.cost = totals.cost.zip(step.cost).map(|(a, b)| a + b);
        }
        totals
    }
}

/// The first answer of a step sets its latency; later events of the step leave it.
fn answered(step: &mut StepFacts, requested_at: &[(u64, u64)], at: u64) {
    if step.latency_ms.is_none() {
        step.latency_ms = requested_at
            .iter()
            .find(|(n, _)| *n == step.step)
            .map(|(_, sent)| at.saturating_sub(*sent));
    }
}

/// One step number, as each run took it (None where a run has no such step).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub step: u64,
    pub a: Option<StepFacts>,
    pub b: Option<StepFacts>,
}

/// Two runs side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub a: RunFacts,
    pub b: RunFacts,
    pub rows: Vec<Row>,
    /// The index of the first row where the runs' course differs.
    pub divergence: Option<usize>,
}

impl Comparison {
    pub fn new(a: RunFacts, b: RunFacts) -> Comparison {
        let mut steps: Vec<u64> = a.steps.iter().chain(&b.steps).map(|s| s.step).collect();
        steps.sort_unstable();
        steps.dedup();
        let find = |run: &RunFacts, n: u64| run.steps.iter().find(|s| s.step == n).cloned();
        let rows: Vec<Row> = steps
            .into_iter()
            .map(|n| Row {
                step: n,
                a: find(&a, n),
                b: find(&b, n),
            })
            .collect();
        let divergence = rows.iter().position(|row| match (&row.a, &row.b) {
            (Some(a), Some(b)) => !a.same_course(b),
            _ => true,
        });
        Comparison {
            a,
            b,
            rows,
            divergence,
        }
    }
}

/// `text` on one line in at most `max` characters; a cut ends in `…`.
pub fn abbreviate(text: &str, max: usize) -> String {
    let one_line = text.trim().replace('\n', " ⏎ ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// `text` for a column `width` characters wide: cut to one line with `…`, or wrapped whole.
pub fn column_cell(text: &str, width: usize, whole: bool) -> Vec<String> {
    if !whole {
        return vec![abbreviate(text, width)];
    }
    text.trim()
        .lines()
        .flat_map(|line| {
            let chars: Vec<char> = line.chars().collect();
            if chars.is_empty() {
                return vec![String::new()];
            }
            chars
                .chunks(width.max(1))
                .map(|chunk| chunk.iter().collect())
                .collect::<Vec<String>>()
        })
        .collect()
}

/// A call as `name(args)`, the arguments abbreviated to `max` characters.
pub fn call_label(call: &CallFacts, max: usize) -> String {
    format!("{}({})", call.name, abbreviate(&call.args, max))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::runtime::checkpoint::{Checkpoint, ExpertRef};
    use crate::runtime::event::{RunIds, Step, WireRequest};
    use crate::runtime::message::{Message, Part, ToolCall};

    fn ids(run: &str) -> RunIds {
        RunIds {
            job_id: "job".into(),
            run_id: run.into(),
            expert_key: "solo".into(),
            parent_run_id: None,
        }
    }

    fn at(mut event: RunEvent, timestamp: u64) -> RunEvent {
        event.timestamp = timestamp;
        event
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            ..Usage::default()
        }
    }

    fn request(model: &str) -> EventKind {
        EventKind::LlmRequest {
            request: WireRequest {
                provider: "openai".into(),
                model: model.into(),
                method: "POST".into(),
                url: "http://127.0.0.1/v1/chat/completions".into(),
                headers: Vec::new(),
                body: "{}".into(),
                edited: false,
            },
            attempt: 1,
        }
    }

    fn step(n: u64, calls: &[(&str, serde_json::Value)], used: Usage) -> Step {
        Step {
            step_number: n,
            new_messages: Vec::new(),
            tool_calls: calls
                .iter()
                .map(|(name, args)| ToolCall {
                    id: format!("id-{name}"),
                    skill_name: "@perstack/base".into(),
                    tool_name: name.to_string(),
                    args: args.clone(),
                })
                .collect(),
            tool_results: Vec::new(),
            usage: used,
            started_at: 0,
            finished_at: None,
        }
    }

    /// A run of `model` that calls `calls[i]` at step i+1, then answers `answer`.
    fn run(
        run_id: &str,
        model: &str,
        calls: &[(&str, serde_json::Value)],
        answer: &str,
    ) -> Vec<RunEvent> {
        let ids = ids(run_id);
        let checkpoint = Arc::new(Checkpoint::new(
            "job",
            run_id,
            ExpertRef {
                key: "solo".into(),
                name: "solo".into(),
                version: "1".into(),
            },
            Vec::new(),
        ));
        let mut events = Vec::new();
        let mut t = 1_000;
        for (i, call) in calls.iter().enumerate() {
            let n = i as u64 + 1;
            events.push(at(ids.event(n, request(model)), t));
            let tool_call = step(n, std::slice::from_ref(call), usage(100, 10)).tool_calls;
            events.push(at(
                ids.event(
                    n,
                    EventKind::CallTools {
                        new_message: Message::ExpertMessage {
                            id: "m".into(),
                            contents: vec![Part::text("thinking")],
                        },
                        tool_calls: tool_call,
                        usage: usage(100, 10),
                    },
                ),
                t + 250,
            ));
            events.push(at(
                ids.event(
                    n,
                    EventKind::ContinueToNextStep {
                        checkpoint: checkpoint.clone(),
                        next_checkpoint: checkpoint.clone(),
                        step: Box::new(step(n, std::slice::from_ref(call), usage(100, 10))),
                    },
                ),
                t + 300,
            ));
            t += 1_000;
        }
        let n = calls.len() as u64 + 1;
        events.push(at(ids.event(n, request(model)), t));
        events.push(at(
            ids.event(
                n,
                EventKind::CompleteRun {
                    checkpoint: checkpoint.clone(),
                    step: Box::new(step(n, &[], usage(200, 20))),
                    text: answer.into(),
                    usage: usage(400, 40),
                },
            ),
            t + 500,
        ));
        events
    }

    #[test]
    fn the_first_step_with_other_tool_calls_is_the_divergence() {
        let read = ("readTextFile", json!({"path": "a.md"}));
        let a = run(
            "ra",
            "gpt-4.1",
            &[read.clone(), ("listDirectory", json!({"path": "."}))],
            "Done.",
        );
        let b = run(
            "rb",
            "gpt-4.1-mini",
            &[read, ("readTextFile", json!({"path": "b.md"}))],
            "Done.",
        );
        let comparison = Comparison::new(
            RunFacts::from_events("ra", &a, Some(Variant::model("gpt-4.1"))),
            RunFacts::from_events("rb", &b, None),
        );
        assert_eq!(comparison.rows.len(), 3);
        assert_eq!(comparison.divergence, Some(1), "step 2 calls other tools");
        assert_eq!(comparison.rows[1].step, 2);
        let first = comparison.rows[0].a.as_ref().expect("step 1 of A");
        assert_eq!(first.latency_ms, Some(250));
        assert_eq!(first.usage.input_tokens, 100);
        assert_eq!(comparison.a.label(), "model=gpt-4.1");
        assert_eq!(comparison.b.label(), "model=gpt-4.1-mini");
        assert_eq!(comparison.a.ended, Some("completeRun"));
        let last = comparison.rows[2].b.as_ref().expect("last step of B");
        assert_eq!(last.answer, "Done.");
        assert_eq!(last.latency_ms, Some(500));
        // 400 input and 40 output tokens over the run, at gpt-4.1's $2 and $8 a million.
        let totals = comparison.a.totals();
        assert_eq!(totals.usage.input_tokens, 400);
        assert_eq!(totals.latency_ms, 1_000);
        let cost = totals.cost.expect("gpt-4.1 has a price");
        assert!((cost - 0.00112).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn the_same_course_has_no_divergence_and_an_extra_step_is_one() {
        let calls = [("healthCheck", json!({}))];
        let a = RunFacts::from_events("ra", &run("ra", "m", &calls, "Same."), None);
        let b = RunFacts::from_events("rb", &run("rb", "m", &calls, "Same."), None);
        assert_eq!(Comparison::new(a.clone(), b).divergence, None);
        let longer = run("rc", "m", &[calls[0].clone(), calls[0].clone()], "Same.");
        let c = RunFacts::from_events("rc", &longer, None);
        let comparison = Comparison::new(a, c);
        assert_eq!(
            comparison.divergence,
            Some(1),
            "A answers at step 2, C calls a tool"
        );
        assert_eq!(comparison.a.totals().cost, None, "model m has no price");
    }

    #[test]
    fn abbreviations_are_marked() {
        assert_eq!(abbreviate("short", 10), "short");
        assert_eq!(abbreviate("two\nlines", 20), "two ⏎ lines");
        assert_eq!(abbreviate("abcdefghijkl", 6), "abcde…");
        let call = CallFacts {
            name: "readTextFile".into(),
            args: r#"{"path":"a-very-long-name.md"}"#.into(),
        };
        assert_eq!(call_label(&call, 10), "readTextFile({\"path\":\"…)");
    }
}
