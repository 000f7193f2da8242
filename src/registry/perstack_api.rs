//! Perstack's hosted registry, API v1 (`/api/registry/v1/experts`), with
//! `Authorization: Bearer $PERSTACK_API_KEY`.
//!
//! The API speaks JSON fields rather than text; the Expert it returns is rendered as the same
//! canonical TOML text an OCI registry stores, so the digest in the lock means the same thing
//! for both backends.

use indexmap::IndexMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::artifact::{Artifact, render};
use super::fetch::{self, MAX_JSON_BYTES};
use super::key::ExpertKey;
use super::{Fetched, Listing, Options, Registry, RegistryError, Status, VersionInfo};

const PAGE: usize = 100;

pub struct PerstackApi {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryExpert {
    name: String,
    version: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    instruction: Option<String>,
    #[serde(default)]
    skills: Option<Value>,
    #[serde(default)]
    delegates: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

fn status_of(text: Option<&str>) -> Status {
    text.and_then(Status::parse).unwrap_or_default()
}

impl PerstackApi {
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        options: &Options,
    ) -> Result<PerstackApi, RegistryError> {
        fetch::check_base_url(base_url, options)?;
        Ok(PerstackApi {
            client: fetch::client()?,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.filter(|k| !k.is_empty()),
        })
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/api/registry/v1/experts/{rest}", self.base_url)
    }

    /// Sends a request and returns the JSON body of a success; `Ok(None)` on 404.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, RegistryError> {
        let mut request = self.client.request(method, url);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| fetch::unreachable(url, &e))?;
        let status = response.status();
        let bytes = fetch::read_limited(response, url, "an answer", MAX_JSON_BYTES).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Unauthorized {
                url: url.to_string(),
                status: status.as_u16(),
                hint: if self.api_key.is_some() {
                    "PERSTACK_API_KEY was refused; check it, or create a new key".into()
                } else {
                    "set PERSTACK_API_KEY to an API key of your Perstack account".into()
                },
            }),
            StatusCode::CONFLICT => Err(RegistryError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: fetch::excerpt(&bytes),
            }),
            status if status.is_success() => {
                if bytes.is_empty() {
                    return Ok(Some(Value::Null));
                }
                fetch::json(&bytes, url, "a JSON answer").map(Some)
            }
            status => Err(RegistryError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: fetch::excerpt(&bytes),
            }),
        }
    }

    fn field<T: serde::de::DeserializeOwned>(
        value: &Value,
        pointer: &str,
        url: &str,
        expected: &str,
    ) -> Result<T, RegistryError> {
        let found = value.pointer(pointer).cloned().unwrap_or(Value::Null);
        serde_json::from_value(found).map_err(|err| RegistryError::BadResponse {
            url: url.to_string(),
            expected: expected.to_string(),
            detail: format!("{pointer}: {err}"),
        })
    }

    fn not_found(&self, key: &str) -> RegistryError {
        RegistryError::NotFound {
            registry: self.base_url.clone(),
            key: key.to_string(),
        }
    }
}

/// The API's Expert as canonical text: fields to a TOML table, read and rendered back.
fn artifact_of(key: &ExpertKey, expert: &RegistryExpert) -> Result<Artifact, RegistryError> {
    let bad = |detail: String| RegistryError::BadArtifact {
        key: key.to_string(),
        detail,
    };
    if expert.name != key.name || expert.version != key.version {
        return Err(bad(format!(
            "the registry answered with {}@{}",
            expert.name, expert.version
        )));
    }
    let mut table = toml::Table::new();
    let instruction = expert
        .instruction
        .clone()
        .ok_or_else(|| bad("it has no instruction".into()))?;
    table.insert("instruction".into(), instruction.into());
    if let Some(description) = &expert.description {
        table.insert("description".into(), description.clone().into());
    }
    table.insert("version".into(), expert.version.clone().into());
    if let Some(delegates) = expert.delegates.as_ref().filter(|d| !d.is_empty()) {
        table.insert(
            "delegates".into(),
            toml::Value::try_from(delegates).map_err(|e| bad(e.to_string()))?,
        );
    }
    if let Some(tags) = expert.tags.as_ref().filter(|t| !t.is_empty()) {
        table.insert(
            "tags".into(),
            toml::Value::try_from(tags).map_err(|e| bad(e.to_string()))?,
        );
    }
    // An empty skills object means the default (the base skill alone), as no table does.
    let written = |s: &&Value| !s.is_null() && s.as_object().is_none_or(|o| !o.is_empty());
    if let Some(skills) = expert.skills.as_ref().filter(written) {
        let skills = toml::Value::try_from(without_nulls(skills.clone()))
            .map_err(|e| bad(format!("its skills: {e}")))?;
        table.insert("skills".into(), skills);
    }
    let document = toml::Table::from_iter([(
        "experts".to_string(),
        toml::Value::Table(toml::Table::from_iter([(
            key.name.clone(),
            toml::Value::Table(table),
        )])),
    )]);
    let text = toml::to_string(&document).map_err(|e| bad(e.to_string()))?;
    let read = Artifact::parse(key, text)?;
    Artifact::parse(key, render(&key.name, &read.expert)?)
}

/// TOML has no null: drop null fields and list items.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| !v.is_null())
                .map(without_nulls)
                .collect(),
        ),
        other => other,
    }
}

