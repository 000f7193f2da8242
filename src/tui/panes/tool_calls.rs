//! Tool calls of the selected run: status and duration; the selected call expands to its
//! arguments and result. A delegate call leads to the delegate's run.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, duration, fit};
use crate::runtime::control::PausePoint;
use crate::tui::app::{AppState, CallStatus, FOLD_LINES, ToolCallView, scroll_offset, short};
use crate::tui::highlight::Lang;
use crate::tui::keymap::PaneId;

pub struct ToolCallsPane;

impl Component for ToolCallsPane {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let calls = state.visible_calls();
        let extra = state
            .current_run()
            .map(|r| format!(" · {} ({})", r.expert_key, calls.len()))
            .unwrap_or_default();
        let block = super::pane_block(PaneId::ToolCalls, extra, state, ctx);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if calls.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled("No tool calls yet.", ctx.theme.muted())),
                inner,
            );
            return;
        }
        let height = inner.height as usize;
        let width = inner.width as usize;
        let focused = state.focus == PaneId::ToolCalls;
        // With a call expanded, put it near the top so its details have room.
        let offset = if state.call_expanded {
            state.call_cursor.saturating_sub(2)
        } else {
            scroll_offset(state.call_cursor, height, calls.len())
        };
        let mut lines: Vec<Line> = Vec::with_capacity(height);
        for (i, call) in calls.iter().enumerate().skip(offset) {
            if lines.len() >= height {
                break;
            }
            let line = call_line(call, marker(state, call), width, ctx);
            lines.push(if i == state.call_cursor && focused {
                line.patch_style(ctx.theme.selected())
            } else {
                line
            });
            if i == state.call_cursor && state.call_expanded {
                details(
                    call,
                    state.call_unfolded,
                    height.saturating_sub(lines.len()),
                    ctx,
                    &mut lines,
                );
            }
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

/// `⏸` on the call a run is paused before, `●` on calls of a tool with a breakpoint.
fn marker(state: &AppState, call: &ToolCallView) -> &'static str {
    let paused_here = state.paused.as_ref().is_some_and(|p| {
        matches!(&p.point, PausePoint::BeforeTool { tool_call_id, .. } if *tool_call_id == call.id)
    });
    let expert = state.current_run().map(|r| r.expert_key.as_str());
    if paused_here {
        "⏸"
    } else if expert.is_some_and(|e| state.breaks_on_call(e, &call.skill, &call.tool)) {
        "●"
    } else {
        " "
    }
}

fn call_line<'a>(call: &ToolCallView, marker: &'static str, width: usize, ctx: &Ctx) -> Line<'a> {
    let (icon, style) = match call.status {
        CallStatus::Running => ("⟳", ctx.theme.accent()),
        CallStatus::Done => ("✓", ctx.theme.added()),
        CallStatus::Error => ("✗", ctx.theme.error()),
    };
    let time = match (call.duration_ms, call.status) {
        (Some(ms), _) => duration(ms),
        // Paused before it, the call has not started.
        (None, CallStatus::Running) if marker == "⏸" => "paused before the call".into(),
        (None, CallStatus::Running) => "running".into(),
        (None, _) => String::new(),
    };
    let name = format!("{}/{}", call.skill, call.tool);
    let mut spans = vec![
        Span::styled(marker, ctx.theme.error()),
        Span::styled(format!("{icon} "), style),
        Span::styled(format!("#{} ", call.step), ctx.theme.muted()),
        Span::styled(
            fit(&name, width.saturating_sub(16)),
            ctx.theme.base().add_modifier(Modifier::BOLD),
        ),
        Span::styled(format!(" {time}"), ctx.theme.muted()),
    ];
    if let Some(child) = &call.delegate_run {
        spans.push(Span::styled(
            format!(" → run {}", short(child)),
            ctx.theme.accent(),
        ));
    }
    Line::from(spans)
}

fn details<'a>(
    call: &ToolCallView,
    unfolded: bool,
    room: usize,
    ctx: &Ctx,
    lines: &mut Vec<Line<'a>>,
) {
    // The caller stops at the pane's height; `room` bounds the work done here.
    let push = |line: Line<'a>, lines: &mut Vec<Line<'a>>| lines.push(line);
    push(Line::styled("  arguments", ctx.theme.accent()), lines);
    let args = serde_json::to_string_pretty(&call.args).unwrap_or_default();
    for text in args.lines().take(room) {
        let mut line = ctx.highlighter.line(Lang::Json, text);
        line.spans.insert(0, Span::raw("    "));
        push(line, lines);
    }
    if call.delegate_run.is_some() {
        push(
            Line::styled("  Enter shows the delegate's run", ctx.theme.accent()),
            lines,
        );
    }
    let Some(result) = &call.result else {
        push(Line::styled("  (no result yet)", ctx.theme.muted()), lines);
        return;
    };
    push(Line::styled("  result", ctx.theme.accent()), lines);
    // A JSON result is shown pretty and highlighted; text as it is.
    let (text, lang) = match serde_json::from_str::<serde_json::Value>(result) {
        Ok(value) if value.is_object() || value.is_array() => (
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| result.clone()),
            Lang::Json,
        ),
        _ => (result.clone(), Lang::Plain),
    };
    let total = text.lines().count();
    let shown = if unfolded {
        total
    } else {
        total.min(FOLD_LINES)
    };
    for text in text.lines().take(shown.min(room)) {
        let mut line = ctx.highlighter.line(lang, text);
        line.spans.insert(0, Span::raw("    "));
        push(line, lines);
    }
    if shown < total {
        push(
            Line::styled(
                format!("    … {} more line(s) · e unfolds", total - shown),
                ctx.theme.muted(),
            ),
            lines,
        );
    }
}
