//! The registry against a real OCI registry (Debian's docker-registry, Distribution 2.8):
//! publish → install → run against the mock model, write-once versions, a moved tag refused by
//! digest, and locked runs that work with the registry stopped.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, openai};
use support::registry::LocalRegistry;

const MARK: &str = "REVIEWER-INSTRUCTION-MARK";

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A project directory, a cache directory, and the credentials to run `perstack` with.
struct Project {
    dir: tempfile::TempDir,
    cache: PathBuf,
    credentials: Option<(String, String)>,
}

impl Project {
    fn new(config: &str, cache: &Path, credentials: Option<(&str, &str)>) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
        Project {
            dir,
            cache: cache.to_path_buf(),
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
        }
    }

    async fn perstack(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("PERSTACK_CACHE_DIR", &self.cache)
            .env("OPENAI_API_KEY", "sk-test-key")
            .env("DOCKER_CONFIG", self.dir.path().join("no-docker"))
            .env_remove("PERSTACK_REGISTRY")
            .env_remove("PERSTACK_REGISTRY_USERNAME")
            .env_remove("PERSTACK_REGISTRY_PASSWORD")
            .kill_on_drop(true);
        if let Some((user, password)) = &self.credentials {
            command
                .env("PERSTACK_REGISTRY_USERNAME", user)
                .env("PERSTACK_REGISTRY_PASSWORD", password);
        }
        let output = command.output().await.expect("binary runs");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn lock(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("perstack.lock")).expect("lock");
        serde_json::from_str(&text).expect("lock is JSON")
    }

    fn write_config(&self, config: &str) {
        std::fs::write(self.dir.path().join("perstack.toml"), config).expect("write config");
    }
}

fn publisher_config(address: &str, instruction: &str) -> String {
    format!(
        r#"registry = "{address}"
[experts."@acme/reviewer"]
version = "1.2.0"
description = "Reviews a change"
instruction = "{instruction}"
"#
    )
}

fn consumer_config(address: &str, mock: &MockLlm) -> String {
    format!(
        r#"model = "gpt-4.1"
registry = "{address}"
[provider]
providerName = "openai"
[provider.setting]
baseUrl = "{}/v1"

[experts."lead"]
instruction = "Ask the reviewer."
delegates = ["@acme/reviewer@1.2.0"]
"#,
        mock.url()
    )
}

fn ok(output: &Output, what: &str) {
    assert_eq!(
        output.code,
        Some(0),
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        output.stdout,
        output.stderr
    );
}

async fn publish_install_run(registry: &mut LocalRegistry, credentials: Option<(&str, &str)>) {
    let address = registry.address("team");
    let caches = tempfile::tempdir().expect("cache dir");
    let cache = caches.path().join("main");
    let publisher = Project::new(&publisher_config(&address, MARK), &cache, credentials);

    let published = publisher.perstack(&["publish", "@acme/reviewer"]).await;
    ok(&published, "publish");
    assert!(published.stdout.contains(MARK), "{}", published.stdout);
    assert!(published.stdout.contains("published @acme/reviewer@1.2.0"));

    let again = publisher.perstack(&["publish", "@acme/reviewer"]).await;
    assert_eq!(again.code, Some(1), "{}", again.stdout);
    assert!(again.stderr.contains("write-once"), "{}", again.stderr);

    let mock = MockLlm::start().await;
    let consumer = Project::new(&consumer_config(&address, &mock), &cache, credentials);
    let unlocked = consumer.perstack(&["validate"]).await;
    ok(&unlocked, "validate before install");
    assert!(
        unlocked.stderr.contains("registry-not-locked")
            && unlocked.stderr.contains("perstack install"),
        "{}",
        unlocked.stderr
    );
    let not_yet = consumer.perstack(&["run", "lead", "Review it"]).await;
    assert_eq!(not_yet.code, Some(1));
    assert!(
        not_yet.stderr.contains("run `perstack install`"),
        "{}",
        not_yet.stderr
    );
    let installed = consumer.perstack(&["install"]).await;
    ok(&installed, "install");
    let locked = consumer.perstack(&["validate"]).await;
    assert!(
        !locked.stderr.contains("registry-not-locked"),
        "{}",
        locked.stderr
    );
    assert!(
        installed.stdout.contains("@acme/reviewer@1.2.0"),
        "{}",
        installed.stdout
    );
    let lock = consumer.lock();
    let entry = &lock["registry"]["@acme/reviewer@1.2.0"];
    let digest = entry["digest"].as_str().expect("digest").to_string();
    assert!(digest.starts_with("sha256:"), "{lock}");
    assert_eq!(entry["registry"], address);
    assert_eq!(entry["requiredEnv"], json!([]));

    mock.push(openai::tool_reply(
        "d1",
        "reviewer",
        &json!({"query": "review the diff"}),
    ));
    mock.push(openai::text_reply("Looks good."));
    mock.push(openai::text_reply("The reviewer approves."));
    let run = consumer.perstack(&["run", "lead", "Review it"]).await;
    ok(&run, "run");
    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    let delegate_request = String::from_utf8_lossy(&requests[1].body).into_owned();
    assert!(
        delegate_request.contains(MARK),
        "the delegate's request carries the registry Expert's instruction: {delegate_request}"
    );
    assert!(!String::from_utf8_lossy(&requests[0].body).contains(MARK));

    // Move the tag: the version is deleted and published again with other content.
    let unpublished = publisher
        .perstack(&["unpublish", "@acme/reviewer@1.2.0"])
        .await;
    ok(&unpublished, "unpublish");
    publisher.write_config(&publisher_config(&address, "Something else entirely."));
    ok(
        &publisher.perstack(&["publish", "@acme/reviewer"]).await,
        "publish over the moved tag",
    );
    let fresh = Project::new(
        &consumer_config(&address, &mock),
        &caches.path().join("fresh"),
        credentials,
    );
    std::fs::copy(
        consumer.dir.path().join("perstack.lock"),
        fresh.dir.path().join("perstack.lock"),
    )
    .expect("copy lock");
    let refused = fresh.perstack(&["run", "lead", "Review it"]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("does not match"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains(&digest), "{}", refused.stderr);
    assert_eq!(
        refused.stderr.matches("sha256:").count(),
        2,
        "both digests are named: {}",
        refused.stderr
    );
    assert!(
        !caches.path().join("fresh").join("registry").exists()
            || std::fs::read_dir(caches.path().join("fresh/registry/sha256"))
                .map(|d| d.count() == 0)
                .unwrap_or(true),
        "nothing was cached from the moved tag"
    );
    let reinstall = consumer.perstack(&["install"]).await;
    assert_eq!(reinstall.code, Some(1), "{}", reinstall.stdout);
    assert!(
        reinstall.stderr.contains("does not match"),
        "{}",
        reinstall.stderr
    );

    // With the registry stopped, the locked run works from the cache.
    registry.stop();
    mock.push(openai::tool_reply(
        "d2",
        "reviewer",
        &json!({"query": "again"}),
    ));
    mock.push(openai::text_reply("Still good."));
    mock.push(openai::text_reply("Done."));
    let offline = consumer.perstack(&["run", "lead", "Review it again"]).await;
    ok(&offline, "offline run");
    let requests = mock.requests();
    assert!(String::from_utf8_lossy(&requests[4].body).contains(MARK));
}

#[tokio::test]
async fn anonymous_registry_publish_install_run() {
    let mut registry = LocalRegistry::start();
    publish_install_run(&mut registry, None).await;
}

#[tokio::test]
async fn basic_auth_registry_publish_install_run() {
    let mut registry = LocalRegistry::start_with_basic_auth("alice", "s3cret-pass");
    let cache = tempfile::tempdir().expect("cache");
    let address = registry.address("team");
    let anonymous = Project::new(&publisher_config(&address, MARK), cache.path(), None);
    let refused = anonymous.perstack(&["publish", "@acme/reviewer"]).await;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("PERSTACK_REGISTRY_USERNAME"),
        "{}",
        refused.stderr
    );
    let wrong = Project::new(
        &publisher_config(&address, MARK),
        cache.path(),
        Some(("alice", "wrong")),
    );
    let refused = wrong.perstack(&["publish", "@acme/reviewer"]).await;
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    assert!(
        !refused.stderr.contains("wrong"),
        "no password in errors: {}",
        refused.stderr
    );
    publish_install_run(&mut registry, Some(("alice", "s3cret-pass"))).await;
}

