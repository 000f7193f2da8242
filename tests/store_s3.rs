//! A job on a real S3-API server (moto on loopback): the objects are byte for byte the files
//! the filesystem store wrote, and `perstack log`, `perstack jobs` and a follower read it back
//! as they read the local job.

#[path = "support/s3.rs"]
mod s3;
mod support;

use std::path::Path;

use perstack::runtime::checkpoint::Store as LocalStore;
use perstack::store::{Follower, JobStore as _, ObjectStore, Store as _};
use serde_json::json;
use support::mock_llm::{MockLlm, RecordedRequest, Reply, openai};

const STEPS: usize = 4;

fn respond(request: &RecordedRequest) -> Reply {
    let body = request.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let results = messages.iter().filter(|m| m["role"] == "tool").count();
    if body.get("tools").is_none() {
        openai::text_reply("Done.")
    } else if results < STEPS {
        openai::tool_reply(
            &format!("call{results}"),
            "appendTextFile",
            &json!({"path": "log.txt", "text": format!("line {results}\n")}),
        )
    } else {
        openai::tool_reply(&format!("call{results}"), "attemptCompletion", &json!({}))
    }
}

/// Every file under `root`, as a key relative to it.
fn files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(root, &path, out);
        } else {
            let key = path.strip_prefix(root).expect("under root");
            out.push(key.to_string_lossy().into_owned());
        }
    }
}

async fn perstack(dir: &Path, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"));
    command
        .args(args)
        .current_dir(dir)
        .env("OPENAI_API_KEY", "sk-test")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().await.expect("binary runs")
}

#[tokio::test]
async fn a_job_in_s3_is_the_local_bytes_and_reads_back_the_same() {
    let Some(moto) = s3::Moto::start() else {
        return;
    };
    moto.create_bucket("jobs");
    let mock = MockLlm::start().await;
    mock.set_responder(respond);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "model = \"gpt-4.1\"\n[provider]\nproviderName = \"openai\"\n[provider.setting]\nbaseUrl = \"{}/v1\"\n[experts.\"solo\"]\ninstruction = \"Append.\"\n",
        mock.url()
    );
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    let run = perstack(dir.path(), &["run", "solo", "Append lines"], &[]).await;
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // Upload the job as the filesystem store wrote it, through the S3 store.
    let workspace = dir.path().canonicalize().expect("path");
    let local = LocalStore::new(&workspace);
    let options = moto.options();
    let mut keys = Vec::new();
    files(local.jobs_dir(), local.jobs_dir(), &mut keys);
    assert!(keys.len() > 10, "{keys:?}");
    let uploaded = {
        let root = local.jobs_dir().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let remote =
                ObjectStore::from_url_with("s3://jobs/team/ci", options).expect("s3 store");
            assert_eq!(remote.location(), "s3://jobs/team/ci");
            for key in &keys {
                let bytes = std::fs::read(root.join(key)).expect("read");
                remote
                    .put(key, &bytes, perstack::store::Durability::Synced)
                    .expect("put");
            }
            // Byte for byte what the filesystem store wrote.
            for key in &keys {
                let local = std::fs::read(root.join(key)).expect("read");
                assert_eq!(remote.get(key).expect("get"), Some(local), "{key}");
            }
            let job_id = remote.job_ids().into_iter().next().expect("a job in S3");
            let mut follower = Follower::new(&job_id);
            (
                job_id.clone(),
                follower.poll(&remote),
                remote.steps_used(&job_id),
            )
        })
        .await
        .expect("uploaded")
    };
    let (job_id, followed, steps) = uploaded;
    assert_eq!(followed, local.job_events(&job_id, None));
    assert_eq!(steps, local.steps_used(&job_id));

    // `perstack log` and `perstack jobs` read the S3 job as they read the local one.
    let env = moto.env();
    let storage = ["--storage", "s3://jobs/team/ci"];
    let local_log = perstack(dir.path(), &["log", "--json"], &[]).await;
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let args: Vec<&str> = ["log", "--json"].iter().chain(&storage).copied().collect();
    let remote_log = perstack(elsewhere.path(), &args, &env).await;
    assert!(
        remote_log.status.success(),
        "{}",
        String::from_utf8_lossy(&remote_log.stderr)
    );
    assert!(!local_log.stdout.is_empty());
    assert_eq!(remote_log.stdout, local_log.stdout);
    let args: Vec<&str> = ["jobs"].iter().chain(&storage).copied().collect();
    let listed = perstack(elsewhere.path(), &args, &env).await;
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains(&job_id) && listed.contains("completed") && listed.contains("solo"),
        "{listed}"
    );

    // A wrong URL says what is expected.
    let wrong = perstack(elsewhere.path(), &["jobs", "--storage", "gs://x"], &env).await;
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("s3://bucket"));
}
