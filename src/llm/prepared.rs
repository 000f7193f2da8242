//! The exact HTTP request a provider will send, shown (redacted) before sending and editable.

use bytes::Bytes;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

pub const REDACTED: &str = "[redacted]";

#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRequest {
    /// Provider name, for errors and display.
    pub provider: String,
    /// The Expert that asked; metadata only (the replay provider reads it), never sent.
    pub expert_key: String,
    pub method: String,
    pub url: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl PreparedRequest {
    pub fn new(
        provider: impl Into<String>,
        method: impl Into<String>,
        url: impl Into<String>,
        headers: Vec<(String, String)>,
        body: impl Into<Bytes>,
    ) -> Self {
        PreparedRequest {
            provider: provider.into(),
            expert_key: String::new(),
            method: method.into(),
            url: url.into(),
            headers,
            body: body.into(),
        }
    }

    pub fn with_expert_key(mut self, key: impl Into<String>) -> Self {
        self.expert_key = key.into();
        self
    }

    /// The headers as they go on the wire, secrets included.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The headers for display and logs: secrets replaced by `[redacted]`.
    pub fn redacted_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| {
                let value = if is_secret_header(k) {
                    REDACTED.to_string()
                } else {
                    v.clone()
                };
                (k.clone(), value)
            })
            .collect()
    }

    /// The URL for display and logs: credentials in it (`user:password@`, `?key=...`)
    /// replaced by `[redacted]`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (lossy only for bodies that are not UTF-8, which no provider builds).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Replaces the body, e.g. with a human's edit; everything else stays.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// A field a wire format cannot do without, for checking a hand-edited body.
#[derive(Debug, Clone, Copy)]
pub enum Required {
    Text(&'static str),
    List(&'static str),
}

/// Whether `body` is a JSON object with the `required` fields: what every provider needs before
/// an edited body may be sent. The error names the place (line and column) or the field.
pub fn check_json_body(body: &[u8], required: &[Required]) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Some(object) = value.as_object() else {
        return Err("the body must be a JSON object (`{ ... }`)".into());
    };
    for field in required {
        let (name, ok, kind) = match *field {
            Required::Text(name) => (
                name,
                object.get(name).is_some_and(|v| v.is_string()),
                "a string",
            ),
            Required::List(name) => (
                name,
                object.get(name).is_some_and(|v| v.is_array()),
                "an array",
            ),
        };
        if !ok {
            return Err(format!("the body needs `{name}` as {kind}"));
        }
    }
    Ok(())
}

/// Header names that carry credentials.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization"
        || name == "proxy-authorization"
        || name == "cookie"
        || name.contains("api-key")
        || name.contains("apikey")
        || name.contains("token")
        || name.contains("secret")
}

