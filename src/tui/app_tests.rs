//! `AppState` driven by whole event sequences and keys: no terminal, no clock, no IO.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{AppState, CallStatus, Effect, JobState, Mode, Msg, PromptView, RunStatus};
use super::keymap::PaneId;
use super::test_support::*;
use crate::runtime::checkpoint::CheckpointStatus;
use crate::runtime::event::EventKind;

fn feed(moment: Moment) -> AppState {
    let script = scripted_run(moment);
    let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
    for event in script.events {
        state.update(Msg::Run(Box::new(event)));
    }
    state.update(Msg::Tick {
        now_ms: script_now(moment),
    });
    state
}

fn script_now(moment: Moment) -> u64 {
    scripted_run(moment).now() + 1_000
}

fn key(state: &mut AppState, code: KeyCode) -> Vec<Effect> {
    state.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn type_text(state: &mut AppState, text: &str) {
    for c in text.chars() {
        key(state, KeyCode::Char(c));
    }
}

#[test]
fn definitions_list_skills_tools_and_delegates() {
    let state = AppState::new(&example_config(), "m".into());
    let keys: Vec<&str> = state.experts.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["release-notes", "changelog-reader", "writer"]);
    let coord = &state.experts[0];
    assert_eq!(coord.delegates, ["changelog-reader", "writer"]);
    let base = &coord.skills[0];
    assert_eq!(
        base.tools.as_deref().unwrap(),
        ["attemptCompletion", "todo", "readTextFile", "getFileInfo"]
    );
    assert_eq!(coord.skills[1].tools.as_deref().unwrap(), ["askUser"]);
}

#[test]
fn parallel_delegates_run_side_by_side_under_a_waiting_coordinator() {
    let state = feed(Moment::ParallelDelegates);
    assert_eq!(state.job_state, JobState::Running);
    assert_eq!(state.root_run.as_deref(), Some(COORD));
    let root = &state.runs[COORD];
    assert_eq!(root.children, [READER, WRITER]);
    assert_eq!(state.run_label(root), "waiting");
    for child in [READER, WRITER] {
        assert_eq!(state.runs[child].status, RunStatus::Running);
        assert_eq!(state.run_label(&state.runs[child]), "running");
        assert_eq!(state.runs[child].parent.as_deref(), Some(COORD));
    }
    // The reader's file read is in flight.
    let reader = &state.runs[READER];
    assert_eq!(reader.calls.len(), 1);
    assert_eq!(reader.calls[0].status, CallStatus::Running);
    // The coordinator's two delegate calls lead to the two runs.
    let links: Vec<_> = root
        .calls
        .iter()
        .map(|c| c.delegate_run.as_deref())
        .collect();
    assert_eq!(links, [Some(READER), Some(WRITER)]);
}

#[test]
fn streaming_text_accumulates_in_the_step() {
    let state = feed(Moment::Streaming);
    let (n, step) = state.current_step().unwrap();
    assert_eq!(n, 1);
    assert!(step.streaming);
    assert_eq!(step.text, "I'll ask both delegates at once.");
    assert_eq!(step.reasoning, "The audience is given. ");
    let lines: Vec<String> = (0..state.prompt_len())
        .filter_map(|i| state.prompt_line(i))
        .collect();
    assert!(lines.iter().any(|l| l.contains("at once.")), "{lines:?}");
    assert!(
        step.request
            .as_ref()
            .unwrap()
            .headers
            .iter()
            .any(|(_, v)| v == "[redacted]")
    );
}

