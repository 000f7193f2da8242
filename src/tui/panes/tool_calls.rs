//! Tool calls of the selected run: status and duration; the selected call expands to its
//! arguments and result. A delegate call leads to the delegate's run. `w` shows the selected
//! call's MCP wire instead: each JSON-RPC frame with its direction, time and size, raw (exact,
//! wrapped, never cut) or pretty, then its skill's handshake and listings.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::experts::NO_BREAKPOINT_TARGET;
use super::{
    Ctx, EventState, InputCtx, Pane, Request, Width, duration, fit, moved, movement, pane_block,
    wrap_line,
};
use crate::runtime::control::{BreakKind, Breakpoint, PausePoint};
use crate::tui::app::{
    AppState, CallStatus, EditorTarget, Effect, FOLD_LINES, ToolCallView, WireFrameView,
    scroll_offset, short,
};
use crate::tui::highlight::Lang;
use crate::tui::keymap::{Action, PaneId};
use crate::tui::wrap::{WrapMode, rows};

/// How the selected call's MCP frames show, if at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WireView {
    #[default]
    Off,
    /// Each frame exactly as it went, wrapped at the pane's edge.
    Raw,
    /// Each frame as indented JSON.
    Pretty,
}

#[derive(Debug, Clone, Default)]
pub struct ToolCallsPane {
    /// The selected call, an index into `JobData::visible_calls`.
    pub cursor: usize,
    /// The selected call shows its arguments and result.
    pub expanded: bool,
    /// A long result shows in full rather than its first `FOLD_LINES` lines.
    pub unfolded: bool,
    /// The wire view of the selected call, in place of its details.
    pub wire: WireView,
    /// Rows of the wire view scrolled past.
    pub wire_scroll: usize,
}

impl Pane for ToolCallsPane {
    const TITLE: &'static str = "Tool calls";
    const WIDTH: Width = Width {
        weight: 26,
        min: 31,
    };

    fn on_action(&mut self, action: Action, cx: &mut InputCtx) -> EventState {
        // With the wire shown, pages scroll it; the cursor still moves by row.
        if self.wire != WireView::Off && matches!(action, Action::PageUp | Action::PageDown) {
            self.wire_scroll = match action {
                Action::PageUp => self.wire_scroll.saturating_sub(cx.page),
                _ => self.wire_scroll.saturating_add(cx.page),
            };
            return EventState::Consumed;
        }
        if let Some(delta) = movement(action, cx.page) {
            self.cursor = moved(self.cursor, delta, cx.job.visible_calls().len());
            self.unfolded = false;
            self.wire_scroll = 0;
            return EventState::Consumed;
        }
        match action {
            Action::ToggleWire => {
                self.wire = match self.wire {
                    WireView::Off => WireView::Raw,
                    WireView::Raw => WireView::Pretty,
                    WireView::Pretty => WireView::Off,
                };
                self.wire_scroll = 0;
            }
            Action::Left | Action::Right => self.expanded = action == Action::Right,
            Action::Enter => {
                let call = cx.job.visible_calls().get(self.cursor);
                match call.and_then(|c| c.delegate_run.clone()) {
                    Some(child) => cx.request(Request::SelectRun(child)),
                    None => self.expanded = !self.expanded,
                }
            }
            Action::ExpandResult => self.unfolded = !self.unfolded,
            Action::OpenDefinition => {
                let call = cx
                    .job
                    .visible_calls()
                    .get(self.cursor)
                    .map(|c| c.skill.clone());
                let expert = cx.job.current_run().map(|r| r.expert_key.clone());
                let (Some(skill), Some(expert)) = (call, expert) else {
                    return EventState::NotConsumed;
                };
                cx.request(Request::Effect(Effect::OpenInEditor(
                    EditorTarget::Definition {
                        expert,
                        skill: Some(skill),
                    },
                )));
            }
            Action::BreakBeforeTool => {
                let call = cx.job.visible_calls().get(self.cursor);
                cx.request(match call {
                    Some(call) => Request::ToggleBreakpoint(Breakpoint {
                        kind: BreakKind::BeforeTool {
                            skill: Some(call.skill.clone()),
                            tool: Some(call.tool.clone()),
                        },
                        expert: None,
                    }),
                    None => Request::Status(NO_BREAKPOINT_TARGET.into()),
                });
            }
            _ => return EventState::NotConsumed,
        }
        EventState::Consumed
    }

