//! `perstack run` recording to a real S3-API server (moto on loopback): the job reads back,
//! continues and forks from S3; an outage in the middle of a run, or the server killed and
//! restarted, loses, duplicates and reorders nothing; a service that never comes back fails the
//! run naming the spool, and the next run uploads the spool first.

#[path = "support/s3.rs"]
mod s3;
mod support;

use std::path::Path;

use perstack::store::{JobStore as _, ObjectStore, Store as _};
use serde_json::{Value, json};
use support::mock_llm::{MockLlm, RecordedRequest, Reply, openai};

/// Tool results in the request: the step the run is at.
fn results(request: &RecordedRequest) -> usize {
    let body = request.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    messages.iter().filter(|m| m["role"] == "tool").count()
}

/// Appends a line for each of `steps` steps, then completes.
fn respond(request: &RecordedRequest, steps: usize) -> Reply {
    let done = results(request);
    if request.json().get("tools").is_none() {
        openai::text_reply("Done.")
    } else if done < steps {
        openai::tool_reply(
            &format!("call{done}"),
            "appendTextFile",
            &json!({"path": "log.txt", "text": format!("line {done}\n")}),
        )
    } else {
        openai::tool_reply(&format!("call{done}"), "attemptCompletion", &json!({}))
    }
}

fn write_config(dir: &Path, mock: &MockLlm, storage: Option<&str>) {
    let storage = storage
        .map(|url| format!("storage = \"{url}\"\n"))
        .unwrap_or_default();
    let config = format!(
        "{storage}model = \"gpt-4.1\"\n[provider]\nproviderName = \"openai\"\n[provider.setting]\nbaseUrl = \"{}/v1\"\n[experts.\"solo\"]\ninstruction = \"Append.\"\n",
        mock.url()
    );
    std::fs::write(dir.join("perstack.toml"), config).expect("write config");
}

async fn perstack(dir: &Path, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"));
    command
        .args(args)
        .current_dir(dir)
        .env("OPENAI_API_KEY", "sk-test")
        .env("PERSTACK_STORAGE_RETRY_MS", "50")
        .env("PERSTACK_STORAGE_RETRY_MAX_MS", "200")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().await.expect("binary runs")
}

/// stderr, and the upload failures the run printed, for a failed assertion.
fn stderr(output: &std::process::Output) -> String {
    let retries: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("\"storageRetry\""))
        .take(3)
        .map(str::to_string)
        .collect();
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        retries.join("\n")
    )
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// What `perstack run` printed that is stored (streaming deltas are not).
fn stored_part(printed: &[Value]) -> Vec<Value> {
    printed
        .iter()
        .filter(|e| {
            !matches!(
                e["type"].as_str(),
                Some("streamRunResult" | "streamReasoning")
            )
        })
        .cloned()
        .collect()
}

fn remote(moto: &s3::Moto, url: &str) -> ObjectStore {
    ObjectStore::from_url_with(url, moto.options()).expect("s3 store")
}

/// Every file under `dir`, keyed relative to it, with its bytes.
fn files(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(root, &path, out);
        } else {
            let key = path.strip_prefix(root).expect("under root");
            let bytes = std::fs::read(&path).expect("read");
            out.push((key.to_string_lossy().into_owned(), bytes));
        }
    }
}

