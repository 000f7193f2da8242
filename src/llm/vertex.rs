//! Google Vertex AI: Gemini (`streamGenerateContent?alt=sse`, Google's body) and Claude
//! (`streamRawPredict`, Anthropic's body with `anthropic_version`), under
//! `projects/PROJECT/locations/LOCATION/publishers/…`, authorised with an OAuth token
//! (`google_auth.rs`). The token is fetched in `send`, so the shown request holds none.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::anthropic::{self, Anthropic};
use super::google::{self, Google};
use super::google_auth::GoogleAuth;
use super::http::{self, ErrorContext};
use super::{ChunkStream, LanguageModel, LlmError, PreparedRequest, Request};

const PROVIDER: &str = "google-vertex";
/// The version Claude on Vertex takes in the body (instead of a header).
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Which publisher's model, which decides the body and the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Gemini,
    Claude,
}

impl Family {
    pub fn of(model: &str) -> Family {
        if model.starts_with("claude") {
            Family::Claude
        } else {
            Family::Gemini
        }
    }
}

pub struct Vertex {
    pub model: String,
    pub project: String,
    pub location: String,
    /// `https://LOCATION-aiplatform.googleapis.com/v1`, or an override.
    pub base_url: String,
    pub extra_headers: Vec<(String, String)>,
    pub limits: http::StreamLimits,
    auth: Arc<GoogleAuth>,
    /// The direct API's client of the same family, whose body Vertex takes.
    shape: Shape,
    client: reqwest::Client,
}

enum Shape {
    Gemini(Google),
    Claude(Anthropic),
}

impl Vertex {
    pub fn new(
        model: impl Into<String>,
        project: impl Into<String>,
        location: impl Into<String>,
        base_url: Option<String>,
        auth: Arc<GoogleAuth>,
        extra_headers: Vec<(String, String)>,
    ) -> Result<Self, LlmError> {
        let location = location.into();
        let model = model.into();
        let shape = match Family::of(&model) {
            Family::Gemini => Shape::Gemini(Google::new(&model, "", "", Vec::new())?),
            Family::Claude => Shape::Claude(Anthropic::new(&model, "", "", Vec::new())?),
        };
        Ok(Vertex {
            shape,
            model,
            project: project.into(),
            base_url: base_url.unwrap_or_else(|| Self::default_base_url(&location)),
            location,
            extra_headers,
            limits: http::StreamLimits::default(),
            auth,
            client: http::client()?,
        })
    }

    /// The regional endpoint; `global` has none of its own prefix.
    pub fn default_base_url(location: &str) -> String {
        if location == "global" {
            "https://aiplatform.googleapis.com/v1".into()
        } else {
            format!("https://{location}-aiplatform.googleapis.com/v1")
        }
    }

    pub fn family(&self) -> Family {
        Family::of(&self.model)
    }

    pub fn url(&self) -> String {
        let (publisher, method) = match self.family() {
            Family::Gemini => ("google", "streamGenerateContent?alt=sse"),
            Family::Claude => ("anthropic", "streamRawPredict"),
        };
        format!(
            "{}/projects/{}/locations/{}/publishers/{publisher}/models/{}:{method}",
            self.base_url.trim_end_matches('/'),
            self.project,
            self.location,
            self.model
        )
    }

    pub fn body(&self, req: &Request) -> Value {
        match &self.shape {
            Shape::Gemini(google) => google.body(req),
            Shape::Claude(anthropic) => {
                let mut body = anthropic.body(req);
                // The model is in the URL; the version goes in the body.
                if let Some(map) = body.as_object_mut() {
                    map.shift_remove("model");
                    map.insert("anthropic_version".into(), ANTHROPIC_VERSION.into());
                }
                body
            }
        }
    }
}

impl LanguageModel for Vertex {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn check_body(&self, body: &[u8]) -> Result<(), String> {
        use super::prepared::{Required, check_json_body};
        match self.family() {
            Family::Gemini => check_json_body(body, &[Required::List("contents")]),
            Family::Claude => check_json_body(
                body,
                &[
                    Required::Text("anthropic_version"),
                    Required::List("messages"),
                ],
            ),
        }
    }

    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError> {
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("accept".to_string(), "text/event-stream".to_string()),
        ];
        if self.family() == Family::Claude
            && let Some(betas) = anthropic::betas(req)
        {
            headers.push(("anthropic-beta".to_string(), betas));
        }
        headers.extend(self.extra_headers.iter().cloned());
        let body = serde_json::to_vec(&self.body(req)).map_err(|e| LlmError::Request {
            provider: PROVIDER.into(),
            message: e.to_string(),
        })?;
        Ok(
            PreparedRequest::new(PROVIDER, "POST", self.url(), headers, body)
                .with_expert_key(&req.expert_key),
        )
    }

    fn send(&self, prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        Box::pin(async move {
            let token = self.auth.token(&self.client).await?;
            let mut headers: Vec<(String, String)> = prepared
                .headers()
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
                .cloned()
                .collect();
            headers.push(("authorization".into(), format!("Bearer {token}")));
            let authorised = PreparedRequest::new(
                PROVIDER,
                prepared.method.clone(),
                prepared.url.clone(),
                headers,
                prepared.body().clone(),
            )
            .with_expert_key(&prepared.expert_key);
            let ctx = ErrorContext {
                provider: PROVIDER,
                key_env: Some("GOOGLE_APPLICATION_CREDENTIALS"),
            };
            match self.family() {
                Family::Gemini => {
                    http::send_sse(
                        &self.client,
                        authorised,
                        ctx,
                        google::Decoder::default(),
                        self.limits,
                    )
                    .await
                }
                Family::Claude => {
                    http::send_sse(
                        &self.client,
                        authorised,
                        ctx,
                        anthropic::Decoder::default(),
                        self.limits,
                    )
                    .await
                }
            }
        })
    }
}