    fn on_click(&mut self, line: usize, height: usize, cx: &mut InputCtx) -> EventState {
        // Only the list rows above an expanded call map one to one.
        let calls = cx.job.visible_calls().len();
        let index = scroll_offset(self.cursor, height, calls) + line;
        if index < calls && (!self.expanded || index <= self.cursor) {
            self.expanded = index == self.cursor && !self.expanded;
            self.cursor = index;
        }
        EventState::Consumed
    }

    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let calls = state.visible_calls();
        let extra = state
            .current_run()
            .map(|r| format!(" · {} ({})", r.expert_key, calls.len()))
            .unwrap_or_default();
        let block = pane_block(PaneId::ToolCalls, extra, state, ctx);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if calls.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled("No tool calls yet.", ctx.theme.muted())),
                inner,
            );
            return;
        }
        let height = inner.height as usize;
        let width = inner.width as usize;
        let focused = state.focus == PaneId::ToolCalls;
        // With a call expanded, put it near the top so its details have room.
        let offset = if self.expanded || self.wire != WireView::Off {
            self.cursor.saturating_sub(2)
        } else {
            scroll_offset(self.cursor, height, calls.len())
        };
        let mut lines: Vec<Line> = Vec::with_capacity(height);
        for (i, call) in calls.iter().enumerate().skip(offset) {
            if lines.len() >= height {
                break;
            }
            let line = call_line(call, marker(state, call), width, ctx);
            lines.push(if i == self.cursor && focused {
                line.patch_style(ctx.theme.selected())
            } else {
                line
            });
            if i == self.cursor && self.wire != WireView::Off {
                let room = height.saturating_sub(lines.len());
                let run = state.current_run().map_or("", |r| r.run_id.as_str());
                let call_frames = state.wire.of_call(&call.id);
                let skill_frames = state.wire.of_skill(run, &call.skill);
                let sections = [
                    (format!("{}/{}", call.skill, call.tool), call_frames),
                    (
                        format!("{} handshake and listings", call.skill),
                        skill_frames,
                    ),
                ];
                let view = (self.wire, self.wire_scroll);
                lines.extend(wire_lines(&sections, view, (room, width), ctx));
            } else if i == self.cursor && self.expanded {
                details(
                    call,
                    self.unfolded,
                    (height.saturating_sub(lines.len()), width),
                    ctx,
                    &mut lines,
                );
            }
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

/// `⏸` on the call a run is paused before, `●` on calls of a tool with a breakpoint.
fn marker(state: &AppState, call: &ToolCallView) -> &'static str {
    let paused_here = state.paused.as_ref().is_some_and(|p| {
        matches!(&p.point, PausePoint::BeforeTool { tool_call_id, .. } if *tool_call_id == call.id)
    });
    let expert = state.current_run().map(|r| r.expert_key.as_str());
    if paused_here {
        "⏸"
    } else if expert.is_some_and(|e| state.breaks_on_call(e, &call.skill, &call.tool)) {
        "●"
    } else {
        " "
    }
}