#[test]
fn a_completed_run_has_totals_timeline_and_results() {
    let state = feed(Moment::Completed);
    assert_eq!(state.job_state, JobState::Completed);
    assert!(state.runs.values().all(|r| r.status == RunStatus::Done));
    let root = &state.runs[COORD];
    assert_eq!(root.step, 2);
    assert_eq!(root.usage.input_tokens, 3170 + 2300 + 900);
    assert_eq!(
        state.total_usage().input_tokens,
        3170 + 2300 + 900,
        "finished delegates are counted once, in their parent"
    );
    assert_eq!(
        root.result.as_deref(),
        Some("Release notes written to RELEASE_NOTES.md.")
    );
    let durations: Vec<_> = root.calls.iter().map(|c| c.duration_ms).collect();
    assert_eq!(durations, [Some(420), Some(380), None]);
    assert!(root.calls.iter().all(|c| c.status == CallStatus::Done));
    assert_eq!(
        root.calls[2].result.as_deref(),
        Some("{\"remainingTodos\": []}")
    );
    let timeline: Vec<(&str, u64, CheckpointStatus)> = state
        .timeline
        .iter()
        .map(|e| (e.run_id.as_str(), e.step, e.status))
        .collect();
    assert_eq!(
        timeline,
        [
            (READER, 1, CheckpointStatus::Proceeding),
            (READER, 2, CheckpointStatus::Completed),
            (WRITER, 1, CheckpointStatus::Completed),
            (COORD, 1, CheckpointStatus::Proceeding),
            (COORD, 2, CheckpointStatus::Completed),
        ]
    );
    assert_eq!(state.timeline[0].depth, 1);
    assert_eq!(state.panes.timeline.cursor, 4);
    assert!(state.resume_from.is_some());
}

#[test]
fn an_error_stops_the_job_and_says_why() {
    let state = feed(Moment::Error);
    assert_eq!(state.job_state, JobState::Failed);
    assert_eq!(state.runs[COORD].status, RunStatus::Error);
    assert!(
        state
            .status
            .as_deref()
            .unwrap()
            .contains("401 Unauthorized")
    );
}

#[test]
fn enter_on_a_delegate_call_selects_the_child_run() {
    let mut state = feed(Moment::Completed);
    key(&mut state, KeyCode::Char('3'));
    assert_eq!(state.focus, PaneId::ToolCalls);
    key(&mut state, KeyCode::Char('l'));
    assert!(state.panes.tool_calls.expanded);
    key(&mut state, KeyCode::Char('h'));
    assert!(!state.panes.tool_calls.expanded);
    key(&mut state, KeyCode::Enter);
    assert_eq!(state.current_run().unwrap().run_id, READER);
    assert_eq!(state.visible_calls().len(), 1);
    assert_eq!(state.visible_calls()[0].tool, "readTextFile");
}

#[test]
fn a_pinned_checkpoint_shows_the_state_at_that_step() {
    let mut state = feed(Moment::Completed);
    key(&mut state, KeyCode::Char('4'));
    // The coordinator's first checkpoint.
    for _ in 0..1 {
        key(&mut state, KeyCode::Up);
    }
    assert_eq!(state.panes.timeline.cursor, 3);
    key(&mut state, KeyCode::Enter);
    assert_eq!(state.pinned, Some(3));
    assert_eq!(state.current_step().unwrap().0, 1);
    assert_eq!(
        state.visible_calls().len(),
        2,
        "only the calls up to step 1"
    );
    key(&mut state, KeyCode::Esc);
    assert_eq!(state.pinned, None);
    assert_eq!(state.current_step().unwrap().0, 2);
    assert_eq!(state.visible_calls().len(), 3);
}

#[test]
fn focus_keys_cycle_and_quit_asks_while_running() {
    let mut state = feed(Moment::ToolCallInFlight);
    assert_eq!(state.focus, PaneId::Experts);
    key(&mut state, KeyCode::Tab);
    assert_eq!(state.focus, PaneId::Prompt);
    key(&mut state, KeyCode::BackTab);
    key(&mut state, KeyCode::BackTab);
    assert_eq!(state.focus, PaneId::Timeline);
    assert!(key(&mut state, KeyCode::Char('q')).is_empty());
    assert_eq!(state.mode, Mode::ConfirmQuit);
    key(&mut state, KeyCode::Char('n'));
    assert_eq!(state.mode, Mode::Normal);
    key(&mut state, KeyCode::Char('q'));
    assert_eq!(key(&mut state, KeyCode::Char('y')), [Effect::Quit]);
    assert_eq!(key(&mut state, KeyCode::Char('x')), [Effect::Cancel]);
    let mut idle = AppState::new(&example_config(), "m".into());
    assert_eq!(key(&mut idle, KeyCode::Char('q')), [Effect::Quit]);
}

