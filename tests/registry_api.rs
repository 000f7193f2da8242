//! The Perstack registry API v1 client against a local server serving the documented shapes
//! (401, 404, pagination); resolution of delegation chains and cycles; hostile registries
//! (garbage, a 50 MB blob, the wrong media type) refused with nothing cached; registry Experts'
//! skills see only the env vars they declare; the `publish --dry-run` text.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use perstack::definition::{Config, parse_str};
use perstack::registry::cache::Cache;
use perstack::registry::resolve::{Installed, ResolveError, attach_from, install};
use perstack::registry::{
    Address, AnyRegistry, Artifact, ExpertKey, Options, Registry, RegistryError,
};
use perstack::skills::lock::RegistryPins;
use serde_json::{Value, json};

#[derive(Default)]
struct ApiState {
    experts: Vec<Value>,
    api_key: Option<String>,
    listing_requests: usize,
}

type Shared = Arc<Mutex<ApiState>>;

fn registry_expert(name: &str, version: &str, delegates: &[&str], skills: Value) -> Value {
    json!({
        "type": "registryExpert", "id": format!("id-{name}-{version}"),
        "key": format!("{name}@{version}"), "name": name, "minRuntimeVersion": "v1.0",
        "description": format!("{name} does things"),
        "owner": {"organizationId": "org", "createdAt": "2025-01-01T00:00:00Z"},
        "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z",
        "version": version, "status": "available",
        "instruction": format!("You are {name} {version}."),
        "skills": skills, "delegates": delegates, "tags": ["latest"],
    })
}

fn json_response(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn unauthorized(state: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let expected = state.api_key.as_ref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    (given != Some(&format!("Bearer {expected}")))
        .then(|| (StatusCode::UNAUTHORIZED, r#"{"error":"Unauthorized"}"#).into_response())
}

async fn get_expert(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
) -> Response {
    let state = state.lock().expect("state");
    if let Some(refused) = unauthorized(&state, &headers) {
        return refused;
    }
    match state.experts.iter().find(|e| e["key"] == key.as_str()) {
        Some(expert) => json_response(json!({"data": {"expert": expert}})).into_response(),
        None => (StatusCode::NOT_FOUND, r#"{"error":"Not Found"}"#).into_response(),
    }
}

async fn versions(State(state): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let state = state.lock().expect("state");
    let versions: Vec<Value> = state
        .experts
        .iter()
        .filter(|e| e["name"] == name.as_str())
        .map(|e| {
            let mut digest = e.clone();
            for field in ["instruction", "skills", "delegates"] {
                digest.as_object_mut().map(|o| o.remove(field));
            }
            digest["type"] = json!("expertDigest");
            digest
        })
        .collect();
    if versions.is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let total = versions.len();
    json_response(json!({"data": {"versions": versions, "latest": "x"}, "meta": {"total": total}}))
        .into_response()
}

/// Pages of at most two, whatever `take` asks: the client must follow `skip`.
async fn list(State(state): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut state = state.lock().expect("state");
    state.listing_requests += 1;
    let filter = query.get("filter").cloned().unwrap_or_default();
    let matching: Vec<&Value> = state
        .experts
        .iter()
        .filter(|e| e["name"].as_str().unwrap_or("").contains(&filter))
        .collect();
    let skip: usize = query.get("skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let page: Vec<&Value> = matching.iter().skip(skip).take(2).copied().collect();
    json_response(json!({"data": {"experts": page}, "meta": {"total": matching.len(), "take": 2, "skip": skip}}))
        .into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}")
}

async fn api_server(state: ApiState) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(state));
    let router = Router::new()
        .route("/api/registry/v1/experts/", get(list))
        .route("/api/registry/v1/experts/{key}", get(get_expert))
        .route("/api/registry/v1/experts/{key}/versions", get(versions))
        .with_state(shared.clone());
    (serve(router).await, shared)
}

fn open(address: &str) -> AnyRegistry {
    AnyRegistry::open(
        &Address::parse(address).expect("address"),
        &Options::default(),
    )
    .expect("open")
}

fn config(source: &str) -> Config {
    parse_str(source, Path::new("perstack.toml"))
        .unwrap_or_else(|d| panic!("{d:?}"))
        .0
}

fn cache_files(cache: &Cache) -> usize {
    std::fs::read_dir(cache.dir())
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn api_client_gets_versions_and_pages_through_search() {
    let mut state = ApiState::default();
    for (name, version) in [
        ("@acme/a", "1.0.0"),
        ("@acme/a", "1.10.0"),
        ("@acme/a", "1.2.0"),
        ("@acme/b", "0.1.0"),
        ("@acme/c", "2.0.0"),
    ] {
        state
            .experts
            .push(registry_expert(name, version, &[], json!({})));
    }
    let (url, shared) = api_server(state).await;
    let registry = open(&url);
    let key = ExpertKey::parse("@acme/a@1.2.0").expect("key");
    let fetched = registry.get(&key).await.expect("get");
    assert_eq!(
        fetched.artifact.expert.instruction,
        "You are @acme/a 1.2.0."
    );
    assert!(
        fetched.artifact.text.starts_with("[experts.\"@acme/a\"]"),
        "{}",
        fetched.artifact.text
    );
    let versions: Vec<String> = registry
        .versions("@acme/a")
        .await
        .expect("versions")
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, ["1.0.0", "1.2.0", "1.10.0"]);
    let listings = registry.search("").await.expect("search");
    let names: Vec<&str> = listings.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["@acme/a", "@acme/b", "@acme/c"]);
    assert_eq!(listings[0].versions.len(), 3);
    assert_eq!(
        shared.lock().expect("state").listing_requests,
        3,
        "5 items, 2 a page"
    );
}

#[tokio::test]
async fn api_401_and_404_are_clear_errors() {
    let state = ApiState {
        experts: vec![registry_expert("@acme/a", "1.0.0", &[], json!({}))],
        api_key: Some("right-key".into()),
        ..Default::default()
    };
    let (url, _) = api_server(state).await;
    let key = ExpertKey::parse("@acme/a@1.0.0").expect("key");
    let anonymous = open(&url);
    let err = anonymous.get(&key).await.expect_err("401").to_string();
    assert!(
        err.contains("401") && err.contains("set PERSTACK_API_KEY"),
        "{err}"
    );
    let wrong = perstack::registry::perstack_api::PerstackApi::new(
        &url,
        Some("wrong-key".into()),
        &Options::default(),
    )
    .expect("client");
    let err = wrong.get(&key).await.expect_err("401").to_string();
    assert!(
        err.contains("was refused") && !err.contains("wrong-key"),
        "{err}"
    );
    let right = perstack::registry::perstack_api::PerstackApi::new(
        &url,
        Some("right-key".into()),
        &Options::default(),
    )
    .expect("client");
    assert!(right.get(&key).await.is_ok());
    let missing = ExpertKey::parse("@acme/zzz@1.0.0").expect("key");
    let err = right.get(&missing).await.expect_err("404");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("@acme/zzz@1.0.0 is not in the registry")
    );
    assert!(matches!(
        AnyRegistry::open(
            &Address::parse("http://registry.example.com").expect("address"),
            &Options::default()
        ),
        Err(RegistryError::InsecureRefused { .. })
    ));
}

