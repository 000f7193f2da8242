//! Where each part of the screen goes: one pure function of the size and the state, used by
//! drawing and by mouse hit-testing alike so the two always agree.

use ratatui::layout::{Constraint, Layout, Rect};

use super::app::{AppState, Mode};
use super::panes::{PaneId, SIDE_BY_SIDE_WIDTH};

/// At this width and above the panes may sit side by side (when the tool names fit, see
/// `side_by_side_width`); below it they become tabs. Each pane declares the columns it needs
/// (`Pane::WIDTH`); this is their sum.
pub const WIDE: u16 = SIDE_BY_SIDE_WIDTH;

/// The focused pane's weight counts this many times: the pane being read gets the room.
const FOCUS_GAIN: u32 = 2;

/// Columns of a Tool calls row besides the `skill/tool` name: marker, status, step number,
/// duration, and the border.
const TOOL_ROW_EXTRA: usize = 18;

/// The columns `pane` needs side by side. The Tool calls pane needs its longest `skill/tool`
/// name whole (of the definitions' tools and of the calls made), or the panes become tabs.
pub fn min_width(state: &AppState, pane: PaneId) -> u16 {
    let base = pane.width().min;
    if pane != PaneId::ToolCalls {
        return base;
    }
    let defined = state.experts.iter().flat_map(|e| {
        e.skills.iter().flat_map(|s| {
            s.tools
                .iter()
                .flatten()
                .map(move |t| s.name.chars().count() + 1 + t.chars().count())
        })
    });
    let called = state.runs.values().flat_map(|r| {
        r.calls
            .iter()
            .map(|c| c.skill.chars().count() + 1 + c.tool.chars().count())
    });
    let longest = defined.chain(called).max().unwrap_or(0);
    base.max((longest + TOOL_ROW_EXTRA).min(u16::MAX as usize) as u16)
}

/// Columns enough for every pane side by side, tool names whole.
pub fn side_by_side_width(state: &AppState) -> u16 {
    PaneId::ALL
        .iter()
        .map(|&p| min_width(state, p))
        .fold(0u16, u16::saturating_add)
}

/// Each pane's columns: its minimum, and a share of what is left by weight, the focused
/// pane's weight counted `FOCUS_GAIN` times (and the rounding's leftover going to it).
fn column_widths(state: &AppState, total: u16) -> Vec<u16> {
    let mins: Vec<u16> = PaneId::ALL.iter().map(|&p| min_width(state, p)).collect();
    let weights: Vec<u32> = PaneId::ALL
        .iter()
        .map(|&p| p.width().weight * if p == state.focus { FOCUS_GAIN } else { 1 })
        .collect();
    let spare = u32::from(total.saturating_sub(mins.iter().sum()));
    let weight_sum: u32 = weights.iter().sum::<u32>().max(1);
    let mut widths: Vec<u16> = mins
        .iter()
        .zip(&weights)
        .map(|(&min, &w)| min + (spare * w / weight_sum) as u16)
        .collect();
    let leftover = total.saturating_sub(widths.iter().sum());
    widths[state.focus.index()] += leftover;
    widths
}

pub struct Areas {
    pub tabs: Option<Rect>,
    pub panes: Vec<(PaneId, Rect)>,
    pub input: Option<Rect>,
    pub status: Rect,
}

pub fn areas(state: &AppState) -> Areas {
    let full = Rect::new(0, 0, state.width, state.height);
    // The box grows with its lines (up to `MAX_VISIBLE_LINES`), framed above and below.
    let input_height = match &state.mode {
        Mode::Query { input } | Mode::FollowUp { input } | Mode::Search { input } => {
            input.visible_lines() as u16 + 2
        }
        _ => 0,
    };
    let [body, input, status] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(input_height),
        Constraint::Length(2),
    ])
    .areas(full);
    let input = (input_height > 0).then_some(input);
    if state.zoomed {
        return Areas {
            tabs: None,
            panes: vec![(state.focus, body)],
            input,
            status,
        };
    }
    if state.width >= side_by_side_width(state) {
        let columns = Layout::horizontal(
            column_widths(state, body.width)
                .into_iter()
                .map(Constraint::Length),
        )
        .split(body);
        let panes = PaneId::ALL
            .iter()
            .copied()
            .zip(columns.iter().copied())
            .collect();
        Areas {
            tabs: None,
            panes,
            input,
            status,
        }
    } else {
        let [tabs, pane] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(body);
        Areas {
            tabs: Some(tabs),
            panes: vec![(state.focus, pane)],
            input,
            status,
        }
    }
}