#[test]
fn the_query_box_starts_a_run_of_the_selected_expert() {
    let mut state = AppState::new(&example_config(), "m".into());
    // The cursor stops on the open Expert's two skills, skips its tools and delegates, and
    // reaches the next Expert.
    key(&mut state, KeyCode::Down);
    assert_eq!(
        state.expert_rows()[state.panes.experts.cursor],
        super::app::ExpertRow::Skill {
            expert: 0,
            skill: 0
        }
    );
    key(&mut state, KeyCode::Down);
    key(&mut state, KeyCode::Down);
    assert_eq!(
        state.expert_rows()[state.panes.experts.cursor],
        super::app::ExpertRow::Expert(1)
    );
    key(&mut state, KeyCode::Enter);
    assert_eq!(state.selected_expert_key(), Some("changelog-reader"));
    key(&mut state, KeyCode::Char('i'));
    type_text(&mut state, "Summarise");
    state.update(Msg::Paste(" the\rlog".into()));
    let effects = key(&mut state, KeyCode::Enter);
    // A pasted line break stays one: the query has two lines.
    assert_eq!(
        effects,
        [
            Effect::StartRun {
                expert_key: "changelog-reader".into(),
                query: "Summarise the\nlog".into()
            },
            Effect::RememberQuery {
                query: "Summarise the\nlog".into()
            }
        ]
    );
    assert_eq!(state.job_state, JobState::Running);
}

#[test]
fn without_a_provider_the_query_waits_for_replay() {
    let mut state = AppState::new(&example_config(), "m".into());
    state.provider_error = Some("ANTHROPIC_API_KEY is not set".into());
    let effects = state.start_query("release-notes", "hello".into());
    assert!(effects.is_empty());
    assert_eq!(
        state.mode,
        Mode::Query {
            input: "hello".into()
        }
    );
    assert!(
        state.history.entries().is_empty(),
        "a query that did not start is not remembered"
    );
    key(&mut state, KeyCode::Esc);
    assert_eq!(key(&mut state, KeyCode::Char('r')), [Effect::UseReplay]);
    state.update(Msg::ProviderReady {
        model: "replay".into(),
        note: Some("replay".into()),
    });
    assert!(state.provider_error.is_none());
}

#[test]
fn an_interactive_call_opens_a_dialog_whose_answer_resumes_the_run() {
    let mut script = Script::new();
    let ask = call(
        "tc-ask",
        "ask-user",
        "askUser",
        serde_json::json!({"question": "Who reads the notes?"}),
    );
    script.push(
        COORD,
        "release-notes",
        1,
        EventKind::CallInteractiveTool {
            tool_call: ask.clone(),
        },
    );
    let mut stopped = checkpoint(
        COORD,
        "release-notes",
        1,
        CheckpointStatus::StoppedByInteractiveTool,
        usage(10, 2),
    );
    std::sync::Arc::make_mut(&mut stopped).pending_tool_calls = Some(vec![ask.clone()]);
    script.push(
        COORD,
        "release-notes",
        1,
        EventKind::StopRunByInteractiveTool {
            checkpoint: stopped.clone(),
        },
    );
    let mut state = AppState::new(&example_config(), "m".into());
    for event in script.events {
        state.update(Msg::Run(Box::new(event)));
    }
    assert_eq!(state.job_state, JobState::WaitingForAnswer);
    assert!(
        matches!(&state.mode, Mode::Answer { question, .. } if question == "Who reads the notes?")
    );
    // Esc puts the question aside; f brings it back.
    key(&mut state, KeyCode::Esc);
    assert_eq!(state.mode, Mode::Normal);
    key(&mut state, KeyCode::Char('f'));
    assert!(matches!(&state.mode, Mode::Answer { .. }));
    type_text(&mut state, "developers");
    let effects = key(&mut state, KeyCode::Enter);
    let [
        Effect::Resume {
            expert_key,
            checkpoint,
            query,
            answers,
        },
    ] = effects.as_slice()
    else {
        panic!("{effects:?}");
    };
    assert_eq!(expert_key, "release-notes");
    assert_eq!(checkpoint.id, stopped.id);
    assert_eq!(*query, None);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].id, "tc-ask");
    assert_eq!(answers[0].result.joined_text(), "developers");
}