#[tokio::test]
async fn a_chain_local_registry_registry_resolves_and_a_cycle_is_reported() {
    let skills = json!({
        "@perstack/base": {"type": "mcpStdioSkill", "command": "npx", "packageName": "@perstack/base"},
        "gh": {"type": "mcpStdioSkill", "command": "gh-mcp", "args": [], "requiredEnv": ["GH_TOKEN"]},
    });
    let state = ApiState {
        experts: vec![
            registry_expert("@acme/a", "1.0.0", &["@acme/b@1.0.0"], json!({})),
            registry_expert("@acme/b", "1.0.0", &[], skills),
            registry_expert("@loop/c", "1.0.0", &["@loop/d@1.0.0"], json!({})),
            registry_expert("@loop/d", "1.0.0", &["@loop/c@1.0.0"], json!({})),
        ],
        ..Default::default()
    };
    let (url, _) = api_server(state).await;
    let address = Address::parse(&url).expect("address");
    let registry = open(&url);
    let dir = tempfile::tempdir().expect("cache");
    let cache = Cache::at(dir.path().join("sha256"));
    let local = config(
        "[experts.lead]\ninstruction = \"Lead.\"\ndelegates = [\"helper\", \"@acme/a@1.0.0\"]\n[experts.helper]\ninstruction = \"Help.\"\n",
    );
    let Installed {
        locked, warnings, ..
    } = install(
        &local,
        &RegistryPins::new(),
        &[],
        &registry,
        &address,
        &cache,
    )
    .await
    .expect("install");
    assert!(warnings.is_empty());
    let keys: Vec<&str> = locked.keys().map(String::as_str).collect();
    assert_eq!(keys, ["@acme/a@1.0.0", "@acme/b@1.0.0"]);
    assert_eq!(locked["@acme/b@1.0.0"].required_env, ["GH_TOKEN"]);
    assert_eq!(locked["@acme/a@1.0.0"].registry, url);
    assert_eq!(cache_files(&cache), 2);

    // A run resolves from the lock and the cache alone.
    let mut run_config = local.clone();
    attach_from(&mut run_config, &locked, &cache, &Options::default()).expect("attach");
    assert_eq!(
        run_config.experts["@acme/a@1.0.0"].delegates(),
        ["@acme/b@1.0.0"]
    );
    assert!(run_config.experts.contains_key("@acme/b@1.0.0"));

    // Requirements that grew since the lock stop the run until install is run again.
    let mut shrunk = locked.clone();
    shrunk["@acme/b@1.0.0"].required_env.clear();
    let err =
        attach_from(&mut local.clone(), &shrunk, &cache, &Options::default()).expect_err("grown");
    assert!(
        matches!(err, ResolveError::RequirementsGrew { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("env GH_TOKEN"), "{err}");
    assert!(err.to_string().contains("perstack install"), "{err}");

    // A delegate that is not locked names the command that fixes it.
    let unlocked = config("[experts.lead]\ninstruction = \"L\"\ndelegates = [\"@x/y@1.0.0\"]\n");
    let err = attach_from(&mut unlocked.clone(), &locked, &cache, &Options::default())
        .expect_err("not locked");
    assert!(err.to_string().contains("run `perstack install`"), "{err}");

    let looping = config("[experts.lead]\ninstruction = \"L\"\ndelegates = [\"@loop/c@1.0.0\"]\n");
    let err = install(
        &looping,
        &RegistryPins::new(),
        &[],
        &registry,
        &address,
        &cache,
    )
    .await
    .expect_err("cycle");
    assert_eq!(
        err.to_string().split(':').nth(1).map(str::trim),
        Some(
            "@loop/c@1.0.0 → @loop/d@1.0.0 → @loop/c@1.0.0; no Expert in it can finish without its own caller"
        ),
        "{err}"
    );
}

const WRONG_TYPE_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

/// An OCI-shaped server that misbehaves per repository.
async fn hostile_oci() -> String {
    let text_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let big_manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.perstack.expert.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [{"mediaType": "application/vnd.perstack.expert.v1+toml", "digest": text_digest, "size": 100}],
    })
    .to_string();
    let router = Router::new()
        .route(
            "/v2/ns/garbage/manifests/1.0.0",
            get(|| async { (StatusCode::OK, "<html>definitely not a manifest</html>") }),
        )
        .route(
            "/v2/ns/wrongtype/manifests/1.0.0",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/vnd.docker.distribution.manifest.v2+json",
                    )],
                    WRONG_TYPE_MANIFEST,
                )
            }),
        )
        .route(
            "/v2/ns/big/manifests/1.0.0",
            get(move || {
                let manifest = big_manifest.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/vnd.oci.image.manifest.v1+json",
                        )],
                        manifest,
                    )
                }
            }),
        )
        .route(
            "/v2/ns/big/blobs/{digest}",
            // 50 MB, sent chunked so the size is only known by reading.
            get(|| async {
                let chunk = bytes::Bytes::from(vec![b'x'; 1024 * 1024]);
                let stream = futures_util::stream::iter(
                    (0..50).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                axum::body::Body::from_stream(stream)
            }),
        );
    serve(router).await.replace("http://", "oci://") + "/ns"
}

