//! Prompt: the exact request of the selected run and step, as a raw body or as a conversation,
//! with the model's answer streaming in live. Only the visible lines are laid out.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{Ctx, EventState, InputCtx, Pane, Request, Width, fit, moved, movement};
use crate::runtime::control::PausePoint;
use crate::tui::app::{
    AppState, ConvLine, Effect, JobData, Mode, PromptView, Role, RunView, StepView, short,
    streaming_lines,
};
use crate::tui::highlight::{Lang, cut};
use crate::tui::keymap::{Action, PaneId};

#[derive(Debug, Clone)]
pub struct PromptPane {
    /// The step chosen with ←/→; None shows the latest (a pinned checkpoint wins over both).
    pub step: Option<u64>,
    pub view: PromptView,
    /// The first line shown.
    pub scroll: usize,
    pub show_thinking: bool,
    /// The search term; lines holding it are marked.
    pub search: Option<String>,
}

impl Default for PromptPane {
    fn default() -> Self {
        PromptPane {
            step: None,
            view: PromptView::Conversation,
            scroll: 0,
            show_thinking: false,
            search: None,
        }
    }
}

/// Characters of one line worth laying out: the pane cannot show more.
const MAX_COLS: usize = 1_000;

impl PromptPane {
    /// The step shown, with its number.
    pub fn current<'a>(&self, job: &JobData<'a>) -> Option<(u64, &'a StepView)> {
        job.step_at(self.step)
    }

    /// Lines of the current view, for scrolling and search.
    pub fn len(&self, job: &JobData) -> usize {
        let Some((_, step)) = self.current(job) else {
            return 0;
        };
        match self.view {
            PromptView::Raw => step.pretty.as_ref().map(|p| p.len()).unwrap_or(0) + 3,
            PromptView::Conversation => {
                let conv = if self.show_thinking {
                    step.conv_len
                } else {
                    step.conv_folded_len
                };
                conv + streaming_lines(step, self.show_thinking).len()
            }
        }
    }

    /// One line of the current view as text (for search; `draw` lays out its own).
    pub fn line(&self, job: &JobData, i: usize) -> Option<String> {
        let run = job.current_run()?;
        let (_, step) = self.current(job)?;
        match self.view {
            PromptView::Raw => {
                let pretty = step.pretty.as_ref()?;
                // The three header lines (method + url, headers) come first.
                i.checked_sub(3).map(|i| pretty.line(i).to_string())
            }
            PromptView::Conversation => {
                let (len, line) = conversation_line(run, step, i, self.show_thinking);
                if i < len {
                    line.map(|l| l.text.clone())
                } else {
                    streaming_lines(step, self.show_thinking)
                        .get(i - len)
                        .map(|(_, t)| t.to_string())
                }
            }
        }
    }

    /// Scrolls to the next line holding the search term, from line `from` on and round; says
    /// where it is (None without a search term).
    pub fn find_next(&mut self, from: usize, job: &JobData) -> Option<String> {
        let needle = self.search.as_ref()?.to_lowercase();
        let len = self.len(job);
        let found = (from..len).chain(0..from.min(len)).find(|&i| {
            self.line(job, i)
                .is_some_and(|l| l.to_lowercase().contains(&needle))
        });
        Some(match found {
            Some(i) => {
                self.scroll = i;
                format!("\"{needle}\" at line {}", i + 1)
            }
            None => format!("\"{needle}\" not found"),
        })
    }

    /// ←/→: the previous or next step of the run, leaving a pinned checkpoint.
    fn step_by(&mut self, delta: i64, cx: &mut InputCtx) {
        let Some(run) = cx.job.current_run() else {
            return;
        };
        let steps: Vec<u64> = run.steps.keys().copied().collect();
        if steps.is_empty() {
            return;
        }
        let current = self.current(&cx.job).map(|(n, _)| n);
        let pos = current
            .and_then(|c| steps.iter().position(|&s| s == c))
            .unwrap_or(steps.len().saturating_sub(1));
        let next = (pos as i64 + delta).clamp(0, steps.len() as i64 - 1);
        cx.request(Request::Unpin);
        self.step = steps.get(next as usize).copied();
        self.scroll = 0;
    }

    /// `w`: the exact body of the request shown, to be written to a file.
    fn write_body(&self, job: &JobData) -> Request {
        let shown = self.current(job).zip(job.current_run());
        let Some(((step, view), run)) = shown else {
            return Request::Status("no request to write yet".into());
        };
        let Some(request) = &view.request else {
            return Request::Status("no request to write yet".into());
        };
        Request::Effect(Effect::WriteBody {
            name: format!(
                "request-{}-{}-step{step}.json",
                run.expert_key,
                short(&run.run_id)
            ),
            body: request.body.clone(),
        })
    }
}

