//! Prompt: the exact request of the selected run and step, as a raw body or as a conversation,
//! with the model's answer streaming in live. Only the visible lines are laid out.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{Component, Ctx, fit};
use crate::runtime::control::PausePoint;
use crate::tui::app::{AppState, ConvLine, PromptView, Role, RunView, StepView, streaming_lines};
use crate::tui::highlight::{Lang, cut};
use crate::tui::keymap::PaneId;

pub struct PromptPane;

/// Characters of one line worth laying out: the pane cannot show more.
const MAX_COLS: usize = 1_000;

impl Component for PromptPane {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let current = state.current_run().zip(state.current_step());
        let extra = match current {
            Some((run, (n, step))) => {
                format!(
                    " · {} step {n} · {}{}",
                    run.expert_key,
                    match state.prompt_view {
                        PromptView::Raw => "raw body",
                        PromptView::Conversation => "conversation",
                    },
                    if step.streaming { " · streaming" } else { "" }
                ) + &request_note(state, &run.run_id, n, step)
            }
            None => String::new(),
        };
        let block = super::pane_block(PaneId::Prompt, extra, state, ctx);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let Some((run, (_, step))) = current else {
            frame.render_widget(Paragraph::new(empty(state, ctx)), inner);
            return;
        };
        let height = inner.height as usize;
        let width = inner.width as usize;
        let scroll = state.prompt_scroll;
        let lines: Vec<Line> = (scroll..scroll + height)
            .map_while(|i| match state.prompt_view {
                PromptView::Raw => raw_line(step, i, width, ctx),
                PromptView::Conversation => conv_line(state, run, step, i, ctx),
            })
            .map(|line| mark_search(line, state, ctx))
            .collect();
        // Long lines wrap; at most `height` lines were laid out, so wrapping stays cheap.
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    }
}

/// Says when the body shown is about to be sent (a pause before the model call) or was edited.
fn request_note(state: &AppState, run_id: &str, step_number: u64, step: &StepView) -> String {
    let about_to_send = state.paused.as_ref().is_some_and(|p| {
        p.run_id == run_id && p.step == step_number && p.point == PausePoint::BeforeLlm
    });
    let edited = step.request.as_ref().is_some_and(|r| r.edited);
    match (about_to_send, edited) {
        (true, true) => " · ⏸ edited, to be sent".into(),
        (true, false) => " · ⏸ to be sent".into(),
        (false, true) => " · ✎ edited".into(),
        (false, false) => String::new(),
    }
}

fn empty<'a>(state: &AppState, ctx: &Ctx) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    if let Some(error) = &state.provider_error {
        lines.push(Line::styled("No model provider:", ctx.theme.error()));
        lines.push(Line::styled(error.clone(), ctx.theme.error()));
        lines.push(Line::default());
        lines.push(Line::from(vec![
            Span::raw("Press "),
            Span::styled("r", ctx.theme.accent().add_modifier(Modifier::BOLD)),
            Span::raw(" to use the replay provider (offline, no key)."),
        ]));
        lines.push(Line::default());
    }
    lines.push(Line::styled("No request yet.", ctx.theme.muted()));
    lines.push(Line::from(vec![
        Span::raw("Press "),
        Span::styled("i", ctx.theme.accent().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            " to start a run of {}.",
            state.selected_expert_key().unwrap_or("an Expert")
        )),
    ]));
    lines
}

fn raw_line<'a>(step: &StepView, i: usize, width: usize, ctx: &Ctx) -> Option<Line<'a>> {
    let request = step.request.as_ref()?;
    match i {
        0 => Some(Line::from(vec![
            Span::styled(
                format!("{} ", request.method),
                ctx.theme.accent().add_modifier(Modifier::BOLD),
            ),
            Span::raw(request.url.clone()),
        ])),
        1 => {
            let headers: Vec<String> = request
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            Some(Line::styled(
                fit(&headers.join(" · "), width),
                ctx.theme.muted(),
            ))
        }
        2 => Some(Line::default()),
        _ => {
            let pretty = step.pretty.as_ref()?;
            let n = i - 3;
            (n < pretty.len()).then(|| {
                ctx.highlighter
                    .line(Lang::Json, cut(pretty.line(n), MAX_COLS))
            })
        }
    }
}

fn role_style(role: Role, ctx: &Ctx) -> (&'static str, Style) {
    match role {
        Role::System => ("system", ctx.theme.muted().add_modifier(Modifier::BOLD)),
        Role::User => ("user", ctx.theme.accent().add_modifier(Modifier::BOLD)),
        Role::Assistant => ("assistant", ctx.theme.added().add_modifier(Modifier::BOLD)),
        Role::Thinking => ("thinking", ctx.theme.muted().add_modifier(Modifier::ITALIC)),
        Role::ToolCall => ("call", ctx.theme.warning().add_modifier(Modifier::BOLD)),
        Role::Tool => ("tool", ctx.theme.warning()),
        Role::Response => ("response", ctx.theme.accent().add_modifier(Modifier::BOLD)),
    }
}

fn conv_line<'a>(
    state: &AppState,
    run: &RunView,
    step: &StepView,
    i: usize,
    ctx: &Ctx,
) -> Option<Line<'a>> {
    let (len, line): (usize, Option<&ConvLine>) = if state.show_thinking {
        (step.conv_len, run.conv.get(i))
    } else {
        (
            step.conv_folded_len,
            run.conv_folded
                .get(i)
                .and_then(|&j| run.conv.get(j as usize)),
        )
    };
    if i < len {
        let line = line?;
        return Some(labelled(line.role, line.first, &line.text, ctx));
    }
    // Below the history: the answer of this step, live while it streams.
    let live = streaming_lines(step, state.show_thinking);
    let (role, text) = live.get(i - len)?;
    Some(labelled(
        *role,
        i == len || live.get(i - len - 1).is_some_and(|(r, _)| r != role),
        text,
        ctx,
    ))
}

fn labelled<'a>(role: Role, first: bool, text: &str, ctx: &Ctx) -> Line<'a> {
    let (name, style) = role_style(role, ctx);
    if role == Role::Response {
        return Line::styled(format!("── {name} ──"), style);
    }
    let label = if first {
        format!("{name:>9} ")
    } else {
        " ".repeat(10)
    };
    let body_style = match role {
        Role::Thinking => ctx.theme.muted().add_modifier(Modifier::ITALIC),
        Role::System => ctx.theme.muted(),
        _ => Style::default(),
    };
    Line::from(vec![
        Span::styled(label, style),
        Span::styled(cut(text, MAX_COLS).to_string(), body_style),
    ])
}

/// Lines containing the search term get the selection background.
fn mark_search<'a>(line: Line<'a>, state: &AppState, ctx: &Ctx) -> Line<'a> {
    let Some(needle) = &state.search else {
        return line;
    };
    let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
    if text.to_lowercase().contains(&needle.to_lowercase()) {
        line.patch_style(Style::default().bg(ctx.theme.selection))
    } else {
        line
    }
}
