//! Experts: the definitions from perstack.toml, and the live run tree of the current job.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{
    Ctx, EventState, InputCtx, Pane, Request, Width, duration, fit, moved, movement, pane_block,
    tokens,
};
use crate::runtime::control::{BreakKind, Breakpoint};
use crate::tui::app::{
    AppState, EditorTarget, Effect, ExpertRow, JobData, Mode, RunStatus, scroll_offset,
};
use crate::tui::keymap::{Action, PaneId};

#[derive(Debug, Clone)]
pub struct ExpertsPane {
    /// The row under the cursor, an index into `JobData::expert_rows`.
    pub cursor: usize,
}

impl Default for ExpertsPane {
    fn default() -> Self {
        // Row 0 is the "Definitions" header; the first Expert is below it.
        ExpertsPane { cursor: 1 }
    }
}

impl ExpertsPane {
    /// The row under the cursor.
    pub fn row(&self, job: &JobData) -> Option<ExpertRow> {
        job.expert_rows().get(self.cursor).cloned()
    }

    /// Puts the cursor on `target`, wherever rows above it moved it.
    pub fn cursor_to(&mut self, job: &JobData, target: &ExpertRow) {
        if let Some(row) = job.expert_rows().iter().position(|r| r == target) {
            self.cursor = row;
        }
    }

    /// The Expert the cursor is on (a definition, one of its skills, or a run of it).
    pub fn expert_under_cursor(&self, job: &JobData) -> Option<String> {
        match self.row(job)? {
            ExpertRow::Expert(i) | ExpertRow::Skill { expert: i, .. } => {
                job.experts.get(i).map(|e| e.key.clone())
            }
            ExpertRow::Run { run_id, .. } => job.runs.get(&run_id).map(|r| r.expert_key.clone()),
            ExpertRow::Registry(i) => job.registry.get(i).map(|e| e.key.clone()),
            _ => None,
        }
    }

    /// What `o` opens: the Expert under the cursor, or the skill's own table on a skill row.
    fn definition_under_cursor(&self, job: &JobData) -> Option<EditorTarget> {
        let skill = match self.row(job)? {
            ExpertRow::Skill { expert, skill } => {
                Some(job.experts.get(expert)?.skills.get(skill)?.name.clone())
            }
            _ => None,
        };
        Some(EditorTarget::Definition {
            expert: self.expert_under_cursor(job)?,
            skill,
        })
    }

    fn move_by(&mut self, delta: isize, job: &JobData) {
        let rows = job.expert_rows();
        let mut cursor = moved(self.cursor, delta, rows.len());
        // Skip to the nearest selectable row in the direction of travel.
        while !rows.get(cursor).is_some_and(ExpertRow::selectable) {
            if delta < 0 && cursor > 0 {
                cursor -= 1;
            } else if delta >= 0 && cursor + 1 < rows.len() {
                cursor += 1;
            } else {
                cursor = self.cursor;
                break;
            }
        }
        self.cursor = cursor;
    }

    fn enter(&self, cx: &mut InputCtx) {
        match self.row(&cx.job) {
            Some(ExpertRow::Expert(i)) => cx.request(Request::SelectExpert(i)),
            Some(ExpertRow::Run { run_id, .. }) => cx.request(Request::SelectRun(run_id)),
            Some(ExpertRow::Registry(index)) => {
                cx.request(Request::Open(Mode::Published { index, scroll: 0 }))
            }
            _ => {}
        }
    }
}

/// The four breakpoints the Experts pane toggles for one Expert.
fn expert_breakpoint(action: Action, expert: &str) -> Option<Breakpoint> {
    let kind = match action {
        Action::BreakBeforeLlm => BreakKind::BeforeLlm,
        Action::BreakBeforeTool => BreakKind::BeforeTool {
            skill: None,
            tool: None,
        },
        Action::BreakAfterStep => BreakKind::AfterStep,
        Action::BreakOnError => BreakKind::OnError,
        _ => return None,
    };
    Some(Breakpoint {
        kind,
        expert: Some(expert.to_string()),
    })
}