/// `url` with the user information of its authority and the values of credential query
/// parameters replaced by `[redacted]`; everything else is left exactly as written.
pub fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let (before_query, query) = match before_fragment.find('?') {
        Some(i) => (&before_fragment[..i], Some(&before_fragment[i + 1..])),
        None => (before_fragment, None),
    };
    let mut out = String::with_capacity(url.len());
    match before_query.find("://") {
        Some(scheme_end) => {
            let authority_start = scheme_end + 3;
            let rest = &before_query[authority_start..];
            let authority_len = rest.find('/').unwrap_or(rest.len());
            let authority = &rest[..authority_len];
            out.push_str(&before_query[..authority_start]);
            match authority.rfind('@') {
                Some(at) => {
                    out.push_str(REDACTED);
                    out.push_str(&authority[at..]);
                }
                None => out.push_str(authority),
            }
            out.push_str(&rest[authority_len..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
    }
    out.push_str(fragment);
    out
}

/// Query parameter names that carry credentials (`key` is Google's API key parameter).
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "key"
        || name == "sig"
        || name.contains("apikey")
        || name.contains("api_key")
        || name.contains("api-key")
        || name.contains("token")
        || name.contains("secret")
        || name.contains("password")
}

/// Serialises in redacted form: events and logs never hold a key.
impl Serialize for PreparedRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let headers: indexmap::IndexMap<String, String> =
            self.redacted_headers().into_iter().collect();
        // A JSON body is embedded as JSON so readers need not parse a string twice.
        let body: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| serde_json::Value::String(self.body_text()));
        let mut st = s.serialize_struct("PreparedRequest", 5)?;
        st.serialize_field("provider", &self.provider)?;
        st.serialize_field("method", &self.method)?;
        st.serialize_field("url", &self.redacted_url())?;
        st.serialize_field("headers", &headers)?;
        st.serialize_field("body", &body)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edited_bodies_are_checked_for_json_and_fields() {
        let need = [Required::Text("model"), Required::List("messages")];
        assert!(check_json_body(br#"{"model":"m","messages":[]}"#, &need).is_ok());
        let err = check_json_body(b"{\"model\": \"m\",\n  oops}", &need).expect_err("bad JSON");
        assert!(err.contains("line 2 column 3"), "{err}");
        let err = check_json_body(b"[1]", &need).expect_err("not an object");
        assert!(err.contains("object"), "{err}");
        let err = check_json_body(br#"{"model":"m","messages":{}}"#, &need).expect_err("field");
        assert!(err.contains("`messages` as an array"), "{err}");
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        let cases = [
            (
                "http://user:SECRET@host/v1/chat/completions",
                "http://[redacted]@host/v1/chat/completions",
            ),
            (
                "https://SECRET@host:8443/v1",
                "https://[redacted]@host:8443/v1",
            ),
            (
                "https://g.test/v1beta/models/m:streamGenerateContent?alt=sse&key=SECRET",
                "https://g.test/v1beta/models/m:streamGenerateContent?alt=sse&key=[redacted]",
            ),
            (
                "https://h.test/v1?api_key=SECRET&apikey=SECRET&access_token=SECRET&token=SECRET&api-version=2024",
                "https://h.test/v1?api_key=[redacted]&apikey=[redacted]&access_token=[redacted]&token=[redacted]&api-version=2024",
            ),
            (
                "https://u:SECRET@h.test/p?KEY=SECRET#frag",
                "https://[redacted]@h.test/p?KEY=[redacted]#frag",
            ),
            // Nothing secret: left exactly as written, spaces and all.
            (
                "replay:/a dir/demo.replay.toml",
                "replay:/a dir/demo.replay.toml",
            ),
            (
                "https://h.test/p?alt=sse&monkey=1&flag",
                "https://h.test/p?alt=sse&monkey=1&flag",
            ),
            // An `@` in the path is not user information.
            ("https://h.test/v1/@scope/x", "https://h.test/v1/@scope/x"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
        let req = PreparedRequest::new(
            "google",
            "POST",
            "http://user:SECRET@h.test/v1?key=SECRET",
            vec![],
            "{}",
        );
        assert_eq!(
            req.redacted_url(),
            "http://[redacted]@h.test/v1?key=[redacted]"
        );
        let shown = serde_json::to_string(&req).unwrap();
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(
            req.url, "http://user:SECRET@h.test/v1?key=SECRET",
            "sent as is"
        );
    }

    #[test]
    fn secrets_are_redacted_for_display_and_serde() {
        let req = PreparedRequest::new(
            "anthropic",
            "POST",
            "https://example.test/v1/messages",
            vec![
                ("x-api-key".into(), "sk-secret".into()),
                ("Authorization".into(), "Bearer sk-secret".into()),
                ("x-goog-api-key".into(), "g-secret".into()),
                ("api-key".into(), "az-secret".into()),
                ("content-type".into(), "application/json".into()),
            ],
            r#"{"a":1}"#,
        );
        let shown = serde_json::to_string(&req).unwrap();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains(r#""body":{"a":1}"#), "{shown}");
        assert_eq!(req.header("authorization"), Some("Bearer sk-secret"));
        let redacted = req.redacted_headers();
        assert_eq!(redacted[4].1, "application/json");
        assert!(redacted[..4].iter().all(|(_, v)| v == REDACTED));
    }
}
