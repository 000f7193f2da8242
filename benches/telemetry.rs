//! What `--otel` adds to a step, with a model that answers at once (the replay provider) and a
//! collector on loopback that takes every request:
//! - end to end: the median time per step of whole jobs, without and with `--otel`;
//! - the converter alone: turning one step's events into spans and queueing them (the work
//!   the trace adds, done on its own task, not on the step's).
//!
//! `cargo bench --bench telemetry`

use std::sync::Arc;
use std::time::{Duration, Instant};

use perstack::runtime::control::Debugger;
use perstack::runtime::event::RunEvent;
use perstack::runtime::{JobStart, Overrides, Runtime};
use perstack::telemetry::TraceBuilder;

const STEPS: usize = 200;
const JOBS: usize = 7;

fn replay_script(steps: usize) -> String {
    let mut script = String::new();
    for _ in 0..steps {
        script.push_str(
            "[[responses]]\nexpert = \"solo\"\ntoolCalls = [{ name = \"healthCheck\", args = {} }]\nusage = { input = 10, output = 5 }\n\n",
        );
    }
    script.push_str("[[responses]]\nexpert = \"solo\"\ntoolCalls = [{ name = \"attemptCompletion\", args = {} }]\n\n");
    script.push_str("[[responses]]\nexpert = \"solo\"\ntext = \"done\"\n");
    script
}

/// A collector that answers 200 to everything, on loopback.
async fn collector() -> String {
    let app = axum::Router::new().fallback(|_body: axum::body::Bytes| async { "" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Runs one job; returns its wall time and its events.
async fn job(runtime: &Runtime, n: usize) -> (Duration, Vec<RunEvent>) {
    let started = Instant::now();
    let start = JobStart::New {
        query: "go".into(),
        job_id: Some(format!("bench-{n}")),
    };
    let mut handle = runtime
        .start("solo", start, Arc::new(Debugger::default()))
        .await
        .expect("job starts");
    let mut events = Vec::new();
    while let Some(event) = handle.events.recv().await {
        events.push(event);
    }
    let outcome = handle.outcome().await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    (started.elapsed(), events)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = "maxSteps = 10000\n[experts.\"solo\"]\ninstruction = \"Check.\"\n[experts.\"solo\".skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\ncommand = \"npx\"\npackageName = \"@perstack/base\"\npick = [\"healthCheck\", \"attemptCompletion\"]\n";
    std::fs::write(dir.path().join("perstack.toml"), config).expect("config");
    std::fs::write(dir.path().join("script.toml"), replay_script(STEPS)).expect("script");
    let loaded = perstack::definition::load_file(&dir.path().join("perstack.toml")).expect("loads");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let endpoint = tokio.block_on(collector());
    // SAFETY: set before any other thread of this program reads the environment.
    unsafe { std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint) };
    let runtime_for = |otel: bool| {
        let overrides = Overrides {
            replay: Some(dir.path().join("script.toml")),
            workspace: Some(dir.path().to_path_buf()),
            otel,
            ..Overrides::default()
        };
        Runtime::prepare(&loaded, &overrides).expect("prepares")
    };
    let steps = (STEPS + 2) as f64;
    let mut per_step = [Vec::new(), Vec::new()];
    let mut recorded = Vec::new();
    for n in 0..JOBS {
        // Interleaved, so a busy moment of the machine hits both alike.
        for (i, otel) in [false, true].into_iter().enumerate() {
            // A fresh runtime: the replay script answers each Expert's requests in order.
            let runtime = runtime_for(otel);
            let (elapsed, events) = tokio.block_on(job(&runtime, n * 2 + i));
            per_step[i].push(elapsed.as_secs_f64() * 1e3 / steps);
            recorded = events;
        }
    }
    let (off, on) = (median(per_step[0].clone()), median(per_step[1].clone()));
    println!(
        "end to end, {STEPS} steps, median of {JOBS} jobs: {off:.4} ms/step without --otel, {on:.4} ms/step with; difference {:+.4} ms/step",
        on - off
    );
    // The converter alone, over the events of the last job, many times.
    let rounds = 200;
    let started = Instant::now();
    let mut spans = 0usize;
    for _ in 0..rounds {
        let mut builder = TraceBuilder::new("bench", false);
        for event in &recorded {
            spans += builder.push(event).len();
        }
        spans += builder.finish().len();
    }
    let per_step_us = started.elapsed().as_secs_f64() * 1e6 / (rounds as f64 * steps);
    println!(
        "converter: {per_step_us:.2} µs/step ({} events/step, {} spans/step)",
        recorded.len() as f64 / steps,
        spans as f64 / (rounds as f64 * steps)
    );
    // Encoding them as OTLP protobuf, as the exporter does before each post.
    let mut builder = TraceBuilder::new("bench", false);
    let mut job_spans: Vec<_> = recorded.iter().flat_map(|e| builder.push(e)).collect();
    job_spans.extend(builder.finish());
    let started = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..rounds {
        bytes += perstack::telemetry::proto::encode("bench", &job_spans).len();
    }
    let encode_us = started.elapsed().as_secs_f64() * 1e6 / (rounds as f64 * steps);
    println!(
        "encoding: {encode_us:.2} µs/step ({:.0} bytes/step)",
        bytes as f64 / (rounds as f64 * steps)
    );
}