#[tokio::test]
async fn hostile_registries_are_refused_and_nothing_is_cached() {
    let address_text = hostile_oci().await;
    let address = Address::parse(&address_text).expect("address");
    let registry = open(&address_text);
    let dir = tempfile::tempdir().expect("cache");
    let cache = Cache::at(dir.path().join("sha256"));
    for (name, expected) in [
        ("garbage", "is not an OCI image manifest"),
        (
            "wrongtype",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
        ("big", "sent more than 1048576 bytes"),
    ] {
        let local = config(&format!(
            "[experts.lead]\ninstruction = \"L\"\ndelegates = [\"{name}@1.0.0\"]\n"
        ));
        let err = install(
            &local,
            &RegistryPins::new(),
            &[],
            &registry,
            &address,
            &cache,
        )
        .await
        .expect_err(name)
        .to_string();
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            err.starts_with(&format!("{name}@1.0.0: ")),
            "names the Expert: {err}"
        );
        assert_eq!(cache_files(&cache), 0, "{name}: nothing cached");
    }
}

#[tokio::test]
async fn a_registry_experts_skills_get_only_the_env_they_declare() {
    let text = format!(
        "[experts.\"@acme/envy\"]\nversion = \"1.0.0\"\ninstruction = \"x\"\n\
         [experts.\"@acme/envy\".skills.\"@perstack/base\"]\ntype = \"mcpStdioSkill\"\ncommand = \"npx\"\npackageName = \"@perstack/base\"\n\
         [experts.\"@acme/envy\".skills.probe]\ntype = \"mcpStdioSkill\"\ncommand = {:?}\nargs = []\nrequiredEnv = [\"DECLARED_TOKEN\"]\n",
        support::test_server().display().to_string()
    );
    let key = ExpertKey::parse("@acme/envy@1.0.0").expect("key");
    let artifact = Artifact::parse(&key, text).expect("artifact");
    assert_eq!(artifact.requirements.required_env, ["DECLARED_TOKEN"]);
    let env = support::env_with(&[
        ("DECLARED_TOKEN", "d"),
        ("PERSTACK_API_KEY", "secret"),
        ("OPENAI_API_KEY", "secret"),
    ]);
    let started = support::start(&artifact.expert, &env).await;
    let out = started.manager.call("env", json!({})).await;
    let seen: Vec<String> = out.joined_text().lines().map(str::to_string).collect();
    assert!(seen.contains(&"DECLARED_TOKEN".to_string()), "{seen:?}");
    assert!(!seen.iter().any(|v| v.contains("API_KEY")), "{seen:?}");
    started.manager.shutdown().await;
}