impl Pane for PromptPane {
    const TITLE: &'static str = "Prompt";
    const WIDTH: Width = Width {
        weight: 34,
        min: 41,
    };

    fn on_action(&mut self, action: Action, cx: &mut InputCtx) -> EventState {
        if let Some(delta) = movement(action, cx.page) {
            self.scroll = moved(self.scroll, delta, self.len(&cx.job));
            return EventState::Consumed;
        }
        match action {
            Action::Left | Action::Right => {
                self.step_by(if action == Action::Left { -1 } else { 1 }, cx)
            }
            Action::Search => cx.request(Request::Open(Mode::Search {
                input: String::new(),
            })),
            Action::NextMatch => {
                if let Some(status) = self.find_next(self.scroll + 1, &cx.job) {
                    cx.request(Request::Status(status));
                }
            }
            Action::ToggleView => {
                self.view = match self.view {
                    PromptView::Raw => PromptView::Conversation,
                    PromptView::Conversation => PromptView::Raw,
                };
                self.scroll = 0;
            }
            Action::ToggleThinking => {
                self.show_thinking = !self.show_thinking;
                self.scroll = 0;
            }
            Action::WriteBody => {
                let request = self.write_body(&cx.job);
                cx.request(request);
            }
            _ => return EventState::NotConsumed,
        }
        EventState::Consumed
    }

    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let job = state.job();
        let current = job.current_run().zip(self.current(&job));
        let extra = match current {
            Some((run, (n, step))) => {
                format!(
                    " · {} step {n} · {}{}",
                    run.expert_key,
                    match self.view {
                        PromptView::Raw => "raw body",
                        PromptView::Conversation => "conversation",
                    },
                    if step.streaming { " · streaming" } else { "" }
                ) + &request_note(state, &run.run_id, n, step)
            }
            None => String::new(),
        };
        let block = super::pane_block(PaneId::Prompt, extra, state, ctx);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let Some((run, (_, step))) = current else {
            frame.render_widget(Paragraph::new(empty(state, ctx)), inner);
            return;
        };
        let height = inner.height as usize;
        let width = inner.width as usize;
        let scroll = self.scroll;
        let lines: Vec<Line> = (scroll..scroll + height)
            .map_while(|i| match self.view {
                PromptView::Raw => raw_line(step, i, width, ctx),
                PromptView::Conversation => conv_line(self.show_thinking, run, step, i, ctx),
            })
            .map(|line| mark_search(line, self.search.as_deref(), ctx))
            .collect();
        // Long lines wrap; at most `height` lines were laid out, so wrapping stays cheap.
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    }
}

/// Says when the body shown is about to be sent (a pause before the model call) or was edited.
fn request_note(state: &AppState, run_id: &str, step_number: u64, step: &StepView) -> String {
    let about_to_send = state.paused.as_ref().is_some_and(|p| {
        p.run_id == run_id && p.step == step_number && p.point == PausePoint::BeforeLlm
    });
    let edited = step.request.as_ref().is_some_and(|r| r.edited);
    match (about_to_send, edited) {
        (true, true) => " · ⏸ edited, to be sent".into(),
        (true, false) => " · ⏸ to be sent".into(),
        (false, true) => " · ✎ edited".into(),
        (false, false) => String::new(),
    }
}

fn empty<'a>(state: &AppState, ctx: &Ctx) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    if let Some(error) = &state.provider_error {
        lines.push(Line::styled("No model provider:", ctx.theme.error()));
        lines.push(Line::styled(error.clone(), ctx.theme.error()));
        lines.push(Line::default());
        lines.push(Line::from(vec![
            Span::raw("Press "),
            Span::styled("r", ctx.theme.accent().add_modifier(Modifier::BOLD)),
            Span::raw(" to use the replay provider (offline, no key)."),
        ]));
        lines.push(Line::default());
    }
    lines.push(Line::styled("No request yet.", ctx.theme.muted()));
    lines.push(Line::from(vec![
        Span::raw("Press "),
        Span::styled("i", ctx.theme.accent().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            " to start a run of {}.",
            state.selected_expert_key().unwrap_or("an Expert")
        )),
    ]));
    lines
}