fn contains(rect: Rect, col: u16, row: u16) -> bool {
    col >= rect.x && col < rect.x + rect.width && row >= rect.y && row < rect.y + rect.height
}

pub fn pane_at(state: &AppState, col: u16, row: u16) -> Option<PaneId> {
    areas(state)
        .panes
        .into_iter()
        .find(|(_, rect)| contains(*rect, col, row))
        .map(|(pane, _)| pane)
}

pub fn pane_area(state: &AppState, pane: PaneId) -> Option<Rect> {
    areas(state)
        .panes
        .into_iter()
        .find(|(p, _)| *p == pane)
        .map(|(_, rect)| rect)
}

/// The tab labels, as drawn: " 1 Experts " and so on, left to right.
pub fn tab_labels() -> Vec<String> {
    PaneId::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| format!(" {} {} ", i + 1, p.title()))
        .collect()
}

pub fn tab_at(state: &AppState, col: u16, row: u16) -> Option<PaneId> {
    let tabs = areas(state).tabs?;
    if !contains(tabs, col, row) {
        return None;
    }
    let mut x = tabs.x;
    for (label, pane) in tab_labels().iter().zip(PaneId::ALL) {
        let width = label.chars().count() as u16 + 1;
        if col < x + width {
            return Some(pane);
        }
        x += width;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::Msg;
    use crate::tui::test_support::example_config;

    fn state(width: u16) -> AppState {
        let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
        state.update(Msg::Resize { width, height: 30 });
        state
    }

    #[test]
    fn the_panes_sit_side_by_side_from_the_sum_of_their_minimums() {
        let wide = areas(&state(side_by_side_width(&state(200))));
        assert!(wide.tabs.is_none());
        assert_eq!(wide.panes.len(), PaneId::ALL.len());
        for (pane, area) in &wide.panes {
            assert!(
                area.width >= pane.width().min,
                "{} is {} columns, fewer than its {}",
                pane.title(),
                area.width,
                pane.width().min
            );
        }
        let narrow = areas(&state(side_by_side_width(&state(200)) - 1));
        assert!(narrow.tabs.is_some());
        assert_eq!(narrow.panes.len(), 1);
    }

    #[test]
    fn the_columns_follow_the_registry_order_and_weights() {
        let areas = areas(&state(200));
        let order: Vec<PaneId> = areas.panes.iter().map(|(p, _)| *p).collect();
        assert_eq!(order, PaneId::ALL);
        let widths: Vec<u16> = areas.panes.iter().map(|(_, a)| a.width).collect();
        assert_eq!(widths.iter().sum::<u16>(), 200);
        // The focused Experts pane doubles its weight; of the rest, Prompt weighs most.
        assert_eq!(widths, [48, 58, 63, 31]);
    }

    #[test]
    fn the_focused_pane_grows_and_zoom_takes_the_screen() {
        let mut state = state(200);
        let width_of = |state: &AppState, pane: PaneId| pane_area(state, pane).map(|a| a.width);
        let unfocused = width_of(&state, PaneId::Prompt).expect("side by side");
        state.focus = PaneId::Prompt;
        let focused = width_of(&state, PaneId::Prompt).expect("side by side");
        assert!(focused > unfocused + 10, "{focused} vs {unfocused}");
        state.zoomed = true;
        let zoomed = areas(&state);
        assert_eq!(zoomed.panes.len(), 1);
        assert_eq!(zoomed.panes[0].1.width, 200);
        assert!(zoomed.tabs.is_none());
    }

    #[test]
    fn below_the_width_where_tool_names_fit_whole_the_panes_are_tabs() {
        // The example's longest name is `@perstack/base/attemptCompletion`.
        let longest = "@perstack/base/attemptCompletion".len() as u16;
        let state = state(200);
        assert_eq!(
            min_width(&state, PaneId::ToolCalls),
            longest + TOOL_ROW_EXTRA as u16
        );
        assert!(areas(&self::state(120)).tabs.is_some());
        assert!(areas(&self::state(160)).tabs.is_none());
    }
}
