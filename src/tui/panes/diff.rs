//! The diff overlay: two checkpoints' messages (or their steps' request bodies), unified, in the
//! theme's added and removed colours.

use ratatui::Frame;
use ratatui::layout::Rect;

use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};

use super::{Component, Ctx, fit, overlay};
use crate::tui::app::{AppState, DiffLine, DiffSource};

pub struct DiffOverlay;

impl Component for DiffOverlay {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let Some(view) = &state.diff else {
            return;
        };
        let what = match view.source {
            DiffSource::Messages => "messages",
            DiffSource::Requests => "request bodies",
        };
        let title = format!(
            " Diff of {what}: − {} → + {} · +{} −{} · v {} · j/k scroll · Esc closes ",
            view.left,
            view.right,
            view.added,
            view.removed,
            match view.source {
                DiffSource::Messages => "request bodies",
                DiffSource::Requests => "messages",
            }
        );
        let (panel, block) = overlay(area, title, ctx);
        let inner = block.inner(panel);
        let width = inner.width as usize;
        let lines: Vec<Line> = if view.lines.is_empty() {
            vec![Line::styled("No difference.", ctx.theme.muted())]
        } else {
            view.lines
                .iter()
                .skip(state.diff_scroll)
                .take(inner.height as usize)
                .map(|(kind, text)| {
                    let (sign, style) = match kind {
                        DiffLine::Added => ("+ ", ctx.theme.added()),
                        DiffLine::Removed => ("- ", ctx.theme.removed()),
                        DiffLine::Context => ("  ", ctx.theme.muted()),
                        DiffLine::Hunk => ("", ctx.theme.accent()),
                    };
                    Line::styled(fit(&format!("{sign}{text}"), width), style)
                })
                .collect()
        };
        frame.render_widget(Clear, panel);
        frame.render_widget(Paragraph::new(lines).block(block), panel);
    }
}
