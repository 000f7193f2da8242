//! What the screen shows, as text snapshots of a `TestBackend`: each pane and the whole screen
//! at 80x24 and 200x50, for each moment of a scripted run. The script's ids and times are
//! fixed and the clock is set by the test, so the snapshots hold no scrubbed values.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

use super::app::{AppState, Msg};
use super::highlight::Highlighter;
use super::keymap::PaneId;
use super::panes::{self, Ctx};
use super::test_support::*;
use super::theme::Theme;

#[derive(Clone, Copy)]
enum Scene {
    Idle,
    Run(Moment),
    Help,
}

impl Scene {
    const ALL: [(&'static str, Scene); 7] = [
        ("idle", Scene::Idle),
        ("streaming", Scene::Run(Moment::Streaming)),
        ("tool_in_flight", Scene::Run(Moment::ToolCallInFlight)),
        ("parallel", Scene::Run(Moment::ParallelDelegates)),
        ("completed", Scene::Run(Moment::Completed)),
        ("error", Scene::Run(Moment::Error)),
        ("help", Scene::Help),
    ];
}

fn state_for(scene: Scene, width: u16, height: u16) -> AppState {
    let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
    state.update(Msg::Resize { width, height });
    state.now_ms = T0;
    if let Scene::Run(moment) = scene {
        let script = scripted_run(moment);
        let now = script.now() + 2_000;
        state.job_started_at = Some(T0);
        for event in script.events {
            state.update(Msg::Run(Box::new(event)));
        }
        state.now_ms = now;
        // Show the coordinator's run in the tree with the cursor on it.
        if let Some(row) = state
            .expert_rows()
            .iter()
            .position(|r| matches!(r, super::app::ExpertRow::Run { .. }))
        {
            state.panes.experts.cursor = row;
        }
    }
    // At 80 columns only the focused pane shows: focus the one that tells the moment.
    state.focus = match scene {
        Scene::Run(Moment::Streaming) => PaneId::Prompt,
        Scene::Run(Moment::ToolCallInFlight) => PaneId::ToolCalls,
        Scene::Run(Moment::Completed) => PaneId::Timeline,
        _ => PaneId::Experts,
    };
    if let Scene::Help = scene {
        state.update(Msg::Key(KeyEvent::new(
            KeyCode::Char('?'),
            KeyModifiers::NONE,
        )));
    }
    state
}

fn render(state: &AppState, width: u16, height: u16) -> Terminal<TestBackend> {
    render_themed(state, width, height, Theme::default())
}

fn render_themed(state: &AppState, width: u16, height: u16, theme: Theme) -> Terminal<TestBackend> {
    let highlighter = Highlighter::new(&theme.syntax);
    let ctx = Ctx {
        theme: &theme,
        highlighter: &highlighter,
    };
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| panes::draw_app(f, state, &ctx)).unwrap();
    terminal
}

fn render_pane(state: &AppState, pane: PaneId, width: u16, height: u16) -> Terminal<TestBackend> {
    let theme = Theme::default();
    let highlighter = Highlighter::new(&theme.syntax);
    let ctx = Ctx {
        theme: &theme,
        highlighter: &highlighter,
    };
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|f| {
            let area = Rect::new(0, 0, width, height);
            state.panes.draw(pane, f, area, state, &ctx);
        })
        .unwrap();
    terminal
}

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

#[test]
fn whole_screen_at_both_sizes() {
    settings().bind(|| {
        for (name, scene) in Scene::ALL {
            for (w, h) in [(80, 24), (200, 50)] {
                let state = state_for(scene, w, h);
                let terminal = render(&state, w, h);
                insta::assert_snapshot!(format!("screen_{name}_{w}x{h}"), terminal.backend());
            }
        }
    });
}

