//! Diffs between two checkpoints of the Timeline: their messages, or the request bodies sent
//! at their steps. Computed once when opened (with `similar`), then only scrolled.

use crossterm::event::{KeyCode, KeyEvent};
use similar::{ChangeTag, TextDiff};

use super::{AppState, Mode, TimelineEntry, short};

/// What two checkpoints are compared by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffSource {
    Messages,
    Requests,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffLine {
    Context,
    Added,
    Removed,
    /// `@@` between hunks.
    Hunk,
}

#[derive(Debug, Clone)]
pub struct DiffView {
    pub source: DiffSource,
    pub left: String,
    pub right: String,
    pub lines: Vec<(DiffLine, String)>,
    pub added: usize,
    pub removed: usize,
    left_entry: usize,
    right_entry: usize,
}

/// Unchanged lines kept around each change.
const CONTEXT: usize = 3;

impl DiffView {
    fn new(state: &AppState, left: usize, right: usize, source: DiffSource) -> Option<DiffView> {
        let (a, b) = (state.timeline.get(left)?, state.timeline.get(right)?);
        let (old, new) = (side_text(state, a, source), side_text(state, b, source));
        let diff = TextDiff::from_lines(&old, &new);
        let (mut lines, mut added, mut removed) = (Vec::new(), 0, 0);
        for (i, group) in diff.grouped_ops(CONTEXT).iter().enumerate() {
            if i > 0 {
                lines.push((DiffLine::Hunk, "@@".to_string()));
            }
            for op in group {
                for change in diff.iter_changes(op) {
                    let kind = match change.tag() {
                        ChangeTag::Equal => DiffLine::Context,
                        ChangeTag::Insert => {
                            added += 1;
                            DiffLine::Added
                        }
                        ChangeTag::Delete => {
                            removed += 1;
                            DiffLine::Removed
                        }
                    };
                    let text = change.value().trim_end_matches('\n').to_string();
                    lines.push((kind, text));
                }
            }
        }
        Some(DiffView {
            source,
            left: label(a),
            right: label(b),
            lines,
            added,
            removed,
            left_entry: left,
            right_entry: right,
        })
    }
}

fn label(entry: &TimelineEntry) -> String {
    format!(
        "{} step {} ({})",
        entry.expert_key,
        entry.step,
        short(&entry.run_id)
    )
}

/// The text one side of a diff shows: pretty JSON, so a change is a few lines, not one.
fn side_text(state: &AppState, entry: &TimelineEntry, source: DiffSource) -> String {
    let text = match source {
        // Through a `Value`: messages carry their JSON compact, one line each.
        DiffSource::Messages => serde_json::to_value(&entry.checkpoint.messages)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok()),
        DiffSource::Requests => state
            .runs
            .get(&entry.run_id)
            .and_then(|run| run.steps.get(&entry.step))
            .and_then(|step| step.request.as_ref())
            .map(|request| crate::editor::pretty_json(&request.body)),
    };
    let mut text = text.unwrap_or_else(|| "(no request was seen for this step)".to_string());
    text.push('\n');
    text
}

impl AppState {
    /// `m` in the Timeline: marks the entry at `index` as the left side of a diff.
    pub(super) fn mark_for_diff(&mut self, index: usize) {
        if self.timeline.is_empty() {
            return;
        }
        if self.diff_mark == Some(index) {
            self.diff_mark = None;
            self.status = Some("diff mark cleared".into());
        } else {
            self.diff_mark = Some(index);
            self.status =
                Some("marked; move to another checkpoint and press d to compare".to_string());
        }
    }

    /// `d` in the Timeline: the marked checkpoint against the one at `right`, or without a
    /// mark, the previous checkpoint of the same run against it.
    pub(super) fn open_diff(&mut self, right: usize) {
        let left = self.diff_mark.filter(|&m| m != right).or_else(|| {
            let run = &self.timeline.get(right)?.run_id;
            self.timeline[..right]
                .iter()
                .rposition(|e| &e.run_id == run)
        });
        let Some(left) = left else {
            self.status = Some("mark a checkpoint with m first, then press d on another".into());
            return;
        };
        if let Some(view) = DiffView::new(self, left, right, DiffSource::Messages) {
            self.diff = Some(view);
            self.diff_scroll = 0;
            self.mode = Mode::Diff;
        }
    }

    pub(super) fn on_diff_key(&mut self, key: KeyEvent) {
        let Some(view) = &self.diff else {
            self.mode = Mode::Normal;
            return;
        };
        let len = view.lines.len();
        let page = self.height.saturating_sub(6).max(1) as usize;
        self.diff_scroll = match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.diff_scroll + 1,
            KeyCode::Up | KeyCode::Char('k') => self.diff_scroll.saturating_sub(1),
            KeyCode::PageDown | KeyCode::Char(' ') => self.diff_scroll + page,
            KeyCode::PageUp => self.diff_scroll.saturating_sub(page),
            KeyCode::Home | KeyCode::Char('g') => 0,
            KeyCode::End | KeyCode::Char('G') => len,
            KeyCode::Char('v') => {
                let source = match view.source {
                    DiffSource::Messages => DiffSource::Requests,
                    DiffSource::Requests => DiffSource::Messages,
                };
                let (left, right) = (view.left_entry, view.right_entry);
                self.diff = DiffView::new(self, left, right, source);
                0
            }
            _ => {
                self.mode = Mode::Normal;
                self.diff = None;
                return;
            }
        }
        .min(len.saturating_sub(1));
    }
}
