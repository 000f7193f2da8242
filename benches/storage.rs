//! What a job stores, per step, with a model that answers at once (a healthCheck call a step):
//! at steps 10, 100 and 1,000, the bytes in the store per step of the whole job, and the bytes
//! the last step added, as stored now and as stored before events referred to checkpoints
//! (every event whole: exactly its printed JSON, which the run also counts). Also the median
//! wall-clock time of a step around the last one, which includes waiting for its checkpoint
//! to be on disk.
//!
//! Then, with moto installed (`target/venv-moto`, as the tests use it): a 100-step run stored to
//! S3 on loopback (through the spool) against the same run on local disk: the median and mean
//! step, and the time from the run's end until the whole job is in the store; and listing 1,000
//! jobs for the workbench's picker from each store.
//!
//! `cargo bench --bench storage`

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use perstack::definition::parse_str;
use perstack::runtime::checkpoint::Store;
use perstack::runtime::run::JobContext;
use tokio::sync::{mpsc, watch};

#[path = "support/instant_model.rs"]
mod instant_model;
#[path = "../tests/support/s3.rs"]
mod s3;
use instant_model::{InstantModel, run_solo_to_completion};

/// Bytes under `dir`, in total and in files that belong to `step` (event files name their step;
/// a checkpoint is counted by its `stepNumber`).
fn stored_bytes(dir: &Path, step: u64) -> (u64, u64) {
    let (mut total, mut at_step) = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            let (t, s) = stored_bytes(&path, step);
            total += t;
            at_step += s;
            continue;
        }
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        total += len;
        let name = entry.file_name().to_string_lossy().into_owned();
        let belongs = if let Some(rest) = name.strip_prefix("event-") {
            rest.split('-').nth(1) == Some(step.to_string().as_str())
        } else if path.parent().is_some_and(|p| p.ends_with("checkpoints")) {
            std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|c| c["stepNumber"] == step && c["status"] == "proceeding")
        } else {
            false
        };
        if belongs {
            at_step += len;
        }
    }
    (total, at_step)
}

struct Measured {
    /// Bytes of the store now: the whole job, and what the last tool step added.
    stored: (u64, u64),
    /// Of the last step, the bytes of its events: now, and whole.
    last_events: (u64, u64),
    /// The same, had every event been stored whole.
    whole: (u64, u64),
    step_times: Vec<Duration>,
}

async fn job(steps: usize) -> Measured {
    let workspace = tempfile::tempdir().expect("temp dir");
    let source = format!(
        "maxSteps = {}\n[experts.solo]\ninstruction = \"Check health.\"\n",
        steps + 10
    );
    let (config, _) = parse_str(&source, Path::new("bench.toml")).expect("valid config");
    let model = Arc::new(InstantModel::new(steps + 1));
    let last = steps as u64;
    let (events, mut receiver) = mpsc::unbounded_channel();
    let (_cancel, cancelled) = watch::channel(false);
    // Every event as printed: before, each was stored as exactly this JSON (deltas excepted).
    let printer = tokio::spawn(async move {
        let (mut total, mut at_step, mut line) = (0u64, 0u64, Vec::new());
        while let Some(event) = receiver.recv().await {
            let event: perstack::runtime::event::RunEvent = event;
            if event.kind.is_delta() {
                continue;
            }
            line.clear();
            if serde_json::to_writer(&mut line, &event).is_ok() {
                total += line.len() as u64;
                if event.step_number == last {
                    at_step += line.len() as u64;
                }
            }
        }
        (total, at_step)
    });
    let context = Arc::new(JobContext::new(
        "bench-job".into(),
        Arc::new(config),
        workspace.path().to_path_buf(),
        model.clone(),
        Store::new(workspace.path()),
        events,
        cancelled,
        0,
    ));
    run_solo_to_completion(context.clone()).await;
    drop(context);
    let printed = printer.await.unwrap_or((0, 0));
    let root = workspace.path().join("perstack");
    let stored = stored_bytes(&root, last);
    let events_stored = stored_bytes_of_events(&root, last);
    let stamps = model.stamps();
    Measured {
        stored,
        last_events: (events_stored.1, printed.1),
        whole: (
            stored.0 - events_stored.0 + printed.0,
            stored.1 - events_stored.1 + printed.1,
        ),
        step_times: stamps.windows(2).map(|w| w[1].0 - w[0].0).collect(),
    }
}

