//! The model layer: one trait, one file per wire format.
//!
//! A generation is two calls so that the exact request can be shown (and edited) before it
//! goes out: [`LanguageModel::prepare`] builds the HTTP request, [`LanguageModel::send`] sends
//! those bytes and streams neutral [`StreamChunk`]s back. Dropping the stream cancels the
//! request. [`retry::send_with_retry`] adds backoff and the generation timeout.

pub mod agent_skills;
pub mod anthropic;
pub mod aws;
pub mod bedrock;
mod error;
pub mod eventstream;
mod factory;
pub mod google;
pub mod google_auth;
pub mod http;
pub mod openai;
pub mod openai_responses;
mod prepared;
pub mod provider_tools;
pub mod providers;
pub mod replay;
pub mod retry;
pub mod sse;
mod types;
pub mod vertex;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};

pub use error::LlmError;
pub use factory::build_provider;
pub use prepared::{PreparedRequest, REDACTED, Required, check_json_body, is_secret_header};
pub use types::{
    FinishReason, Message, Part, ProviderToolUse, Request, Response, ResponseBuilder, Role,
    StreamChunk, ToolCall, Usage,
};

/// The chunks of one answer; ends after [`StreamChunk::Finish`] or with an error.
pub type ChunkStream = BoxStream<'static, Result<StreamChunk, LlmError>>;

pub trait LanguageModel: Send + Sync {
    /// The provider's name, as in perstack.toml (`anthropic`, `openai`, ...).
    fn provider(&self) -> &str;

    fn model(&self) -> &str;

    /// Builds the exact HTTP request for `req`, without sending anything.
    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError>;

    /// Whether a hand-edited body can be sent: by default any JSON object; providers add the
    /// fields their wire format requires. The error is for the person who edited it.
    fn check_body(&self, body: &[u8]) -> Result<(), String> {
        prepared::check_json_body(body, &[])
    }

    /// Sends the prepared bytes (possibly edited) and streams the answer.
    fn send(&self, prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>>;

    /// Where custom Agent Skills are uploaded, if this provider takes them (Anthropic).
    fn skills_endpoint(&self) -> Option<String> {
        None
    }

    /// Uploads a custom Agent Skill (its SKILL.md) and returns the provider's skill id.
    fn upload_skill<'a>(
        &'a self,
        _name: &'a str,
        _skill_md: &'a str,
    ) -> BoxFuture<'a, Result<String, LlmError>> {
        let provider = self.provider().to_string();
        Box::pin(async move {
            Err(LlmError::Config {
                message: format!(
                    "{provider} runs no custom Agent Skills; remove the custom entries from providerSkills or use providerName = \"anthropic\""
                ),
                provider,
            })
        })
    }
}

/// Collects a stream into a whole [`Response`]. A stream that ends without `Finish` is cut.
pub async fn collect(mut stream: ChunkStream) -> Result<Response, LlmError> {
    let mut builder = ResponseBuilder::new();
    while let Some(chunk) = stream.next().await {
        builder.push(&chunk?);
    }
    if !builder.is_finished() {
        return Err(LlmError::StreamCut {
            provider: "stream".into(),
            detail: Some("no finish chunk".into()),
        });
    }
    Ok(builder.finish())
}

/// Prepare, send and collect in one call, without retries.
pub async fn generate(model: &dyn LanguageModel, req: &Request) -> Result<Response, LlmError> {
    let prepared = model.prepare(req)?;
    collect(model.send(prepared).await?).await
}

#[cfg(test)]
mod decode_tests;