#[tokio::test]
async fn a_run_stored_to_s3_reads_back_continues_and_forks() {
    let Some(moto) = s3::Moto::start() else {
        return;
    };
    moto.create_bucket("jobs");
    let mock = MockLlm::start().await;
    mock.set_responder(|request| respond(request, 3));
    let dir = tempfile::tempdir().expect("temp dir");
    let url = "s3://jobs/team/ci";
    // The first run takes the store from perstack.toml.
    write_config(dir.path(), &mock, Some(url));
    let env = moto.env();
    let run = perstack(dir.path(), &["run", "solo", "Append lines"], &env).await;
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        !dir.path().join("perstack/jobs").exists(),
        "nothing is stored under the workspace"
    );
    let spool = dir.path().join("perstack/spool");
    let mut spooled = Vec::new();
    files(&spool, &spool, &mut spooled);
    assert!(spooled.is_empty(), "the spool is empty: {spooled:?}");
    let printed = lines(&run.stdout);
    let job_id = printed[0]["jobId"].as_str().expect("job id").to_string();

    // `perstack log` reads exactly what the run printed back from S3.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let logged = perstack(elsewhere.path(), &["log", "--json", "--storage", url], &env).await;
    assert!(logged.status.success(), "{}", stderr(&logged));
    assert_eq!(lines(&logged.stdout), stored_part(&printed));

    // Continue with a follow-up, from the store named by the flag (the file names none now).
    write_config(dir.path(), &mock, None);
    let continued = perstack(
        dir.path(),
        &[
            "run",
            "solo",
            "One more",
            "--continue-job",
            &job_id,
            "--storage",
            url,
        ],
        &env,
    )
    .await;
    assert!(continued.status.success(), "{}", stderr(&continued));
    let (runs, checkpoints, events) = {
        let store = remote(&moto, url);
        let id = job_id.clone();
        tokio::task::spawn_blocking(move || {
            (
                store.run_ids(&id),
                store.checkpoints(&id),
                store.job_events(&id, None),
            )
        })
        .await
        .expect("read")
    };
    let completions = events.iter().filter(|e| e["type"] == "completeRun").count();
    assert_eq!(completions, 2, "the follow-up ran on the job read from S3");
    let first = checkpoints
        .iter()
        .find(|c| c.step_number == 1)
        .expect("step 1")
        .clone();

    // Fork from the first step's checkpoint: a new run, the original's objects untouched.
    let before = {
        let store = remote(&moto, url);
        let (id, run) = (job_id.clone(), first.run_id.clone());
        tokio::task::spawn_blocking(move || store.events(&id, &run))
            .await
            .expect("read")
    };
    let forked = perstack(
        dir.path(),
        &[
            "run",
            "solo",
            "--continue-job",
            &job_id,
            "--resume-from",
            &first.id,
            "--fork",
            "--storage",
            url,
        ],
        &env,
    )
    .await;
    assert!(forked.status.success(), "{}", stderr(&forked));
    assert_eq!(runs.len(), 1, "a follow-up continues the run");
    let (runs, after) = {
        let store = remote(&moto, url);
        let (id, run) = (job_id.clone(), first.run_id.clone());
        tokio::task::spawn_blocking(move || (store.run_ids(&id), store.events(&id, &run)))
            .await
            .expect("read")
    };
    assert_eq!(runs.len(), 2, "the fork is a run of its own");
    assert_eq!(after, before, "the forked run's objects are as they were");
}

#[tokio::test]
async fn an_outage_in_the_middle_of_a_run_loses_duplicates_and_reorders_nothing() {
    let Some(moto) = s3::Moto::start() else {
        return;
    };
    moto.create_bucket("jobs");
    let gate = std::sync::Arc::new(s3::Gate::new(&moto.endpoint));
    let mock = MockLlm::start().await;
    const STEPS: usize = 8;
    {
        let gate = gate.clone();
        // Down from the third step to the sixth; each answer takes a moment (the mock's own
        // thread waits), so uploads fail and are retried while the run goes on.
        mock.set_responder(move |request| {
            match results(request) {
                2 => gate.close(),
                6 => gate.open(),
                _ => {}
            }
            std::thread::sleep(std::time::Duration::from_millis(150));
            respond(request, STEPS)
        });
    }
    let dir = tempfile::tempdir().expect("temp dir");
    write_config(dir.path(), &mock, None);
    let url = "s3://jobs/outage";
    let env = gate.env(&moto);
    let run = perstack(
        dir.path(),
        &["run", "solo", "Append", "--storage", url],
        &env,
    )
    .await;
    assert!(run.status.success(), "{}", stderr(&run));
    let printed = lines(&run.stdout);
    let retries: Vec<&Value> = printed
        .iter()
        .filter(|e| e["type"] == "storageRetry")
        .collect();
    let types: Vec<&str> = printed.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(!retries.is_empty(), "the outage is said: {types:?}");
    assert!(
        retries[0]["key"]
            .as_str()
            .is_some_and(|k| k.ends_with(".json"))
    );
    assert!(retries[0]["error"].as_str().is_some_and(|e| !e.is_empty()));

    // Every event, each once, in the order the run printed it; the retries among them.
    assert_the_whole_job_is_in_s3(&moto, url, &printed, STEPS).await;
}

