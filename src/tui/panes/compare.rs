//! The A/B overlay: first what B changes (a model typed in, or the instruction in $EDITOR), then
//! both forks side by side, step by step: calls, answer, tokens, cost and latency, the first
//! divergence marked. The facts come from `runtime::compare`, as `perstack diff` prints them.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::{Component, Ctx, fit, overlay};
use crate::runtime::compare::{Comparison, StepFacts, Totals, call_label, column_cell};
use crate::tui::app::{AbChoice, AppState};

pub struct CompareOverlay;

impl Component for CompareOverlay {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let Some(compare) = &state.compare else {
            return;
        };
        match &compare.choosing {
            Some(choice) => {
                let title = format!(
                    " A/B from {} step {} · Enter starts both · Tab switches · Esc cancels ",
                    compare.expert_key, compare.step
                );
                let (panel, block) = overlay(area, title, ctx);
                let lines = choice_lines(choice, &state.model, &compare.expert_key, ctx);
                frame.render_widget(Clear, panel);
                frame.render_widget(Paragraph::new(lines).block(block), panel);
            }
            None => {
                let view = CompareView {
                    title: format!("{} step {}", compare.expert_key, compare.step),
                    cursor: compare.cursor,
                    whole: compare.whole,
                    running: compare.running > 0,
                };
                draw_comparison(frame, area, &compare.comparison(), &view, ctx);
            }
        }
    }
}

fn choice_lines(choice: &AbChoice, model: &str, expert: &str, ctx: &Ctx) -> Vec<Line<'static>> {
    let mark = |on: bool| if on { "▸ " } else { "  " };
    let (model_on, input, cursor) = match choice {
        AbChoice::Model { input } => (true, input.text(), input.cursor().1),
        AbChoice::Instruction => (false, String::new(), 0),
    };
    let (before, after): (String, String) = {
        let chars: Vec<char> = input.chars().collect();
        let cut = cursor.min(chars.len());
        (chars[..cut].iter().collect(), chars[cut..].iter().collect())
    };
    let style = |on: bool| {
        if on {
            ctx.theme.accent()
        } else {
            ctx.theme.muted()
        }
    };
    let mut model_line = vec![
        Span::styled(format!("{}model        ", mark(model_on)), style(model_on)),
        Span::styled("> ", ctx.theme.accent()),
        Span::raw(before),
    ];
    if model_on {
        model_line.push(Span::styled("▏", ctx.theme.accent()));
    }
    model_line.push(Span::raw(after));
    vec![
        Line::from(format!(
            "Two forks start from this checkpoint at once. A runs as now ({model}); B changes one thing:"
        )),
        Line::default(),
        Line::from(model_line),
        Line::from(vec![
            Span::styled(
                format!("{}instruction  ", mark(!model_on)),
                style(!model_on),
            ),
            Span::styled(
                format!("Enter opens {expert}'s instruction in $EDITOR; B runs the saved text"),
                style(!model_on),
            ),
        ]),
        Line::default(),
        Line::styled(
            "Headless: perstack run --continue-job J --resume-from C --fork --variant model=X, twice, then perstack diff",
            ctx.theme.muted(),
        ),
    ]
}

/// How the comparison is shown: the selected step, and whether its text is shown whole.
pub struct CompareView {
    pub title: String,
    pub cursor: usize,
    pub whole: bool,
    pub running: bool,
}

/// One fact of a step, as the lines of its column: (step, column width, whole).
type Fact = fn(&StepFacts, usize, bool) -> Vec<String>;

/// Columns of the label on the left of each fact.
const LABEL: usize = 8;