#[test]
fn each_pane_in_each_moment() {
    settings().bind(|| {
        for (name, scene) in Scene::ALL {
            if matches!(scene, Scene::Help) {
                continue;
            }
            for pane in PaneId::ALL {
                let mut state = state_for(scene, 200, 50);
                state.focus = pane;
                let terminal = render_pane(&state, pane, 64, 22);
                let pane_name = pane.title().to_lowercase().replace(' ', "_");
                insta::assert_snapshot!(format!("pane_{pane_name}_{name}"), terminal.backend());
            }
        }
    });
}

#[test]
fn expanded_tool_call_and_raw_body() {
    settings().bind(|| {
        let mut state = state_for(Scene::Run(Moment::Completed), 200, 50);
        // The reader's run: its file read, expanded, with a long result folded.
        let key = |state: &mut AppState, code| {
            state.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        };
        key(&mut state, KeyCode::Char('3'));
        key(&mut state, KeyCode::Enter);
        key(&mut state, KeyCode::Enter);
        let terminal = render_pane(&state, PaneId::ToolCalls, 64, 30);
        insta::assert_snapshot!("pane_tool_calls_expanded_folded", terminal.backend());
        key(&mut state, KeyCode::Char('2'));
        key(&mut state, KeyCode::Char('v'));
        let terminal = render_pane(&state, PaneId::Prompt, 80, 24);
        insta::assert_snapshot!("pane_prompt_raw_body", terminal.backend());
    });
}

/// One snapshot with colours and modifiers: the buffer's debug form lists every style run.
#[test]
fn colours_of_the_completed_screen() {
    settings().bind(|| {
        let state = state_for(Scene::Run(Moment::Completed), 80, 24);
        let terminal = render(&state, 80, 24);
        insta::assert_debug_snapshot!(
            "screen_completed_80x24_colours",
            terminal.backend().buffer()
        );
    });
}

#[test]
fn tiny_and_odd_sizes_do_not_panic() {
    for (_, scene) in Scene::ALL {
        for (w, h) in [(1, 1), (10, 3), (40, 8), (119, 30), (120, 12), (300, 80)] {
            let state = state_for(scene, w, h);
            render(&state, w, h);
        }
    }
}

/// The high-contrast theme changes every role's colour: the buffer shows them.
#[test]
fn colours_of_the_high_contrast_theme() {
    settings().bind(|| {
        let mut state = state_for(Scene::Run(Moment::ParallelDelegates), 80, 24);
        state.focus = PaneId::Experts;
        let theme = Theme::load(Some("high-contrast")).unwrap();
        let terminal = render_themed(&state, 80, 24, theme);
        insta::assert_debug_snapshot!(
            "screen_parallel_80x24_high_contrast",
            terminal.backend().buffer()
        );
    });
}

/// The authoring loop: a run paused before its model call (breakpoint marked), the reload
/// error panel, a fork shown as a branch in the Timeline, and a diff of two checkpoints.
#[test]
fn authoring_loop_screens() {
    use super::authoring_tests::{coordinator_first_step, forked, key, paused_before_llm};
    settings().bind(|| {
        let mut state = paused_before_llm();
        state.breakpoints = vec!["before-llm@release-notes".parse().unwrap()];
        state.update(Msg::Resize {
            width: 200,
            height: 50,
        });
        state.focus = PaneId::Prompt;
        insta::assert_snapshot!("screen_paused_before_llm_200x50", render(&state, 200, 50).backend());
        state.update(Msg::Resize {
            width: 80,
            height: 24,
        });
        insta::assert_snapshot!("screen_paused_before_llm_80x24", render(&state, 80, 24).backend());

        let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
        state.update(Msg::Resize {
            width: 120,
            height: 30,
        });
        let bad = "[experts.\"release-notes\"]\ninstruction = \"Write notes\"\ndelegates = [\"writter\"]\n\n[experts.writer]\ndescription = \"Writes\"\n";
        let diagnostics = crate::definition::parse_str(bad, std::path::Path::new("perstack.toml"))
            .expect_err("invalid");
        state.update(Msg::ReloadFailed(diagnostics.iter().map(|d| d.render()).collect()));
        insta::assert_snapshot!("screen_reload_errors_120x30", render(&state, 120, 30).backend());

        let mut state = forked();
        state.update(Msg::Resize {
            width: 200,
            height: 50,
        });
        state.focus = PaneId::Timeline;
        insta::assert_snapshot!("pane_timeline_forked", render_pane(&state, PaneId::Timeline, 64, 14).backend());
        insta::assert_snapshot!("screen_forked_200x50", render(&state, 200, 50).backend());

        state.panes.timeline.cursor = coordinator_first_step(&state);
        key(&mut state, KeyCode::Char('m'));
        state.panes.timeline.cursor = state.timeline.len() - 1;
        key(&mut state, KeyCode::Char('d'));
        insta::assert_snapshot!("screen_diff_messages_120x30", {
            state.update(Msg::Resize { width: 120, height: 30 });
            render(&state, 120, 30).backend().to_string()
        });
        key(&mut state, KeyCode::Char('v'));
        insta::assert_snapshot!("screen_diff_requests_120x30", render(&state, 120, 30).backend());
    });
}