#[test]
fn follow_up_after_completion_resumes_with_a_query() {
    let mut state = feed(Moment::Completed);
    key(&mut state, KeyCode::Char('f'));
    type_text(&mut state, "Shorter, please");
    let effects = key(&mut state, KeyCode::Enter);
    assert!(matches!(
        effects.as_slice(),
        [
            Effect::Resume { query: Some(q), answers, .. },
            Effect::RememberQuery { query },
        ] if q == "Shorter, please" && answers.is_empty() && query == q
    ));
}

#[test]
fn prompt_views_search_and_write() {
    let mut state = feed(Moment::Completed);
    key(&mut state, KeyCode::Char('2'));
    key(&mut state, KeyCode::Char('v'));
    assert_eq!(state.panes.prompt.view, PromptView::Raw);
    assert_eq!(
        state.prompt_line(0),
        None,
        "the first lines are the url and headers"
    );
    key(&mut state, KeyCode::Char('/'));
    type_text(&mut state, "max_tokens");
    key(&mut state, KeyCode::Enter);
    assert!(
        state
            .prompt_line(state.panes.prompt.scroll)
            .unwrap()
            .contains("max_tokens")
    );
    let effects = key(&mut state, KeyCode::Char('w'));
    let [Effect::WriteBody { name, body }] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert!(name.starts_with("request-release-notes-"), "{name}");
    assert!(body.starts_with('{'));
    // h goes back a step.
    key(&mut state, KeyCode::Char('h'));
    assert_eq!(state.current_step().unwrap().0, 1);
}

#[test]
fn clicks_focus_panes_and_select_rows() {
    let mut state = feed(Moment::Completed);
    state.update(Msg::Resize {
        width: 200,
        height: 50,
    });
    // The Timeline is the rightmost column; its first row is at y = 1.
    state.update(Msg::Click { col: 195, row: 1 });
    assert_eq!(state.focus, PaneId::Timeline);
    assert_eq!(state.pinned, Some(0));
    state.update(Msg::Wheel {
        col: 50,
        row: 10,
        down: true,
    });
    assert_eq!(state.focus, PaneId::Prompt);
    assert_eq!(
        state.panes.prompt.scroll, 2,
        "three lines down, clamped to the last line"
    );
    // Tabs at 80 columns.
    state.update(Msg::Resize {
        width: 80,
        height: 24,
    });
    state.update(Msg::Click { col: 15, row: 0 });
    assert_eq!(state.focus, PaneId::Prompt);
}

/// The real runtime with the replay provider, in-process: the events of the example project.
#[tokio::test]
async fn the_example_run_builds_the_expected_tree() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/CHANGELOG.md"),
        dir.path().join("CHANGELOG.md"),
    )
    .unwrap();
    let loaded = crate::definition::load_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/perstack.toml"
    )))
    .unwrap();
    let overrides = crate::runtime::Overrides {
        replay: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.replay.toml").into()),
        workspace: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let runtime = crate::runtime::Runtime::prepare(&loaded, &overrides).unwrap();
    let start = crate::runtime::JobStart::New {
        query: "Write release notes for developers".into(),
        job_id: Some("job".into()),
    };
    let mut job = runtime
        .start("release-notes", start, Default::default())
        .await
        .unwrap();
    let mut state = AppState::new(&loaded.config, "replay".into());
    while let Some(event) = job.events.recv().await {
        state.update(Msg::Run(Box::new(event)));
    }
    assert_eq!(state.job_state, JobState::Completed);
    let root = state.runs[state.root_run.as_deref().unwrap()].clone();
    let children: Vec<&str> = root
        .children
        .iter()
        .map(|c| state.runs[c].expert_key.as_str())
        .collect();
    assert_eq!(children, ["changelog-reader", "writer"]);
    assert_eq!(state.timeline.len(), 8);
    assert_eq!(root.step, 4);
    let tools: Vec<&str> = root.calls.iter().map(|c| c.tool.as_str()).collect();
    assert_eq!(
        tools,
        [
            "changelog-reader",
            "writer",
            "getFileInfo",
            "attemptCompletion"
        ]
    );
    assert!(root.calls.iter().all(|c| c.status == CallStatus::Done));
    // The coordinator's own generations, then its two delegates': usage is summed up the tree.
    assert_eq!(
        root.usage.input_tokens,
        (1450 + 1720 + 1905 + 2010 + 2050) + (980 + 1300 + 1320) + (900 + 1150 + 1170)
    );
    let last = root.steps.values().last().unwrap();
    assert!(last.text.starts_with("RELEASE_NOTES.md now holds"));
}