/// The comparison in an overlay over `area`.
pub fn draw_comparison(
    frame: &mut Frame,
    area: Rect,
    comparison: &Comparison,
    view: &CompareView,
    ctx: &Ctx,
) {
    let title = format!(
        " A/B from {}{} · j/k step · Enter whole text · Esc closes (C reopens) ",
        view.title,
        if view.running { " · running" } else { "" }
    );
    let (panel, block) = overlay(area, title, ctx);
    let inner = block.inner(panel);
    let column = (inner.width as usize).saturating_sub(LABEL + 2) / 2;
    let mut lines: Vec<Line<'static>> = Vec::new();
    lines.extend(pair(
        "",
        &[format!("A · {}", comparison.a.label())],
        &[format!("B · {}", comparison.b.label())],
        column,
        ctx.theme.accent().add_modifier(Modifier::BOLD),
    ));
    let mut selected_at = 0;
    for (index, row) in comparison.rows.iter().enumerate() {
        let selected = index == view.cursor;
        let whole = selected && view.whole;
        if selected {
            selected_at = lines.len();
        }
        let diverges = comparison.divergence == Some(index);
        let header = if diverges {
            format!("▶ step {}  ← first divergence", row.step)
        } else {
            format!("  step {}", row.step)
        };
        let mut style = if diverges {
            ctx.theme.warning().add_modifier(Modifier::BOLD)
        } else {
            ctx.theme.muted()
        };
        if selected {
            style = style.patch(ctx.theme.selected());
        }
        lines.push(Line::styled(fit(&header, inner.width as usize), style));
        let facts: [(&str, Fact); 3] = [("calls", calls), ("answer", answer), ("used", used)];
        for (label, show) in facts {
            let side = |step: &Option<StepFacts>| match step {
                Some(step) => show(step, column, whole),
                None => vec!["—".to_string()],
            };
            lines.extend(pair(
                label,
                &side(&row.a),
                &side(&row.b),
                column,
                Style::default(),
            ));
        }
    }
    if comparison.rows.is_empty() {
        lines.push(Line::styled(
            "  waiting for the forks' first steps…",
            ctx.theme.muted(),
        ));
    }
    let totals = |t: Totals| {
        vec![format!(
            "{} tok · {} · {} ms",
            t.usage.input_tokens + t.usage.output_tokens,
            cost(t.cost),
            t.latency_ms
        )]
    };
    lines.extend(pair(
        "total",
        &totals(comparison.a.totals()),
        &totals(comparison.b.totals()),
        column,
        ctx.theme.accent(),
    ));
    lines.push(Line::styled(
        match comparison.divergence {
            Some(index) => format!(
                "They part at step {} (▶). Text cut with … is whole with Enter.",
                comparison.rows[index].step
            ),
            None if view.running => "No difference yet.".to_string(),
            None => "The same course: the same tool calls and answers.".to_string(),
        },
        ctx.theme.muted(),
    ));
    // Keep the selected step in view, a third of the way down.
    let height = inner.height as usize;
    let offset = selected_at
        .saturating_sub(height / 3)
        .min(lines.len().saturating_sub(height));
    frame.render_widget(Clear, panel);
    frame.render_widget(
        Paragraph::new(
            lines
                .into_iter()
                .skip(offset)
                .take(height)
                .collect::<Vec<_>>(),
        )
        .block(block),
        panel,
    );
}

fn calls(step: &StepFacts, width: usize, whole: bool) -> Vec<String> {
    if step.calls.is_empty() {
        return vec!["(none)".into()];
    }
    step.calls
        .iter()
        .flat_map(|call| column_cell(&call_label(call, usize::MAX), width, whole))
        .collect()
}

fn answer(step: &StepFacts, width: usize, whole: bool) -> Vec<String> {
    match (&step.stop, step.answer.trim().is_empty()) {
        (Some(stop), _) => vec![format!("stopped: {stop}")],
        (None, true) => vec!["(no text)".into()],
        (None, false) => column_cell(&step.answer, width, whole),
    }
}

fn used(step: &StepFacts, _width: usize, _whole: bool) -> Vec<String> {
    vec![format!(
        "{} in · {} out · {} · {}",
        step.usage.input_tokens,
        step.usage.output_tokens,
        cost(step.cost),
        step.latency_ms
            .map_or("—".to_string(), |ms| format!("{ms} ms"))
    )]
}

fn cost(cost: Option<f64>) -> String {
    cost.map_or("no price".to_string(), |dollars| format!("${dollars:.6}"))
}

/// A label and two columns; the taller side sets the rows.
fn pair(
    label: &str,
    a: &[String],
    b: &[String],
    column: usize,
    style: Style,
) -> Vec<Line<'static>> {
    let rows = a.len().max(b.len()).max(1);
    (0..rows)
        .map(|i| {
            let label = if i == 0 { label } else { "" };
            let left = fit(a.get(i).map(String::as_str).unwrap_or(""), column);
            let right = fit(b.get(i).map(String::as_str).unwrap_or(""), column);
            let pad = column.saturating_sub(left.chars().count());
            Line::styled(
                format!("{label:<LABEL$}{left}{}  {right}", " ".repeat(pad)),
                style,
            )
        })
        .collect()
}
