//! The status bar: job, run, Expert, state, step, tokens, estimated cost, elapsed time, and the
//! keys of the focused pane.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, duration, fit, tokens};
use crate::runtime::control::PausePoint;
use crate::tui::app::{AppState, JobState, short};
use crate::tui::keymap;
use crate::tui::pricing;

pub struct StatusBar;

impl Component for StatusBar {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let width = area.width as usize;
        let mut spans = Vec::new();
        let sep = || Span::styled(" │ ", ctx.theme.muted());
        let state_style = match state.job_state {
            JobState::Running => ctx.theme.accent(),
            JobState::Completed => ctx.theme.added(),
            JobState::Failed => ctx.theme.error(),
            JobState::Idle => ctx.theme.muted(),
            _ => ctx.theme.warning(),
        };
        let (label, state_style) = match &state.paused {
            Some(_) => ("paused", ctx.theme.error()),
            None => (state.job_state.label(), state_style),
        };
        spans.push(Span::styled(
            format!(" {label} "),
            state_style.add_modifier(Modifier::BOLD | Modifier::REVERSED),
        ));
        // Narrow screens drop the job id and model name: tokens and time matter more.
        let wide = width >= 120;
        if let (Some(job), true) = (&state.job_id, wide) {
            spans.push(Span::raw(format!(" job {}", short(job))));
        }
        if let Some(run) = state.current_run() {
            spans.push(sep());
            if wide {
                spans.push(Span::raw(format!("run {} ", short(&run.run_id))));
            }
            spans.push(Span::styled(
                run.expert_key.clone(),
                ctx.theme.accent().add_modifier(Modifier::BOLD),
            ));
            spans.push(sep());
            spans.push(Span::raw(format!("step {}/{}", run.step, run.max_steps)));
        } else if let Some(key) = state.selected_expert_key() {
            spans.push(sep());
            spans.push(Span::styled(
                key.to_string(),
                ctx.theme.accent().add_modifier(Modifier::BOLD),
            ));
        }
        let usage = state.total_usage();
        spans.push(sep());
        spans.push(Span::raw(format!(
            "in {} out {}",
            tokens(usage.input_tokens),
            tokens(usage.output_tokens)
        )));
        // Web searches the provider ran are billed per use, beside the tokens.
        let provider_tools = state
            .runs
            .values()
            .flat_map(|run| run.calls.iter())
            .filter(|call| call.run_by_provider)
            .map(|call| call.tool.as_str());
        if let Some(cost) = pricing::estimate_with_tools(&state.model, &usage, provider_tools) {
            spans.push(Span::styled(format!(" ~${cost:.3}"), ctx.theme.muted()));
        }
        if wide {
            spans.push(sep());
            spans.push(Span::styled(state.model.clone(), ctx.theme.muted()));
        }
        if state.sandbox_disabled {
            spans.push(sep());
            spans.push(Span::styled(
                "unconfined",
                ctx.theme.error().add_modifier(Modifier::BOLD),
            ));
        }
        if let Some(start) = state
            .job_started_at
            .or_else(|| state.runs.values().next().map(|r| r.started_at))
        {
            let end = match state.root_run.as_ref().and_then(|id| state.runs.get(id)) {
                Some(root) if !state.job_state.active() => root.finished_at.unwrap_or(state.now_ms),
                _ => state.now_ms,
            };
            spans.push(sep());
            spans.push(Span::raw(duration(end.saturating_sub(start))));
        }
        let first = Line::from(spans);
        let second = if let Some(error) = &state.provider_error {
            Line::from(vec![
                Span::styled(
                    fit(&format!(" {error}"), width.saturating_sub(30)),
                    ctx.theme.error(),
                ),
                Span::styled(
                    "  r: use the replay provider",
                    ctx.theme.accent().add_modifier(Modifier::BOLD),
                ),
            ])
        } else if let Some(status) = &state.status {
            Line::styled(fit(&format!(" {status}"), width), ctx.theme.warning())
        } else if let Some(paused) = &state.paused {
            let edit = if paused.point == PausePoint::BeforeLlm {
                " · E edit the body"
            } else {
                ""
            };
            Line::from(vec![
                Span::styled(
                    format!(" ⏸ paused {}", paused.describe()),
                    ctx.theme.error().add_modifier(Modifier::BOLD),
                ),
                Span::styled(
                    format!(" · s step · c continue · x abort{edit}"),
                    ctx.theme.accent(),
                ),
            ])
        } else {
            Line::styled(
                fit(&format!(" {}", keymap::hints(state.focus)), width),
                ctx.theme.muted(),
            )
        };
        frame.render_widget(Paragraph::new(vec![first, second]), area);
    }
}