#[test]
fn cancelling_stops_the_job_and_keeps_the_checkpoint() {
    let mut state = feed(Moment::ToolCallInFlight);
    assert_eq!(key(&mut state, KeyCode::Char('x')), [Effect::Cancel]);
    let mut script = Script::new();
    script.push(
        COORD,
        "release-notes",
        1,
        EventKind::StopRunByCancel {
            checkpoint: checkpoint(
                COORD,
                "release-notes",
                1,
                CheckpointStatus::StoppedByCancel,
                usage(1450, 62),
            ),
        },
    );
    for event in script.events {
        state.update(Msg::Run(Box::new(event)));
    }
    assert_eq!(state.job_state, JobState::Cancelled);
    assert_eq!(state.runs[COORD].status, RunStatus::Stopped);
    // The delegates still marked running stopped with the job.
    assert!(state.runs.values().all(|r| r.status != RunStatus::Running));
    assert_eq!(
        state.timeline.last().unwrap().status,
        CheckpointStatus::StoppedByCancel
    );
    assert!(state.resume_from.is_some());
    // Nothing runs now: q quits without asking.
    assert_eq!(key(&mut state, KeyCode::Char('q')), [Effect::Quit]);
}

#[test]
fn clicking_a_run_in_the_tree_selects_it() {
    let mut state = feed(Moment::ParallelDelegates);
    state.update(Msg::Resize {
        width: 200,
        height: 50,
    });
    // Rows: Runs header (y=1), coordinator (y=2), reader (y=3), writer (y=4).
    state.update(Msg::Click { col: 5, row: 4 });
    assert_eq!(state.focus, PaneId::Experts);
    assert_eq!(state.current_run().unwrap().run_id, WRITER);
    state.update(Msg::Click { col: 5, row: 2 });
    assert_eq!(state.current_run().unwrap().run_id, COORD);
}

#[test]
fn only_the_newest_and_the_viewed_request_are_kept_pretty() {
    let mut state = feed(Moment::Completed);
    let pretty: Vec<u64> = state.runs[COORD]
        .steps
        .iter()
        .filter(|(_, s)| s.pretty.is_some())
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(pretty, [2]);
    key(&mut state, KeyCode::Char('2'));
    key(&mut state, KeyCode::Char('h'));
    assert_eq!(state.current_step().unwrap().0, 1);
    assert!(state.current_step().unwrap().1.pretty.is_some());
}