/// Bytes of the event files alone (total, and of `step`).
fn stored_bytes_of_events(dir: &Path, step: u64) -> (u64, u64) {
    let (mut total, mut at_step) = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            let (t, s) = stored_bytes_of_events(&path, step);
            total += t;
            at_step += s;
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("event-") {
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            total += len;
            if rest.split('-').nth(1) == Some(step.to_string().as_str()) {
                at_step += len;
            }
        }
    }
    (total, at_step)
}

fn median_of_last(values: &[Duration], n: usize) -> Duration {
    let mut last: Vec<Duration> = values[values.len().saturating_sub(n)..].to_vec();
    last.sort();
    last.get(last.len() / 2).copied().unwrap_or_default()
}

/// A `steps`-step run into `store`: its step times, and how long after its end the whole job
/// was in the store.
async fn timed_run(
    store: Arc<dyn perstack::store::Store>,
    steps: usize,
    wait_for_store: bool,
) -> (Vec<Duration>, Option<Duration>) {
    let workspace = tempfile::tempdir().expect("temp dir");
    let source = format!(
        "maxSteps = {}\n[experts.solo]\ninstruction = \"Check health.\"\n",
        steps + 10
    );
    let (config, _) = parse_str(&source, Path::new("bench.toml")).expect("valid config");
    let model = Arc::new(InstantModel::new(steps + 1));
    let (events, mut receiver) = mpsc::unbounded_channel();
    let (_cancel, cancelled) = watch::channel(false);
    let drain = tokio::spawn(async move { while receiver.recv().await.is_some() {} });
    let context = Arc::new(JobContext::new(
        format!("bench-{}", perstack::runtime::id::new_id()),
        Arc::new(config),
        workspace.path().to_path_buf(),
        model.clone(),
        store.clone(),
        events,
        cancelled,
        0,
    ));
    run_solo_to_completion(context.clone()).await;
    let ended = std::time::Instant::now();
    let in_store = if wait_for_store {
        let settled = tokio::task::spawn_blocking(move || store.settle(Duration::from_secs(60)))
            .await
            .expect("settle");
        assert!(settled.is_ok(), "{settled:?}");
        Some(ended.elapsed())
    } else {
        None
    };
    drop(context);
    let _ = drain.await;
    let stamps = model.stamps();
    (
        stamps.windows(2).map(|w| w[1].0 - w[0].0).collect(),
        in_store,
    )
}

fn mean(values: &[Duration]) -> Duration {
    values.iter().sum::<Duration>() / values.len().max(1) as u32
}

/// 1,000 job records put into `store`, then the picker's listing of them, timed: until all
/// 1,000 rows are listed (ids and start times), until the first page of records is on screen,
/// and until it has every record.
fn listing(store: &dyn perstack::store::Store) -> (Duration, Duration, Duration) {
    use perstack::runtime::checkpoint::{Job, JobStatus, Usage};
    use perstack::store::JobStore as _;
    for n in 0..1000u64 {
        let job = Job {
            id: format!("job-{n:04}"),
            status: JobStatus::Completed,
            coordinator_expert_key: "solo".into(),
            total_steps: n % 50,
            max_steps: 100,
            usage: Usage::default(),
            started_at: 1_767_225_600_000 + n,
            finished_at: None,
            trace_id: None,
        };
        store.write_job(&job).expect("job record");
    }
    let started = std::time::Instant::now();
    let (mut rows, mut pages, mut records) = (None, Vec::new(), 0);
    perstack::tui::panes::jobs::list_jobs(store, |msg| match msg {
        perstack::tui::app::Msg::JobIdsListed { ids: Ok(ids), .. } => {
            assert_eq!(ids.len(), 1000);
            rows = Some(started.elapsed());
        }
        perstack::tui::app::Msg::JobsListed { jobs: Ok(jobs), .. } => {
            records += jobs.len();
            pages.push(started.elapsed());
        }
        other => panic!("listing failed: {other:?}"),
    });
    assert_eq!(records, 1000);
    (rows.expect("ids listed"), pages[0], pages[pages.len() - 1])
}