fn call_line<'a>(call: &ToolCallView, marker: &'static str, width: usize, ctx: &Ctx) -> Line<'a> {
    let (icon, style) = match call.status {
        CallStatus::Running => ("⟳", ctx.theme.accent()),
        CallStatus::Done => ("✓", ctx.theme.added()),
        CallStatus::Error => ("✗", ctx.theme.error()),
    };
    let time = match (call.duration_ms, call.status) {
        (Some(ms), _) => duration(ms),
        // Paused before it, the call has not started.
        (None, CallStatus::Running) if marker == "⏸" => "paused before the call".into(),
        (None, CallStatus::Running) => "running".into(),
        (None, _) => String::new(),
    };
    let name = format!("{}/{}", call.skill, call.tool);
    let mut spans = vec![
        Span::styled(marker, ctx.theme.error()),
        Span::styled(format!("{icon} "), style),
        Span::styled(format!("#{} ", call.step), ctx.theme.muted()),
        Span::styled(
            fit(&name, width.saturating_sub(16)),
            ctx.theme.base().add_modifier(Modifier::BOLD),
        ),
    ];
    if !time.is_empty() {
        spans.push(Span::styled(format!(" {time}"), ctx.theme.muted()));
    }
    if call.run_by_provider {
        spans.push(Span::styled(" run by the provider", ctx.theme.accent()));
    }
    if let Some(child) = &call.delegate_run {
        spans.push(Span::styled(
            format!(" → run {}", short(child)),
            ctx.theme.accent(),
        ));
    }
    if let Some(first) = call.denied.first() {
        let more = match call.denied.len() {
            1 => String::new(),
            n => format!(" +{}", n - 1),
        };
        spans.push(Span::styled(
            format!(" ⛔ sandbox refused {first}{more}"),
            ctx.theme.error(),
        ));
    }
    Line::from(spans)
}

fn details(
    call: &ToolCallView,
    unfolded: bool,
    (room, width): (usize, usize),
    ctx: &Ctx,
    lines: &mut Vec<Line<'static>>,
) {
    // The caller stops at the pane's height; `room` bounds the work done here. A long line
    // wraps under its own indent rather than running off the pane's edge.
    let push = |line: Line<'static>, lines: &mut Vec<Line<'static>>| {
        let indent = line
            .spans
            .first()
            .map_or(0, |s| s.content.len() - s.content.trim_start().len());
        lines.extend(wrap_line(line, width, indent, room.max(1)))
    };
    push(Line::styled("  arguments", ctx.theme.accent()), lines);
    let args = serde_json::to_string_pretty(&call.args).unwrap_or_default();
    for text in args.lines().take(room) {
        let mut line = ctx.highlighter.line(Lang::Json, text);
        line.spans.insert(0, Span::raw("    "));
        push(line, lines);
    }
    if call.delegate_run.is_some() {
        push(
            Line::styled("  Enter shows the delegate's run", ctx.theme.accent()),
            lines,
        );
    }
    for target in &call.denied {
        push(
            Line::styled(
                format!("  sandbox refused a connection to {target} (not in allowedDomains)"),
                ctx.theme.error(),
            ),
            lines,
        );
    }
    let Some(result) = &call.result else {
        push(Line::styled("  (no result yet)", ctx.theme.muted()), lines);
        return;
    };
    push(Line::styled("  result", ctx.theme.accent()), lines);
    // A JSON result is shown pretty and highlighted; text as it is.
    let (text, lang) = match serde_json::from_str::<serde_json::Value>(result) {
        Ok(value) if value.is_object() || value.is_array() => (
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| result.clone()),
            Lang::Json,
        ),
        _ => (result.clone(), Lang::Plain),
    };
    let total = text.lines().count();
    let shown = if unfolded {
        total
    } else {
        total.min(FOLD_LINES)
    };
    for text in text.lines().take(shown.min(room)) {
        let mut line = ctx.highlighter.line(lang, text);
        line.spans.insert(0, Span::raw("    "));
        push(line, lines);
    }
    if shown < total {
        push(
            Line::styled(
                format!("    … {} more line(s) · e unfolds", total - shown),
                ctx.theme.muted(),
            ),
            lines,
        );
    }
}