#[tokio::test]
async fn a_registry_expert_runs_directly_and_verbs_answer() {
    let registry = LocalRegistry::start();
    let address = registry.address("team");
    let cache = tempfile::tempdir().expect("cache");
    let publisher = Project::new(&publisher_config(&address, MARK), cache.path(), None);
    ok(
        &publisher.perstack(&["publish"]).await,
        "publish the only Expert",
    );

    let tagged = publisher
        .perstack(&["tag", "@acme/reviewer@1.2.0", "latest", "stable"])
        .await;
    ok(&tagged, "tag");
    let deprecated = publisher
        .perstack(&["status", "@acme/reviewer@1.2.0", "deprecated"])
        .await;
    ok(&deprecated, "status");
    let info = publisher.perstack(&["info", "@acme/reviewer"]).await;
    ok(&info, "info");
    assert!(
        info.stdout.contains("1.2.0 (deprecated)"),
        "{}",
        info.stdout
    );
    assert!(info.stdout.contains("Reviews a change"), "{}", info.stdout);
    let search = publisher.perstack(&["search", "review"]).await;
    ok(&search, "search");
    assert!(
        search.stdout.contains("@acme/reviewer  [1.2.0]"),
        "{}",
        search.stdout
    );

    let mock = MockLlm::start().await;
    let consumer = Project::new(
        &format!(
            "model = \"gpt-4.1\"\nregistry = \"{address}\"\n[provider]\nproviderName = \"openai\"\n[provider.setting]\nbaseUrl = \"{}/v1\"\n",
            mock.url()
        ),
        cache.path(),
        None,
    );
    let installed = consumer
        .perstack(&["install", "@acme/reviewer@1.2.0"])
        .await;
    ok(&installed, "install by key");
    assert!(
        installed.stderr.contains("deprecated"),
        "{}",
        installed.stderr
    );
    assert_eq!(
        consumer.lock()["registry"]["@acme/reviewer@1.2.0"]["pinned"],
        true
    );
    mock.push(openai::text_reply("Reviewed."));
    let run = consumer
        .perstack(&["run", "@acme/reviewer@1.2.0", "review this"])
        .await;
    ok(&run, "run a registry Expert directly");
    assert!(String::from_utf8_lossy(&mock.requests()[0].body).contains(MARK));

    let disabled = publisher
        .perstack(&["status", "@acme/reviewer@1.2.0", "disabled"])
        .await;
    ok(&disabled, "disable");
    let refused = consumer.perstack(&["install"]).await;
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr.contains("disabled"), "{}", refused.stderr);
}
