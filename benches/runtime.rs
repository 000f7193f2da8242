//! The runtime's own cost per step, with a model that answers at once: building the request,
//! the machine's transitions, events (serialised, as `perstack run` prints them, and stored), a
//! base-skill tool call and one checkpoint write. Prints the median at steps 10, 100 and 1,000
//! and the bytes written per step.
//!
//! `cargo bench --bench runtime`

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use perstack::definition::parse_str;
use perstack::llm::{
    ChunkStream, FinishReason, LanguageModel, LlmError, PreparedRequest, Request, StreamChunk,
};
use perstack::runtime::checkpoint::Store;
use perstack::runtime::control::{Breakpoint, Debugger};
use perstack::runtime::run::{JobContext, RunSpec, RunStart, run_expert};
use tokio::sync::{mpsc, watch};

/// Answers with a healthCheck call until the last step, then with text.
struct InstantModel {
    steps: usize,
    calls: AtomicUsize,
    sent_at: Mutex<Vec<Instant>>,
}

impl LanguageModel for InstantModel {
    fn provider(&self) -> &str {
        "bench"
    }

    fn model(&self) -> &str {
        "instant"
    }

    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError> {
        // Serialise the whole request, as every real provider does.
        let body = serde_json::to_vec(req).unwrap_or_default();
        Ok(PreparedRequest::new(
            "bench",
            "POST",
            "bench:",
            Vec::new(),
            body,
        ))
    }

    fn send(&self, _prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        if let Ok(mut stamps) = self.sent_at.lock() {
            stamps.push(Instant::now());
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let chunks = if n + 1 < self.steps {
            vec![
                StreamChunk::ToolCallStarted {
                    index: 0,
                    id: format!("call{n}"),
                    name: "healthCheck".into(),
                },
                StreamChunk::ToolCallFinished {
                    index: 0,
                    id: format!("call{n}"),
                    name: "healthCheck".into(),
                    args: serde_json::json!({}),
                },
                StreamChunk::Finish {
                    reason: FinishReason::ToolUse,
                },
            ]
        } else {
            vec![
                StreamChunk::TextDelta {
                    text: "done".into(),
                },
                StreamChunk::Finish {
                    reason: FinishReason::Stop,
                },
            ]
        };
        Box::pin(async move { Ok(stream::iter(chunks.into_iter().map(Ok)).boxed()) })
    }
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

async fn job(steps: usize, breakpoints: Vec<Breakpoint>) -> (Vec<Duration>, u64, u64) {
    let workspace = tempfile::tempdir().expect("temp dir");
    let source = format!(
        "maxSteps = {}\n[experts.solo]\ninstruction = \"Check health.\"\n",
        steps + 10
    );
    let (config, _) = parse_str(&source, Path::new("bench.toml")).expect("valid config");
    let model = Arc::new(InstantModel {
        steps,
        calls: AtomicUsize::new(0),
        sent_at: Mutex::new(Vec::new()),
    });
    let (events, mut receiver) = mpsc::unbounded_channel();
    let (_cancel, cancelled) = watch::channel(false);
    // Serialise every event as `perstack run` does, and count what would be printed.
    let printer = tokio::spawn(async move {
        let (mut bytes, mut line) = (0u64, Vec::new());
        while let Some(event) = receiver.recv().await {
            line.clear();
            if serde_json::to_writer(&mut line, &event).is_ok() {
                bytes += line.len() as u64;
            }
        }
        bytes
    });
    let context = Arc::new(
        JobContext::new(
            "bench-job".into(),
            Arc::new(config),
            workspace.path().to_path_buf(),
            model.clone(),
            Store::new(workspace.path()),
            events,
            cancelled,
            0,
        )
        .with_debugger(Debugger::new(breakpoints).0),
    );
    let outcome = run_expert(
        context.clone(),
        RunSpec {
            expert_key: "solo".into(),
            run_id: None,
            start: RunStart::Query("Check health repeatedly".into()),
            parent: None,
        },
    )
    .await;
    assert_eq!(format!("{:?}", outcome.status), "Completed");
    assert!(context.writer.finish().is_empty());
    drop(context);
    let printed = printer.await.unwrap_or(0);
    let stamps = model.sent_at.lock().map(|s| s.clone()).unwrap_or_default();
    let intervals = stamps.windows(2).map(|w| w[1] - w[0]).collect();
    (
        intervals,
        dir_bytes(&workspace.path().join("perstack")),
        printed,
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{:>6} {:>14} {:>18} {:>20}",
        "step", "median/step", "stored bytes/step", "JSONL bytes/step"
    );
    for steps in [10usize, 100, 1000] {
        let (intervals, stored, printed) = runtime.block_on(job(steps + 5, Vec::new()));
        // The steps around the one named: [step-5, step+5), or the last ten.
        let from = steps
            .saturating_sub(5)
            .min(intervals.len().saturating_sub(10));
        let window = intervals[from..(from + 10).min(intervals.len())].to_vec();
        let per_step = |bytes: u64| bytes / (steps as u64 + 5);
        println!(
            "{steps:>6} {:>14?} {:>18} {:>20}",
            median(window),
            per_step(stored),
            per_step(printed)
        );
    }
    // Pause points are checked at every model and tool call: with breakpoints set that never
    // match, a run must cost the same as one without any.
    println!("\nwith a breakpoint that never matches (the pause checks run, nothing pauses):");
    for steps in [10usize, 100] {
        let never: Breakpoint = "before-tool=noSuchTool".parse().expect("valid breakpoint");
        let (armed, _, _) = runtime.block_on(job(steps + 5, vec![never]));
        let (plain, _, _) = runtime.block_on(job(steps + 5, Vec::new()));
        println!(
            "{steps:>6} armed {:>12?}   none {:>12?}",
            median(armed),
            median(plain)
        );
    }
}