/// One row of the wire view before it is laid out: a label, or a line of frame text that
/// wraps at the pane's edge.
enum WireRow<'a> {
    Label(Line<'static>),
    Text(std::borrow::Cow<'a, str>),
}

/// The rows of the wire view that fit in `room`, after `scroll` rows: each section's frames
/// with direction, time since the section's first frame and size, then the frame text. Long
/// frames wrap; what does not fit is counted in the last row, never dropped silently.
fn wire_lines<'a>(
    sections: &'a [(String, &'a [WireFrameView])],
    (view, scroll): (WireView, usize),
    (room, width): (usize, usize),
    ctx: &Ctx,
) -> Vec<Line<'static>> {
    const INDENT: &str = "    ";
    let text_width = width.saturating_sub(INDENT.len()).max(1);
    let mode = match view {
        WireView::Pretty => "pretty",
        _ => "raw",
    };
    let mut items = vec![WireRow::Label(Line::styled(
        format!("  wire ({mode}) · w {} · PgUp/PgDn scroll", next_view(view)),
        ctx.theme.accent(),
    ))];
    for (title, frames) in sections {
        let total: u64 = frames.iter().map(|f| f.bytes).sum();
        items.push(WireRow::Label(Line::styled(
            format!("  {title}: {} frame(s), {total} B", frames.len()),
            ctx.theme.accent(),
        )));
        if frames.is_empty() {
            items.push(WireRow::Label(Line::styled(
                "    none recorded (MCP skills only; `perstack run` needs --trace-mcp)",
                ctx.theme.muted(),
            )));
        }
        let first = frames.first().map_or(0, |f| f.at_us);
        for frame in frames.iter() {
            let since = frame.at_us.saturating_sub(first);
            items.push(WireRow::Label(Line::from(vec![
                Span::styled(
                    format!("  {} ", frame.direction.arrow()),
                    ctx.theme.accent(),
                ),
                Span::styled(
                    format!(
                        "+{}.{:03} ms  {} B  ",
                        since / 1000,
                        since % 1000,
                        frame.bytes
                    ),
                    ctx.theme.muted(),
                ),
                Span::styled(
                    frame.method.clone().unwrap_or_default(),
                    ctx.theme.base().add_modifier(Modifier::BOLD),
                ),
            ])));
            match view {
                WireView::Pretty => match serde_json::from_str::<serde_json::Value>(&frame.frame)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                {
                    Some(pretty) => items.extend(
                        pretty
                            .lines()
                            .map(|l| WireRow::Text(l.to_string().into()))
                            .collect::<Vec<_>>(),
                    ),
                    None => items.push(WireRow::Text(frame.frame.as_str().into())),
                },
                _ => items.push(WireRow::Text(frame.frame.as_str().into())),
            }
        }
    }
    let row_count = |item: &WireRow| match item {
        WireRow::Label(_) => 1,
        WireRow::Text(text) => rows(text, text_width, WrapMode::Chars).len(),
    };
    let total: usize = items.iter().map(row_count).sum();
    let scroll = scroll.min(total.saturating_sub(room));
    let mut out = Vec::with_capacity(room);
    let mut at = 0;
    for item in &items {
        let count = row_count(item);
        if at + count <= scroll {
            at += count;
            continue;
        }
        match item {
            WireRow::Label(line) => {
                if out.len() < room {
                    out.push(line.clone());
                }
            }
            WireRow::Text(text) => {
                let layout = rows(text, text_width, WrapMode::Chars);
                for row in scroll.saturating_sub(at)..count {
                    if out.len() >= room {
                        break;
                    }
                    let piece = text.get(layout.get(row)).unwrap_or_default().to_string();
                    out.push(Line::from(vec![
                        Span::raw(INDENT),
                        Span::styled(piece, ctx.theme.base()),
                    ]));
                }
            }
        }
        at += count;
        if out.len() >= room {
            break;
        }
    }
    let below = total.saturating_sub(scroll + out.len());
    if below > 0 && room > 0 {
        out.pop();
        out.push(Line::styled(
            format!("  ↓ {} more row(s) · PgDn", below + 1),
            ctx.theme.muted(),
        ));
    }
    out
}