#[test]
fn layout_widens_the_focused_pane_and_zooms() {
    settings().bind(|| {
        // Tool calls focused: its names are whole wherever the panes sit side by side.
        for (w, h) in [(100, 30), (120, 35), (160, 45), (200, 50)] {
            let mut state = state_for(Scene::Run(Moment::Completed), w, h);
            state.focus = PaneId::ToolCalls;
            let terminal = render(&state, w, h);
            insta::assert_snapshot!(
                format!("layout_tool_calls_focused_{w}x{h}"),
                terminal.backend()
            );
        }
        let mut state = state_for(Scene::Run(Moment::Completed), 160, 45);
        state.focus = PaneId::Prompt;
        state.update(Msg::Key(KeyEvent::new(
            KeyCode::Char('z'),
            KeyModifiers::NONE,
        )));
        assert!(state.zoomed);
        let terminal = render(&state, 160, 45);
        insta::assert_snapshot!("layout_prompt_zoomed_160x45", terminal.backend());
    });
}

/// A three-line query: the box grows to hold its lines, the cursor where the typing is, and the
/// answer dialog holds two lines the same way.
#[test]
fn multi_line_input_boxes() {
    settings().bind(|| {
        let mut state = state_for(Scene::Idle, 100, 30);
        let press = |state: &mut AppState, code, modifiers| {
            state.update(Msg::Key(KeyEvent::new(code, modifiers)));
        };
        press(&mut state, KeyCode::Char('i'), KeyModifiers::NONE);
        state.update(Msg::Paste("Write release notes\rfor developers".into()));
        press(&mut state, KeyCode::Enter, KeyModifiers::ALT);
        for c in "- keep it short".chars() {
            press(&mut state, KeyCode::Char(c), KeyModifiers::NONE);
        }
        press(&mut state, KeyCode::Char('b'), KeyModifiers::ALT);
        let terminal = render(&state, 100, 30);
        insta::assert_snapshot!("input_query_three_lines_100x30", terminal.backend());
        // The cursor is a reversed cell: at the start of "short" on the third line.
        let buffer = terminal.backend().buffer();
        let area = super::layout::areas(&state).input.expect("a query box");
        let cursor = &buffer[(area.x + 1 + 2 + 10, area.y + 3)];
        assert_eq!(cursor.symbol(), "s");
        assert!(cursor.modifier.contains(ratatui::style::Modifier::REVERSED));

        state.mode = super::app::Mode::Answer {
            question: "Who reads the notes?".into(),
            input: "Developers,\nand their managers".into(),
        };
        let terminal = render(&state, 100, 30);
        insta::assert_snapshot!("input_answer_two_lines_100x30", terminal.backend());
    });
}
