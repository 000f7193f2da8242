//! `perstack jobs`: the stored jobs, newest first, with status, Expert, steps, tokens and start.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::runtime::checkpoint::{Job, JobStatus};
use crate::store::JobStore as _;
use crate::time::rfc3339;

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Print each job record as one JSON line instead of a table
    #[arg(long)]
    pub json: bool,
    /// Read the jobs from this store instead of the workspace: s3://bucket/prefix (credentials
    /// and endpoint from the AWS_* variables)
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// The workspace whose `perstack/jobs` holds the jobs (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

pub fn jobs(args: &JobsArgs) -> ExitCode {
    let store = match super::open_store(args.storage.as_deref(), args.workspace.as_deref()) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let jobs = store.jobs();
    if jobs.is_empty() && !args.json {
        eprintln!(
            "no jobs under {}; run one with `perstack run`, or pass --workspace DIR",
            store.location()
        );
        return ExitCode::SUCCESS;
    }
    let mut stdout = std::io::stdout().lock();
    if !args.json {
        let _ = writeln!(stdout, "{}", header());
    }
    for job in &jobs {
        let line = if args.json {
            serde_json::to_string(job).unwrap_or_default()
        } else {
            row(job)
        };
        if writeln!(stdout, "{line}").is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

pub fn header() -> String {
    format!(
        "{:<26} {:<10} {:<20} {:>11} {:>10}  {}",
        "JOB", "STATUS", "EXPERT", "STEPS", "TOKENS", "STARTED"
    )
}

pub fn row(job: &Job) -> String {
    let status = match job.status {
        JobStatus::Running => "running",
        JobStatus::Completed => "completed",
        JobStatus::Stopped => "stopped",
        JobStatus::Failed => "failed",
    };
    format!(
        "{:<26} {:<10} {:<20} {:>11} {:>10}  {}",
        job.id,
        status,
        job.coordinator_expert_key,
        format!("{}/{}", job.total_steps, job.max_steps),
        job.usage.total_tokens,
        rfc3339(job.started_at)
    )
}

/// A job without its record: not read yet (`reading`), or unreadable. Its id tells its start
/// where it can.
pub fn pending_row(id: &str, reading: bool) -> String {
    let status = if reading { "…" } else { "no record" };
    let started = crate::runtime::id::created_at(id)
        .map(rfc3339)
        .unwrap_or_else(|| "…".into());
    format!(
        "{:<26} {:<10} {:<20} {:>11} {:>10}  {}",
        id, status, "…", "…", "…", started
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::checkpoint::Usage;

    #[test]
    fn a_row_shows_status_expert_steps_tokens_and_start() {
        let job = Job {
            id: "job1".into(),
            status: JobStatus::Stopped,
            coordinator_expert_key: "writer".into(),
            total_steps: 30,
            max_steps: 30,
            usage: Usage {
                total_tokens: 1234,
                ..Usage::default()
            },
            started_at: 0,
            finished_at: None,
            trace_id: None,
        };
        let row = row(&job);
        for part in [
            "job1",
            "stopped",
            "writer",
            "30/30",
            "1234",
            "1970-01-01T00:00:00",
        ] {
            assert!(row.contains(part), "{part} missing from {row}");
        }
        assert_eq!(
            header().find("STATUS"),
            row.find("stopped"),
            "columns line up"
        );
    }
}
