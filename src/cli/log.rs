//! `perstack log`: read the stored events of a job, filtered.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::store::JobStore as _;
use crate::time::clock_time;

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The job to read (default: the latest)
    #[arg(long, value_name = "JOB_ID")]
    pub job: Option<String>,
    /// Only this run
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Only this step number
    #[arg(long, value_name = "N")]
    pub step: Option<u64>,
    /// Only events of this type (repeatable), e.g. --type callTools --type completeRun
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only errors: stopped runs, retries, and tool results that failed
    #[arg(long)]
    pub errors: bool,
    /// Only tool activity: calls, delegations, results and timings
    #[arg(long)]
    pub tools: bool,
    /// Print each event as one JSON line instead of a summary
    #[arg(long)]
    pub json: bool,
    /// Read the jobs from this store instead of the workspace: s3://bucket/prefix (credentials
    /// and endpoint from the AWS_* variables)
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// The workspace whose `perstack/jobs` holds the job (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

const TOOL_EVENTS: [&str; 8] = [
    "callTools",
    "providerToolCall",
    "callDelegate",
    "callInteractiveTool",
    "resolveToolResults",
    "toolCallTiming",
    "attemptCompletion",
    "mcpFrame",
];

pub fn log(args: &LogArgs) -> ExitCode {
    let store = match super::open_store(args.storage.as_deref(), args.workspace.as_deref()) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let job_id = match &args.job {
        Some(job) => job.clone(),
        None => match store.job_ids().into_iter().next() {
            Some(job) => job,
            None => {
                eprintln!(
                    "error: no jobs under {}; run one with `perstack run`, or pass --workspace DIR",
                    store.location()
                );
                return ExitCode::from(1);
            }
        },
    };
    if let Err(err) = store.read_job(&job_id) {
        eprintln!("error: {err}");
        return ExitCode::from(1);
    }
    // In the order the job emitted them, which is the order `perstack run` printed them.
    let events: Vec<Value> = store
        .job_events(&job_id, args.run.as_deref())
        .into_iter()
        .filter(|event| keep(args, event))
        .collect();
    let mut stdout = std::io::stdout().lock();
    for event in &events {
        let line = if args.json {
            event.to_string()
        } else {
            summary(event)
        };
        if writeln!(stdout, "{line}").is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn keep(args: &LogArgs, event: &Value) -> bool {
    let kind = event["type"].as_str().unwrap_or_default();
    if args
        .step
        .is_some_and(|step| event["stepNumber"].as_u64() != Some(step))
    {
        return false;
    }
    if !args.types.is_empty() && !args.types.iter().any(|t| t == kind) {
        return false;
    }
    if args.tools && !TOOL_EVENTS.contains(&kind) {
        return false;
    }
    if args.errors && !is_error(event) {
        return false;
    }
    true
}

fn is_error(event: &Value) -> bool {
    match event["type"].as_str().unwrap_or_default() {
        "stopRunByError" | "retry" | "storageRetry" => true,
        "toolCallTiming" => event["isError"] == true,
        "providerToolCall" => event["toolResult"]["result"]["isError"] == true,
        "resolveToolResults" => event["toolResults"]
            .as_array()
            .is_some_and(|results| results.iter().any(|r| r["result"]["isError"] == true)),
        _ => false,
    }
}

/// One readable line: time, Expert, step, type, and what matters of the event.
fn summary(event: &Value) -> String {
    let kind = event["type"].as_str().unwrap_or_default();
    let detail = match kind {
        "callTools" => event["toolCalls"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| {
                        format!(
                            "{}({})",
                            c["toolName"].as_str().unwrap_or("?"),
                            short(&c["args"].to_string(), 60)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        "toolCallTiming" => format!(
            "{} {} ms{}",
            event["toolName"].as_str().unwrap_or("?"),
            event["durationMs"],
            if event["isError"] == true {
                " (error)"
            } else {
                ""
            }
        ),
        "providerToolCall" => format!(
            "{}/{}({}) run by the provider → {}",
            event["toolCall"]["skillName"].as_str().unwrap_or("?"),
            event["toolCall"]["toolName"].as_str().unwrap_or("?"),
            short(&event["toolCall"]["args"].to_string(), 60),
            short(
                event["toolResult"]["result"]["contents"][0]["text"]
                    .as_str()
                    .unwrap_or_default(),
                80
            )
        ),
        "callDelegate" => format!(
            "{} ← {}",
            event["delegateExpertKey"].as_str().unwrap_or("?"),
            short(event["query"].as_str().unwrap_or_default(), 80)
        ),
        "completeRun" | "completeStreamingRunResult" => {
            short(event["text"].as_str().unwrap_or_default(), 100)
        }
        "stopRunByError" => short(event["error"]["message"].as_str().unwrap_or_default(), 120),
        "retry" => short(event["reason"].as_str().unwrap_or_default(), 100),
        "llmRequest" => format!(
            "{} {} ({} bytes)",
            event["request"]["method"].as_str().unwrap_or_default(),
            event["request"]["url"].as_str().unwrap_or_default(),
            event["request"]["body"].as_str().map_or(0, str::len)
        ),
        "skillStderr" | "skillWarning" => short(event["message"].as_str().unwrap_or_default(), 100),
        "mcpFrame" => mcp_frame(event),
        _ => String::new(),
    };
    format!(
        "{}  {:<20} {:>3}  {:<26} {}",
        clock_time(event["timestamp"].as_u64().unwrap_or(0)),
        short(event["expertKey"].as_str().unwrap_or_default(), 20),
        event["stepNumber"].as_u64().unwrap_or(0),
        kind,
        detail
    )
    .trim_end()
    .to_string()
}

/// `→ skill tools/call 182 B call c1  {"jsonrpc":…`: the frame abbreviated; `--json` has it
/// whole.
fn mcp_frame(event: &Value) -> String {
    let arrow = match event["direction"].as_str() {
        Some("sent") => "→",
        _ => "←",
    };
    let call = event["toolCallId"]
        .as_str()
        .map(|id| format!(" call {id}"))
        .unwrap_or_default();
    format!(
        "{arrow} {} {} {} B{call}  {}",
        event["skillName"].as_str().unwrap_or("?"),
        event["method"].as_str().unwrap_or("-"),
        event["bytes"].as_u64().unwrap_or(0),
        short(event["frame"].as_str().unwrap_or_default(), 80)
    )
}

fn short(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ⏎ ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn an_mcp_frame_reads_as_direction_skill_method_size_and_call() {
        let event = json!({
            "type": "mcpFrame", "timestamp": 0, "expertKey": "solo", "stepNumber": 1,
            "skillName": "tester", "direction": "sent", "atUs": 5, "bytes": 42,
            "frame": "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\"}",
            "method": "tools/call", "toolCallId": "c1"
        });
        let line = super::summary(&event);
        assert!(
            line.ends_with(
                "mcpFrame                   → tester tools/call 42 B call c1  \
                 {\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\"}"
            ),
            "{line}"
        );
    }
}
