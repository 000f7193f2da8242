//! The panes and the screen. Each pane of the registry below owns its state (cursor, scroll,
//! folds, view) and its keys: `on_action` changes only the pane and asks the workbench for the
//! rest through `Request`s; `draw` reads the pane and `&AppState` and changes nothing, so what is
//! drawn is a function of the state alone. Overlays (help, diff, status bar) are `Component`s.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use std::ops::Range;

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{AppState, Effect, JobData, Mode};
use super::highlight::Highlighter;
use super::input::TextInput;
use super::keymap::Action;
use super::layout::{self, Areas};
use super::theme::Theme;
use crate::runtime::control::Breakpoint;

pub mod compare;
pub mod diff;
pub mod experts;
pub mod help;
pub mod jobs;
pub mod prompt;
pub mod published;
pub mod reload_errors;
pub mod status_bar;
pub mod timeline;
pub mod tool_calls;

/// Builds `PaneId`, the `Panes` that hold every pane's state, and the dispatch between them.
/// Dispatch is a generated `match` rather than `Box<dyn Pane>`: the workbench reads and resets
/// some panes' state by name (the Prompt pane's step is the step under inspection; selecting a
/// run rewinds the Prompt's scroll and the Tool calls' cursor), which a list of trait objects
/// could only offer by downcasting; and the trait can carry its title and width as constants.
macro_rules! registry {
    ($($id:ident => $field:ident: $ty:ty,)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum PaneId {
            $($id),+
        }

        impl PaneId {
            pub const ALL: [PaneId; [$(PaneId::$id),+].len()] = [$(PaneId::$id),+];

            pub fn title(self) -> &'static str {
                match self {
                    $(PaneId::$id => <$ty as Pane>::TITLE),+
                }
            }

            pub fn width(self) -> Width {
                match self {
                    $(PaneId::$id => <$ty as Pane>::WIDTH),+
                }
            }

            /// The position in the registry: the column, the tab, the number key less one.
            pub fn index(self) -> usize {
                self as usize
            }
        }

        /// Columns enough for every pane to sit side by side.
        pub const SIDE_BY_SIDE_WIDTH: u16 = 0 $(+ <$ty as Pane>::WIDTH.min)+;

        /// Every pane's state.
        #[derive(Debug, Clone, Default)]
        pub struct Panes {
            $(pub $field: $ty),+
        }

        impl Panes {
            pub fn on_action(&mut self, pane: PaneId, action: Action, cx: &mut InputCtx) -> EventState {
                match pane {
                    $(PaneId::$id => self.$field.on_action(action, cx)),+
                }
            }

            pub fn on_click(
                &mut self,
                pane: PaneId,
                line: usize,
                height: usize,
                cx: &mut InputCtx,
            ) -> EventState {
                match pane {
                    $(PaneId::$id => self.$field.on_click(line, height, cx)),+
                }
            }

            pub fn draw(&self, pane: PaneId, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
                match pane {
                    $(PaneId::$id => self.$field.draw(frame, area, state, ctx)),+
                }
            }
        }
    };
}

// The registry: one line per pane, in the order of the columns, the tabs and the number keys.
// A new pane is a file with a type implementing `Pane` and one line here.
registry! {
    Experts => experts: experts::ExpertsPane,
    Prompt => prompt: prompt::PromptPane,
    ToolCalls => tool_calls: tool_calls::ToolCallsPane,
    Timeline => timeline: timeline::TimelinePane,
}

/// What every pane needs besides the state.
pub struct Ctx<'a> {
    pub theme: &'a Theme,
    pub highlighter: &'a Highlighter,
}

/// Something drawn from the state alone: the overlays and the status bar.
pub trait Component {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx);
}

/// Whether a pane used a key or a click; an unused key goes on to the workbench's global keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    Consumed,
    NotConsumed,
}