fn raw_line<'a>(step: &StepView, i: usize, width: usize, ctx: &Ctx) -> Option<Line<'a>> {
    let request = step.request.as_ref()?;
    match i {
        0 => Some(Line::from(vec![
            Span::styled(
                format!("{} ", request.method),
                ctx.theme.accent().add_modifier(Modifier::BOLD),
            ),
            Span::raw(request.url.clone()),
        ])),
        1 => {
            let headers: Vec<String> = request
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            Some(Line::styled(
                fit(&headers.join(" · "), width),
                ctx.theme.muted(),
            ))
        }
        2 => Some(Line::default()),
        _ => {
            let pretty = step.pretty.as_ref()?;
            let n = i - 3;
            (n < pretty.len()).then(|| {
                ctx.highlighter
                    .line(Lang::Json, cut(pretty.line(n), MAX_COLS))
            })
        }
    }
}

fn role_style(role: Role, ctx: &Ctx) -> (&'static str, Style) {
    match role {
        Role::System => ("system", ctx.theme.muted().add_modifier(Modifier::BOLD)),
        Role::User => ("user", ctx.theme.accent().add_modifier(Modifier::BOLD)),
        Role::Assistant => ("assistant", ctx.theme.added().add_modifier(Modifier::BOLD)),
        Role::Thinking => ("thinking", ctx.theme.muted().add_modifier(Modifier::ITALIC)),
        Role::ToolCall => ("call", ctx.theme.warning().add_modifier(Modifier::BOLD)),
        Role::Tool => ("tool", ctx.theme.warning()),
        Role::Response => ("response", ctx.theme.accent().add_modifier(Modifier::BOLD)),
    }
}

fn conv_line<'a>(
    show_thinking: bool,
    run: &RunView,
    step: &StepView,
    i: usize,
    ctx: &Ctx,
) -> Option<Line<'a>> {
    let (len, line) = conversation_line(run, step, i, show_thinking);
    if i < len {
        let line = line?;
        return Some(labelled(line.role, line.first, &line.text, ctx));
    }
    // Below the history: the answer of this step, live while it streams.
    let live = streaming_lines(step, show_thinking);
    let (role, text) = live.get(i - len)?;
    Some(labelled(
        *role,
        i == len || live.get(i - len - 1).is_some_and(|(r, _)| r != role),
        text,
        ctx,
    ))
}

fn labelled<'a>(role: Role, first: bool, text: &str, ctx: &Ctx) -> Line<'a> {
    let (name, style) = role_style(role, ctx);
    if role == Role::Response {
        return Line::styled(format!("── {name} ──"), style);
    }
    let label = if first {
        format!("{name:>9} ")
    } else {
        " ".repeat(10)
    };
    let body_style = match role {
        Role::Thinking => ctx.theme.muted().add_modifier(Modifier::ITALIC),
        Role::System => ctx.theme.muted(),
        _ => Style::default(),
    };
    Line::from(vec![
        Span::styled(label, style),
        Span::styled(cut(text, MAX_COLS).to_string(), body_style),
    ])
}

/// Lines containing the search term get the selection background.
fn mark_search<'a>(line: Line<'a>, search: Option<&str>, ctx: &Ctx) -> Line<'a> {
    let Some(needle) = search else {
        return line;
    };
    let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
    if text.to_lowercase().contains(&needle.to_lowercase()) {
        line.patch_style(Style::default().bg(ctx.theme.selection))
    } else {
        line
    }
}

/// How many conversation lines the step has as shown (thinking folded or not), and line `i`.
fn conversation_line<'r>(
    run: &'r RunView,
    step: &StepView,
    i: usize,
    show_thinking: bool,
) -> (usize, Option<&'r ConvLine>) {
    if show_thinking {
        (step.conv_len, run.conv.get(i))
    } else {
        (
            step.conv_folded_len,
            run.conv_folded
                .get(i)
                .and_then(|&j| run.conv.get(j as usize)),
        )
    }
}
