//! `perstack diff RUN_A RUN_B`: two runs (typically two forks of one checkpoint with different
//! `--variant`s) side by side, step by step, with the first divergence marked and totals.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::runtime::compare::{Comparison, RunFacts, StepFacts, Totals, call_label, column_cell};
use crate::runtime::variant::Variant;
use crate::store::{JobStore as _, Store};

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first run: a run id (the `runId` of its events) or a job id (its newest top-level run)
    pub run_a: String,
    /// The second run, as the first
    pub run_b: String,
    /// Show answers and tool arguments whole, wrapped, instead of cut to one line with `…`
    #[arg(long)]
    pub full: bool,
    /// Read the jobs from this store instead of the workspace: s3://bucket/prefix (credentials
    /// and endpoint from the AWS_* variables)
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// The workspace whose `perstack/jobs` holds the runs (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

/// Characters of one side's column.
const COLUMN: usize = 46;
/// The label column: `  calls  `.
const LABEL: usize = 9;

pub fn diff(args: &DiffArgs) -> ExitCode {
    let store = match super::open_store(args.storage.as_deref(), args.workspace.as_deref()) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let read = |id: &str| read_run(store.as_ref(), id);
    let (a, b) = match (read(&args.run_a), read(&args.run_b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("error: {err}");
            return ExitCode::from(1);
        }
    };
    let comparison = Comparison::new(a, b);
    let mut stdout = std::io::stdout().lock();
    for line in render(&comparison, args.full) {
        if writeln!(stdout, "{}", line.trim_end()).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// The run `id` names (a run id, or a job id for the job's newest top-level run), read whole.
fn read_run(store: &dyn Store, id: &str) -> Result<RunFacts, String> {
    let (job_id, run_id) = locate(store, id)?;
    let setting_key = format!(
        "{}/run-setting.json",
        crate::store::jobs::run_dir_key(&job_id, &run_id)
    );
    let variant = store
        .read_json::<Value>(&setting_key, "run setting")
        .ok()
        .flatten()
        .and_then(|setting| serde_json::from_value::<Variant>(setting["variant"].clone()).ok());
    let events = store.run_events(&job_id, &run_id);
    if events.is_empty() {
        return Err(format!(
            "run {run_id} of job {job_id} has no stored events to compare"
        ));
    }
    Ok(RunFacts::from_events(&run_id, &events, variant))
}

fn locate(store: &dyn Store, id: &str) -> Result<(String, String), String> {
    if store.read_job(id).is_ok() {
        let newest = store
            .job_events(id, None)
            .iter()
            .rev()
            .find(|event| event["parentRunId"].is_null())
            .and_then(|event| event["runId"].as_str().map(str::to_string));
        return newest
            .map(|run| (id.to_string(), run))
            .ok_or_else(|| format!("job {id} has no run yet"));
    }
    store
        .job_ids()
        .into_iter()
        .find(|job| store.run_ids(job).iter().any(|run| run == id))
        .map(|job| (job, id.to_string()))
        .ok_or_else(|| {
            format!(
                "{id} is neither a job nor a run under {}; `perstack jobs` lists the jobs, and a \
                 run's id is the `runId` of its events (or pass --workspace DIR / --storage URL)",
                store.location()
            )
        })
}

/// The comparison as text lines: a header per run, each step's facts in two columns, the first
/// divergence marked with `▶`, and totals.
pub fn render(comparison: &Comparison, full: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (side, run) in [("A", &comparison.a), ("B", &comparison.b)] {
        out.push(format!(
            "{side}  run {}  {}  ({} steps, {})",
            run.run_id,
            run.label(),
            run.steps.len(),
            run.ended.unwrap_or("still running")
        ));
    }
    out.push(String::new());
    out.push(pair(
        "",
        &[format!("A: {}", comparison.a.label())],
        &[format!("B: {}", comparison.b.label())],
    ));
    for (index, row) in comparison.rows.iter().enumerate() {
        let diverges = comparison.divergence == Some(index);
        out.push(if diverges {
            format!("▶ step {}  ← first divergence", row.step)
        } else {
            format!("  step {}", row.step)
        });
        let side = |step: &Option<StepFacts>, what: &dyn Fn(&StepFacts) -> Vec<String>| match step {
            Some(step) => what(step),
            None => vec!["—".to_string()],
        };
        let calls = |s: &StepFacts| -> Vec<String> {
            if s.calls.is_empty() {
                return vec!["(none)".into()];
            }
            s.calls
                .iter()
                .flat_map(|call| column_cell(&call_label(call, usize::MAX), COLUMN, full))
                .collect()
        };
        let answer = |s: &StepFacts| -> Vec<String> {
            match (&s.stop, s.answer.trim().is_empty()) {
                (Some(stop), _) => vec![format!("stopped: {stop}")],
                (None, true) => vec!["(no text)".into()],
                (None, false) => column_cell(&s.answer, COLUMN, full),
            }
        };
        out.push(pair("calls", &side(&row.a, &calls), &side(&row.b, &calls)));
        out.push(pair(
            "answer",
            &side(&row.a, &answer),
            &side(&row.b, &answer),
        ));
        let tokens = |s: &StepFacts| vec![tokens(&s.usage)];
        out.push(pair(
            "tokens",
            &side(&row.a, &tokens),
            &side(&row.b, &tokens),
        ));
        let cost = |s: &StepFacts| vec![cost(s.cost)];
        out.push(pair("cost", &side(&row.a, &cost), &side(&row.b, &cost)));
        let time = |s: &StepFacts| vec![latency(s.latency_ms)];
        out.push(pair("time", &side(&row.a, &time), &side(&row.b, &time)));
    }
    out.push(String::new());
    let (ta, tb) = (comparison.a.totals(), comparison.b.totals());
    out.push("  total".to_string());
    for (label, show) in [
        (
            "tokens",
            (|t: &Totals| tokens(&t.usage)) as fn(&Totals) -> String,
        ),
        ("cost", |t: &Totals| cost(t.cost)),
        ("time", |t: &Totals| latency(Some(t.latency_ms))),
    ] {
        out.push(pair(label, &[show(&ta)], &[show(&tb)]));
    }
    out.push(String::new());
    out.push(match comparison.divergence {
        Some(index) => format!(
            "The runs diverge at step {} (▶).{}",
            comparison.rows[index].step,
            if full {
                ""
            } else {
                " Text cut with … is whole with --full."
            }
        ),
        None => "The runs took the same course: the same tool calls and answers.".to_string(),
    });
    out
}

/// A label and two columns, as many lines as the taller side needs.
fn pair(label: &str, a: &[String], b: &[String]) -> String {
    let rows = a.len().max(b.len()).max(1);
    (0..rows)
        .map(|i| {
            let label = if i == 0 { label } else { "" };
            let left = a.get(i).map(String::as_str).unwrap_or("");
            let right = b.get(i).map(String::as_str).unwrap_or("");
            let pad = COLUMN.saturating_sub(left.chars().count());
            format!(
                "  {label:<w$}{left}{}  {right}",
                " ".repeat(pad),
                w = LABEL - 2
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tokens(usage: &crate::runtime::checkpoint::Usage) -> String {
    format!("{} in · {} out", usage.input_tokens, usage.output_tokens)
}

fn cost(cost: Option<f64>) -> String {
    match cost {
        Some(dollars) => format!("${dollars:.6}"),
        None => "— (no price)".to_string(),
    }
}

fn latency(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("{ms} ms"),
        None => "—".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::compare::CallFacts;

    fn facts(run: &str, model: &str, calls: &[&str]) -> RunFacts {
        RunFacts {
            run_id: run.into(),
            model: model.into(),
            variant: Some(Variant::model(model)),
            steps: calls
                .iter()
                .enumerate()
                .map(|(i, name)| StepFacts {
                    step: i as u64 + 1,
                    answer: "a long answer ".repeat(10),
                    calls: vec![CallFacts {
                        name: name.to_string(),
                        args: "{}".into(),
                    }],
                    latency_ms: Some(7),
                    ..StepFacts::default()
                })
                .collect(),
            ended: Some("completeRun"),
        }
    }

    #[test]
    fn the_divergence_is_marked_and_long_text_cut_or_wrapped() {
        let comparison = Comparison::new(
            facts("ra", "gpt-4.1", &["healthCheck", "readTextFile"]),
            facts("rb", "gpt-4.1-mini", &["healthCheck", "listDirectory"]),
        );
        let text = render(&comparison, false).join("\n");
        assert!(text.contains("▶ step 2  ← first divergence"), "{text}");
        assert!(text.contains("  step 1\n"), "{text}");
        assert!(
            text.contains("a long answer a long answer a long answer a l…"),
            "{text}"
        );
        assert!(text.contains("The runs diverge at step 2"), "{text}");
        let whole = render(&comparison, true).join("\n");
        assert!(!whole.contains('…'), "{whole}");
        assert!(whole.contains("a long answer a long answer a long answer a lo"));
    }
}