/// What a pane asks of the workbench when a key or a click reaches beyond its own state.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Open this Expert (an index into the definitions); new queries go to it.
    SelectExpert(usize),
    /// Show this run in the Prompt and Tool calls panes.
    SelectRun(String),
    /// Show the state at this timeline entry.
    Pin(usize),
    /// Stop showing a pinned checkpoint: the Prompt pane chose a step of its own.
    Unpin,
    ToggleBreakpoint(Breakpoint),
    /// Fork, mark for a diff, or diff at this timeline entry.
    Fork(usize),
    /// A/B: two forks of this timeline entry, compared side by side.
    AbCompare(usize),
    /// Show the last A/B comparison again.
    ReopenCompare,
    MarkDiff(usize),
    Diff(usize),
    Open(Mode),
    Status(String),
    Effect(Effect),
}

/// How wide a pane is when the panes sit side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Width {
    /// Its share of the screen's width, relative to the other panes' weights.
    pub weight: u32,
    /// The columns it needs to be readable: the panes sit side by side from the sum of these.
    pub min: u16,
}

/// What a pane reads while it handles a key or a click, and where it leaves its requests.
pub struct InputCtx<'a> {
    pub job: JobData<'a>,
    /// Rows a PageUp / PageDown moves.
    pub page: usize,
    pub requests: Vec<Request>,
}

impl InputCtx<'_> {
    pub fn request(&mut self, request: Request) {
        self.requests.push(request);
    }
}

/// A pane of the registry.
pub trait Pane {
    const TITLE: &'static str;
    const WIDTH: Width;
    /// A key's action while the pane has the focus.
    fn on_action(&mut self, action: Action, cx: &mut InputCtx) -> EventState;
    /// A click on row `line` inside the border of the pane, drawn `height` rows tall.
    fn on_click(&mut self, line: usize, height: usize, cx: &mut InputCtx) -> EventState {
        let _ = (line, height, cx);
        EventState::NotConsumed
    }
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx);
}

/// How far a movement key moves a cursor or a scroll position; None for any other action.
pub fn movement(action: Action, page: usize) -> Option<isize> {
    let page = page as isize;
    match action {
        Action::Up => Some(-1),
        Action::Down => Some(1),
        Action::PageUp => Some(-page),
        Action::PageDown => Some(page),
        Action::Top => Some(isize::MIN / 2),
        Action::Bottom => Some(isize::MAX / 2),
        _ => None,
    }
}

/// `value` moved by `delta`, kept on one of `len` rows.
pub fn moved(value: usize, delta: isize, len: usize) -> usize {
    (value as isize)
        .saturating_add(delta)
        .clamp(0, len.saturating_sub(1) as isize) as usize
}

/// The whole screen.
pub fn draw_app(frame: &mut Frame, state: &AppState, ctx: &Ctx) {
    let Areas {
        tabs,
        panes,
        input,
        status,
    } = layout::areas(state);
    frame.render_widget(Block::default().style(ctx.theme.base()), frame.area());
    if let Some(tabs) = tabs {
        draw_tabs(frame, tabs, state, ctx);
    }
    let panes_area = panes
        .iter()
        .map(|(_, area)| *area)
        .reduce(|a, b| a.union(b));
    for (pane, area) in panes {
        state.panes.draw(pane, frame, area, state, ctx);
    }
    if let Some(area) = panes_area {
        reload_errors::ReloadErrors.draw(frame, area, state, ctx);
    }
    if let Some(area) = input {
        draw_input(frame, area, state, ctx);
    }
    status_bar::StatusBar.draw(frame, status, state, ctx);
    match &state.mode {
        Mode::Help => help::HelpOverlay.draw(frame, frame.area(), state, ctx),
        Mode::Diff => diff::DiffOverlay.draw(frame, frame.area(), state, ctx),
        Mode::Compare => compare::CompareOverlay.draw(frame, frame.area(), state, ctx),
        Mode::Published { .. } => published::PublishedOverlay.draw(frame, frame.area(), state, ctx),
        Mode::Jobs => jobs::JobsOverlay.draw(frame, frame.area(), state, ctx),
        Mode::Answer { question, input } => {
            let rows = input.visible_lines() as u16;
            let inner = popup(frame, " The Expert asks ", Vec::new(), 70, 8 + rows, ctx);
            let [question_area, _, input_area, _, hint_area] = Layout::vertical([
                Constraint::Min(1),
                Constraint::Length(1),
                Constraint::Length(rows),
                Constraint::Length(1),
                Constraint::Length(1),
            ])
            .areas(inner);
            frame.render_widget(
                Paragraph::new(question.clone()).wrap(Wrap { trim: false }),
                question_area,
            );
            draw_editor(frame, input_area, input, ctx);
            frame.render_widget(
                Line::styled(
                    "Enter answers, the run resumes · Alt-Enter new line · Esc: later (f)",
                    ctx.theme.muted(),
                ),
                hint_area,
            );
        }
        Mode::ConfirmQuit => {
            let body = vec![
                Line::from("A run is active. Quit anyway?"),
                Line::styled(
                    "Its last checkpoint is on disk; continue it later with perstack run --continue.",
                    ctx.theme.muted(),
                ),
                Line::default(),
                Line::from(vec![
                    Span::styled("y", ctx.theme.accent()),
                    Span::raw(" quit   "),
                    Span::styled("any other key", ctx.theme.accent()),
                    Span::raw(" stay"),
                ]),
            ];
            popup(frame, " Quit? ", body, 60, 8, ctx);
        }
        _ => {}
    }
}

