//! Where each part of the screen goes: one pure function of the size and the state, used by
//! drawing and by mouse hit-testing alike so the two always agree.

use ratatui::layout::{Constraint, Layout, Rect};

use super::app::{AppState, Mode};
use super::panes::{PaneId, SIDE_BY_SIDE_WIDTH};

/// At this width and above the panes sit side by side; below it they become tabs. Each pane
/// declares the columns it needs (`Pane::WIDTH`); this is their sum.
pub const WIDE: u16 = SIDE_BY_SIDE_WIDTH;

pub struct Areas {
    pub tabs: Option<Rect>,
    pub panes: Vec<(PaneId, Rect)>,
    pub input: Option<Rect>,
    pub status: Rect,
}

pub fn areas(state: &AppState) -> Areas {
    let full = Rect::new(0, 0, state.width, state.height);
    let input_height = match state.mode {
        Mode::Query { .. } | Mode::FollowUp { .. } | Mode::Search { .. } => 3,
        _ => 0,
    };
    let [body, input, status] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(input_height),
        Constraint::Length(2),
    ])
    .areas(full);
    let input = (input_height > 0).then_some(input);
    if state.width >= WIDE {
        // Each pane's share of the width is its weight over the sum of all weights.
        let total: u32 = PaneId::ALL.iter().map(|p| p.width().weight).sum();
        let columns = Layout::horizontal(
            PaneId::ALL
                .iter()
                .map(|p| Constraint::Ratio(p.width().weight, total)),
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
        let wide = areas(&state(WIDE));
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
        let narrow = areas(&state(WIDE - 1));
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
        // Prompt weighs most, Timeline least.
        assert_eq!(widths, [44, 68, 52, 36]);
    }
}
