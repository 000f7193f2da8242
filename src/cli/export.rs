//! `perstack export otel`: a stored job as the same OpenTelemetry trace a live `--otel` run
//! sends, with the original timestamps, so a run recorded without `--otel` can still be looked
//! at in a tracing tool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::runtime::checkpoint::{Store, StoreError};
use crate::runtime::event::RunEvent;
use crate::store::jobs::JobStore;
use crate::telemetry::{OtlpConfig, Poster, TraceBuilder, trace_id_hex};

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub format: ExportFormat,
}

#[derive(Debug, Subcommand)]
pub enum ExportFormat {
    /// Send a stored job as an OpenTelemetry trace (OTLP/HTTP protobuf, configured by the
    /// standard OTEL_EXPORTER_OTLP_* variables)
    Otel(OtelArgs),
}

#[derive(Debug, Args)]
pub struct OtelArgs {
    /// The job to export (default: the latest)
    #[arg(long, value_name = "JOB_ID")]
    pub job: Option<String>,
    /// The workspace whose `perstack/jobs` holds the job (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

pub fn export(args: &ExportArgs) -> ExitCode {
    let ExportFormat::Otel(args) = &args.format;
    match export_otel(args) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(super::exit::INVALID)
        }
    }
}

fn export_otel(args: &OtelArgs) -> Result<String, String> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = Arc::new(OtlpConfig::from_env(&env).map_err(|err| err.to_string())?);
    let workspace = match &args.workspace {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().map_err(|err| format!("no current directory: {err}"))?,
    };
    let store = Store::new(&workspace);
    let job_id = match &args.job {
        Some(job) => job.clone(),
        None => store.job_ids().into_iter().next().ok_or_else(|| {
            format!(
                "no jobs under {}; run one with `perstack run`, or pass --workspace DIR",
                store.jobs_dir().display()
            )
        })?,
    };
    let events = stored_events(&store, &job_id).map_err(|err| err.to_string())?;
    if events.is_empty() {
        return Err(format!(
            "job {job_id} has no stored events to export; see `perstack log --job {job_id}`"
        ));
    }
    let mut builder = TraceBuilder::new(&job_id, config.capture_content);
    let mut spans: Vec<_> = events.iter().flat_map(|e| builder.push(e)).collect();
    spans.extend(builder.finish());
    let poster = Poster::new(config.clone())?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    let report = tokio.block_on(poster.post_all(&spans));
    if let Some(error) = report.first_error {
        return Err(format!(
            "{} of {} spans of job {job_id} were not sent to {}: {error}; is the collector \
             running there? Set OTEL_EXPORTER_OTLP_ENDPOINT to its address",
            report.failed,
            spans.len(),
            config.shown_url
        ));
    }
    Ok(format!(
        "exported job {job_id} as trace {} ({} spans) to {}",
        trace_id_hex(&job_id),
        report.exported,
        config.shown_url
    ))
}

/// Every stored event of a job, across its runs, in the order they were emitted. The one place
/// this command reads the store. Events that no longer parse (an older format) are skipped.
pub fn stored_events(store: &Store, job_id: &str) -> Result<Vec<RunEvent>, StoreError> {
    store.read_job(job_id)?;
    Ok(store
        .job_events(job_id, None)
        .into_iter()
        .filter_map(|value| serde_json::from_value(value).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::checkpoint::{Job, JobStatus, Usage};
    use crate::runtime::event::{EventKind, RunIds};

    #[test]
    fn stored_events_come_back_in_the_order_they_were_emitted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::new(dir.path());
        assert!(matches!(
            stored_events(&store, "j"),
            Err(StoreError::NoJob(_))
        ));
        store
            .write_job(&Job {
                id: "j".into(),
                status: JobStatus::Completed,
                coordinator_expert_key: "a".into(),
                total_steps: 1,
                max_steps: 10,
                usage: Usage::default(),
                started_at: 5,
                finished_at: None,
                trace_id: None,
            })
            .expect("job");
        let ids = RunIds {
            job_id: "j".into(),
            run_id: "r".into(),
            expert_key: "a".into(),
            parent_run_id: None,
        };
        // Written out of order; `seq` is the order they were emitted in.
        let kinds = [
            (3, EventKind::StartStreamingRunResult),
            (
                4,
                EventKind::CallTools {
                    new_message: crate::runtime::message::Message::user("x"),
                    tool_calls: vec![],
                    usage: Usage::default(),
                },
            ),
            (
                2,
                EventKind::StartGeneration {
                    messages: std::sync::Arc::new(vec![]),
                },
            ),
        ];
        for (seq, kind) in kinds {
            let mut event = ids.event(1, kind);
            event.timestamp = 10;
            let mut stored = serde_json::to_value(&event).expect("serialises");
            stored["seq"] = serde_json::Value::from(seq);
            store
                .write_event("j", "r", 10, 1, event.kind.name(), &stored)
                .expect("event");
        }
        // File names alone would give callTools, startGeneration, startStreamingRunResult.
        let order: Vec<&str> = stored_events(&store, "j")
            .expect("events")
            .iter()
            .map(|e| e.kind.name())
            .collect();
        assert_eq!(
            order,
            vec!["startGeneration", "startStreamingRunResult", "callTools"]
        );
    }
}