/// The job the run printed is in the bucket: every stored event once, in the order printed,
/// no checkpoint twice, and one for each of its `steps` steps and its end.
async fn assert_the_whole_job_is_in_s3(
    moto: &s3::Moto,
    url: &str,
    printed: &[Value],
    steps: usize,
) {
    let job_id = printed[0]["jobId"].as_str().expect("job id").to_string();
    let store = remote(moto, url);
    let (events, checkpoints, steps_used) = tokio::task::spawn_blocking(move || {
        (
            store.job_events(&job_id, None),
            store.checkpoints(&job_id),
            store.steps_used(&job_id),
        )
    })
    .await
    .expect("read");
    assert_eq!(events, stored_part(printed));
    let mut numbers: Vec<u64> = checkpoints.iter().map(|c| c.step_number).collect();
    numbers.sort();
    let before = numbers.len();
    numbers.dedup();
    assert_eq!(numbers.len(), before, "no checkpoint twice");
    assert_eq!(
        steps_used as usize,
        steps + 1,
        "every step's checkpoint is there"
    );
}

#[tokio::test]
async fn the_server_killed_and_restarted_in_the_middle_of_a_run_loses_duplicates_and_reorders_nothing()
 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(moto) = s3::Moto::start_recording() else {
        return;
    };
    let moto = std::sync::Arc::new(moto);
    moto.create_bucket("jobs");
    let mock = MockLlm::start().await;
    const STEPS: usize = 8;
    {
        let moto = moto.clone();
        // 0: running, 1: killed, 2: restarted. The server dies at the third step and is back
        // (its objects replayed) at the sixth; the answers wait a moment so uploads fail and
        // are retried while it is down, and the run writes more after it is back.
        let stage = AtomicUsize::new(0);
        mock.set_responder(move |request| {
            let at = results(request);
            if at >= 2
                && stage
                    .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                moto.kill();
            }
            if at >= 5
                && stage
                    .compare_exchange(1, 2, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                moto.restart();
            }
            std::thread::sleep(std::time::Duration::from_millis(150));
            respond(request, STEPS)
        });
    }
    let dir = tempfile::tempdir().expect("temp dir");
    write_config(dir.path(), &mock, None);
    let url = "s3://jobs/killed";
    let run = perstack(
        dir.path(),
        &["run", "solo", "Append", "--storage", url],
        &moto.env(),
    )
    .await;
    assert!(run.status.success(), "{}", stderr(&run));
    let printed = lines(&run.stdout);
    let types: Vec<&str> = printed.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        types.contains(&"storageRetry"),
        "the dead server is said: {types:?}"
    );

    // What reached the killed server came back with the replay, what was spooled while it was
    // down followed.
    assert_the_whole_job_is_in_s3(&moto, url, &printed, STEPS).await;
}