#[test]
fn mcp_tools_come_from_the_lock() {
    use crate::definition::parse_str;
    use crate::skills::lock::{Lock, LockedExpert, LockedSkill};
    use crate::tool::ToolDefinition;
    let source = r#"
[experts.a]
instruction = "x"
[experts.a.skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
[experts.a.skills.files]
type = "mcpStdioSkill"
command = "npx"
packageName = "@modelcontextprotocol/server-filesystem"
"#;
    let (config, _) = parse_str(source, std::path::Path::new("perstack.toml")).unwrap();
    let mut state = AppState::new(&config, "m".into());
    let files = |state: &AppState| state.experts[0].skills[1].tools.clone();
    assert_eq!(files(&state), None);
    let tool = |name: &str| ToolDefinition {
        name: name.into(),
        description: String::new(),
        input_schema: serde_json::json!({"type": "object"}),
    };
    let lock = Lock {
        version: 1,
        experts: [(
            "a".to_string(),
            LockedExpert {
                skills: [(
                    "files".to_string(),
                    LockedSkill {
                        tools: vec![tool("read_file"), tool("list_directory")],
                    },
                )]
                .into_iter()
                .collect(),
            },
        )]
        .into_iter()
        .collect(),
    };
    state.use_lock(&lock);
    assert_eq!(
        files(&state),
        Some(vec!["read_file".into(), "list_directory".into()])
    );
}

#[test]
fn mcp_tools_show_once_the_skill_connects() {
    use crate::runtime::event::{EventKind, RunIds};
    let source = r#"
[experts.a]
instruction = "x"
[experts.a.skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
[experts.a.skills.web]
type = "mcpSseSkill"
endpoint = "http://127.0.0.1:9/mcp"
"#;
    let (config, _) =
        crate::definition::parse_str(source, std::path::Path::new("perstack.toml")).unwrap();
    let mut state = AppState::new(&config, "m".into());
    assert_eq!(state.experts[0].skills[1].tools, None);
    let ids = RunIds {
        job_id: "j".into(),
        run_id: "r".into(),
        expert_key: "a".into(),
        parent_run_id: None,
    };
    let connected = ids.event(
        0,
        EventKind::SkillConnected {
            skill_name: "web".into(),
            server_info: None,
            spawn_duration_ms: 0,
            handshake_duration_ms: 0,
            connect_duration_ms: 0,
            tool_discovery_duration_ms: 0,
            total_duration_ms: 0,
            tools: vec!["search".into(), "fetch".into()],
        },
    );
    state.update(Msg::Run(Box::new(connected)));
    assert_eq!(
        state.experts[0].skills[1].tools,
        Some(vec!["search".to_string(), "fetch".to_string()])
    );
}

#[test]
fn sandbox_denials_land_on_the_running_call_and_unconfined_skills_are_marked() {
    let mut state = feed(Moment::ToolCallInFlight);
    let (run_id, expert, skill) = state
        .runs
        .values()
        .find_map(|r| {
            r.calls
                .iter()
                .find(|c| c.status == CallStatus::Running)
                .map(|c| (r.run_id.clone(), r.expert_key.clone(), c.skill.clone()))
        })
        .expect("a call in flight");
    let denied = EventKind::SandboxDenied {
        skill_name: skill.clone(),
        host: "evil.example".into(),
        port: 443,
    };
    state.update(Msg::Run(Box::new(top_level_event(
        &run_id, &expert, 0, 90_000, denied,
    ))));
    let call = state.runs[&run_id]
        .calls
        .iter()
        .find(|c| c.status == CallStatus::Running)
        .expect("still running");
    assert_eq!(call.denied, ["evil.example:443"]);
    assert!(
        state
            .status
            .as_deref()
            .unwrap_or_default()
            .contains("evil.example:443")
    );

    // A skill started without a policy is marked unconfined on its Expert.
    let (listed_expert, listed_skill) = state
        .experts
        .iter()
        .find_map(|e| e.skills.first().map(|s| (e.key.clone(), s.name.clone())))
        .expect("an Expert with a skill");
    let listed_run = state
        .runs
        .values()
        .find(|r| r.expert_key == listed_expert)
        .map(|r| r.run_id.clone())
        .expect("a run of that Expert");
    let starting = EventKind::SkillStarting {
        skill_name: listed_skill.clone(),
        sandbox: None,
    };
    state.update(Msg::Run(Box::new(top_level_event(
        &listed_run,
        &listed_expert,
        0,
        90_001,
        starting,
    ))));
    let info = state
        .experts
        .iter()
        .find(|e| e.key == listed_expert)
        .and_then(|e| e.skills.iter().find(|s| s.name == listed_skill))
        .expect("the skill is listed");
    assert_eq!(info.confined, Some(false));

    assert!(!state.sandbox_disabled);
    let disabled = EventKind::SandboxDisabled {
        message: "skills run unconfined (runtime = \"local\")".into(),
    };
    state.update(Msg::Run(Box::new(top_level_event(
        &run_id, &expert, 0, 90_002, disabled,
    ))));
    assert!(state.sandbox_disabled);
}

#[test]
fn a_registry_expert_is_listed_read_and_vendored() {
    let mut state = AppState::new(&example_config(), "m".into());
    state.height = 30;
    state.registry = vec![crate::registry::RegistryEntry {
        key: "@acme/reviewer@1.2.0".into(),
        version: "1.2.0".into(),
        source: "oci://127.0.0.1:5000/team".into(),
        short_digest: "0123456789ab".into(),
        digest: "sha256:0123456789abcdef".into(),
        text: Some(
            "[experts.\"@acme/reviewer\"]\nversion = \"1.2.0\"\ninstruction = \"Review the diff.\"\n"
                .into(),
        ),
        required_env: Vec::new(),
        allowed_domains: Vec::new(),
    }];
    let rows = state.job().expert_rows();
    let at = rows
        .iter()
        .position(|r| *r == crate::tui::app::ExpertRow::Registry(0))
        .expect("the registry Expert is a row of the Experts pane");
    state.panes.experts.cursor = at;
    key(&mut state, KeyCode::Enter);
    assert_eq!(
        state.mode,
        Mode::Published {
            index: 0,
            scroll: 0
        }
    );
    assert_eq!(state.published_lines(0).len(), 3);
    let effects = key(&mut state, KeyCode::Char('V'));
    assert_eq!(state.mode, Mode::Normal);
    let [
        Effect::Vendor {
            key: vendored,
            text,
        },
    ] = effects.as_slice()
    else {
        panic!("V vendors: {effects:?}");
    };
    assert_eq!(vendored, "@acme/reviewer@1.2.0");
    assert!(
        text.contains("[experts.\"@acme/reviewer@1.2.0\"]"),
        "{text}"
    );
    assert!(text.contains("Review the diff."));
}

fn key_with(state: &mut AppState, code: KeyCode, modifiers: KeyModifiers) -> Vec<Effect> {
    state.update(Msg::Key(KeyEvent::new(code, modifiers)))
}

/// The query box's text and cursor (line, column).
fn query_box(state: &AppState) -> (String, (usize, usize)) {
    match &state.mode {
        Mode::Query { input } => (input.text(), input.cursor()),
        other => panic!("no query box: {other:?}"),
    }
}

#[test]
fn the_query_box_edits_at_the_cursor() {
    let mut state = AppState::new(&example_config(), "m".into());
    key(&mut state, KeyCode::Char('i'));
    type_text(&mut state, "notes for users");
    key(&mut state, KeyCode::Home);
    assert_eq!(query_box(&state).1, (0, 0));
    type_text(&mut state, "Write ");
    key(&mut state, KeyCode::End);
    assert_eq!(query_box(&state).1, (0, 21));
    // Word jumps: Ctrl-Left and Alt-b go back a word, Ctrl-Right and Alt-f forward.
    key_with(&mut state, KeyCode::Left, KeyModifiers::CONTROL);
    assert_eq!(query_box(&state).1, (0, 16));
    key_with(&mut state, KeyCode::Char('b'), KeyModifiers::ALT);
    assert_eq!(query_box(&state).1, (0, 12));
    type_text(&mut state, "new ");
    key_with(&mut state, KeyCode::Char('f'), KeyModifiers::ALT);
    key_with(&mut state, KeyCode::Right, KeyModifiers::CONTROL);
    key(&mut state, KeyCode::Left);
    key(&mut state, KeyCode::Backspace);
    key(&mut state, KeyCode::Right);
    assert_eq!(
        query_box(&state),
        ("Write notes new for uses".into(), (0, 24))
    );
}

#[test]
fn a_multi_line_query_is_submitted_as_one_query() {
    let mut state = AppState::new(&example_config(), "m".into());
    key(&mut state, KeyCode::Char('i'));
    type_text(&mut state, "Write notes");
    key_with(&mut state, KeyCode::Enter, KeyModifiers::ALT);
    type_text(&mut state, "- short");
    key_with(&mut state, KeyCode::Enter, KeyModifiers::SHIFT);
    type_text(&mut state, "- plain");
    assert_eq!(query_box(&state).1, (2, 7));
    let effects = key(&mut state, KeyCode::Enter);
    assert_eq!(
        effects.first(),
        Some(&Effect::StartRun {
            expert_key: "release-notes".into(),
            query: "Write notes\n- short\n- plain".into()
        })
    );
}

#[test]
fn up_and_down_walk_the_history_which_outlives_the_state_through_its_file() {
    let workspace = tempfile::tempdir().expect("tempdir");
    let path = super::input::history_path(workspace.path());
    let mut first = AppState::new(&example_config(), "m".into());
    for query in ["first query", "second\nquery"] {
        key(&mut first, KeyCode::Char('i'));
        type_text(&mut first, query.split('\n').next().unwrap_or_default());
        if let Some(rest) = query.split_once('\n').map(|(_, rest)| rest) {
            key_with(&mut first, KeyCode::Enter, KeyModifiers::ALT);
            type_text(&mut first, rest);
        }
        // What the loop does with the effect: the file is written.
        for effect in key(&mut first, KeyCode::Enter) {
            if let Effect::RememberQuery { query } = effect {
                super::input::append_history(&path, &query).expect("history written");
            }
        }
        first.job_state = JobState::Completed;
    }
    assert_eq!(first.history.entries(), ["first query", "second\nquery"]);

    // A new workbench on the same project reads the file.
    let mut state = AppState::new(&example_config(), "m".into());
    state.history =
        super::input::QueryHistory::new(super::input::load_history(&path).expect("read"));
    key(&mut state, KeyCode::Char('i'));
    type_text(&mut state, "draft");
    key(&mut state, KeyCode::Up);
    assert_eq!(query_box(&state), ("second\nquery".into(), (0, 6)));
    key(&mut state, KeyCode::Up);
    assert_eq!(query_box(&state).0, "first query");
    key(&mut state, KeyCode::Up);
    assert_eq!(query_box(&state).0, "first query", "the oldest stays");
    // ↓ leaves the cursor on the last line, so ↓ again goes on at once.
    key(&mut state, KeyCode::Down);
    assert_eq!(query_box(&state), ("second\nquery".into(), (1, 5)));
    key(&mut state, KeyCode::Down);
    assert_eq!(query_box(&state).0, "draft");
    // ↑ moves up the lines of a multi-line text before it recalls anything.
    key_with(&mut state, KeyCode::Enter, KeyModifiers::ALT);
    key(&mut state, KeyCode::Up);
    assert_eq!(query_box(&state), ("draft\n".into(), (0, 0)));
    // Enter on a recalled query runs it again; a repeat of the newest is not saved twice.
    key(&mut state, KeyCode::Up);
    let effects = key(&mut state, KeyCode::Enter);
    assert!(
        matches!(effects.as_slice(), [Effect::StartRun { query, .. }] if query == "second\nquery"),
        "{effects:?}"
    );
}

#[test]
fn the_search_box_edits_on_one_line() {
    let mut state = feed(Moment::Completed);
    key(&mut state, KeyCode::Char('2'));
    key(&mut state, KeyCode::Char('/'));
    type_text(&mut state, "odel");
    key(&mut state, KeyCode::Home);
    type_text(&mut state, "m");
    state.update(Msg::Paste("\n".into()));
    let Mode::Search { input } = &state.mode else {
        panic!("no search box: {:?}", state.mode);
    };
    assert_eq!(input.text(), "m odel");
    key(&mut state, KeyCode::Up);
    assert!(
        matches!(&state.mode, Mode::Search { .. }),
        "no history here"
    );
}
