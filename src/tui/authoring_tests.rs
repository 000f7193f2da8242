//! The authoring loop in `AppState`: breakpoints, pauses, edits, forks, diffs and reloads,
//! driven by keys and events as the workbench drives them.

use std::path::Path;
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{
    AppState, DiffLine, DiffSource, EditorTarget, Effect, ExpertRow, JobState, Mode, Msg,
};
use super::keymap::PaneId;
use super::test_support::*;
use crate::definition::parse_str;
use crate::runtime::control::{BreakKind, Breakpoint, Control, PausePoint};
use crate::runtime::event::{EventKind, RunEvent};

pub(super) fn key(state: &mut AppState, code: KeyCode) -> Vec<Effect> {
    state.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

/// The scripted run up to its first request, then paused before that request is sent.
pub(super) fn paused_before_llm() -> AppState {
    let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
    let events = scripted_run(Moment::Completed).events;
    let upto = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::LlmRequest { .. }))
        .expect("the script sends a request");
    let request = events[upto].clone();
    for event in events.into_iter().take(upto + 1) {
        state.update(Msg::Run(Box::new(event)));
    }
    state.update(Msg::Run(Box::new(RunEvent {
        id: "ev-paused".into(),
        kind: EventKind::Paused {
            point: PausePoint::BeforeLlm,
        },
        ..request
    })));
    state
}

/// A completed job, then a fork of the coordinator's first checkpoint under a new instruction.
pub(super) fn forked() -> AppState {
    let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
    for event in scripted_run(Moment::Completed).events {
        state.update(Msg::Run(Box::new(event)));
    }
    state.focus = PaneId::Timeline;
    state.panes.timeline.cursor = coordinator_first_step(&state);
    let effects = key(&mut state, KeyCode::Char('F'));
    let [Effect::Fork { checkpoint, .. }] = effects.as_slice() else {
        panic!("F forks: {effects:?}");
    };
    for event in fork_run(checkpoint, "You are \"release-notes\", edited.\nBe brief.") {
        state.update(Msg::Run(Box::new(event)));
    }
    state
}

/// The Timeline entry of the coordinator's first step.
pub(super) fn coordinator_first_step(state: &AppState) -> usize {
    state
        .timeline
        .iter()
        .position(|e| e.run_id == COORD)
        .expect("the coordinator has checkpoints")
}

#[test]
fn breakpoint_keys_toggle_runtime_breakpoints_and_show_marks() {
    let mut state = AppState::new(&example_config(), "m".into());
    state.focus = PaneId::Experts;
    let effects = key(&mut state, KeyCode::Char('b'));
    let expected = Breakpoint {
        kind: BreakKind::BeforeLlm,
        expert: Some("release-notes".into()),
    };
    assert_eq!(effects, [Effect::SetBreakpoints(vec![expected.clone()])]);
    assert_eq!(state.breakpoint_marks("release-notes"), ["llm"]);
    assert!(state.breakpoint_marks("writer").is_empty());
    key(&mut state, KeyCode::Char('t'));
    key(&mut state, KeyCode::Char('a'));
    key(&mut state, KeyCode::Char('e'));
    assert_eq!(
        state.breakpoint_marks("release-notes"),
        ["llm", "tool", "step", "err"]
    );
    // The same key again clears its breakpoint.
    let effects = key(&mut state, KeyCode::Char('b'));
    assert_eq!(state.breakpoints.len(), 3);
    assert!(!state.breakpoints.contains(&expected));
    assert_eq!(effects, [Effect::SetBreakpoints(state.breakpoints.clone())]);
}

#[test]
fn one_key_breaks_before_every_experts_model_calls() {
    let mut state = AppState::new(&example_config(), "m".into());
    state.focus = PaneId::Experts;
    // Whatever the cursor is on: the breakpoint names no Expert.
    key(&mut state, KeyCode::Char('j'));
    let effects = state.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('B'),
        KeyModifiers::SHIFT,
    )));
    let every = Breakpoint {
        kind: BreakKind::BeforeLlm,
        expert: None,
    };
    assert_eq!(effects, [Effect::SetBreakpoints(vec![every.clone()])]);
    assert_eq!(
        state.status.as_deref(),
        Some("breakpoint set: before each model call of any Expert")
    );
    for expert in &state.experts {
        assert_eq!(
            state.breakpoint_marks(&expert.key),
            ["llm"],
            "{}",
            expert.key
        );
    }
    assert!(every.matches("writer", &PausePoint::BeforeLlm));
    let effects = state.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('B'),
        KeyModifiers::SHIFT,
    )));
    assert_eq!(effects, [Effect::SetBreakpoints(Vec::new())]);
    assert!(state.breakpoint_marks("writer").is_empty());
}

