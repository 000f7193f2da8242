//! Timeline: the job's checkpoints in order; Enter shows the state at one of them.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{
    Ctx, EventState, InputCtx, Pane, Request, Width, moved, movement, pane_block, tokens, wrap_line,
};
use crate::runtime::checkpoint::CheckpointStatus;
use crate::tui::app::{AppState, scroll_offset};
use crate::tui::keymap::{Action, PaneId};

#[derive(Debug, Clone, Default)]
pub struct TimelinePane {
    /// The selected checkpoint, an index into the timeline.
    pub cursor: usize,
    /// Rows the selected checkpoint took at the last frame (more than one when it wrapped), so
    /// a click finds the row it landed on.
    cursor_rows: std::cell::Cell<usize>,
}

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

impl Pane for TimelinePane {
    const TITLE: &'static str = "Timeline";
    const WIDTH: Width = Width {
        weight: 18,
        min: 22,
    };

    fn on_action(&mut self, action: Action, cx: &mut InputCtx) -> EventState {
        if let Some(delta) = movement(action, cx.page) {
            self.cursor = moved(self.cursor, delta, cx.job.timeline.len());
            return EventState::Consumed;
        }
        let request = match action {
            Action::Enter if self.cursor < cx.job.timeline.len() => Request::Pin(self.cursor),
            Action::Enter => return EventState::Consumed,
            Action::Fork => Request::Fork(self.cursor),
            Action::AbCompare => Request::AbCompare(self.cursor),
            Action::ReopenCompare => Request::ReopenCompare,
            Action::MarkDiff => Request::MarkDiff(self.cursor),
            Action::Diff => Request::Diff(self.cursor),
            _ => return EventState::NotConsumed,
        };
        cx.request(request);
        EventState::Consumed
    }

    fn on_click(&mut self, line: usize, height: usize, cx: &mut InputCtx) -> EventState {
        let len = cx.job.timeline.len();
        let extra = self.cursor_rows.get().saturating_sub(1);
        let offset = scroll_offset(self.cursor, height.saturating_sub(extra).max(1), len);
        // Rows below the selected checkpoint are `extra` rows further down than their index.
        let index = match offset + line {
            i if i <= self.cursor => i,
            i if i <= self.cursor + extra => self.cursor,
            i => i - extra,
        };
        if index < len {
            self.cursor = index;
            cx.request(Request::Pin(index));
        }
        EventState::Consumed
    }

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
        let width = inner.width as usize;
        let focused = state.focus == PaneId::Timeline;
        // Runs forked from a checkpoint, drawn as branches of it.
        let forks: Vec<&str> = state
            .timeline
            .iter()
            .filter(|e| e.fork_of.is_some())
            .map(|e| e.run_id.as_str())
            .collect();
        let row = |i: usize, entry: &crate::tui::app::TimelineEntry| {
            let style = match entry.status {
                CheckpointStatus::Completed => ctx.theme.added(),
                CheckpointStatus::StoppedByError => ctx.theme.error(),
                CheckpointStatus::Proceeding => ctx.theme.base(),
                _ => ctx.theme.warning(),
            };
            // One gutter column: the diff mark, else the pinned checkpoint.
            let (pin, pin_style) = if state.diff_mark == Some(i) {
                ("m", ctx.theme.warning())
            } else if state.pinned == Some(i) {
                ("◆", ctx.theme.accent())
            } else {
                (" ", ctx.theme.accent())
            };
            let branch = if forks.contains(&entry.run_id.as_str()) {
                "⑂ "
            } else {
                ""
            };
            let mut spans = vec![
                Span::styled(pin, pin_style),
                Span::styled(branch, ctx.theme.accent()),
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
            ];
            if let Some(origin) = entry.fork_of.and_then(|o| state.timeline.get(o)) {
                spans.push(Span::styled(
                    format!(" ← fork of {} #{}", origin.expert_key, origin.step),
                    ctx.theme.accent(),
                ));
            }
            if entry.checkpoint.edited_requests.contains(&entry.step) {
                spans.push(Span::styled(" ✎ edited", ctx.theme.warning()));
            }
            let line = Line::from(spans);
            if i == self.cursor && focused {
                line.patch_style(ctx.theme.selected())
            } else {
                line
            }
        };
        // The row under the cursor is never cut: what does not fit goes on below it, under
        // its text. The rows above make room for it.
        let cursor_rows = state
            .timeline
            .get(self.cursor)
            .map(|entry| wrap_line(row(self.cursor, entry), width, 2, height))
            .unwrap_or_default();
        self.cursor_rows.set(cursor_rows.len());
        let extra = cursor_rows.len().saturating_sub(1);
        let offset = scroll_offset(
            self.cursor,
            height.saturating_sub(extra).max(1),
            state.timeline.len(),
        );
        let mut lines: Vec<Line> = Vec::with_capacity(height);
        for (i, entry) in state.timeline.iter().enumerate().skip(offset) {
            if lines.len() >= height {
                break;
            }
            if i == self.cursor {
                lines.extend(cursor_rows.iter().cloned());
            } else {
                lines.push(row(i, entry));
            }
        }
        lines.truncate(height);
        frame.render_widget(Paragraph::new(lines), inner);
    }
}
