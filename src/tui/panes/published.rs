//! A registry Expert's published definition, read-only: the exact text whose digest the lock
//! holds, wrapped (never cut), with headers, keys and comments told apart.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::{Component, Ctx, overlay};
use crate::tui::app::{AppState, Mode};

pub struct PublishedOverlay;

impl Component for PublishedOverlay {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let Mode::Published { index, scroll } = state.mode else {
            return;
        };
        let Some(entry) = state.registry.get(index) else {
            return;
        };
        let title = format!(
            " {} · {} · {} · read-only · V copies it into perstack.toml · j/k scroll · Esc closes ",
            entry.key, entry.source, entry.digest
        );
        let (panel, block) = overlay(area, title, ctx);
        let lines: Vec<Line> = match &entry.text {
            Some(_) => state
                .published_lines(index)
                .into_iter()
                .map(|line| toml_line(line, ctx))
                .collect(),
            None => vec![Line::styled(
                "The published text is not in the cache: run `perstack install` to fetch it.",
                ctx.theme.error(),
            )],
        };
        frame.render_widget(Clear, panel);
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false })
                .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0)),
            panel,
        );
    }
}

/// Table headers in the accent colour, keys bold, comments muted, values as they are.
fn toml_line<'a>(line: &str, ctx: &Ctx) -> Line<'a> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        return Line::styled(line.to_string(), ctx.theme.accent());
    }
    if trimmed.starts_with('#') {
        return Line::styled(line.to_string(), ctx.theme.muted());
    }
    match line.split_once(" = ") {
        Some((key, value)) if !key.trim().is_empty() && !key.contains('"') => Line::from(vec![
            Span::styled(
                key.to_string(),
                ctx.theme.base().add_modifier(Modifier::BOLD),
            ),
            Span::styled(" = ", ctx.theme.muted()),
            Span::raw(value.to_string()),
        ]),
        _ => Line::raw(line.to_string()),
    }
}
