//! The runtime's own cost per step, with a model that answers at once: building the request,
//! the machine's transitions, events (serialised, as `perstack run` prints them, and stored), a
//! base-skill tool call and one checkpoint write. Prints, at steps 10, 100 and 1,000, the median
//! time per step (wall clock, and CPU time of the thread the steps run on) and the bytes written
//! per step.
//!
//! `cargo bench --bench runtime`

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use perstack::definition::parse_str;
use perstack::runtime::checkpoint::Store;
use perstack::runtime::control::{Breakpoint, Debugger};
use perstack::runtime::run::JobContext;
use tokio::sync::{mpsc, watch};

#[path = "support/instant_model.rs"]
mod instant_model;
use instant_model::{InstantModel, run_solo_to_completion};

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

/// What one job measured: per step, the wall-clock time and the CPU time of the thread the
/// steps ran on; then the bytes stored and printed.
struct Measured {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    stored: u64,
    printed: u64,
}

async fn job(steps: usize, breakpoints: Vec<Breakpoint>) -> Measured {
    let workspace = tempfile::tempdir().expect("temp dir");
    let source = format!(
        "maxSteps = {}\n[experts.solo]\ninstruction = \"Check health.\"\n",
        steps + 10
    );
    let (config, _) = parse_str(&source, Path::new("bench.toml")).expect("valid config");
    let model = Arc::new(InstantModel::new(steps));
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
        .with_debugger(std::sync::Arc::new(Debugger::new(breakpoints).0)),
    );
    run_solo_to_completion(context.clone()).await;
    drop(context);
    let printed = printer.await.unwrap_or(0);
    let stamps = model.stamps();
    Measured {
        wall: stamps.windows(2).map(|w| w[1].0 - w[0].0).collect(),
        cpu: stamps.windows(2).map(|w| w[1].1 - w[0].1).collect(),
        stored: dir_bytes(&workspace.path().join("perstack")),
        printed,
    }
}

/// The median of the ten steps around `step`: [step-5, step+5), or the last ten.
fn median_around(values: &[Duration], step: usize) -> Duration {
    let from = step.saturating_sub(5).min(values.len().saturating_sub(10));
    median(values[from..(from + 10).min(values.len())].to_vec())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The wall-clock median also counts waiting for a core, which the store and printer threads
    // (and anything else on the machine) compete for; the CPU time is the step's own work.
    println!(
        "{:>6} {:>14} {:>14} {:>18} {:>20}",
        "step", "median/step", "cpu/step", "stored bytes/step", "JSONL bytes/step"
    );
    for steps in [10usize, 100, 1000] {
        let measured = runtime.block_on(job(steps + 5, Vec::new()));
        let per_step = |bytes: u64| bytes / (steps as u64 + 5);
        println!(
            "{steps:>6} {:>14?} {:>14?} {:>18} {:>20}",
            median_around(&measured.wall, steps),
            median_around(&measured.cpu, steps),
            per_step(measured.stored),
            per_step(measured.printed)
        );
    }
    // Pause points are checked at every model and tool call: with breakpoints set that never
    // match, a run must cost the same as one without any.
    println!("\nwith a breakpoint that never matches (the pause checks run, nothing pauses):");
    for steps in [10usize, 100] {
        let never: Breakpoint = "before-tool=noSuchTool".parse().expect("valid breakpoint");
        let armed = runtime.block_on(job(steps + 5, vec![never]));
        let plain = runtime.block_on(job(steps + 5, Vec::new()));
        println!(
            "{steps:>6} armed {:>12?}   none {:>12?}",
            median(armed.wall),
            median(plain.wall)
        );
    }
}
