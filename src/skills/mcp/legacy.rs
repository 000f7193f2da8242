//! Telling a failed Streamable HTTP connection apart from a server that only speaks the old
//! HTTP+SSE transport (protocol 2024-11-05), which answers a GET with an `endpoint` event.

use std::time::Duration;

use super::McpError;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Turns an initialize failure into an error, naming the old transport when the endpoint
/// turns out to speak it.
pub(crate) async fn classify(endpoint: &str, message: String) -> McpError {
    if speaks_legacy_sse(endpoint).await {
        McpError::LegacySse {
            endpoint: endpoint.to_string(),
        }
    } else {
        McpError::Http {
            endpoint: endpoint.to_string(),
            message,
        }
    }
}

async fn speaks_legacy_sse(endpoint: &str) -> bool {
    let probe = async {
        let client = crate::http::client_builder().build().ok()?;
        let mut response = client
            .get(endpoint)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .ok()?;
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !response.status().is_success() || !is_sse {
            return Some(false);
        }
        let mut head = Vec::new();
        while head.len() < 4096 {
            match response.chunk().await.ok()? {
                Some(chunk) => head.extend_from_slice(&chunk),
                None => break,
            }
            if String::from_utf8_lossy(&head).contains("event: endpoint") {
                return Some(true);
            }
        }
        Some(false)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(true))
    )
}
