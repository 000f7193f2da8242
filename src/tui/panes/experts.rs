//! Experts: the definitions from perstack.toml, and the live run tree of the current job.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, duration, fit, pane_block, tokens};
use crate::tui::app::{AppState, ExpertRow, RunStatus, scroll_offset};
use crate::tui::keymap::PaneId;

pub struct ExpertsPane;

impl Component for ExpertsPane {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let block = pane_block(PaneId::Experts, String::new(), state, ctx);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let rows = state.expert_rows();
        let height = inner.height as usize;
        let width = inner.width as usize;
        let offset = scroll_offset(state.expert_cursor, height, rows.len());
        let focused = state.focus == PaneId::Experts;
        let lines: Vec<Line> = rows
            .iter()
            .enumerate()
            .skip(offset)
            .take(height)
            .map(|(i, row)| {
                let line = row_line(row, state, ctx, width);
                if i == state.expert_cursor && focused {
                    line.patch_style(ctx.theme.selected())
                } else if i == state.expert_cursor {
                    line.patch_style(Style::default().add_modifier(Modifier::UNDERLINED))
                } else {
                    line
                }
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

fn row_line<'a>(row: &ExpertRow, state: &AppState, ctx: &Ctx, width: usize) -> Line<'a> {
    match row {
        ExpertRow::Header(title) => Line::styled(
            title.to_string(),
            ctx.theme.muted().add_modifier(Modifier::BOLD),
        ),
        ExpertRow::Expert(i) => {
            let Some(expert) = state.experts.get(*i) else {
                return Line::default();
            };
            let open = *i == state.selected_expert;
            let mark = if open { "▾ " } else { "▸ " };
            let mut spans = vec![
                Span::styled(mark, ctx.theme.accent()),
                Span::styled(
                    expert.key.clone(),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
            ];
            let marks = state.breakpoint_marks(&expert.key);
            let mut used = expert.key.chars().count() + 3;
            if !marks.is_empty() {
                // A breakpoint is where a run of this Expert will stop: in the error colour.
                let text = format!(" ● {}", marks.join(" "));
                used += text.chars().count();
                spans.push(Span::styled(text, ctx.theme.error()));
            }
            let room = width.saturating_sub(used);
            if room > 8 && !expert.description.is_empty() {
                spans.push(Span::styled(
                    format!(" {}", fit(&expert.description, room)),
                    ctx.theme.muted(),
                ));
            }
            Line::from(spans)
        }
        ExpertRow::Detail(text) => Line::styled(fit(text, width), ctx.theme.muted()),
        ExpertRow::Run { run_id, depth } => {
            let Some(run) = state.runs.get(run_id) else {
                return Line::default();
            };
            let paused = state.paused.as_ref().is_some_and(|p| &p.run_id == run_id);
            let label = if paused {
                "paused"
            } else {
                state.run_label(run)
            };
            let (icon, style) = match (run.status, label) {
                (_, "paused") => ("⏸", ctx.theme.error()),
                (RunStatus::Running, "waiting") => ("◌", ctx.theme.warning()),
                (RunStatus::Running, _) => ("●", ctx.theme.accent()),
                (RunStatus::Done, _) => ("✓", ctx.theme.added()),
                (RunStatus::Error, _) => ("✗", ctx.theme.error()),
                (RunStatus::WaitingForAnswer, _) => ("?", ctx.theme.warning()),
                (RunStatus::Stopped, _) => ("■", ctx.theme.muted()),
            };
            let end = run.finished_at.unwrap_or(state.now_ms.max(run.started_at));
            let elapsed = duration(end.saturating_sub(run.started_at));
            let selected = state.current_run().is_some_and(|r| r.run_id == run.run_id);
            let indent = "  ".repeat(*depth);
            let name_style = if selected {
                Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
            } else {
                Style::default().add_modifier(Modifier::BOLD)
            };
            let branch = if *depth > 0 {
                "└ "
            } else if state.root_run.as_ref() != Some(run_id) {
                "⑂ "
            } else {
                ""
            };
            Line::from(vec![
                Span::raw(format!("{indent}{branch}")),
                Span::styled(format!("{icon} "), style),
                Span::styled(run.expert_key.clone(), name_style),
                Span::styled(format!(" {label}"), style),
                Span::styled(
                    format!(
                        " s{} {}/{} {elapsed}",
                        run.step,
                        tokens(run.usage.input_tokens),
                        tokens(run.usage.output_tokens)
                    ),
                    ctx.theme.muted(),
                ),
            ])
        }
    }
}
