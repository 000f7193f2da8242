//! The runtime used as a library, the way a third front end would: definitions loaded, a
//! `Runtime` prepared, jobs started and continued through `Runtime::start`, nothing else.

use std::path::Path;
use std::sync::Arc;

use perstack::runtime::checkpoint::CheckpointStatus;
use perstack::runtime::control::Debugger;
use perstack::runtime::event::EventKind;
use perstack::runtime::{JobStart, Overrides, PrepareError, Runtime, StartError};
use perstack::store::JobStore as _;

fn example() -> perstack::definition::LoadedConfig {
    perstack::definition::load_file(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/perstack.toml"
    )))
    .expect("the example loads")
}

fn offline(workspace: &Path) -> Overrides {
    Overrides {
        replay: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.replay.toml").into()),
        workspace: Some(workspace.to_path_buf()),
        ..Overrides::default()
    }
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/CHANGELOG.md"),
        dir.path().join("CHANGELOG.md"),
    )
    .expect("copy the changelog");
    dir
}

#[tokio::test]
async fn a_job_runs_and_continues_through_the_runtime_alone() {
    let dir = workspace();
    let runtime = Runtime::prepare(&example(), &offline(dir.path())).expect("prepared");
    let start = JobStart::New {
        query: "Write release notes for developers".into(),
        job_id: Some("first-job".into()),
    };
    let mut job = runtime
        .start("release-notes", start, Arc::new(Debugger::default()))
        .await
        .expect("started");
    assert_eq!(job.job_id, "first-job");
    let mut names = Vec::new();
    while let Some(event) = job.events.recv().await {
        assert_eq!(event.job_id, "first-job");
        names.push(event.kind.name().to_string());
    }
    let outcome = job.outcome().await;
    assert_eq!(outcome.status, CheckpointStatus::Completed, "{outcome:?}");
    assert_eq!(names.first().map(String::as_str), Some("initializeRuntime"));
    let completed = names.iter().filter(|n| *n == "completeRun").count();
    assert_eq!(
        completed, 3,
        "the coordinator and its two delegates: {names:?}"
    );
    assert!(dir.path().join("RELEASE_NOTES.md").exists());
    let record = runtime.store.read_job("first-job").expect("job.json");
    assert!(record.total_steps > 0);

    // A completed job continues with a follow-up; without one the runtime says what is missing.
    let missing = runtime
        .start(
            "release-notes",
            JobStart::Continue {
                job_id: None,
                resume_from: None,
                query: None,
                answer: None,
                fork: false,
            },
            Arc::new(Debugger::default()),
        )
        .await;
    assert!(matches!(missing, Err(StartError::FollowUpNeeded)));
}

#[tokio::test]
async fn ids_that_are_paths_and_bad_overrides_are_typed_errors() {
    let dir = workspace();
    let runtime = Runtime::prepare(&example(), &offline(dir.path())).expect("prepared");
    for id in ["/tmp/elsewhere", "../../escape"] {
        let start = JobStart::New {
            query: "q".into(),
            job_id: Some(id.into()),
        };
        let refused = runtime
            .start("release-notes", start, Arc::new(Debugger::default()))
            .await;
        let Err(StartError::InvalidId(err)) = refused else {
            panic!("{id} was not refused");
        };
        assert!(err.to_string().contains("--job-id"), "{err}");
    }
    assert!(!dir.path().join("perstack").exists(), "nothing was written");
    let bad = Overrides {
        provider: Some("antropic".into()),
        ..offline(dir.path())
    };
    let bad = Overrides {
        replay: None,
        ..bad
    };
    let Err(PrepareError::UnknownProvider { name, valid }) = Runtime::prepare(&example(), &bad)
    else {
        panic!("an unknown provider must be refused");
    };
    assert_eq!(name, "antropic");
    assert!(valid.contains("anthropic"));
}

#[tokio::test]
async fn a_cancelled_job_stops_with_its_checkpoint_kept() {
    let dir = workspace();
    let runtime = Runtime::prepare(&example(), &offline(dir.path())).expect("prepared");
    let start = JobStart::New {
        query: "Write release notes for developers".into(),
        job_id: None,
    };
    let mut job = runtime
        .start("release-notes", start, Arc::new(Debugger::default()))
        .await
        .expect("started");
    let canceller = job.canceller();
    while let Some(event) = job.events.recv().await {
        if matches!(event.kind, EventKind::StartRun { .. }) {
            canceller.cancel();
        }
    }
    let outcome = job.outcome().await;
    assert_eq!(outcome.status, CheckpointStatus::StoppedByCancel);
    assert!(!runtime.store.checkpoints(&outcome_job(&runtime)).is_empty());
}

fn outcome_job(runtime: &Runtime) -> String {
    runtime.store.job_ids().into_iter().next().expect("one job")
}