#[test]
fn a_tool_call_breakpoint_names_the_skill_and_tool_for_every_expert() {
    let mut state = AppState::new(&example_config(), "m".into());
    for event in scripted_run(Moment::Completed).events {
        state.update(Msg::Run(Box::new(event)));
    }
    state.focus = PaneId::ToolCalls;
    state.panes.tool_calls.cursor = 0;
    let call = state.visible_calls()[0].clone();
    let effects = key(&mut state, KeyCode::Char('b'));
    assert_eq!(
        effects,
        [Effect::SetBreakpoints(vec![Breakpoint {
            kind: BreakKind::BeforeTool {
                skill: Some(call.skill.clone()),
                tool: Some(call.tool.clone()),
            },
            expert: None,
        }])]
    );
    assert!(state.breaks_on_call("anyone", &call.skill, &call.tool));
}

#[test]
fn a_pause_shows_the_body_and_takes_step_continue_and_edit() {
    let mut state = paused_before_llm();
    let paused = state.paused.clone().expect("paused");
    assert_eq!(paused.point, PausePoint::BeforeLlm);
    assert_eq!(state.panes.prompt.view, super::app::PromptView::Raw);
    assert_eq!(
        key(&mut state, KeyCode::Char('s')),
        [Effect::Control(Control::Step)]
    );
    assert_eq!(
        key(&mut state, KeyCode::Char('c')),
        [Effect::Control(Control::Continue)]
    );
    let effects = key(&mut state, KeyCode::Char('E'));
    let [Effect::EditRequest { body }] = effects.as_slice() else {
        panic!("E edits: {effects:?}");
    };
    let body: serde_json::Value = serde_json::from_str(body).expect("the body is JSON");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    // `resumed` ends the pause; keys then do nothing to the runtime.
    let resumed = RunEvent {
        kind: EventKind::Resumed {
            control: Control::Continue,
        },
        ..scripted_run(Moment::Completed).events[1].clone()
    };
    state.update(Msg::Run(Box::new(resumed)));
    assert!(state.paused.is_none());
    assert!(key(&mut state, KeyCode::Char('c')).is_empty());
    assert!(key(&mut state, KeyCode::Char('E')).is_empty());
    assert!(state.status.as_deref().unwrap_or("").contains("pause"));
}

#[test]
fn a_refused_edit_says_why_and_an_edited_request_is_marked() {
    let mut state = paused_before_llm();
    let template = scripted_run(Moment::Completed).events[2].clone();
    state.update(Msg::Run(Box::new(RunEvent {
        kind: EventKind::RequestEditRefused {
            error: "the body is not valid JSON: expected `,` at line 2 column 3".into(),
        },
        ..template.clone()
    })));
    assert!(
        state
            .status
            .as_deref()
            .unwrap_or("")
            .contains("line 2 column 3")
    );
    let mut edited = request(&[]);
    edited.edited = true;
    state.update(Msg::Run(Box::new(RunEvent {
        kind: EventKind::LlmRequest {
            request: edited,
            attempt: 1,
        },
        ..template
    })));
    let (_, step) = state.current_step().expect("a step");
    assert!(step.request.as_ref().is_some_and(|r| r.edited));
}

#[test]
fn forking_a_checkpoint_adds_a_branch_and_selects_it() {
    let state = forked();
    assert_eq!(state.job_state, JobState::Completed);
    let fork = state
        .timeline
        .iter()
        .find(|e| e.run_id == FORK)
        .expect("the fork's checkpoint");
    assert_eq!(fork.fork_of, Some(coordinator_first_step(&state)));
    assert_eq!(state.current_run().map(|r| r.run_id.as_str()), Some(FORK));
    // Both top-level runs are in the tree; the original keeps its runs and timeline.
    let runs: Vec<String> = state
        .expert_rows()
        .into_iter()
        .filter_map(|r| match r {
            ExpertRow::Run { run_id, depth: 0 } => Some(run_id),
            _ => None,
        })
        .collect();
    assert_eq!(runs, [COORD.to_string(), FORK.to_string()]);
    assert!(state.runs.contains_key(COORD));
}

#[test]
fn a_diff_compares_a_marked_checkpoint_with_another() {
    let mut state = forked();
    state.focus = PaneId::Timeline;
    state.panes.timeline.cursor = coordinator_first_step(&state);
    key(&mut state, KeyCode::Char('m'));
    assert_eq!(state.diff_mark, Some(state.panes.timeline.cursor));
    state.panes.timeline.cursor = state.timeline.len() - 1;
    key(&mut state, KeyCode::Char('d'));
    assert_eq!(state.mode, Mode::Diff);
    let view = state.diff.clone().expect("a diff");
    assert_eq!(view.source, DiffSource::Messages);
    assert!(view.added > 0, "{view:?}");
    assert!(
        view.lines
            .iter()
            .any(|(kind, text)| *kind == DiffLine::Added && text.contains("take two"))
    );
    key(&mut state, KeyCode::Char('v'));
    assert_eq!(
        state.diff.as_ref().map(|d| d.source),
        Some(DiffSource::Requests)
    );
    key(&mut state, KeyCode::Esc);
    assert_eq!(state.mode, Mode::Normal);
    assert!(state.diff.is_none());
}

