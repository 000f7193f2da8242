//! `?`: every key of the focused pane, generated from the keymap table. When the list is
//! taller than the screen it flows into two columns.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

use super::{Component, Ctx, fit, popup};
use crate::tui::app::AppState;
use crate::tui::keymap::{self, Scope};

pub struct HelpOverlay;

/// The editing keys of every text box (`tui::input`), which the keymap table does not hold.
const TEXT_BOX_KEYS: [(&str, &str); 7] = [
    ("Enter", "submit"),
    ("Alt-Enter", "new line (also Shift-Enter, Ctrl-J)"),
    ("Ctrl-←/→", "word back / forward (also Alt-b / Alt-f)"),
    ("↑/↓", "earlier / later queries (first / last line)"),
    ("Ctrl-U", "delete to the start of the line"),
    ("Ctrl-Z", "undo"),
    ("Esc", "close the box"),
];

impl Component for HelpOverlay {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        // Rows as (label, text, is_heading).
        let mut rows: Vec<(String, String, bool)> = Vec::new();
        let mut last_scope = None;
        for binding in keymap::help_for(state.focus) {
            if last_scope != Some(binding.scope) {
                let heading = match binding.scope {
                    Scope::Pane(p) => format!("{} pane", p.title()),
                    Scope::Global => "Everywhere".into(),
                };
                rows.push((String::new(), heading, true));
                last_scope = Some(binding.scope);
            }
            rows.push((binding.label.to_string(), binding.help.to_string(), false));
        }
        rows.push((
            String::new(),
            "Text boxes (query, follow-up, answer, search)".into(),
            true,
        ));
        for (label, text) in TEXT_BOX_KEYS {
            rows.push((label.to_string(), text.to_string(), false));
        }
        let room = area.height.saturating_sub(4) as usize;
        let columns = if rows.len() > room { 2 } else { 1 };
        let per_column = rows.len().div_ceil(columns);
        let width = if columns == 2 {
            area.width
        } else {
            74.min(area.width)
        };
        let column_width = (width.saturating_sub(2) as usize) / columns;
        let cell = |row: Option<&(String, String, bool)>| -> Vec<Span<'static>> {
            match row {
                Some((_, heading, true)) => vec![Span::styled(
                    format!("{:<column_width$}", fit(heading, column_width)),
                    ctx.theme.muted().add_modifier(Modifier::BOLD),
                )],
                Some((label, text, false)) => vec![
                    Span::styled(
                        format!("{label:>9}  "),
                        ctx.theme.accent().add_modifier(Modifier::BOLD),
                    ),
                    Span::raw(format!(
                        "{:<w$}",
                        fit(text, column_width.saturating_sub(12)),
                        w = column_width.saturating_sub(11)
                    )),
                ],
                None => vec![Span::raw(" ".repeat(column_width))],
            }
        };
        let mut lines: Vec<Line> = (0..per_column)
            .map(|i| {
                let mut spans = cell(rows.get(i));
                if columns == 2 {
                    spans.extend(cell(rows.get(per_column + i)));
                }
                Line::from(spans)
            })
            .collect();
        lines.push(Line::styled(
            "Mouse: click focuses and selects, the wheel scrolls. Any key closes.",
            ctx.theme.muted(),
        ));
        let height = lines.len() as u16 + 2;
        popup(frame, " Keys ", lines, width, height, ctx);
    }
}
