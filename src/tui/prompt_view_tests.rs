//! The Prompt pane shows every character it calls exact: a 20 KB instruction in the raw view,
//! escaped and unescaped, found by search, and long conversation lines wrapped under their
//! text rather than under the role label.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

use super::app::{AppState, Msg, PromptView};
use super::highlight::Highlighter;
use super::keymap::PaneId;
use super::panes::{self, Ctx};
use super::test_support::*;
use super::theme::Theme;

/// About 20 KB of instruction in numbered rules, ending in a word found nowhere else.
fn instruction() -> String {
    let mut text = String::from("You write release notes for developers.\n");
    let mut rule = 1;
    while text.len() < 20_000 {
        text.push_str(&format!(
            "Rule {rule}: when the question names a version, compare it with the previous \
             one and list breaking changes first, then features, then fixes.\n"
        ));
        rule += 1;
    }
    text.push_str("Remember the zebrafinch protocol. THE-END.");
    text
}

const ANSWER: &str = "The notes follow. Breaking changes come first because a developer \
    upgrading needs them before anything else, then the features that the release adds, \
    and last the fixes, each with the issue it closes and the version it first appeared in.";

fn state(width: u16, height: u16) -> AppState {
    let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
    state.update(Msg::Resize { width, height });
    state.now_ms = T0;
    let script = instruction_run(
        &instruction(),
        "Write release notes for 2.0 with every breaking change in it",
        ANSWER,
    );
    state.job_started_at = Some(T0);
    let now = script.now() + 2_000;
    for event in script.events {
        state.update(Msg::Run(Box::new(event)));
    }
    state.now_ms = now;
    state.focus = PaneId::Prompt;
    state
}

