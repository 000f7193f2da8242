use serde_json::json;

use super::*;
use crate::runtime::checkpoint::ExpertRef;
use crate::tool::ToolOutput;

fn fresh_checkpoint() -> Checkpoint {
    let expert = ExpertRef {
        key: "lead".into(),
        name: "lead".into(),
        version: "1.0.0".into(),
    };
    Checkpoint {
        id: "cp0".into(),
        ..Checkpoint::new(
            "job",
            "run",
            expert,
            vec![Message::instruction_with(
                &crate::runtime::id::CountingClock::new(0),
                "system prompt",
            )],
        )
    }
}

fn tools() -> HashMap<String, ToolKind> {
    let base = || ToolKind::Skill {
        skill_name: "@perstack/base".into(),
    };
    HashMap::from([
        ("readTextFile".to_string(), base()),
        (ATTEMPT_COMPLETION.to_string(), base()),
        (
            "writer".to_string(),
            ToolKind::Delegate {
                expert_key: "writer".into(),
            },
        ),
        (
            "askUser".to_string(),
            ToolKind::Interactive {
                skill_name: "ask".into(),
            },
        ),
    ])
}

fn clock() -> Arc<dyn crate::runtime::id::Clock> {
    Arc::new(crate::runtime::id::CountingClock::new(1_000))
}

fn machine() -> Machine {
    Machine::new(fresh_checkpoint(), 2, tools(), clock())
}