#[test]
fn a_reload_swaps_the_experts_and_a_failed_one_keeps_them() {
    let mut state = AppState::new(&example_config(), "m".into());
    state.selected_expert = 2;
    let source = include_str!("../../perstack.toml").replace("\"writer\"", "\"editor\"");
    let (config, _) = parse_str(&source, Path::new("perstack.toml")).expect("valid");
    let bad = "[experts.a]\ndelegates = [\"nobody\"]\n";
    let diagnostics = parse_str(bad, Path::new("perstack.toml")).expect_err("invalid");
    state.update(Msg::ReloadFailed(
        diagnostics.iter().map(|d| d.render()).collect(),
    ));
    assert!(!state.reload_errors.is_empty());
    assert!(
        state.reload_errors[0].contains("perstack.toml:"),
        "{:?}",
        state.reload_errors
    );
    assert_eq!(state.experts.len(), 3, "the last good definitions stay");
    state.update(Msg::Reloaded {
        config: Arc::new(config),
        changes: vec!["expert \"editor\" added".into()],
        lock: None,
        registry: Vec::new(),
    });
    assert!(state.reload_errors.is_empty());
    let keys: Vec<&str> = state.experts.iter().map(|e| e.key.as_str()).collect();
    assert!(
        keys.contains(&"editor") && !keys.contains(&"writer"),
        "{keys:?}"
    );
    assert!(state.status.as_deref().unwrap_or("").contains("editor"));
}

#[test]
fn a_completed_checkpoint_is_not_forked_and_a_running_job_blocks_forks() {
    let mut state = AppState::new(&example_config(), "m".into());
    for event in scripted_run(Moment::Completed).events {
        state.update(Msg::Run(Box::new(event)));
    }
    state.focus = PaneId::Timeline;
    state.panes.timeline.cursor = state.timeline.len() - 1;
    assert!(key(&mut state, KeyCode::Char('F')).is_empty());
    assert!(state.status.as_deref().unwrap_or("").contains("follow-up"));
    state.job_state = JobState::Running;
    state.panes.timeline.cursor = coordinator_first_step(&state);
    assert!(key(&mut state, KeyCode::Char('F')).is_empty());
    assert!(state.status.as_deref().unwrap_or("").contains("active"));
}

#[test]
fn o_opens_the_expert_the_calls_skill_or_the_first_reload_error() {
    let mut state = AppState::new(&example_config(), "m".into());
    for event in scripted_run(Moment::Completed).events {
        state.update(Msg::Run(Box::new(event)));
    }
    state.focus = PaneId::Experts;
    let definitions = state
        .expert_rows()
        .iter()
        .position(|r| *r == ExpertRow::Expert(1))
        .expect("a second Expert");
    state.panes.experts.cursor = definitions;
    assert_eq!(
        key(&mut state, KeyCode::Char('o')),
        [Effect::OpenInEditor(EditorTarget::Definition {
            expert: "changelog-reader".into(),
            skill: None,
        })]
    );
    state.focus = PaneId::ToolCalls;
    let call = state.job().visible_calls()[0].clone();
    assert_eq!(
        key(&mut state, KeyCode::Char('o')),
        [Effect::OpenInEditor(EditorTarget::Definition {
            expert: "release-notes".into(),
            skill: Some(call.skill),
        })]
    );
    // While perstack.toml does not load, o opens its first error, whatever the focus.
    state.update(Msg::ReloadFailed(vec![
        "warning[W1]: unused\n  --> /p/perstack.toml:2:1\n".into(),
        "error[E7]: unknown key `instructions`\n  --> /p/perstack.toml:12:5\n   |\n".into(),
    ]));
    assert_eq!(
        key(&mut state, KeyCode::Char('o')),
        [Effect::OpenInEditor(EditorTarget::File {
            path: "/p/perstack.toml".into(),
            line: 12,
        })]
    );
}

#[test]
fn o_on_a_skill_row_opens_the_skill_and_its_breakpoint_keys_mean_its_expert() {
    let mut state = AppState::new(&example_config(), "m".into());
    state.focus = PaneId::Experts;
    // Down from the first Expert lands on its first skill, then its second.
    key(&mut state, KeyCode::Down);
    key(&mut state, KeyCode::Down);
    assert_eq!(
        state.expert_rows()[state.panes.experts.cursor],
        ExpertRow::Skill {
            expert: 0,
            skill: 1
        }
    );
    let skill = state.experts[0].skills[1].name.clone();
    assert_eq!(skill, "ask-user");
    assert_eq!(
        key(&mut state, KeyCode::Char('o')),
        [Effect::OpenInEditor(EditorTarget::Definition {
            expert: "release-notes".into(),
            skill: Some(skill),
        })]
    );
    let effects = key(&mut state, KeyCode::Char('b'));
    assert!(
        matches!(effects.as_slice(), [Effect::SetBreakpoints(b)] if b.len() == 1
            && b[0].expert.as_deref() == Some("release-notes")),
        "{effects:?}"
    );
}
