//! Prompt: the exact request of the selected run and step, as a raw body or as a conversation,
//! with the model's answer streaming in live. Only the visible lines are laid out.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Range;

use super::{Ctx, EventState, InputCtx, Pane, Request, Width, movement, row_spans};
use crate::runtime::control::PausePoint;
use crate::tui::app::{
    AppState, ConvLine, Effect, JobData, Mode, PromptView, Role, RunView, StepView, short,
    streaming_lines,
};
use crate::tui::highlight::Lang;
use crate::tui::keymap::{Action, PaneId};
use crate::tui::wrap::{Rows, WrapMode, find_all, rows};

#[derive(Debug, Clone)]
pub struct PromptPane {
    /// The step chosen with ←/→; None shows the latest (a pinned checkpoint wins over both).
    pub step: Option<u64>,
    pub view: PromptView,
    /// The first line shown, and the first of its rows (a long line wraps onto many).
    pub scroll: usize,
    pub row: usize,
    pub show_thinking: bool,
    /// The raw view shows string values decoded (`\n` as a line break) rather than as sent.
    pub unescaped: bool,
    /// The search term; its matches are marked.
    pub search: Option<String>,
    /// The pane's inner width at the last frame: rows are counted at it (0 before any frame:
    /// one row a line).
    cols: Cell<u16>,
}

impl Default for PromptPane {
    fn default() -> Self {
        PromptPane {
            step: None,
            view: PromptView::Conversation,
            scroll: 0,
            row: 0,
            show_thinking: false,
            unescaped: false,
            search: None,
            cols: Cell::new(0),
        }
    }
}

/// Columns of the role label in the conversation view; wrapped text hangs under the text.
const LABEL_COLS: usize = 10;

/// What one line of the view is made of: how to draw and wrap it.
struct Logical<'a> {
    /// Drawn before the first row; later rows get `indent` blank columns.
    label: Vec<Span<'static>>,
    /// Whether the label is part of the text shown (a key), so search looks in it too.
    label_is_text: bool,
    indent: usize,
    text: Cow<'a, str>,
    style: LineStyle,
    wrap: WrapMode,
}

impl Logical<'_> {
    /// The text search looks in, and how many bytes of it come before `text`: in the raw view
    /// a label is part of the body (a key before its decoded string); a role label is not.
    fn searched(&self) -> (usize, String) {
        if !self.label_is_text {
            return (0, self.text.to_string());
        }
        let mut all: String = self.label.iter().map(|s| s.content.as_ref()).collect();
        let before = all.len();
        all.push_str(&self.text);
        (before, all)
    }
}

enum LineStyle {
    Json,
    Plain(Style),
}