fn names(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .map(|effect| match effect {
            Effect::Emit(kind) => kind.name().to_string(),
            Effect::SaveCheckpoint(c) => format!("save:{:?}", c.status),
            Effect::ReserveStep => "reserve".into(),
            Effect::Generate { run_result, .. } => format!("generate:{run_result}"),
            Effect::CallTools(calls) => format!(
                "call:{}",
                calls
                    .iter()
                    .map(|c| c.tool_name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Effect::Finish(status) => format!("finish:{status:?}"),
        })
        .collect()
}

fn text(answer: &str) -> Input {
    Input::Generated(Generation {
        text: answer.into(),
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            total_tokens: 15,
            ..Usage::default()
        },
        ..Generation::default()
    })
}

fn calls(list: &[(&str, &str)]) -> Input {
    Input::Generated(Generation {
        tool_calls: list
            .iter()
            .map(|(id, name)| GeneratedCall {
                id: id.to_string(),
                name: name.to_string(),
                args: json!({"path": "a.txt"}),
            })
            .collect(),
        ..Generation::default()
    })
}

fn result(id: &str, tool: &str, text: &str) -> ToolResult {
    ToolResult {
        id: id.into(),
        skill_name: "@perstack/base".into(),
        tool_name: tool.into(),
        result: ToolOutput::text(text),
    }
}

fn begin(machine: &mut Machine) {
    assert_eq!(
        names(&machine.start(vec![Message::user("hello")])),
        ["startRun", "save:Init", "reserve"]
    );
    assert_eq!(
        names(&machine.handle(Input::StepReserved(true))),
        ["startGeneration", "generate:false"]
    );
}

#[test]
fn a_text_answer_completes_the_run() {
    let mut m = machine();
    begin(&mut m);
    let effects = m.handle(text("All done."));
    assert_eq!(
        names(&effects),
        ["save:Completed", "completeRun", "finish:Completed"]
    );
    assert_eq!(m.state(), State::Stopped(CheckpointStatus::Completed));
    assert_eq!(m.checkpoint().messages.len(), 3);
    assert_eq!(m.checkpoint().usage.total_tokens, 15);
    let Some(Effect::Emit(EventKind::CompleteRun { text, .. })) = effects.get(1) else {
        panic!("completeRun expected")
    };
    assert_eq!(text, "All done.");
}

#[test]
fn a_tool_step_saves_a_checkpoint_and_moves_to_the_next_step() {
    let mut m = machine();
    begin(&mut m);
    let effects = m.handle(calls(&[("c1", "readTextFile")]));
    assert_eq!(names(&effects), ["callTools", "call:readTextFile"]);
    assert_eq!(m.state(), State::CallingTool);
    let effects = m.handle(Input::ToolsDone {
        results: vec![result("c1", "readTextFile", "contents")],
        completion_accepted: None,
        delegated_usage: Usage::default(),
    });
    assert_eq!(
        names(&effects),
        [
            "resolveToolResults",
            "finishToolCall",
            "save:Proceeding",
            "continueToNextStep",
            "reserve"
        ]
    );
    let Some(Effect::SaveCheckpoint(saved)) = effects.get(2) else {
        panic!("save expected")
    };
    assert_eq!(saved.step_number, 1);
    assert_eq!(saved.id, "cp0");
    assert_eq!(saved.messages.len(), 4);
    assert_eq!(m.checkpoint().step_number, 2);
    assert_ne!(m.checkpoint().id, "cp0");
    assert_eq!(m.state(), State::PreparingForStep);
}

#[test]
fn accepted_completion_generates_the_run_result() {
    let mut m = machine();
    begin(&mut m);
    m.handle(calls(&[("c1", ATTEMPT_COMPLETION)]));
    let effects = m.handle(Input::ToolsDone {
        results: vec![result("c1", ATTEMPT_COMPLETION, "{}")],
        completion_accepted: Some(true),
        delegated_usage: Usage::default(),
    });
    assert_eq!(names(&effects), ["attemptCompletion", "generate:true"]);
    assert_eq!(m.state(), State::GeneratingRunResult);
    let effects = m.handle(text("Here is the result."));
    assert_eq!(
        names(&effects),
        ["save:Completed", "completeRun", "finish:Completed"]
    );
}

#[test]
fn completion_with_open_todos_goes_on() {
    let mut m = machine();
    begin(&mut m);
    m.handle(calls(&[("c1", ATTEMPT_COMPLETION)]));
    let effects = m.handle(Input::ToolsDone {
        results: vec![result("c1", ATTEMPT_COMPLETION, "{\"remainingTodos\":[]}")],
        completion_accepted: Some(false),
        delegated_usage: Usage::default(),
    });
    assert_eq!(names(&effects).last().map(String::as_str), Some("reserve"));
    assert_eq!(m.state(), State::PreparingForStep);
}

#[test]
fn an_empty_answer_is_retried_with_a_note_then_gives_up() {
    let mut m = machine();
    begin(&mut m);
    assert_eq!(
        names(&m.handle(text(""))),
        ["retry", "startGeneration", "generate:false"]
    );
    assert_eq!(
        m.checkpoint().messages.last().map(|m| m.text()),
        Some(EMPTY_ANSWER_NOTE.to_string())
    );
    assert_eq!(
        names(&m.handle(text("  "))),
        ["retry", "startGeneration", "generate:false"]
    );
    let effects = m.handle(text(""));
    assert_eq!(
        names(&effects),
        [
            "save:StoppedByError",
            "stopRunByError",
            "finish:StoppedByError"
        ]
    );
    assert_eq!(
        m.checkpoint().error.as_ref().map(|e| e.name.as_str()),
        Some("RetryLimitExceeded")
    );
}

#[test]
fn a_truncated_answer_is_retried() {
    let mut m = machine();
    begin(&mut m);
    let effects = m.handle(Input::Generated(Generation {
        text: "half an ans".into(),
        truncated: true,
        ..Generation::default()
    }));
    assert_eq!(
        names(&effects),
        ["retry", "startGeneration", "generate:false"]
    );
}

#[test]
fn max_steps_stops_the_run() {
    let mut m = machine();
    m.start(vec![Message::user("hello")]);
    let effects = m.handle(Input::StepReserved(false));
    assert_eq!(
        names(&effects),
        [
            "save:StoppedByExceededMaxSteps",
            "stopRunByExceededMaxSteps",
            "finish:StoppedByExceededMaxSteps"
        ]
    );
}

#[test]
fn a_model_failure_stops_with_the_error() {
    let mut m = machine();
    begin(&mut m);
    let effects = m.handle(Input::GenerationFailed(CheckpointError {
        name: "ProviderError".into(),
        message: "anthropic: HTTP 500".into(),
        status_code: Some(500),
        is_retryable: true,
    }));
    assert_eq!(
        names(&effects),
        [
            "save:StoppedByError",
            "stopRunByError",
            "finish:StoppedByError"
        ]
    );
    assert_eq!(
        m.checkpoint().error.as_ref().and_then(|e| e.status_code),
        Some(500)
    );
}

#[test]
fn delegates_are_called_like_tools() {
    let mut m = machine();
    begin(&mut m);
    let effects = m.handle(calls(&[("d1", "writer"), ("d2", "writer")]));
    assert_eq!(names(&effects), ["callTools", "call:writer,writer"]);
    assert_eq!(m.state(), State::CallingDelegate);
}

#[test]
fn interactive_calls_stop_the_run_and_resume_with_the_answer() {
    let mut m = machine();
    begin(&mut m);
    let effects = m.handle(calls(&[("r1", "readTextFile"), ("q1", "askUser")]));
    assert_eq!(names(&effects), ["callTools", "call:readTextFile"]);
    let effects = m.handle(Input::ToolsDone {
        results: vec![result("r1", "readTextFile", "x")],
        completion_accepted: None,
        delegated_usage: Usage::default(),
    });
    assert_eq!(
        names(&effects),
        [
            "callInteractiveTool",
            "save:StoppedByInteractiveTool",
            "stopRunByInteractiveTool",
            "finish:StoppedByInteractiveTool"
        ]
    );
    let stored = m.checkpoint().clone();
    assert_eq!(stored.pending_tool_calls.as_ref().map(Vec::len), Some(1));
    assert_eq!(stored.partial_tool_results.as_ref().map(Vec::len), Some(1));

    let mut resumed = Machine::new(stored, 2, tools(), clock());
    assert_eq!(names(&resumed.start(Vec::new())), ["startRun"]);
    assert_eq!(resumed.state(), State::CallingInteractiveTool);
    let effects = resumed.handle(Input::InteractiveAnswered(vec![result(
        "q1",
        "askUser",
        "developers",
    )]));
    assert_eq!(names(&effects).last().map(String::as_str), Some("reserve"));
    let Some(Message::ToolMessage { contents, .. }) =
        resumed.checkpoint().messages.last().map(|m| &**m)
    else {
        panic!("tool message expected")
    };
    assert_eq!(
        contents.len(),
        2,
        "both the earlier result and the answer are sent"
    );
    assert!(resumed.checkpoint().pending_tool_calls.is_none());
}

#[test]
fn cancel_stops_from_any_state() {
    let mut m = machine();
    begin(&mut m);
    let effects = m.handle(Input::Cancelled);
    assert_eq!(
        names(&effects),
        [
            "save:StoppedByCancel",
            "stopRunByCancel",
            "finish:StoppedByCancel"
        ]
    );
    assert!(
        m.handle(text("late")).is_empty(),
        "a stopped machine ignores input"
    );
}

#[test]
fn an_unexpected_input_is_an_error_not_a_panic() {
    let mut m = machine();
    begin(&mut m);
    let effects = m.handle(Input::StepReserved(true));
    assert_eq!(
        names(&effects),
        [
            "save:StoppedByError",
            "stopRunByError",
            "finish:StoppedByError"
        ]
    );
}

#[test]
fn delegated_usage_is_added_to_the_parent() {
    let mut m = machine();
    begin(&mut m);
    m.handle(calls(&[("d1", "writer")]));
    m.handle(Input::ToolsDone {
        results: vec![result("d1", "writer", "written")],
        completion_accepted: None,
        delegated_usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
            total_tokens: 120,
            ..Usage::default()
        },
    });
    assert_eq!(m.checkpoint().usage.total_tokens, 120);
}

