//! Tracing without Phoenix: a collector that is down, and the error status of a run with
//! retries and a failing tool, read by a loopback OTLP/HTTP receiver that decodes with the OTLP
//! protobuf definitions.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message as _;
use support::mock_llm::{MockLlm, Reply, openai};

/// Takes `POST /v1/traces` and keeps every span.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

async fn receiver() -> Receiver {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut kept = kept.lock().expect("lock");
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans);
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, spans }
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

async fn perstack(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args(args)
        .current_dir(dir)
        .env_remove("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .expect("perstack runs")
}

#[tokio::test]
async fn a_collector_that_is_down_costs_one_warning_and_nothing_else() {
    // A port nobody listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = workspace();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/perstack.toml");
    let replay = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.replay.toml");
    let args = [
        "run",
        "release-notes",
        "Write release notes",
        "--config",
        config,
        "--replay",
        replay,
    ];
    let traced: Vec<&str> = args.iter().copied().chain(["--otel"]).collect();
    let run = perstack(
        dir.path(),
        &traced,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    )
    .await;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("OpenTelemetry"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {stderr}");
    assert!(
        warnings[0].contains(&endpoint),
        "it names the collector: {}",
        warnings[0]
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"type\":\"completeRun\""))
    );
    let untraced = perstack(dir.path(), &args, &[]).await;
    assert_eq!(
        stdout.lines().count(),
        String::from_utf8_lossy(&untraced.stdout).lines().count(),
        "the same events with and without tracing"
    );
}

fn named<'a>(spans: &'a [Span], prefix: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.name.starts_with(prefix))
        .collect()
}

fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

#[tokio::test]
async fn retries_and_a_failing_tool_carry_error_status_where_they_should() {
    let collector = receiver().await;
    let mock = MockLlm::start().await;
    mock.push(Reply::status(503).body(r#"{"error":{"message":"overloaded"}}"#));
    mock.push(openai::tool_reply(
        "c1",
        "readTextFile",
        &serde_json::json!({"path": "missing.txt"}),
    ));
    mock.set_fallback(Reply::status(500).body(r#"{"error":{"message":"upstream exploded"}}"#));
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "model = \"gpt-4.1\"\n[provider]\nproviderName = \"openai\"\n[provider.setting]\nbaseUrl = \"{}/v1\"\n\n[experts.\"solo\"]\ninstruction = \"Do the task.\"\n",
        mock.url()
    );
    std::fs::write(dir.path().join("perstack.toml"), config).expect("write config");
    let run = perstack(
        dir.path(),
        &["run", "solo", "Read it", "--otel", "--max-retries", "1"],
        &[
            ("OPENAI_API_KEY", "sk-test-key"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        run.status.code(),
        Some(1),
        "a failed run still exits 1: {stderr}"
    );
    assert!(
        !stderr.contains("OpenTelemetry"),
        "the export itself went fine: {stderr}"
    );
    let spans = collector.spans.lock().expect("lock").clone();
    let chats = named(&spans, "chat gpt-4.1");
    assert_eq!(chats.len(), 2, "{spans:#?}");
    let (first, second) = if chats[0].start_time_unix_nano <= chats[1].start_time_unix_nano {
        (chats[0], chats[1])
    } else {
        (chats[1], chats[0])
    };
    assert_eq!(first.events.iter().filter(|e| e.name == "retry").count(), 1);
    assert!(!is_error(first), "the retried call succeeded");
    assert!(is_error(second), "the call that failed after its retries");
    assert!(second.events.iter().any(|e| e.name == "retry"));
    let tool = named(&spans, "execute_tool readTextFile");
    assert_eq!(tool.len(), 1);
    assert!(is_error(tool[0]), "the tool that failed");
    let run_span = named(&spans, "invoke_agent solo");
    assert!(is_error(run_span[0]), "the run that stopped by error");
    let job = named(&spans, "job solo");
    assert!(is_error(job[0]), "the job that failed");
    assert!(job[0].parent_span_id.is_empty());
}

#[test]
fn otel_true_in_perstack_toml_is_a_known_setting() {
    let path = Path::new("perstack.toml");
    let source = "otel = true\n[experts.\"a\"]\ninstruction = \"Do it.\"\n";
    let (config, warnings) = perstack::definition::parse_str(source, path).expect("valid");
    assert_eq!(config.otel, Some(true));
    assert!(warnings.is_empty(), "{warnings:?}");
    let (config, _) =
        perstack::definition::parse_str("[experts.\"a\"]\ninstruction = \"x\"\n", path)
            .expect("valid");
    assert_eq!(config.otel, None);
    let wrong = perstack::definition::parse_str("otel = \"yes\"\n", path);
    let diagnostics = match wrong {
        Ok((_, warnings)) => warnings,
        Err(errors) => errors,
    };
    assert!(
        diagnostics.iter().any(|d| d.render().contains("otel")),
        "a wrong type is reported: {diagnostics:?}"
    );
}