impl Registry for PerstackApi {
    async fn get(&self, key: &ExpertKey) -> Result<Fetched, RegistryError> {
        let url = self.url(&encode(&key.to_string()));
        let body = self
            .call(Method::GET, &url, None)
            .await?
            .ok_or_else(|| self.not_found(&key.to_string()))?;
        let expert: RegistryExpert = Self::field(
            &body,
            "/data/expert",
            &url,
            "{data: {expert: RegistryExpert}}",
        )?;
        let artifact = artifact_of(key, &expert)?;
        Ok(Fetched {
            artifact,
            status: status_of(expert.status.as_deref()),
            tags: expert.tags.clone().unwrap_or_default(),
        })
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, RegistryError> {
        let url = self.url(&format!("{}/versions", encode(name)));
        let body = self
            .call(Method::GET, &url, None)
            .await?
            .ok_or_else(|| self.not_found(name))?;
        let digests: Vec<RegistryExpert> = Self::field(
            &body,
            "/data/versions",
            &url,
            "{data: {versions: [ExpertDigest]}}",
        )?;
        let mut versions: Vec<VersionInfo> = digests
            .into_iter()
            .map(|d| VersionInfo {
                version: d.version,
                status: status_of(d.status.as_deref()),
                description: d.description,
            })
            .collect();
        versions.sort_by(|a, b| {
            match (
                semver::Version::parse(&a.version),
                semver::Version::parse(&b.version),
            ) {
                (Ok(a), Ok(b)) => a.cmp(&b),
                _ => a.version.cmp(&b.version),
            }
        });
        Ok(versions)
    }

    async fn search(&self, text: &str) -> Result<Vec<Listing>, RegistryError> {
        let mut by_name: IndexMap<String, Listing> = IndexMap::new();
        let mut skip = 0;
        loop {
            let mut url =
                url::Url::parse(&self.url("")).map_err(|e| RegistryError::BadAddress {
                    address: self.base_url.clone(),
                    why: e.to_string(),
                })?;
            url.query_pairs_mut()
                .append_pair("filter", text)
                .append_pair("sort", "name")
                .append_pair("order", "asc")
                .append_pair("take", &PAGE.to_string())
                .append_pair("skip", &skip.to_string());
            let url = url.to_string();
            let body = self
                .call(Method::GET, &url, None)
                .await?
                .ok_or_else(|| self.not_found("the experts listing"))?;
            let page: Vec<RegistryExpert> =
                Self::field(&body, "/data/experts", &url, "{data: {experts: [...]}}")?;
            let total: usize = Self::field(&body, "/meta/total", &url, "{meta: {total}}")?;
            let count = page.len();
            for expert in page {
                let listing = by_name.entry(expert.name.clone()).or_insert(Listing {
                    name: expert.name.clone(),
                    description: None,
                    versions: Vec::new(),
                });
                if expert.description.is_some() {
                    listing.description = expert.description.clone();
                }
                listing.versions.push(expert.version);
            }
            skip += count;
            if count == 0 || skip >= total {
                break;
            }
        }
        Ok(by_name.into_values().collect())
    }

    async fn publish(&self, artifact: &Artifact) -> Result<(), RegistryError> {
        let key = &artifact.key;
        let existing = self
            .call(Method::GET, &self.url(&encode(&key.to_string())), None)
            .await?;
        if existing.is_some() {
            return Err(RegistryError::AlreadyExists {
                registry: self.base_url.clone(),
                key: key.to_string(),
            });
        }
        let expert = &artifact.expert;
        let body = json!({
            "name": key.name,
            "version": key.version,
            "minRuntimeVersion": "v1.0",
            "description": expert.description.clone().unwrap_or_default(),
            "instruction": expert.instruction,
            "skills": expert.effective_skills(),
            "delegates": expert.delegates(),
            "tags": ["latest"],
        });
        let url = self.url("");
        self.call(Method::POST, &url, Some(&body))
            .await
            .map_err(|err| match err {
                RegistryError::Status { status: 409, .. } => RegistryError::AlreadyExists {
                    registry: self.base_url.clone(),
                    key: key.to_string(),
                },
                other => other,
            })?
            .ok_or_else(|| self.not_found("the publish endpoint"))?;
        Ok(())
    }

    async fn tag(&self, key: &ExpertKey, tags: &[String]) -> Result<(), RegistryError> {
        let url = self.url(&encode(&key.to_string()));
        self.call(Method::POST, &url, Some(&json!({ "tags": tags })))
            .await?
            .ok_or_else(|| self.not_found(&key.to_string()))?;
        Ok(())
    }

    async fn set_status(&self, key: &ExpertKey, status: Status) -> Result<(), RegistryError> {
        let url = self.url(&encode(&key.to_string()));
        self.call(
            Method::POST,
            &url,
            Some(&json!({ "status": status.as_str() })),
        )
        .await?
        .ok_or_else(|| self.not_found(&key.to_string()))?;
        Ok(())
    }

    async fn unpublish(&self, key: &ExpertKey) -> Result<(), RegistryError> {
        let url = self.url(&encode(&key.to_string()));
        self.call(Method::DELETE, &url, None)
            .await?
            .ok_or_else(|| self.not_found(&key.to_string()))?;
        Ok(())
    }
}