#[test]
fn a_hand_edited_request_is_recorded_in_every_later_checkpoint() {
    let mut m = machine();
    begin(&mut m);
    let step = m.checkpoint().step_number;
    m.handle(Input::Generated(Generation {
        edited_request: true,
        ..match calls(&[("c1", "readTextFile")]) {
            Input::Generated(g) => g,
            _ => unreachable!("calls() builds a generation"),
        }
    }));
    assert_eq!(m.checkpoint().edited_requests, [step]);
}

#[test]
fn the_same_inputs_give_the_same_checkpoints_byte_for_byte() {
    let run = || {
        let mut m = machine();
        m.start(vec![Message::user_with(&*clock(), "hello")]);
        m.handle(Input::StepReserved(true));
        m.handle(calls(&[("c1", "readTextFile")]));
        let effects = m.handle(Input::ToolsDone {
            results: vec![result("c1", "readTextFile", "text")],
            completion_accepted: None,
            delegated_usage: Usage::default(),
        });
        m.handle(Input::StepReserved(true));
        m.handle(text("Done."));
        let saved: Vec<String> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::SaveCheckpoint(c) => serde_json::to_string(c).ok(),
                _ => None,
            })
            .collect();
        (
            saved,
            serde_json::to_string(m.checkpoint()).unwrap_or_default(),
        )
    };
    let (first, second) = (run(), run());
    assert!(!first.0.is_empty(), "a tool step saves a checkpoint");
    assert_eq!(first, second);
    assert!(first.1.contains("\"id\":\"id"), "ids come from the clock");
}

#[test]
fn a_paused_provider_answer_is_kept_and_asked_again_in_the_same_step() {
    let mut m = machine();
    begin(&mut m);
    let used = crate::llm::ProviderToolUse {
        id: "srvtoolu_1".into(),
        name: "web_search".into(),
        args: json!({"query": "rust"}),
        result: Some(json!({"type": "web_search_tool_result", "content": []})),
    };
    let effects = m.handle(Input::Generated(Generation {
        provider_tools: vec![used],
        paused_by_provider: true,
        ..Generation::default()
    }));
    assert_eq!(
        names(&effects),
        ["startGeneration", "generate:false"],
        "no retry note, no tool call"
    );
    let kept = m.checkpoint().messages.last().expect("kept").clone();
    assert!(
        matches!(kept.contents(), [Part::ProviderToolPart { tool_call_id, .. }] if tool_call_id == "srvtoolu_1"),
        "{kept:?}"
    );
    let effects = m.handle(text("Rust 1.90 is out."));
    assert!(
        names(&effects).contains(&"completeRun".to_string()),
        "{:?}",
        names(&effects)
    );
}
