//! The panes. Each draws from `&AppState` and never changes it: keys and clicks go through
//! `AppState::update`, so what is drawn is a function of the state alone.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{AppState, Mode};
use super::highlight::Highlighter;
use super::keymap::PaneId;
use super::layout::{self, Areas};
use super::theme::Theme;

pub mod diff;
pub mod experts;
pub mod help;
pub mod prompt;
pub mod reload_errors;
pub mod status_bar;
pub mod timeline;
pub mod tool_calls;

/// What every pane needs besides the state.
pub struct Ctx<'a> {
    pub theme: &'a Theme,
    pub highlighter: &'a Highlighter,
}

pub trait Component {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx);
}

/// The whole screen.
pub fn draw_app(frame: &mut Frame, state: &AppState, ctx: &Ctx) {
    let Areas {
        tabs,
        panes,
        input,
        status,
    } = layout::areas(state);
    frame.render_widget(Block::default().style(ctx.theme.base()), frame.area());
    if let Some(tabs) = tabs {
        draw_tabs(frame, tabs, state, ctx);
    }
    let panes_area = panes
        .iter()
        .map(|(_, area)| *area)
        .reduce(|a, b| a.union(b));
    for (pane, area) in panes {
        let component: &dyn Component = match pane {
            PaneId::Experts => &experts::ExpertsPane,
            PaneId::Prompt => &prompt::PromptPane,
            PaneId::ToolCalls => &tool_calls::ToolCallsPane,
            PaneId::Timeline => &timeline::TimelinePane,
        };
        component.draw(frame, area, state, ctx);
    }
    if let Some(area) = panes_area {
        reload_errors::ReloadErrors.draw(frame, area, state, ctx);
    }
    if let Some(area) = input {
        draw_input(frame, area, state, ctx);
    }
    status_bar::StatusBar.draw(frame, status, state, ctx);
    match &state.mode {
        Mode::Help => help::HelpOverlay.draw(frame, frame.area(), state, ctx),
        Mode::Diff => diff::DiffOverlay.draw(frame, frame.area(), state, ctx),
        Mode::Answer { question, input } => {
            let body = vec![
                Line::from(question.clone()),
                Line::default(),
                Line::from(vec![
                    Span::styled("> ", ctx.theme.accent()),
                    Span::raw(input.clone()),
                    Span::styled("▏", ctx.theme.accent()),
                ]),
                Line::default(),
                Line::styled(
                    "Enter answers and resumes the run · Esc later (f reopens)",
                    ctx.theme.muted(),
                ),
            ];
            popup(frame, " The Expert asks ", body, 70, 9, ctx);
        }
        Mode::ConfirmQuit => {
            let body = vec![
                Line::from("A run is active. Quit anyway?"),
                Line::styled(
                    "Its last checkpoint is on disk; continue it later with perstack run --continue.",
                    ctx.theme.muted(),
                ),
                Line::default(),
                Line::from(vec![
                    Span::styled("y", ctx.theme.accent()),
                    Span::raw(" quit   "),
                    Span::styled("any other key", ctx.theme.accent()),
                    Span::raw(" stay"),
                ]),
            ];
            popup(frame, " Quit? ", body, 60, 8, ctx);
        }
        _ => {}
    }
}

fn draw_tabs(frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
    let mut spans = Vec::new();
    for (label, pane) in layout::tab_labels().into_iter().zip(PaneId::ALL) {
        let style = if pane == state.focus {
            ctx.theme.selected().fg(ctx.theme.accent)
        } else {
            ctx.theme.muted()
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_input(frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
    let (title, input) = match &state.mode {
        Mode::Query { input } => (
            format!(
                " Query for {} · Enter runs · Esc closes ",
                state.selected_expert_key().unwrap_or("?")
            ),
            input,
        ),
        Mode::FollowUp { input } => (
            " Follow-up · Enter continues the job · Esc closes ".to_string(),
            input,
        ),
        Mode::Search { input } => (" Search · Enter finds · Esc closes ".to_string(), input),
        _ => return,
    };
    // Show the end of a long input: that is where the typing happens.
    let width = area.width.saturating_sub(4) as usize;
    let chars: Vec<char> = input.chars().collect();
    let visible: String = chars[chars.len().saturating_sub(width)..].iter().collect();
    let line = Line::from(vec![
        Span::styled("> ", ctx.theme.accent()),
        Span::raw(visible),
        Span::styled("▏", ctx.theme.accent()),
    ]);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(ctx.theme.accent())
        .title(Span::styled(
            title,
            ctx.theme.accent().add_modifier(Modifier::BOLD),
        ));
    frame.render_widget(Paragraph::new(line).block(block), area);
}

/// A centred box over everything else.
pub fn popup(
    frame: &mut Frame,
    title: &str,
    body: Vec<Line<'static>>,
    width: u16,
    height: u16,
    ctx: &Ctx,
) {
    let screen = frame.area();
    let width = width.min(screen.width);
    let height = height.min(screen.height);
    let area = Rect::new(
        screen.x + (screen.width - width) / 2,
        screen.y + (screen.height - height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(ctx.theme.accent())
        .style(ctx.theme.base())
        .title(Span::styled(
            title.to_string(),
            ctx.theme.accent().add_modifier(Modifier::BOLD),
        ));
    frame.render_widget(
        Paragraph::new(body).block(block).wrap(Wrap { trim: false }),
        area,
    );
}

/// The bordered block of a pane, its title in the accent colour when focused.
pub fn pane_block<'a>(pane: PaneId, extra: String, state: &AppState, ctx: &Ctx) -> Block<'a> {
    let focused = state.focus == pane;
    let title = format!(" {} {}{} ", pane.index() + 1, pane.title(), extra);
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused {
            ctx.theme.accent()
        } else {
            ctx.theme.muted()
        })
        .title(Span::styled(title, ctx.theme.title(focused)))
}

/// 1234 → "1.2k".
pub fn tokens(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.1}k", n as f64 / 1_000.0),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

/// Milliseconds → "950ms", "12s", "3m04s".
pub fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{}s", ms / 1_000),
        _ => format!("{}m{:02}s", ms / 60_000, (ms / 1_000) % 60),
    }
}

/// Text cut to `width` characters, with an ellipsis when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}