/// Said when a breakpoint key finds nothing to set it on.
pub const NO_BREAKPOINT_TARGET: &str = "select an Expert or a tool call to set a breakpoint on";

impl Pane for ExpertsPane {
    const TITLE: &'static str = "Experts";
    const WIDTH: Width = Width {
        weight: 22,
        min: 26,
    };

    fn on_action(&mut self, action: Action, cx: &mut InputCtx) -> EventState {
        if let Some(delta) = movement(action, cx.page) {
            self.move_by(delta, &cx.job);
            return EventState::Consumed;
        }
        match action {
            Action::Enter => self.enter(cx),
            Action::BreakBeforeLlm
            | Action::BreakBeforeTool
            | Action::BreakAfterStep
            | Action::BreakOnError => {
                let breakpoint = self
                    .expert_under_cursor(&cx.job)
                    .and_then(|expert| expert_breakpoint(action, &expert));
                cx.request(match breakpoint {
                    Some(breakpoint) => Request::ToggleBreakpoint(breakpoint),
                    None => Request::Status(NO_BREAKPOINT_TARGET.into()),
                });
            }
            Action::OpenDefinition => match self.definition_under_cursor(&cx.job) {
                Some(target) => cx.request(Request::Effect(Effect::OpenInEditor(target))),
                None => return EventState::NotConsumed,
            },
            // Needs no Expert under the cursor: it holds for all of them, delegates included.
            Action::BreakBeforeLlmAll => cx.request(Request::ToggleBreakpoint(Breakpoint {
                kind: BreakKind::BeforeLlm,
                expert: None,
            })),
            _ => return EventState::NotConsumed,
        }
        EventState::Consumed
    }

    fn on_click(&mut self, line: usize, height: usize, cx: &mut InputCtx) -> EventState {
        let rows = cx.job.expert_rows();
        let index = scroll_offset(self.cursor, height, rows.len()) + line;
        if rows.get(index).is_some_and(ExpertRow::selectable) {
            self.cursor = index;
            self.enter(cx);
        }
        EventState::Consumed
    }

    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let block = pane_block(PaneId::Experts, String::new(), state, ctx);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let rows = state.expert_rows();
        let height = inner.height as usize;
        let width = inner.width as usize;
        let offset = scroll_offset(self.cursor, height, rows.len());
        let focused = state.focus == PaneId::Experts;
        let lines: Vec<Line> = rows
            .iter()
            .enumerate()
            .skip(offset)
            .take(height)
            .map(|(i, row)| {
                let line = row_line(row, state, ctx, width);
                if i == self.cursor && focused {
                    line.patch_style(ctx.theme.selected())
                } else if i == self.cursor {
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
        ExpertRow::Skill { expert, skill } => {
            let Some(skill) = state
                .experts
                .get(*expert)
                .and_then(|e| e.skills.get(*skill))
            else {
                return Line::default();
            };
            let confinement = match skill.confined {
                Some(true) => " · confined",
                Some(false) => " · unconfined",
                None => "",
            };
            let text = format!("  ◆ {} ({}){confinement}", skill.name, skill.kind);
            Line::styled(fit(&text, width), ctx.theme.muted())
        }
        ExpertRow::Registry(i) => {
            let Some(entry) = state.registry.get(*i) else {
                return Line::default();
            };
            let key = fit(&entry.key, width.saturating_sub(2));
            let used = key.chars().count() + 2;
            let detail = format!(" {} · {}", entry.short_digest, entry.source);
            Line::from(vec![
                Span::styled("⬢ ", ctx.theme.accent()),
                Span::styled(key, Style::default().add_modifier(Modifier::BOLD)),
                Span::styled(fit(&detail, width.saturating_sub(used)), ctx.theme.muted()),
            ])
        }
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
