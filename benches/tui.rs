//! The workbench's drawing cost: one full redraw of a 200x50 screen showing a run with
//! 10,000 messages (about 5 MB), in the conversation and the raw-body views, scrolled to the
//! middle. Also prints the peak memory of holding that run (VmHWM) and the time to the first
//! frame of an empty workbench.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use perstack::tui::app::{AppState, Msg};
use perstack::tui::highlight::Highlighter;
use perstack::tui::keymap::PaneId;
use perstack::tui::panes::{Ctx, draw_app};
use perstack::tui::test_support::{big_run, example_config, instruction_run};
use perstack::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const MESSAGES: usize = 10_000;
const BYTES: usize = 5 * 1024 * 1024;

fn big_state() -> AppState {
    let script = big_run(MESSAGES, BYTES);
    let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
    state.update(Msg::Resize {
        width: 200,
        height: 50,
    });
    for event in script.events {
        state.update(Msg::Run(Box::new(event)));
    }
    state.focus = PaneId::Prompt;
    state.panes.prompt.scroll = state.prompt_len() / 2;
    state
}

fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn redraw(c: &mut Criterion) {
    let theme = Theme::default();
    // First frame of an empty workbench, theme and highlighter included.
    let started = Instant::now();
    let state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
    let highlighter = Highlighter::new(&theme.syntax);
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).unwrap();
    let ctx = Ctx {
        theme: &theme,
        highlighter: &highlighter,
    };
    terminal.draw(|f| draw_app(f, &state, &ctx)).unwrap();
    eprintln!("first frame of an empty workbench: {:?}", started.elapsed());

    let fed = Instant::now();
    let mut state = big_state();
    eprintln!(
        "fed {MESSAGES} messages (~{} MB) in {:?}; peak memory VmHWM {} MB",
        BYTES / 1024 / 1024,
        fed.elapsed(),
        vm_hwm_kb().unwrap_or(0) / 1024
    );
    c.bench_function("redraw 200x50, 10k-message run, conversation", |b| {
        b.iter(|| {
            terminal
                .draw(|f| draw_app(f, black_box(&state), &ctx))
                .unwrap();
        })
    });
    state.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('v'),
        KeyModifiers::NONE,
    )));
    state.panes.prompt.scroll = state.prompt_len() / 2;
    c.bench_function("redraw 200x50, 10k-message run, raw body", |b| {
        b.iter(|| {
            terminal
                .draw(|f| draw_app(f, black_box(&state), &ctx))
                .unwrap();
        })
    });
    // The worst case of scrolling to a new page: an empty highlight cache, so every visible
    // line is highlighted anew.
    c.bench_function("redraw with a cold highlight cache, raw body", |b| {
        b.iter(|| {
            let cold = Highlighter::new(&theme.syntax);
            let ctx = Ctx {
                theme: &theme,
                highlighter: &cold,
            };
            terminal
                .draw(|f| draw_app(f, black_box(&state), &ctx))
                .unwrap();
        })
    });
    eprintln!(
        "peak memory after the benchmarks: VmHWM {} MB",
        vm_hwm_kb().unwrap_or(0) / 1024
    );
}

/// A 2 MB request body: its `system` string and the first message (the same instruction) are
/// 1 MB lines each. `accent` puts a non-ASCII character in every sentence (the slower way to
/// find rows).
fn two_megabyte_body(accent: bool) -> AppState {
    let sentence = if accent {
        "Rule: compare the version with the previous one; list breaking changes first, café.\n"
    } else {
        "Rule: compare the version with the previous one; list breaking changes first, then.\n"
    };
    let instruction = sentence.repeat(1024 * 1024 / sentence.len()) + "THE-END";
    let script = instruction_run(&instruction, "Write the notes", "Done.");
    let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
    state.update(Msg::Resize {
        width: 200,
        height: 50,
    });
    for event in script.events {
        state.update(Msg::Run(Box::new(event)));
    }
    state.focus = PaneId::Prompt;
    state.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('v'),
        KeyModifiers::NONE,
    )));
    state
}

/// The raw view of a 2 MB body: a page down (or a jump to a row far in the 2 MB line) and the
/// frame that shows it.
fn raw_two_megabytes(c: &mut Criterion) {
    let theme = Theme::default();
    let highlighter = Highlighter::new(&theme.syntax);
    let ctx = Ctx {
        theme: &theme,
        highlighter: &highlighter,
    };
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).unwrap();
    for accent in [false, true] {
        let mut state = two_megabyte_body(accent);
        terminal.draw(|f| draw_app(f, &state, &ctx)).unwrap();
        let body = state
            .current_step()
            .and_then(|(_, s)| s.request.as_ref())
            .map_or(0, |r| r.body.len());
        eprintln!("raw view of a {:.1} MB body", body as f64 / 1024.0 / 1024.0);
        let kind = if accent { "non-ASCII" } else { "ASCII" };
        let system = (0..state.prompt_len())
            .find(|&i| {
                state
                    .prompt_line(i)
                    .is_some_and(|l| l.contains("\"system\""))
            })
            .unwrap();
        let page_down = Msg::Key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE));
        c.bench_function(&format!("raw 2 MB body ({kind}): page down + frame"), |b| {
            b.iter(|| {
                if state.panes.prompt.scroll > system {
                    state.panes.prompt.rewind();
                }
                state.update(page_down.clone());
                terminal
                    .draw(|f| draw_app(f, black_box(&state), &ctx))
                    .unwrap();
            })
        });
        let mut row = 0;
        c.bench_function(
            &format!("raw 2 MB body ({kind}): jump to any row + frame"),
            |b| {
                b.iter(|| {
                    // A row anywhere in the 2 MB line, a new one each time.
                    row = (row + 1_931) % 5_000;
                    state.panes.prompt.scroll = system;
                    state.panes.prompt.row = row;
                    terminal
                        .draw(|f| draw_app(f, black_box(&state), &ctx))
                        .unwrap();
                })
            },
        );
        c.bench_function(
            &format!("raw 2 MB body ({kind}): search its last word"),
            |b| {
                b.iter(|| {
                    state.panes.prompt.rewind();
                    state.panes.prompt.search = Some("THE-END".into());
                    state.update(Msg::Key(KeyEvent::new(
                        KeyCode::Char('n'),
                        KeyModifiers::NONE,
                    )));
                    terminal
                        .draw(|f| draw_app(f, black_box(&state), &ctx))
                        .unwrap();
                })
            },
        );
    }
}

criterion_group!(benches, redraw, raw_two_megabytes);
criterion_main!(benches);