async fn perstack(dir: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(args)
        .current_dir(dir)
        .env_remove("PERSTACK_REGISTRY")
        .kill_on_drop(true)
        .output()
        .await
        .expect("binary runs")
}

#[tokio::test]
async fn publish_dry_run_shows_the_exact_text_and_refuses_local_delegates() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("perstack.toml"),
        r#"registry = "oci://127.0.0.1:1/team"
[experts."@acme/reviewer"]
version = "1.2.0"
description = "Reviews a change"
instruction = """
Review the change.
Ask the linter first."""
delegates = ["@acme/linter@0.3.0"]
tags = ["review"]
[experts."@acme/reviewer".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
pick = ["attemptCompletion", "readTextFile"]
[experts."@acme/reviewer".skills.gh]
type = "mcpStdioSkill"
command = "gh-mcp"
args = ["--read-only"]
requiredEnv = ["GH_TOKEN"]

[experts."lead"]
instruction = "Lead."
delegates = ["helper", "@acme/reviewer"]
[experts."helper"]
instruction = "Help."
"#,
    )
    .expect("write");
    let output = perstack(dir.path(), &["publish", "@acme/reviewer", "--dry-run"]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    insta::assert_snapshot!("publish_dry_run", stdout);

    let refused = perstack(dir.path(), &["publish", "lead", "--dry-run"]).await;
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("local-only Experts: helper, @acme/reviewer"),
        "{stderr}"
    );
}

/// GHCR's and Docker Hub's flow: 401 with a Bearer challenge, a token from the realm (asked with
/// basic credentials), then the request again with the token.
#[tokio::test]
async fn bearer_token_challenge_is_followed() {
    let text = "[experts.\"@acme/tok\"]\ninstruction = \"Token-guarded.\"\nversion = \"1.0.0\"\n";
    let digest = perstack::registry::sha256_digest(text.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.perstack.expert.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [{"mediaType": "application/vnd.perstack.expert.v1+toml", "digest": digest, "size": text.len()}],
    })
    .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let token_requests = Arc::new(Mutex::new(Vec::<String>::new()));
    let challenge = format!(
        "Bearer realm=\"{base}/token\",service=\"test-registry\",scope=\"repository:ns/acme/tok:pull\""
    );
    let guarded = move |headers: HeaderMap, body: String, content_type: &'static str| {
        let authorized = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some("Bearer tok-123");
        if authorized {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge.clone())],
                "{}",
            )
                .into_response()
        }
    };
    let for_manifest = guarded.clone();
    let seen = token_requests.clone();
    let router = Router::new()
        .route(
            "/v2/ns/acme/tok/manifests/1.0.0",
            get(move |headers: HeaderMap| {
                let manifest = manifest.clone();
                let respond = for_manifest.clone();
                async move {
                    respond(
                        headers,
                        manifest,
                        "application/vnd.oci.image.manifest.v1+json",
                    )
                }
            }),
        )
        .route(
            "/v2/ns/acme/tok/blobs/{digest}",
            get(move |headers: HeaderMap| {
                let respond = guarded.clone();
                async move { respond(headers, text.to_string(), "application/octet-stream") }
            }),
        )
        .route(
            "/token",
            get(move |headers: HeaderMap, RawQuery(query): RawQuery| {
                let seen = seen.clone();
                async move {
                    let basic = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    seen.lock()
                        .expect("seen")
                        .push(format!("{} {basic}", query.unwrap_or_default()));
                    json_response(json!({"token": "tok-123"}))
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let address = base.replace("http://", "oci://") + "/ns";
    let registry = open(&address);
    let key = ExpertKey::parse("@acme/tok@1.0.0").expect("key");
    let fetched = registry
        .get(&key)
        .await
        .expect("get through the token flow");
    assert_eq!(fetched.artifact.expert.instruction, "Token-guarded.");
    assert_eq!(fetched.artifact.digest, digest);
    let asked = token_requests.lock().expect("seen").clone();
    assert!(!asked.is_empty());
    assert!(
        asked[0].contains("service=test-registry")
            && asked[0].contains("scope=repository%3Ans%2Facme%2Ftok%3Apull"),
        "{asked:?}"
    );
}