#[tokio::test]
async fn a_store_that_never_comes_back_fails_the_run_and_the_next_run_uploads_the_spool() {
    let Some(moto) = s3::Moto::start() else {
        return;
    };
    moto.create_bucket("jobs");
    let gate = s3::Gate::new(&moto.endpoint);
    gate.close();
    let mock = MockLlm::start().await;
    mock.set_responder(|request| respond(request, 2));
    let dir = tempfile::tempdir().expect("temp dir");
    write_config(dir.path(), &mock, None);
    let url = "s3://jobs/down";
    let env = gate.env(&moto);
    // The first run gives up on the closed service quickly; the next waits as long as it must.
    let mut impatient = env.clone();
    impatient.push(("PERSTACK_STORAGE_WAIT_MS", "500".into()));
    let run = perstack(
        dir.path(),
        &["run", "solo", "Append", "--storage", url],
        &impatient,
    )
    .await;
    assert_eq!(run.status.code(), Some(5), "{}", stderr(&run));
    let workspace = dir.path().canonicalize().expect("path");
    let spool = workspace.join("perstack/spool/jobs_down");
    let message = stderr(&run);
    assert!(
        message.contains(&spool.display().to_string()) && message.contains("did not reach"),
        "{message}"
    );
    // The spool holds the whole job, as the filesystem store lays it out.
    let mut kept = Vec::new();
    files(&spool, &spool, &mut kept);
    let printed = lines(&run.stdout);
    let job_id = printed[0]["jobId"].as_str().expect("job id").to_string();
    assert!(kept.iter().any(|(k, _)| *k == format!("{job_id}/job.json")));
    assert!(kept.iter().any(|(k, _)| k.contains("/checkpoints/")));

    // The next run with the same storage uploads the spool first: byte for byte.
    gate.open();
    let next = perstack(
        dir.path(),
        &["run", "solo", "Again", "--storage", url],
        &env,
    )
    .await;
    assert!(next.status.success(), "{}", stderr(&next));
    let mut left = Vec::new();
    files(&spool, &spool, &mut left);
    assert!(left.is_empty(), "the spool is drained: {left:?}");
    let store = remote(&moto, url);
    let uploaded = tokio::task::spawn_blocking(move || {
        kept.iter()
            .map(|(key, bytes)| {
                (
                    store.get(key).expect("get").as_ref() == Some(bytes),
                    key.clone(),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("read");
    for (same, key) in uploaded {
        assert!(same, "{key} is in S3 as it was spooled");
    }
}

#[tokio::test]
async fn the_workbench_follows_a_job_another_process_is_writing_to_s3() {
    use perstack::tui::app::{AppState, JobState, Msg};
    use std::time::{Duration, Instant};
    let Some(moto) = s3::Moto::start() else {
        return;
    };
    moto.create_bucket("jobs");
    let mock = MockLlm::start().await;
    const STEPS: usize = 4;
    // Slow answers (the mock's own thread waits), so the job is seen while it runs.
    mock.set_responder(|request| {
        std::thread::sleep(Duration::from_millis(400));
        respond(request, STEPS)
    });
    let dir = tempfile::tempdir().expect("temp dir");
    write_config(dir.path(), &mock, None);
    let url = "s3://jobs/live";
    let mut writer = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"));
    writer
        .args(["run", "solo", "Append", "--storage", url])
        .current_dir(dir.path())
        .env("OPENAI_API_KEY", "sk-test")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for (key, value) in moto.env() {
        writer.env(key, value);
    }
    let mut writer = writer.spawn().expect("perstack run starts");

    // The job appears in the store while the other process runs it.
    let store: std::sync::Arc<dyn perstack::store::Store> = std::sync::Arc::new(remote(&moto, url));
    let deadline = Instant::now() + Duration::from_secs(30);
    let job_id = loop {
        let reader = store.clone();
        let ids = tokio::task::spawn_blocking(move || reader.job_ids())
            .await
            .expect("list");
        if let Some(id) = ids.into_iter().next() {
            break id;
        }
        assert!(Instant::now() < deadline, "no job appeared in the store");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let loaded = perstack::definition::load_file(&dir.path().join("perstack.toml")).expect("load");
    let mut state = AppState::new(&loaded.config, "gpt-4.1".into());
    state.update(Msg::Resize {
        width: 160,
        height: 45,
    });
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (msgs_tx, _msgs) = tokio::sync::mpsc::unbounded_channel();
    let follow = tokio::spawn(perstack::tui::panes::jobs::follow_job(
        store,
        job_id.clone(),
        events_tx,
        msgs_tx,
        Duration::from_millis(100),
    ));
    // Steps on screen, sampled as events arrive, while the writer still runs.
    let mut steps_while_running = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
        state.update(Msg::Run(Box::new(event)));
        if writer.try_wait().expect("writer status").is_none() {
            steps_while_running.push(state.timeline.len());
        }
    }
    follow.await.expect("the follower ends with the job");
    let status = writer.wait().await.expect("writer ends");
    assert!(status.success());
    steps_while_running.dedup();
    assert!(
        steps_while_running.len() >= 3,
        "new steps appeared live, one poll after another: {steps_while_running:?}"
    );
    assert_eq!(state.job_id.as_deref(), Some(job_id.as_str()));
    assert_eq!(state.job_state, JobState::Completed);
    assert!(
        state.timeline.len() > *steps_while_running.first().unwrap_or(&0),
        "the whole job is on screen at the end"
    );
}