fn key(state: &mut AppState, code: KeyCode) {
    state.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn search(state: &mut AppState, term: &str) {
    key(state, KeyCode::Char('/'));
    for c in term.chars() {
        key(state, KeyCode::Char(c));
    }
    key(state, KeyCode::Enter);
}

fn draw<F: FnMut(&mut ratatui::Frame, &Ctx)>(
    width: u16,
    height: u16,
    mut f: F,
) -> Terminal<TestBackend> {
    let theme = Theme::default();
    let highlighter = Highlighter::new(&theme.syntax);
    let ctx = Ctx {
        theme: &theme,
        highlighter: &highlighter,
    };
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal.draw(|frame| f(frame, &ctx)).expect("draw");
    terminal
}

fn pane(state: &AppState, width: u16, height: u16) -> Terminal<TestBackend> {
    draw(width, height, |frame, ctx| {
        let area = Rect::new(0, 0, width, height);
        state.panes.draw(PaneId::Prompt, frame, area, state, ctx);
    })
}

fn screen(state: &AppState, width: u16, height: u16) -> Terminal<TestBackend> {
    draw(width, height, |frame, ctx| {
        panes::draw_app(frame, state, ctx)
    })
}

/// The rows inside the pane's border, as drawn (wrapped rows run on without a gap).
fn inner_rows(terminal: &Terminal<TestBackend>) -> Vec<String> {
    let buffer = terminal.backend().buffer();
    let (w, h) = (buffer.area.width, buffer.area.height);
    (1..h - 1)
        .map(|y| (1..w - 1).map(|x| buffer[(x, y)].symbol()).collect())
        .collect()
}

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

/// The pretty line of the body holding `"system"`.
fn system_line(state: &AppState) -> usize {
    (0..state.prompt_len())
        .find(|&i| {
            state
                .prompt_line(i)
                .is_some_and(|l| l.contains("\"system\""))
        })
        .expect("a system line")
}

#[test]
fn raw_view_reaches_the_last_characters_of_a_20_kb_system_string() {
    let mut state = state(120, 35);
    key(&mut state, KeyCode::Char('v'));
    assert_eq!(state.panes.prompt.view, PromptView::Raw);
    pane(&state, 64, 22); // the first frame tells the pane its width
    let system = system_line(&state);
    assert!(state.prompt_line(system).expect("line").len() > 20_000);
    // Page down until the view leaves the system line, then back up two rows: its last rows.
    while state.panes.prompt.scroll <= system {
        key(&mut state, KeyCode::PageDown);
    }
    while state.panes.prompt.scroll > system || state.panes.prompt.row > 0 {
        let before = (state.panes.prompt.scroll, state.panes.prompt.row);
        key(&mut state, KeyCode::Char('k'));
        if state.panes.prompt.scroll == system {
            break;
        }
        assert_ne!(before, (state.panes.prompt.scroll, state.panes.prompt.row));
    }
    key(&mut state, KeyCode::Char('k'));
    let rows = inner_rows(&pane(&state, 64, 22)).concat();
    assert!(
        rows.contains(r#"Remember the zebrafinch protocol. THE-END.","#),
        "{rows}"
    );
    assert!(
        state.panes.prompt.row > 300,
        "a 20 KB line at 62 columns is hundreds of rows"
    );
}

#[test]
fn search_finds_a_word_near_the_end_of_the_system_string() {
    let mut state = state(120, 35);
    key(&mut state, KeyCode::Char('v'));
    pane(&state, 64, 22);
    search(&mut state, "zebrafinch");
    assert_eq!(state.panes.prompt.scroll, system_line(&state));
    assert!(state.panes.prompt.row > 300, "{}", state.panes.prompt.row);
    let terminal = pane(&state, 64, 22);
    let rows = inner_rows(&terminal);
    assert!(rows[0].contains("zebrafinch") || rows.concat().contains("zebrafinch"));
    settings().bind(|| {
        insta::assert_snapshot!("prompt_raw_20kb_search_end", terminal.backend());
    });
    // n goes round to the same match: there is only one.
    key(&mut state, KeyCode::Char('n'));
    let expected = format!("\"zebrafinch\" at line {}", system_line(&state) + 1);
    assert_eq!(state.status.as_deref(), Some(expected.as_str()));
}

#[test]
fn unescaped_view_shows_the_instruction_as_lines() {
    let mut state = state(120, 35);
    key(&mut state, KeyCode::Char('v'));
    key(&mut state, KeyCode::Char('u'));
    assert!(state.panes.prompt.unescaped);
    pane(&state, 64, 22);
    search(&mut state, "Rule 3:");
    let terminal = pane(&state, 64, 22);
    let rows = inner_rows(&terminal);
    // Each rule is a line of its own, hanging under the string's first character.
    assert!(
        rows[0].starts_with("             Rule 3: when"),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("             Rule 4: when"))
    );
    settings().bind(|| {
        insta::assert_snapshot!("prompt_unescaped_20kb_rules", terminal.backend());
    });
    search(&mut state, "zebrafinch");
    let rows = inner_rows(&pane(&state, 64, 22));
    assert!(
        rows[0].contains(r#"Remember the zebrafinch protocol. THE-END.","#),
        "{rows:#?}"
    );
    // u again: back to the body as sent, at the same place in it.
    key(&mut state, KeyCode::Char('u'));
    assert_eq!(state.panes.prompt.scroll, system_line(&state));
}

#[test]
fn conversation_wraps_under_the_text_not_the_label() {
    settings().bind(|| {
        for (w, h) in [(80, 24), (120, 35)] {
            let mut state = state(w, h);
            // The answer is the last line: G puts it at the top.
            key(&mut state, KeyCode::Char('G'));
            let terminal = screen(&state, w, h);
            let text: Vec<String> = {
                let buffer = terminal.backend().buffer();
                (0..h)
                    .map(|y| (0..w).map(|x| buffer[(x, y)].symbol()).collect())
                    .collect()
            };
            // The answer's second row starts where its text does, ten columns in.
            let first = text
                .iter()
                .position(|r| r.contains("assistant The notes follow."))
                .unwrap_or_else(|| panic!("{text:#?}"));
            let row = &text[first];
            let label_at = row[..row.find("assistant").expect("label")].chars().count();
            let next: Vec<char> = text[first + 1].chars().skip(label_at).collect();
            assert!(
                next[..10].iter().all(|&c| c == ' ') && next[10] != ' ',
                "{:?}",
                text[first + 1]
            );
            insta::assert_snapshot!(
                format!("conversation_hanging_indent_{w}x{h}"),
                terminal.backend()
            );
        }
    });
}

#[test]
fn a_long_tool_result_line_wraps_instead_of_running_off_the_pane() {
    let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
    state.update(Msg::Resize {
        width: 200,
        height: 50,
    });
    for event in scripted_run(Moment::Completed).events {
        state.update(Msg::Run(Box::new(event)));
    }
    let long = format!("{} last-words-of-the-result", "lorem ipsum ".repeat(30));
    let run = state.runs.get_mut(COORD).expect("the coordinator's run");
    let last = run.calls.len() - 1;
    run.calls[last].result = Some(long);
    state.focus = PaneId::ToolCalls;
    state.panes.tool_calls.cursor = last;
    key(&mut state, KeyCode::Char('l'));
    let buffer_rows: Vec<String> = {
        let terminal = draw(64, 30, |frame, ctx| {
            let area = Rect::new(0, 0, 64, 30);
            state
                .panes
                .draw(PaneId::ToolCalls, frame, area, &state, ctx);
        });
        inner_rows(&terminal)
    };
    let joined = buffer_rows.concat();
    assert!(
        joined.contains("last-words-of-the-result"),
        "{buffer_rows:#?}"
    );
    // The result's rows after the first hang under its four-column indent.
    let first = buffer_rows
        .iter()
        .position(|r| r.starts_with("    lorem"))
        .expect("the result");
    let next = &buffer_rows[first + 1];
    assert!(
        next.starts_with("    ") && !next[4..].starts_with(' '),
        "{buffer_rows:#?}"
    );
}
