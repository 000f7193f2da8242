//! The reload error panel: perstack.toml changed on disk and does not load. It lists every
//! diagnostic (file:line:column, the line, the fix) over the bottom of the panes until the file
//! is fixed; the last good definitions stay in force meanwhile.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{Component, Ctx};
use crate::tui::app::AppState;

pub struct ReloadErrors;

impl Component for ReloadErrors {
    /// `area` is the panes' area; the panel takes its lower part.
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        if state.reload_errors.is_empty() {
            return;
        }
        let mut lines: Vec<Line> = Vec::new();
        for diagnostic in &state.reload_errors {
            for text in diagnostic.lines() {
                let style = if text.starts_with("error") {
                    ctx.theme.error().add_modifier(Modifier::BOLD)
                } else if text.starts_with("warning") {
                    ctx.theme.warning()
                } else {
                    ctx.theme.base()
                };
                lines.push(Line::styled(text.to_string(), style));
            }
        }
        let height = (lines.len() as u16 + 2)
            .min(area.height / 2)
            .max(3.min(area.height));
        let panel = Rect::new(area.x, area.y + area.height - height, area.width, height);
        let count = state
            .reload_errors
            .iter()
            .filter(|d| d.starts_with("error"))
            .count();
        let title = format!(
            " perstack.toml does not load ({count} error{}) · the last good definitions stay in force · save a fix to clear ",
            if count == 1 { "" } else { "s" }
        );
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(ctx.theme.error())
            .style(ctx.theme.base())
            .title(Span::styled(
                title,
                ctx.theme.error().add_modifier(Modifier::BOLD),
            ));
        frame.render_widget(Clear, panel);
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false }),
            panel,
        );
    }
}
