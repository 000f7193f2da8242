//! Timeline: the job's checkpoints in order; Enter shows the state at one of them.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, pane_block, tokens};
use crate::runtime::checkpoint::CheckpointStatus;
use crate::tui::app::{AppState, scroll_offset};
use crate::tui::keymap::PaneId;

pub struct TimelinePane;

pub fn status_name(status: CheckpointStatus) -> &'static str {
    match status {
        CheckpointStatus::Init => "init",
        CheckpointStatus::Proceeding => "step",
        CheckpointStatus::Completed => "completed",
        CheckpointStatus::StoppedByInteractiveTool => "asks you",
        CheckpointStatus::StoppedByDelegate => "delegated",
        CheckpointStatus::StoppedByExceededMaxSteps => "max steps",
        CheckpointStatus::StoppedByError => "error",
        CheckpointStatus::StoppedByCancel => "cancelled",
    }
}

impl Component for TimelinePane {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let extra = match state.pinned {
            Some(_) => " · pinned (Esc: live)".to_string(),
            None => String::new(),
        };
        let block = pane_block(PaneId::Timeline, extra, state, ctx);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if state.timeline.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled("No checkpoints yet.", ctx.theme.muted())),
                inner,
            );
            return;
        }
        let height = inner.height as usize;
        let offset = scroll_offset(state.timeline_cursor, height, state.timeline.len());
        let focused = state.focus == PaneId::Timeline;
        let lines: Vec<Line> = state
            .timeline
            .iter()
            .enumerate()
            .skip(offset)
            .take(height)
            .map(|(i, entry)| {
                let style = match entry.status {
                    CheckpointStatus::Completed => ctx.theme.added(),
                    CheckpointStatus::StoppedByError => ctx.theme.error(),
                    CheckpointStatus::Proceeding => ctx.theme.base(),
                    _ => ctx.theme.warning(),
                };
                let pin = if state.pinned == Some(i) { "◆" } else { " " };
                let line = Line::from(vec![
                    Span::styled(pin, ctx.theme.accent()),
                    Span::raw(format!("{}{} ", "·".repeat(entry.depth), entry.expert_key)),
                    Span::styled(format!("#{} ", entry.step), ctx.theme.accent()),
                    Span::styled(status_name(entry.status), style),
                    Span::styled(
                        format!(
                            " {}/{}",
                            tokens(entry.usage.input_tokens),
                            tokens(entry.usage.output_tokens)
                        ),
                        ctx.theme.muted(),
                    ),
                ]);
                if i == state.timeline_cursor && focused {
                    line.patch_style(ctx.theme.selected())
                } else {
                    line
                }
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }
}