impl PromptPane {
    /// The step shown, with its number.
    pub fn current<'a>(&self, job: &JobData<'a>) -> Option<(u64, &'a StepView)> {
        job.step_at(self.step)
    }

    /// Back to the top of the view.
    pub fn rewind(&mut self) {
        self.scroll = 0;
        self.row = 0;
    }

    /// Lines of the current view, for scrolling and search.
    pub fn len(&self, job: &JobData) -> usize {
        let Some((_, step)) = self.current(job) else {
            return 0;
        };
        match self.view {
            PromptView::Raw => self.raw_lines(step) + 3,
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

    fn raw_lines(&self, step: &StepView) -> usize {
        match (&step.pretty, self.unescaped) {
            (Some(p), true) => p.unescaped().lines.len(),
            (Some(p), false) => p.len(),
            (None, _) => 0,
        }
    }

    /// One line of the current view as text (for search; `draw` lays out its own).
    pub fn line(&self, job: &JobData, i: usize) -> Option<String> {
        if self.view == PromptView::Raw && i < 3 {
            // The three header lines (method + url, headers) are not part of the body.
            return None;
        }
        self.logical(job, i, None).map(|l| l.searched().1)
    }

    /// Line `i` of the current view, with what drawing it takes.
    fn logical<'a>(&self, job: &JobData<'a>, i: usize, ctx: Option<&Ctx>) -> Option<Logical<'a>> {
        let run = job.current_run()?;
        let (_, step) = self.current(job)?;
        let plain = |text: Cow<'a, str>, style: Style| Logical {
            label: Vec::new(),
            label_is_text: false,
            indent: 0,
            text,
            style: LineStyle::Plain(style),
            wrap: WrapMode::Chars,
        };
        match self.view {
            PromptView::Raw => {
                let request = step.request.as_ref()?;
                let muted = ctx.map(|c| c.theme.muted()).unwrap_or_default();
                match i {
                    0 => Some(Logical {
                        label: vec![Span::styled(
                            format!("{} ", request.method),
                            ctx.map(|c| c.theme.accent().add_modifier(Modifier::BOLD))
                                .unwrap_or_default(),
                        )],
                        indent: request.method.chars().count() + 1,
                        ..plain(Cow::Owned(request.url.clone()), Style::default())
                    }),
                    1 => {
                        let headers: Vec<String> = request
                            .headers
                            .iter()
                            .map(|(k, v)| format!("{k}: {v}"))
                            .collect();
                        Some(plain(Cow::Owned(headers.join(" · ")), muted))
                    }
                    2 => Some(plain(Cow::Borrowed(""), Style::default())),
                    _ => {
                        let pretty = step.pretty.as_ref()?;
                        let n = i - 3;
                        if self.unescaped {
                            let unescaped = pretty.unescaped();
                            (n < unescaped.lines.len()).then(|| {
                                let line = unescaped.lines.line(n);
                                let hang = unescaped.hang.get(n).map_or(0, |&h| h as usize);
                                let continued = unescaped.continued.get(n).copied();
                                match (line.get(..hang), line.get(hang..)) {
                                    // A decoded string is prose: it wraps by words, under
                                    // its first character.
                                    (Some(head), Some(rest)) if hang > 0 => Logical {
                                        label: match (continued, ctx) {
                                            (Some(false), Some(c)) => {
                                                c.highlighter.line(Lang::Json, head).spans
                                            }
                                            _ => vec![Span::raw(head.to_string())],
                                        },
                                        label_is_text: true,
                                        indent: head.chars().count(),
                                        wrap: WrapMode::Words,
                                        ..plain(Cow::Borrowed(rest), Style::default())
                                    },
                                    _ => Logical {
                                        style: LineStyle::Json,
                                        ..plain(Cow::Borrowed(line), Style::default())
                                    },
                                }
                            })
                        } else {
                            (n < pretty.len()).then(|| Logical {
                                style: LineStyle::Json,
                                ..plain(Cow::Borrowed(pretty.line(n)), Style::default())
                            })
                        }
                    }
                }
            }
            PromptView::Conversation => {
                let (len, line) = conversation_line(run, step, i, self.show_thinking);
                let (role, first, text) = if i < len {
                    let line = line?;
                    (line.role, line.first, line.text.as_str())
                } else {
                    // Below the history: the answer of this step, live while it streams.
                    let live = streaming_lines(step, self.show_thinking);
                    let (role, text) = *live.get(i - len)?;
                    let first = i == len || live.get(i - len - 1).is_some_and(|(r, _)| *r != role);
                    (role, first, text)
                };
                Some(labelled(role, first, text, ctx))
            }
        }
    }

    /// The rows line `i` takes at the width of the last frame.
    fn rows_of(&self, job: &JobData, i: usize) -> Rows {
        let cols = self.cols.get() as usize;
        match self.logical(job, i, None) {
            Some(line) if cols > 0 => rows(&line.text, cols.saturating_sub(line.indent), line.wrap),
            _ => Rows::Fixed { len: 0, width: 1 },
        }
    }

    /// Moves the top of the view by `delta` rows (whole lines are skipped without laying them
    /// out row by row, so a 2 MB line is one step of the walk).
    fn scroll_by(&mut self, delta: isize, job: &JobData) {
        let len = self.len(job);
        if len == 0 {
            self.rewind();
            return;
        }
        if delta <= isize::MIN / 4 {
            self.rewind();
            return;
        }
        if delta >= isize::MAX / 4 {
            self.scroll = len - 1;
            self.row = 0;
            return;
        }
        let (mut line, mut row) = (self.scroll.min(len - 1), self.row);
        let mut left = delta.unsigned_abs();
        if delta > 0 {
            loop {
                let in_line = self.rows_of(job, line).len().saturating_sub(1 + row);
                if left <= in_line {
                    row += left;
                    break;
                }
                if line + 1 >= len {
                    row += in_line;
                    break;
                }
                left -= in_line + 1;
                line += 1;
                row = 0;
            }
        } else {
            loop {
                if left <= row {
                    row -= left;
                    break;
                }
                if line == 0 {
                    row = 0;
                    break;
                }
                left -= row + 1;
                line -= 1;
                row = self.rows_of(job, line).len() - 1;
            }
        }
        self.scroll = line;
        self.row = row;
    }

    /// Scrolls to the next match of the search term, from the top row on (or just after it
    /// with `again`) and round; says where it is (None without a search term). The whole body
    /// is searched, however long its lines.
    pub fn find_next(&mut self, again: bool, job: &JobData) -> Option<String> {
        let needle = self.search.clone()?;
        let len = self.len(job);
        let first = if self.view == PromptView::Raw { 3 } else { 0 };
        let start_line = self.scroll.clamp(first, len.max(first + 1) - 1);
        let start_row = self.rows_of(job, start_line).get(self.row).start;
        let from = if again { start_row + 1 } else { start_row };
        let order = (start_line..len).chain(first..=start_line.min(len.saturating_sub(1)));
        for (k, i) in order.enumerate() {
            let Some(line) = self.logical(job, i, None) else {
                continue;
            };
            let (before, text) = line.searched();
            let hits: Vec<usize> = find_all(&text, &needle)
                .into_iter()
                .map(|h| h.saturating_sub(before))
                .collect();
            // The line we start on is searched from the top row on; the second visit of it,
            // after the wrap round, before it.
            let hit = match k {
                0 => hits.into_iter().find(|&h| h >= from),
                _ if i == start_line => hits.into_iter().find(|&h| h < from),
                _ => hits.into_iter().next(),
            };
            if let Some(at) = hit {
                self.scroll = i;
                self.row = self.rows_of(job, i).row_of(at);
                return Some(format!("\"{needle}\" at line {}", i + 1));
            }
        }
        Some(format!("\"{needle}\" not found"))
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
        self.rewind();
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
            self.scroll_by(delta, &cx.job);
            return EventState::Consumed;
        }
        match action {
            Action::Left | Action::Right => {
                self.step_by(if action == Action::Left { -1 } else { 1 }, cx)
            }
            Action::Search => cx.request(Request::Open(Mode::Search {
                input: crate::tui::input::TextInput::single_line(""),
            })),
            Action::NextMatch => {
                if let Some(status) = self.find_next(true, &cx.job) {
                    cx.request(Request::Status(status));
                }
            }
            Action::ToggleView => {
                self.view = match self.view {
                    PromptView::Raw => PromptView::Conversation,
                    PromptView::Conversation => PromptView::Raw,
                };
                self.rewind();
            }
            Action::ToggleThinking => {
                self.show_thinking = !self.show_thinking;
                self.rewind();
            }
            Action::ToggleEscapes if self.view == PromptView::Raw => self.toggle_escapes(&cx.job),
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
                let view = match self.view {
                    PromptView::Raw => " · raw body",
                    PromptView::Conversation => " · conversation",
                };
                let streaming = if step.streaming { " · streaming" } else { "" };
                let note = request_note(state, &run.run_id, n, step);
                let whole = format!(" · {} step {n}{view}{streaming}{note}", run.expert_key);
                // The border leaves the title the pane's width less the " 2 Prompt " around
                // it; a narrow pane drops the view's name before the note is cut.
                let room = (area.width as usize).saturating_sub(12);
                if whole.chars().count() <= room {
                    whole
                } else {
                    format!(" · {} step {n}{streaming}{note}", run.expert_key)
                }
            }
            None => String::new(),
        };
        let block = super::pane_block(PaneId::Prompt, extra, state, ctx);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if current.is_none() {
            frame.render_widget(Paragraph::new(empty(state, ctx)), inner);
            return;
        }
        self.cols.set(inner.width);
        let height = inner.height as usize;
        let width = inner.width as usize;
        let mut lines: Vec<Line> = Vec::with_capacity(height);
        let (mut i, mut row) = (self.scroll, self.row);
        let mark = Style::default().bg(ctx.theme.selection);
        // Only the rows on screen are laid out: a line's rows are found from its text alone.
        while lines.len() < height {
            let Some(line) = self.logical(&job, i, Some(ctx)) else {
                break;
            };
            let text_cols = width.saturating_sub(line.indent).max(1);
            let rows = rows(&line.text, text_cols, line.wrap);
            let styles = match line.style {
                LineStyle::Json => ctx.highlighter.styles(Lang::Json, &line.text),
                LineStyle::Plain(style) => vec![(0..line.text.len(), style)],
            };
            while row < rows.len() && lines.len() < height {
                let range = rows.get(row);
                let marks = self
                    .search
                    .as_deref()
                    .map(|needle| marks_in(&line.text, range.clone(), needle))
                    .unwrap_or_default();
                let mut spans = match row {
                    0 if !line.label.is_empty() => line.label.clone(),
                    _ if line.indent > 0 => vec![Span::raw(" ".repeat(line.indent))],
                    _ => Vec::new(),
                };
                spans.extend(row_spans(&line.text, range, &styles, &marks, mark));
                lines.push(Line::from(spans));
                row += 1;
            }
            i += 1;
            row = 0;
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

impl PromptPane {
    /// `u`: string values decoded or as sent, keeping the same place in the body.
    fn toggle_escapes(&mut self, job: &JobData) {
        let pretty = self.current(job).and_then(|(_, s)| s.pretty.clone());
        self.unescaped = !self.unescaped;
        self.row = 0;
        let (Some(pretty), Some(n)) = (pretty, self.scroll.checked_sub(3)) else {
            return;
        };
        let unescaped = pretty.unescaped();
        self.scroll = 3 + if self.unescaped {
            unescaped.line_of(n)
        } else {
            unescaped.origin.get(n).map_or(0, |&o| o as usize)
        };
    }
}

/// The matches of `needle` that overlap the row `range` of `text`, clipped to it.
fn marks_in(text: &str, range: Range<usize>, needle: &str) -> Vec<Range<usize>> {
    // Look a needle's length either side, so a match split over two rows is marked on both.
    let reach = needle.len().saturating_sub(1);
    let mut from = range.start.saturating_sub(reach);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (range.end + reach).min(text.len());
    while !text.is_char_boundary(to) {
        to += 1;
    }
    find_all(&text[from..to], needle)
        .into_iter()
        .map(|at| (from + at).max(range.start)..(from + at + needle.len()).min(range.end))
        .filter(|m| m.start < m.end)
        .collect()
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

fn labelled<'a>(role: Role, first: bool, text: &'a str, ctx: Option<&Ctx>) -> Logical<'a> {
    let (name, style) = ctx
        .map(|c| role_style(role, c))
        .unwrap_or(("", Style::default()));
    if role == Role::Response {
        return Logical {
            label: Vec::new(),
            label_is_text: false,
            indent: 0,
            text: Cow::Owned(format!("── {name} ──")),
            style: LineStyle::Plain(style),
            wrap: WrapMode::Words,
        };
    }
    let label = if first {
        format!("{name:>9} ")
    } else {
        " ".repeat(LABEL_COLS)
    };
    let body_style = match (role, ctx) {
        (Role::Thinking, Some(c)) => c.theme.muted().add_modifier(Modifier::ITALIC),
        (Role::System, Some(c)) => c.theme.muted(),
        _ => Style::default(),
    };
    Logical {
        label: vec![Span::styled(label, style)],
        label_is_text: false,
        indent: LABEL_COLS,
        text: Cow::Borrowed(text),
        style: LineStyle::Plain(body_style),
        wrap: WrapMode::Words,
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