fn next_view(view: WireView) -> &'static str {
    match view {
        WireView::Off => "raw",
        WireView::Raw => "pretty",
        WireView::Pretty => "off",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use indexmap::IndexMap;
    use serde_json::json;

    use super::*;
    use crate::runtime::checkpoint::Usage;
    use crate::tui::app::{JobData, RunStatus, RunView};

    fn call(id: &str, step: u64, tool: &str, delegate_run: Option<&str>) -> ToolCallView {
        ToolCallView {
            id: id.into(),
            step,
            skill: "@perstack/base".into(),
            tool: tool.into(),
            args: json!({"path": "CHANGELOG.md"}),
            status: CallStatus::Done,
            duration_ms: Some(12),
            result: Some("ok".into()),
            delegate_run: delegate_run.map(str::to_string),
            denied: Vec::new(),
            run_by_provider: false,
        }
    }

    fn runs() -> IndexMap<String, RunView> {
        let run = RunView {
            run_id: "run-1".into(),
            parent: None,
            children: Vec::new(),
            expert_key: "release-notes".into(),
            model: "claude-sonnet-4-5".into(),
            max_steps: 10,
            status: RunStatus::Done,
            step: 3,
            usage: Usage::default(),
            started_at: 0,
            finished_at: Some(1),
            steps: BTreeMap::new(),
            conv: Vec::new(),
            conv_folded: Vec::new(),
            messages_seen: 0,
            calls: vec![
                call("c1", 1, "readTextFile", None),
                call("c2", 2, "writer", Some("run-2")),
                call("c3", 3, "attemptCompletion", None),
            ],
            error: None,
            result: None,
        };
        IndexMap::from([("run-1".to_string(), run)])
    }

    /// Feeds one action to the pane, as the workbench does, and returns what it asked for.
    fn act(
        pane: &mut ToolCallsPane,
        runs: &IndexMap<String, RunView>,
        action: Action,
    ) -> (EventState, Vec<Request>) {
        let mut cx = InputCtx {
            job: JobData {
                experts: &[],
                registry: &[],
                runs,
                root_run: Some("run-1"),
                timeline: &[],
                selected_expert: 0,
                selected_run: None,
                pinned: None,
            },
            page: 10,
            requests: Vec::new(),
        };
        let state = pane.on_action(action, &mut cx);
        (state, cx.requests)
    }

    #[test]
    fn the_cursor_moves_within_the_calls_and_a_call_folds_and_unfolds() {
        let runs = runs();
        let mut pane = ToolCallsPane::default();
        assert_eq!(act(&mut pane, &runs, Action::Down).0, EventState::Consumed);
        assert_eq!(pane.cursor, 1);
        act(&mut pane, &runs, Action::PageDown);
        assert_eq!(pane.cursor, 2, "the cursor stops at the last call");
        act(&mut pane, &runs, Action::Top);
        assert_eq!(pane.cursor, 0);
        act(&mut pane, &runs, Action::Up);
        assert_eq!(pane.cursor, 0, "the cursor stops at the first call");

        act(&mut pane, &runs, Action::Right);
        assert!(pane.expanded);
        act(&mut pane, &runs, Action::ExpandResult);
        assert!(pane.unfolded);
        act(&mut pane, &runs, Action::Left);
        assert!(!pane.expanded);
        act(&mut pane, &runs, Action::Enter);
        assert!(pane.expanded, "Enter on a plain call expands it");
        act(&mut pane, &runs, Action::Bottom);
        assert_eq!(pane.cursor, 2);
        assert!(!pane.unfolded, "moving folds a large result again");
    }

    #[test]
    fn a_delegate_call_and_a_breakpoint_go_to_the_workbench_and_global_keys_pass() {
        let runs = runs();
        let mut pane = ToolCallsPane {
            cursor: 1,
            ..ToolCallsPane::default()
        };
        let (_, requests) = act(&mut pane, &runs, Action::Enter);
        assert_eq!(requests, vec![Request::SelectRun("run-2".into())]);
        assert!(!pane.expanded);

        let (_, requests) = act(&mut pane, &runs, Action::BreakBeforeTool);
        assert_eq!(
            requests,
            vec![Request::ToggleBreakpoint(Breakpoint {
                kind: BreakKind::BeforeTool {
                    skill: Some("@perstack/base".into()),
                    tool: Some("writer".into()),
                },
                expert: None,
            })]
        );

        let (state, requests) = act(&mut pane, &runs, Action::Quit);
        assert_eq!(state, EventState::NotConsumed);
        assert!(requests.is_empty());
    }

    #[test]
    fn without_calls_a_breakpoint_key_says_what_to_select() {
        let runs = IndexMap::new();
        let mut pane = ToolCallsPane::default();
        let (_, requests) = act(&mut pane, &runs, Action::BreakBeforeTool);
        assert_eq!(requests, vec![Request::Status(NO_BREAKPOINT_TARGET.into())]);
        act(&mut pane, &runs, Action::Down);
        assert_eq!(pane.cursor, 0);
    }

    mod wire {
        use ratatui::Terminal;
        use ratatui::backend::TestBackend;

        use super::super::*;
        use super::{act, runs};
        use crate::runtime::event::{EventKind, RunIds};
        use crate::skills::mcp::wire::Direction;
        use crate::tui::app::Msg;
        use crate::tui::highlight::Highlighter;
        use crate::tui::test_support::{Moment, example_config, scripted_run};
        use crate::tui::theme::Theme;

        const REQUEST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"_meta":{"progressToken":2},"name":"echo","arguments":{"text":"a long argument that wraps at the pane's edge and is never cut"}}}"#;

        /// The completed scripted run, with the wire of its first visible call and of that
        /// call's skill fed in as `mcpFrame` events.
        fn state_with_wire() -> AppState {
            let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
            state.update(Msg::Resize {
                width: 64,
                height: 30,
            });
            for event in scripted_run(Moment::Completed).events {
                state.update(Msg::Run(Box::new(event)));
            }
            let run = state.current_run().expect("a run").clone();
            let call = state.visible_calls().first().expect("a call").clone();
            let ids = RunIds {
                job_id: "job-0001".into(),
                run_id: run.run_id.clone(),
                expert_key: run.expert_key.clone(),
                parent_run_id: run.parent.clone(),
            };
            let frames: [(Direction, u64, &str, &str, bool); 7] = [
                (
                    Direction::Sent,
                    0,
                    "initialize",
                    r#"{"jsonrpc":"2.0","id":0,"method":"initialize"}"#,
                    false,
                ),
                (
                    Direction::Received,
                    1_250,
                    "initialize",
                    r#"{"jsonrpc":"2.0","id":0,"result":{}}"#,
                    false,
                ),
                (
                    Direction::Sent,
                    1_400,
                    "tools/list",
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
                    false,
                ),
                (
                    Direction::Received,
                    2_000,
                    "tools/list",
                    r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
                    false,
                ),
                (Direction::Sent, 10_000, "tools/call", REQUEST, true),
                (
                    Direction::Received,
                    10_420,
                    "notifications/progress",
                    r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":2,"progress":1,"total":2}}"#,
                    true,
                ),
                (
                    Direction::Received,
                    11_003,
                    "tools/call",
                    r#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"ok"}]}}"#,
                    true,
                ),
            ];
            for (direction, at, method, frame, of_call) in frames {
                let kind = EventKind::McpFrame {
                    skill_name: call.skill.clone(),
                    direction,
                    at_us: 1_700_000_000_000_000 + at,
                    bytes: frame.len() as u64,
                    frame: frame.to_string(),
                    method: Some(method.to_string()),
                    tool_call_id: of_call.then(|| call.id.clone()),
                };
                state.update(Msg::Run(Box::new(ids.event(1, kind))));
            }
            state.focus = PaneId::ToolCalls;
            state
        }

        fn render(state: &AppState, width: u16, height: u16) -> Terminal<TestBackend> {
            let theme = Theme::default();
            let highlighter = Highlighter::new(&theme.syntax);
            let ctx = Ctx {
                theme: &theme,
                highlighter: &highlighter,
            };
            let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
            terminal
                .draw(|f| {
                    let area = Rect::new(0, 0, width, height);
                    state.panes.draw(PaneId::ToolCalls, f, area, state, &ctx);
                })
                .expect("draw");
            terminal
        }

        #[test]
        fn the_wire_view_shows_each_frame_with_direction_time_and_size() {
            // Beside the workbench's other snapshots.
            let mut settings = insta::Settings::clone_current();
            settings.set_snapshot_path("../snapshots");
            settings.set_prepend_module_to_snapshot(false);
            settings.bind(|| {
                let mut state = state_with_wire();
                state.panes.tool_calls.wire = WireView::Raw;
                let terminal = render(&state, 64, 30);
                insta::assert_snapshot!("pane_tool_calls_wire_raw", terminal.backend());
                state.panes.tool_calls.wire = WireView::Pretty;
                let terminal = render(&state, 64, 30);
                insta::assert_snapshot!("pane_tool_calls_wire_pretty", terminal.backend());
            });
        }

        #[test]
        fn a_long_frame_wraps_whole_and_scrolls_to_its_end() {
            let frame = format!("{{\"text\":\"{}END\"}}", "x".repeat(3_000));
            let frames = [WireFrameView {
                direction: Direction::Received,
                at_us: 5,
                bytes: frame.len() as u64,
                frame: frame.clone(),
                method: None,
            }];
            let sections = [("s/t".to_string(), &frames[..])];
            let theme = Theme::default();
            let highlighter = Highlighter::new(&theme.syntax);
            let ctx = Ctx {
                theme: &theme,
                highlighter: &highlighter,
            };
            let text = |lines: &[Line]| -> Vec<String> {
                lines
                    .iter()
                    .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
                    .collect()
            };
            // With room for all of it, the rows put together are the frame, every byte.
            let all = text(&wire_lines(
                &sections,
                (WireView::Raw, 0),
                (1_000, 44),
                &ctx,
            ));
            let body: String = all[3..]
                .iter()
                .map(|r| r.trim_start_matches("    "))
                .collect();
            assert_eq!(body, frame);
            // In a short pane the end is a scroll away, and the cut says so.
            let first = text(&wire_lines(&sections, (WireView::Raw, 0), (10, 44), &ctx));
            assert!(first[9].contains("more row(s) · PgDn"), "{first:?}");
            let last = text(&wire_lines(
                &sections,
                (WireView::Raw, 1_000),
                (10, 44),
                &ctx,
            ));
            assert!(last[9].ends_with("END\"}"), "{last:?}");
        }

        #[test]
        fn w_cycles_the_wire_view_and_pages_scroll_it() {
            let runs = runs();
            let mut pane = ToolCallsPane::default();
            act(&mut pane, &runs, Action::ToggleWire);
            assert_eq!(pane.wire, WireView::Raw);
            act(&mut pane, &runs, Action::PageDown);
            assert_eq!(pane.wire_scroll, 10);
            assert_eq!(pane.cursor, 0, "a page scrolls the wire, not the calls");
            act(&mut pane, &runs, Action::Down);
            assert_eq!((pane.cursor, pane.wire_scroll), (1, 0));
            act(&mut pane, &runs, Action::ToggleWire);
            assert_eq!(pane.wire, WireView::Pretty);
            act(&mut pane, &runs, Action::ToggleWire);
            assert_eq!(pane.wire, WireView::Off);
        }
    }
}
