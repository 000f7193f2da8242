//! HTTP pieces both backends share: the client, the http-only-on-loopback rule, and reading a
//! body with a size limit (a registry is a remote peer: it may send anything, of any size).

use std::time::Duration;

use super::{Options, RegistryError, is_loopback_host};

/// The most a published text may weigh (an instruction is at most 20 KB; skills add little).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// The most any JSON answer (a manifest, a listing) may weigh.
pub const MAX_JSON_BYTES: usize = 4 * 1024 * 1024;

pub fn client() -> Result<reqwest::Client, RegistryError> {
    crate::http::client_builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|err| RegistryError::Unreachable {
            url: "(client set-up)".into(),
            message: err.to_string(),
        })
}

/// The scheme to reach `host` with: https, or http for loopback hosts and when the user said
/// the network is trusted.
pub fn scheme_for(host: &str, options: &Options) -> &'static str {
    if is_loopback_host(host) || options.insecure {
        "http"
    } else {
        "https"
    }
}

/// Refuses a plain http base URL to anything but loopback, unless allowed.
pub fn check_base_url(base_url: &str, options: &Options) -> Result<(), RegistryError> {
    let url = url::Url::parse(base_url).map_err(|err| RegistryError::BadAddress {
        address: base_url.to_string(),
        why: err.to_string(),
    })?;
    let host = url.host_str().unwrap_or("");
    if url.scheme() == "http" && !is_loopback_host(host) && !options.insecure {
        return Err(RegistryError::InsecureRefused {
            url: base_url.to_string(),
        });
    }
    Ok(())
}

pub fn unreachable(url: &str, err: &reqwest::Error) -> RegistryError {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    RegistryError::Unreachable {
        url: url.to_string(),
        message,
    }
}

/// The body, refused as soon as it passes `limit` (by its Content-Length or while reading).
pub async fn read_limited(
    mut response: reqwest::Response,
    url: &str,
    what: &str,
    limit: usize,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        url: url.to_string(),
        what: what.to_string(),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(url, &e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short, printable start of an error body.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Parses JSON, naming the URL and what was expected when it is not.
pub fn json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    url: &str,
    expected: &str,
) -> Result<T, RegistryError> {
    serde_json::from_slice(body).map_err(|err| RegistryError::BadResponse {
        url: url.to_string(),
        expected: expected.to_string(),
        detail: format!("{err} (body starts: {})", excerpt(body)),
    })
}