fn s3_comparison(runtime: &tokio::runtime::Runtime) {
    let Some(moto) = s3::Moto::start() else {
        return;
    };
    moto.create_bucket("bench");
    let open = |prefix: &str| -> Arc<dyn perstack::store::Store> {
        Arc::new(
            perstack::store::ObjectStore::from_url_with(
                &format!("s3://bench/{prefix}"),
                moto.options(),
            )
            .expect("s3 store"),
        )
    };
    println!();
    println!(
        "{:<28} {:>12} {:>12} {:>20}",
        "100-step run stored to", "median step", "mean step", "in store after end"
    );
    let disk = tempfile::tempdir().expect("temp dir");
    let spool = tempfile::tempdir().expect("temp dir");
    // An endpoint where nothing listens: every upload fails and waits in the spool, so the
    // steps' times show whether a step ever waits on the network (it should not).
    let unreachable = {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        let port = closed.local_addr().expect("port").port();
        drop(closed);
        let mut options = moto.options();
        for (key, value) in &mut options {
            if key == "aws_endpoint" {
                *value = format!("http://127.0.0.1:{port}");
            }
        }
        Arc::new(
            perstack::store::ObjectStore::from_url_with("s3://bench/down", options)
                .expect("s3 store"),
        )
    };
    let down_spool = tempfile::tempdir().expect("temp dir");
    let stores: [(&str, Arc<dyn perstack::store::Store>, bool); 3] = [
        (
            "local disk (FsStore)",
            Arc::new(Store::new(disk.path())),
            true,
        ),
        (
            "S3 on loopback (moto)",
            Arc::new(perstack::store::SpooledStore::new(
                open("runs"),
                spool.path(),
                perstack::store::spool::RetrySchedule::from_env(),
            )),
            true,
        ),
        (
            "S3 unreachable (spooled)",
            Arc::new(perstack::store::SpooledStore::new(
                unreachable,
                down_spool.path(),
                perstack::store::spool::RetrySchedule::from_env(),
            )),
            false,
        ),
    ];
    for (name, store, wait_for_store) in stores {
        let (steps, in_store) = runtime.block_on(timed_run(store, 100, wait_for_store));
        let in_store = in_store.map_or_else(|| "never (spooled)".to_string(), |d| format!("{d:?}"));
        println!(
            "{name:<28} {:>12?} {:>12?} {:>20}",
            median_of_last(&steps, steps.len()),
            mean(&steps),
            in_store
        );
    }
    println!();
    println!(
        "{:<28} {:>14} {:>18} {:>14}",
        "listing 1,000 jobs from", "all 1,000 rows", "first 100 records", "all records"
    );
    let disk = tempfile::tempdir().expect("temp dir");
    let (rows, first, all) = listing(&Store::new(disk.path()));
    println!(
        "{:<28} {rows:>14?} {first:>18?} {all:>14?}",
        "local disk (FsStore)"
    );
    let (rows, first, all) = listing(&*open("listing"));
    println!(
        "{:<28} {rows:>14?} {first:>18?} {all:>14?}",
        "S3 on loopback (moto)"
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{:>6} {:>15} {:>15} {:>14} {:>14} {:>13} {:>13} {:>12}",
        "steps",
        "B/step now",
        "B/step whole",
        "last step now",
        "(its events)",
        "last whole",
        "(its events)",
        "median step"
    );
    for steps in [10usize, 100, 1000] {
        let m = runtime.block_on(job(steps));
        let per_step = |bytes: u64| bytes / steps as u64;
        println!(
            "{steps:>6} {:>15} {:>15} {:>14} {:>14} {:>13} {:>13} {:>12?}",
            per_step(m.stored.0),
            per_step(m.whole.0),
            m.stored.1,
            m.last_events.0,
            m.whole.1,
            m.last_events.1,
            median_of_last(&m.step_times, 10)
        );
    }
    s3_comparison(&runtime);
}
