//! Vertex AI against a local server that is both the OAuth token endpoint (checking the
//! service account's signed JWT) and the model endpoint.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use perstack::definition::{ProviderName, ProviderSetting};
use perstack::llm::{LanguageModel, build_provider};
use serde_json::{Value, json};
use support::llm_cases::*;
use support::mock_llm::{MockLlm, RecordedRequest, Reply, anthropic as a, gemini as g};

const EMAIL: &str = "runner@perstack-test.iam.gserviceaccount.com";
const TOKEN: &str = "ya29.local-test-token";

struct Cloud {
    mock: MockLlm,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    key_dir: tempfile::TempDir,
}

/// Checks a token request the way Google does: form fields, then the JWT's RS256 signature
/// against the service account's public key, then its claims.
fn check_token_request(req: &RecordedRequest, token_url: &str) -> Result<(), String> {
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return Err(format!("grant_type {:?}", form.get("grant_type")));
    }
    let jwt = form.get("assertion").ok_or("no assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("assertion is not a JWT".into());
    }
    let public = STANDARD
        .decode(include_str!("fixtures/vertex/public-key-pkcs1.b64").trim())
        .map_err(|e| e.to_string())?;
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "JWT signature does not verify".to_string())?;
    let decode = |s: &str| -> Result<Value, String> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    };
    let header = decode(parts[0])?;
    let claims = decode(parts[1])?;
    if header["alg"] != "RS256" {
        return Err(format!("header {header}"));
    }
    let iat = claims["iat"].as_u64().ok_or("no iat")?;
    let ok = claims["iss"] == EMAIL
        && claims["aud"] == token_url
        && claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
        && claims["exp"].as_u64() == Some(iat + 3600);
    if ok {
        Ok(())
    } else {
        Err(format!("claims {claims}"))
    }
}

impl Cloud {
    async fn start() -> Cloud {
        let mock = MockLlm::start().await;
        let token_url = format!("{}/token", mock.url());
        let replies: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let queue = replies.clone();
        let expected_token_url = token_url.clone();
        mock.set_responder(move |req| {
            if req.path == "/token" {
                return match check_token_request(req, &expected_token_url) {
                    Ok(()) => Reply::status(200).body(
                        json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})
                            .to_string(),
                    ),
                    Err(why) => Reply::status(400).body(json!({"error": why}).to_string()),
                };
            }
            if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
                return Reply::status(401).body(r#"{"error":{"message":"bad token"}}"#);
            }
            queue
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Reply::status(500))
        });
        let key_dir = tempfile::tempdir().expect("tempdir");
        let mut key: Value =
            serde_json::from_str(include_str!("fixtures/vertex/service-account.json"))
                .expect("fixture");
        key["token_uri"] = json!(token_url);
        std::fs::write(key_dir.path().join("key.json"), key.to_string()).expect("write key");
        Cloud {
            mock,
            replies,
            key_dir,
        }
    }

    fn model(&self, model: &str, setting: ProviderSetting) -> Arc<dyn LanguageModel> {
        let key = self.key_dir.path().join("key.json");
        build_provider(
            ProviderName::GoogleVertex,
            Some(&setting),
            model,
            &env(&[
                (
                    "GOOGLE_APPLICATION_CREDENTIALS",
                    key.to_str().expect("utf8"),
                ),
                ("GOOGLE_VERTEX_LOCATION", "europe-west4"),
            ]),
            std::path::Path::new("."),
        )
        .expect("vertex builds")
    }

    fn push(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    fn paths(&self) -> Vec<String> {
        self.mock
            .requests()
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }
}

#[tokio::test]
async fn gemini_on_vertex_exchanges_the_jwt_once_and_reuses_the_token() {
    let cloud = Cloud::start().await;
    let model = cloud.model(
        "gemini-2.5-flash",
        setting(format!("{}/v1", cloud.mock.url())),
    );
    cloud.push(g::text_reply("Hello"));
    cloud.push(g::text_reply("Again"));
    let (_, first) = run_ok(model.as_ref()).await;
    let (_, second) = run_ok(model.as_ref()).await;
    assert_eq!(
        (first.text.as_str(), second.text.as_str()),
        ("Hello", "Again")
    );
    let generate = "/v1/projects/perstack-test/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    assert_eq!(cloud.paths(), ["/token", generate, generate]);
    let sent = &cloud.mock.requests()[1];
    assert!(sent.json()["contents"].is_array(), "{}", sent.json());
    // The shown request holds no token.
    assert_eq!(
        model
            .prepare(&request())
            .expect("prepare")
            .header("authorization"),
        None
    );
}

#[tokio::test]
async fn claude_on_vertex_uses_stream_raw_predict_and_the_vertex_version() {
    let cloud = Cloud::start().await;
    let mut s = setting(format!("{}/v1", cloud.mock.url()));
    s.extra.insert(
        "project".into(),
        toml::Value::String("other-project".into()),
    );
    s.extra
        .insert("location".into(), toml::Value::String("us-east5".into()));
    let model = cloud.model("claude-sonnet-4-5@20250929", s);
    cloud.push(a::text_reply("Hi"));
    let (_, response) = run_ok(model.as_ref()).await;
    assert_eq!(response.text, "Hi");
    assert_eq!(
        cloud.paths(),
        [
            "/token",
            "/v1/projects/other-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        ]
    );
    let body = cloud.mock.requests()[1].json();
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert!(body.get("model").is_none(), "{body}");
    assert_eq!(body["messages"][0]["content"][0]["text"], "Say hi");
}

#[tokio::test]
async fn default_urls_are_regional_and_global() {
    let cloud = Cloud::start().await;
    let model = cloud.model("gemini-2.5-pro", ProviderSetting::default());
    assert_eq!(
        model.prepare(&request()).expect("prepare").url,
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/perstack-test/locations/europe-west4/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );
    let mut s = ProviderSetting::default();
    s.extra
        .insert("location".into(), toml::Value::String("global".into()));
    let model = cloud.model("claude-opus-4-1", s);
    assert_eq!(
        model.prepare(&request()).expect("prepare").url,
        "https://aiplatform.googleapis.com/v1/projects/perstack-test/locations/global/publishers/anthropic/models/claude-opus-4-1:streamRawPredict"
    );
}

#[tokio::test]
async fn a_refused_token_request_names_the_key_file() {
    let cloud = Cloud::start().await;
    let key = cloud.key_dir.path().join("key.json");
    let mut text: Value =
        serde_json::from_str(&std::fs::read_to_string(&key).expect("read")).expect("json");
    text["client_email"] = json!("someone-else@example.com");
    std::fs::write(&key, text.to_string()).expect("write");
    let model = cloud.model(
        "gemini-2.5-flash",
        setting(format!("{}/v1", cloud.mock.url())),
    );
    let (_, _, err) = run_err(model.as_ref()).await;
    assert!(err.to_string().contains("key.json"), "{err}");
    assert!(err.to_string().contains("claims"), "{err}");
}