fn draw_tabs(frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
    let mut spans = Vec::new();
    for (label, pane) in layout::tab_labels().into_iter().zip(PaneId::ALL) {
        let style = if pane == state.focus {
            ctx.theme.selected().fg(ctx.theme.accent)
        } else {
            ctx.theme.muted()
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_input(frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
    let (title, input) = match &state.mode {
        Mode::Query { input } => (
            format!(
                " Query for {} · Enter runs · Alt-Enter new line · ↑ earlier queries · Esc closes ",
                state.selected_expert_key().unwrap_or("?")
            ),
            input,
        ),
        Mode::FollowUp { input } => (
            " Follow-up · Enter continues the job · Alt-Enter new line · ↑ earlier queries · Esc closes "
                .to_string(),
            input,
        ),
        Mode::Search { input } => (" Search · Enter finds · Esc closes ".to_string(), input),
        _ => return,
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(ctx.theme.accent())
        .title(Span::styled(
            title,
            ctx.theme.accent().add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    draw_editor(frame, inner, input, ctx);
}

/// A text box's editor behind a `> ` prompt; it scrolls to keep the cursor in view.
fn draw_editor(frame: &mut Frame, area: Rect, input: &TextInput, ctx: &Ctx) {
    const PROMPT: u16 = 2;
    let prompt = Rect {
        width: PROMPT.min(area.width),
        height: area.height.min(1),
        ..area
    };
    frame.render_widget(Span::styled("> ", ctx.theme.accent()), prompt);
    let text = Rect {
        x: area.x + prompt.width,
        width: area.width.saturating_sub(prompt.width),
        ..area
    };
    frame.render_widget(input.editor(), text);
}

/// A centred box over everything else.
/// A panel over the whole screen but its edge, framed and titled: where the diff and the
/// published text are read.
pub fn overlay<'a>(area: Rect, title: String, ctx: &Ctx) -> (Rect, Block<'a>) {
    let panel = Rect::new(
        area.x + 1,
        area.y + 1,
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(ctx.theme.accent())
        .style(ctx.theme.base())
        .title(Span::styled(
            title,
            ctx.theme.accent().add_modifier(Modifier::BOLD),
        ));
    (panel, block)
}

pub fn popup(
    frame: &mut Frame,
    title: &str,
    body: Vec<Line<'static>>,
    width: u16,
    height: u16,
    ctx: &Ctx,
) -> Rect {
    let screen = frame.area();
    let width = width.min(screen.width);
    let height = height.min(screen.height);
    let area = Rect::new(
        screen.x + (screen.width - width) / 2,
        screen.y + (screen.height - height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(ctx.theme.accent())
        .style(ctx.theme.base())
        .title(Span::styled(
            title.to_string(),
            ctx.theme.accent().add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(area);
    frame.render_widget(
        Paragraph::new(body).block(block).wrap(Wrap { trim: false }),
        area,
    );
    inner
}

/// The bordered block of a pane, its title in the accent colour when focused.
pub fn pane_block<'a>(pane: PaneId, extra: String, state: &AppState, ctx: &Ctx) -> Block<'a> {
    let focused = state.focus == pane;
    let zoom = if state.zoomed { " · z unzooms" } else { "" };
    let title = format!(" {} {}{}{zoom} ", pane.index() + 1, pane.title(), extra);
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused {
            ctx.theme.accent()
        } else {
            ctx.theme.muted()
        })
        .title(Span::styled(title, ctx.theme.title(focused)))
}

/// 1234 → "1.2k".
pub fn tokens(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.1}k", n as f64 / 1_000.0),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

/// Milliseconds → "950ms", "12s", "3m04s".
pub fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{}s", ms / 1_000),
        _ => format!("{}m{:02}s", ms / 60_000, (ms / 1_000) % 60),
    }
}

/// Text cut to `width` characters, with an ellipsis when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `line` broken into rows of `width` columns at spaces where it can, the rows after the first
/// indented by `indent`; each piece keeps its style. A line that fits is one row. At most
/// `max_rows` rows are laid out: the caller has no room for more.
pub fn wrap_line(
    line: Line<'static>,
    width: usize,
    indent: usize,
    max_rows: usize,
) -> Vec<Line<'static>> {
    use crate::tui::wrap::{WrapMode, rows};
    let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
    if text
        .chars()
        .map(crate::tui::wrap::char_width)
        .sum::<usize>()
        <= width
    {
        return vec![line];
    }
    let mut styles = Vec::new();
    let mut at = 0;
    for span in &line.spans {
        styles.push((at..at + span.content.len(), span.style));
        at += span.content.len();
    }
    let rows = rows(&text, width.saturating_sub(indent).max(1), WrapMode::Words);
    (0..rows.len().min(max_rows))
        .map(|i| {
            let mut spans = if i == 0 {
                Vec::new()
            } else {
                vec![Span::raw(" ".repeat(indent))]
            };
            spans.extend(row_spans(
                &text,
                rows.get(i),
                &styles,
                &[],
                Style::default(),
            ));
            Line::from(spans).style(line.style)
        })
        .collect()
}

/// The spans of one row: bytes `range` of `text`, in their styles, the `marks` patched with
/// `mark` (search matches).
pub fn row_spans(
    text: &str,
    range: Range<usize>,
    styles: &[(Range<usize>, Style)],
    marks: &[Range<usize>],
    mark: Style,
) -> Vec<Span<'static>> {
    // Cut points: the row's ends, style changes and match ends inside it.
    let mut cuts: Vec<usize> = vec![range.start, range.end];
    let inside = |p: usize| p > range.start && p < range.end;
    cuts.extend(styles.iter().map(|(r, _)| r.start).filter(|&p| inside(p)));
    cuts.extend(
        marks
            .iter()
            .flat_map(|m| [m.start, m.end])
            .filter(|&p| inside(p)),
    );
    cuts.sort_unstable();
    cuts.dedup();
    let mut at_style = styles.partition_point(|(r, _)| r.end <= range.start);
    cuts.windows(2)
        .filter_map(|w| {
            let (a, b) = (w[0], w[1]);
            let piece = text.get(a..b)?;
            while styles.get(at_style).is_some_and(|(r, _)| r.end <= a) {
                at_style += 1;
            }
            let mut style = styles.get(at_style).map(|(_, s)| *s).unwrap_or_default();
            if marks.iter().any(|m| m.start <= a && b <= m.end) {
                style = style.patch(mark);
            }
            Some(Span::styled(piece.replace('\t', " "), style))
        })
        .collect()
}
