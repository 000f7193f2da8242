//! Tool calls of the selected run: status and duration; the selected call expands to its
//! arguments and result. A delegate call leads to the delegate's run.

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
    AppState, CallStatus, EditorTarget, Effect, FOLD_LINES, ToolCallView, scroll_offset, short,
};
use crate::tui::highlight::Lang;
use crate::tui::keymap::{Action, PaneId};

#[derive(Debug, Clone, Default)]
pub struct ToolCallsPane {
    /// The selected call, an index into `JobData::visible_calls`.
    pub cursor: usize,
    /// The selected call shows its arguments and result.
    pub expanded: bool,
    /// A long result shows in full rather than its first `FOLD_LINES` lines.
    pub unfolded: bool,
}

impl Pane for ToolCallsPane {
    const TITLE: &'static str = "Tool calls";
    const WIDTH: Width = Width {
        weight: 26,
        min: 31,
    };

    fn on_action(&mut self, action: Action, cx: &mut InputCtx) -> EventState {
        if let Some(delta) = movement(action, cx.page) {
            self.cursor = moved(self.cursor, delta, cx.job.visible_calls().len());
            self.unfolded = false;
            return EventState::Consumed;
        }
        match action {
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
        let offset = if self.expanded {
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
            if i == self.cursor && self.expanded {
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
}
