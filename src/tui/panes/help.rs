//! `?`: every key of the focused pane, generated from the keymap table.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

use super::{Component, Ctx, popup};
use crate::tui::app::AppState;
use crate::tui::keymap::{self, Scope};

pub struct HelpOverlay;

impl Component for HelpOverlay {
    fn draw(&self, frame: &mut Frame, _area: Rect, state: &AppState, ctx: &Ctx) {
        let mut lines = Vec::new();
        let mut last_scope = None;
        for binding in keymap::help_for(state.focus) {
            if last_scope != Some(binding.scope) {
                let heading = match binding.scope {
                    Scope::Pane(p) => format!("{} pane", p.title()),
                    Scope::Global => "Everywhere".into(),
                };
                if last_scope.is_some() {
                    lines.push(Line::default());
                }
                lines.push(Line::styled(heading, ctx.theme.muted().add_modifier(Modifier::BOLD)));
                last_scope = Some(binding.scope);
            }
            lines.push(Line::from(vec![
                Span::styled(format!("{:>9}  ", binding.label), ctx.theme.accent().add_modifier(Modifier::BOLD)),
                Span::raw(binding.help),
            ]));
        }
        lines.push(Line::default());
        lines.push(Line::styled("Mouse: click focuses and selects, the wheel scrolls. Any key closes.", ctx.theme.muted()));
        let height = lines.len() as u16 + 2;
        popup(frame, " Keys ", lines, 74, height, ctx);
    }
}
