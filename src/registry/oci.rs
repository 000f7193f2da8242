//! Any OCI Distribution registry (GHCR, Docker Hub, ECR, Harbor, a self-hosted `registry`).
//!
//! An Expert version is an OCI artifact in the repository `NAMESPACE/<scope>/<name>`, tagged
//! with its version: an image manifest with `artifactType` [`ARTIFACT_TYPE`], the empty config,
//! and one layer holding the canonical TOML text. Description, version, tags, delegates,
//! creation time and status ride as annotations. Only the spec's plain endpoints are used
//! (no referrers API), with anonymous, basic and bearer-token auth.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::artifact::{ARTIFACT_TYPE, Artifact, TEXT_MEDIA_TYPE};
use super::fetch::{self, MAX_JSON_BYTES, MAX_TEXT_BYTES};
use super::key::{ExpertKey, name_of_repository};
use super::{
    Fetched, Listing, Options, Registry, RegistryError, Status, VersionInfo, sha256_digest,
};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";

pub const ANNOTATION_DESCRIPTION: &str = "org.opencontainers.image.description";
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_TAGS: &str = "ai.perstack.expert.tags";
pub const ANNOTATION_DELEGATES: &str = "ai.perstack.expert.delegates";
pub const ANNOTATION_STATUS: &str = "ai.perstack.expert.status";

const CREDENTIALS_HINT: &str = "set PERSTACK_REGISTRY_USERNAME and PERSTACK_REGISTRY_PASSWORD, or log in with `docker login` (~/.docker/config.json)";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// How the registry asked to be authenticated.
#[derive(Debug, Clone, PartialEq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

#[derive(Default)]
struct AuthState {
    basic: bool,
    /// Bearer tokens by the scope they were granted for.
    tokens: HashMap<String, String>,
}

pub struct OciRegistry {
    client: reqwest::Client,
    /// `scheme://host[:port]`.
    base: String,
    namespace: String,
    label: String,
    credentials: Option<(String, String)>,
    auth: Mutex<AuthState>,
    options: Options,
}

struct Sent {
    response: reqwest::Response,
    url: String,
}

impl OciRegistry {
    pub fn new(
        host: &str,
        namespace: &str,
        label: String,
        options: &Options,
    ) -> Result<OciRegistry, RegistryError> {
        let base = format!("{}://{host}", fetch::scheme_for(host, options));
        fetch::check_base_url(&base, options)?;
        Ok(OciRegistry {
            client: fetch::client()?,
            base,
            namespace: namespace.to_string(),
            label,
            credentials: credentials_for(host),
            auth: Mutex::new(AuthState::default()),
            options: options.clone(),
        })
    }

    fn repository(&self, name_path: &str) -> String {
        if self.namespace.is_empty() {
            name_path.to_string()
        } else {
            format!("{}/{name_path}", self.namespace)
        }
    }

    fn url(&self, repository: &str, rest: &str) -> String {
        format!("{}/v2/{repository}/{rest}", self.base)
    }

    /// Sends a request, answering one authentication challenge (basic, or a bearer token for
    /// `scope`) and retrying once.
    async fn send(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Sent, RegistryError> {
        for attempt in 0..2 {
            let mut request = self.client.request(method.clone(), url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request = self.authorize(request, scope);
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| fetch::unreachable(url, &e))?;
            if response.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                if matches!(
                    response.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) {
                    return Err(self.unauthorized(url, response.status()));
                }
                return Ok(Sent {
                    response,
                    url: url.to_string(),
                });
            }
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            match challenge {
                Some(Challenge::Basic) => {
                    if self.credentials.is_none() {
                        return Err(self.unauthorized(url, response.status()));
                    }
                    if let Ok(mut auth) = self.auth.lock() {
                        auth.basic = true;
                    }
                }
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: asked,
                }) => {
                    let token = self
                        .fetch_token(
                            &realm,
                            service.as_deref(),
                            asked.as_deref().unwrap_or(scope),
                        )
                        .await?;
                    if let Ok(mut auth) = self.auth.lock() {
                        auth.tokens.insert(scope.to_string(), token);
                    }
                }
                None => return Err(self.unauthorized(url, response.status())),
            }
        }
        Err(self.unauthorized(url, StatusCode::UNAUTHORIZED))
    }

    fn authorize(&self, request: reqwest::RequestBuilder, scope: &str) -> reqwest::RequestBuilder {
        let Ok(auth) = self.auth.lock() else {
            return request;
        };
        if let Some(token) = auth.tokens.get(scope) {
            return request.bearer_auth(token);
        }
        match (&self.credentials, auth.basic) {
            (Some((user, password)), true) => request.basic_auth(user, Some(password)),
            _ => request,
        }
    }

    fn unauthorized(&self, url: &str, status: StatusCode) -> RegistryError {
        let hint = if self.credentials.is_some() {
            format!(
                "check the credentials for {}; {CREDENTIALS_HINT}",
                self.label
            )
        } else {
            CREDENTIALS_HINT.to_string()
        };
        RegistryError::Unauthorized {
            url: url.to_string(),
            status: status.as_u16(),
            hint,
        }
    }

    /// The bearer-token flow of Docker Hub and GHCR: ask the realm for a token for `scope`,
    /// with basic credentials when there are any (anonymous pulls get a token without).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let mut url = url::Url::parse(realm).map_err(|err| RegistryError::BadResponse {
            url: self.base.clone(),
            expected: "a token realm URL in WWW-Authenticate".into(),
            detail: format!("{realm}: {err}"),
        })?;
        // The realm is named by the registry; credentials go to it only as they would to the
        // registry itself (https, or loopback, or when the network is trusted).
        fetch::check_base_url(realm, &self.options)?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut request = self.client.get(url.as_str());
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| fetch::unreachable(realm, &e))?;
        if !response.status().is_success() {
            return Err(self.unauthorized(realm, response.status()));
        }
        let body = fetch::read_limited(response, realm, "a token", MAX_JSON_BYTES).await?;
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = fetch::json(&body, realm, "a token answer ({\"token\": ...})")?;
        token
            .token
            .or(token.access_token)
            .ok_or_else(|| RegistryError::BadResponse {
                url: realm.to_string(),
                expected: "a token answer".into(),
                detail: "neither `token` nor `access_token` is set".into(),
            })
    }

    async fn fail(&self, sent: Sent) -> RegistryError {
        let status = sent.response.status().as_u16();
        let body = fetch::read_limited(sent.response, &sent.url, "an error", 64 * 1024)
            .await
            .unwrap_or_default();
        RegistryError::Status {
            url: sent.url,
            status,
            body: fetch::excerpt(&body),
        }
    }

    /// The manifest of `reference` in `repository`, checked to be a Perstack Expert artifact.
    async fn manifest(
        &self,
        key: &ExpertKey,
        repository: &str,
        reference: &str,
    ) -> Result<Manifest, RegistryError> {
        let url = self.url(repository, &format!("manifests/{reference}"));
        let scope = format!("repository:{repository}:pull");
        let sent = self.manifest_of_key(Method::GET, key, &url, &scope).await?;
        let content_type = sent
            .response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let body = fetch::read_limited(sent.response, &url, "a manifest", MAX_JSON_BYTES).await?;
        let manifest: Manifest = fetch::json(&body, &url, "an OCI image manifest")?;
        let media_type = manifest.media_type.clone().or(content_type);
        if media_type.as_deref() != Some(MANIFEST_MEDIA_TYPE) {
            return Err(RegistryError::BadResponse {
                url,
                expected: format!("an OCI image manifest ({MANIFEST_MEDIA_TYPE})"),
                detail: format!(
                    "its media type is {}",
                    media_type.as_deref().unwrap_or("missing")
                ),
            });
        }
        if manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
            return Err(RegistryError::BadResponse {
                url,
                expected: format!("a Perstack Expert ({ARTIFACT_TYPE})"),
                detail: format!(
                    "its artifactType is {}",
                    manifest.artifact_type.as_deref().unwrap_or("missing")
                ),
            });
        }
        Ok(manifest)
    }

    async fn blob(
        &self,
        key: &ExpertKey,
        repository: &str,
        layer: &Descriptor,
    ) -> Result<String, RegistryError> {
        let url = self.url(repository, &format!("blobs/{}", layer.digest));
        if layer.size > MAX_TEXT_BYTES as u64 {
            return Err(RegistryError::TooLarge {
                url,
                what: "an Expert's text".into(),
                limit: MAX_TEXT_BYTES,
            });
        }
        let scope = format!("repository:{repository}:pull");
        let sent = self.send(Method::GET, &url, &scope, &[], None).await?;
        if !sent.response.status().is_success() {
            return Err(self.fail(sent).await);
        }
        let body =
            fetch::read_limited(sent.response, &url, "an Expert's text", MAX_TEXT_BYTES).await?;
        let actual = sha256_digest(&body);
        if actual != layer.digest {
            return Err(RegistryError::DigestMismatch {
                key: key.to_string(),
                expected: layer.digest.clone(),
                actual,
            });
        }
        String::from_utf8(body).map_err(|_| RegistryError::BadArtifact {
            key: key.to_string(),
            detail: "the text is not UTF-8".into(),
        })
    }

    /// A manifest request for `key`'s version: a missing one is `NotFound` naming the key, any
    /// other failure the registry's own answer.
    async fn manifest_of_key(
        &self,
        method: Method,
        key: &ExpertKey,
        url: &str,
        scope: &str,
    ) -> Result<Sent, RegistryError> {
        let sent = self
            .send(method, url, scope, &[("accept", MANIFEST_MEDIA_TYPE)], None)
            .await?;
        if sent.response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: self.label.clone(),
                key: key.to_string(),
            });
        }
        if !sent.response.status().is_success() {
            return Err(self.fail(sent).await);
        }
        Ok(sent)
    }

    async fn exists(
        &self,
        repository: &str,
        rest: &str,
        scope: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(repository, rest);
        let sent = self
            .send(
                Method::HEAD,
                &url,
                scope,
                &[("accept", MANIFEST_MEDIA_TYPE)],
                None,
            )
            .await?;
        match sent.response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(sent).await),
        }
    }

    /// A monolithic upload: POST for a session, PUT the bytes with their digest.
    async fn push_blob(&self, repository: &str, bytes: &[u8]) -> Result<String, RegistryError> {
        let digest = sha256_digest(bytes);
        let scope = format!("repository:{repository}:pull,push");
        if self
            .exists(repository, &format!("blobs/{digest}"), &scope)
            .await?
        {
            return Ok(digest);
        }
        let url = self.url(repository, "blobs/uploads/");
        let sent = self.send(Method::POST, &url, &scope, &[], None).await?;
        if sent.response.status() != StatusCode::ACCEPTED {
            return Err(self.fail(sent).await);
        }
        let location = sent
            .response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::BadResponse {
                url: url.clone(),
                expected: "an upload session (a Location header)".into(),
                detail: "no Location header".into(),
            })?;
        let mut upload = url::Url::parse(&url)
            .and_then(|base| base.join(location))
            .map_err(|err| RegistryError::BadResponse {
                url: url.clone(),
                expected: "an upload URL in Location".into(),
                detail: format!("{location}: {err}"),
            })?;
        upload.query_pairs_mut().append_pair("digest", &digest);
        let length = bytes.len().to_string();
        let sent = self
            .send(
                Method::PUT,
                upload.as_str(),
                &scope,
                &[
                    ("content-type", "application/octet-stream"),
                    ("content-length", &length),
                ],
                Some(Bytes::copy_from_slice(bytes)),
            )
            .await?;
        if sent.response.status() != StatusCode::CREATED {
            return Err(self.fail(sent).await);
        }
        Ok(digest)
    }

    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<(), RegistryError> {
        let url = self.url(repository, &format!("manifests/{reference}"));
        let scope = format!("repository:{repository}:pull,push");
        let body = serde_json::to_vec(manifest).map_err(|err| RegistryError::BadResponse {
            url: url.clone(),
            expected: "a manifest to send".into(),
            detail: err.to_string(),
        })?;
        let sent = self
            .send(
                Method::PUT,
                &url,
                &scope,
                &[("content-type", MANIFEST_MEDIA_TYPE)],
                Some(Bytes::from(body)),
            )
            .await?;
        if !sent.response.status().is_success() {
            return Err(self.fail(sent).await);
        }
        Ok(())
    }

    async fn tags_of(&self, repository: &str) -> Result<Option<Vec<String>>, RegistryError> {
        let url = self.url(repository, "tags/list");
        let scope = format!("repository:{repository}:pull");
        let sent = self.send(Method::GET, &url, &scope, &[], None).await?;
        if sent.response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !sent.response.status().is_success() {
            return Err(self.fail(sent).await);
        }
        let body = fetch::read_limited(sent.response, &url, "a tag list", MAX_JSON_BYTES).await?;
        #[derive(Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        let tags: Tags = fetch::json(&body, &url, "a tag list ({\"tags\": [...]})")?;
        Ok(Some(tags.tags.unwrap_or_default()))
    }
}

/// Versions among tags, oldest first.
fn semver_tags(tags: &[String]) -> Vec<String> {
    let mut versions: Vec<(semver::Version, &String)> = tags
        .iter()
        .filter_map(|t| Some((semver::Version::parse(t).ok()?, t)))
        .collect();
    versions.sort();
    versions.into_iter().map(|(_, t)| t.clone()).collect()
}

fn status_of(manifest: &Manifest) -> Status {
    manifest
        .annotations
        .get(ANNOTATION_STATUS)
        .and_then(|s| Status::parse(s))
        .unwrap_or_default()
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    tag.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

impl Registry for OciRegistry {
    async fn get(&self, key: &ExpertKey) -> Result<Fetched, RegistryError> {
        let repository = self.repository(key.repository());
        let manifest = self.manifest(key, &repository, &key.version).await?;
        let mut layers = manifest
            .layers
            .iter()
            .filter(|l| l.media_type == TEXT_MEDIA_TYPE);
        let (Some(layer), None) = (layers.next(), layers.next()) else {
            return Err(RegistryError::BadResponse {
                url: self.url(&repository, &format!("manifests/{}", key.version)),
                expected: format!("exactly one {TEXT_MEDIA_TYPE} layer"),
                detail: format!("{} layer(s) of that type", manifest.layers.len()),
            });
        };
        let text = self.blob(key, &repository, layer).await?;
        let artifact = Artifact::parse(key, text)?;
        let tags = manifest
            .annotations
            .get(ANNOTATION_TAGS)
            .map(|t| {
                t.split(',')
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Fetched {
            artifact,
            status: status_of(&manifest),
            tags,
        })
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, RegistryError> {
        let probe = ExpertKey::new(name, "0.0.0")?;
        let repository = self.repository(probe.repository());
        let Some(tags) = self.tags_of(&repository).await? else {
            return Err(RegistryError::NotFound {
                registry: self.label.clone(),
                key: name.to_string(),
            });
        };
        let versions = semver_tags(&tags);
        let manifests = futures_util::future::join_all(versions.iter().map(|version| {
            let key = ExpertKey {
                name: name.to_string(),
                version: version.clone(),
            };
            let repository = repository.clone();
            async move { self.manifest(&key, &repository, &key.version).await }
        }))
        .await;
        let mut out = Vec::new();
        for (version, manifest) in versions.into_iter().zip(manifests) {
            let manifest = manifest?;
            out.push(VersionInfo {
                version,
                status: status_of(&manifest),
                description: manifest.annotations.get(ANNOTATION_DESCRIPTION).cloned(),
            });
        }
        Ok(out)
    }

    async fn search(&self, text: &str) -> Result<Vec<Listing>, RegistryError> {
        let repositories = self.catalog().await?;
        let prefix = if self.namespace.is_empty() {
            String::new()
        } else {
            format!("{}/", self.namespace)
        };
        let mut listings = Vec::new();
        for repository in repositories {
            let Some(name) = repository
                .strip_prefix(&prefix)
                .and_then(name_of_repository)
            else {
                continue;
            };
            let Some(tags) = self.tags_of(&repository).await? else {
                continue;
            };
            let versions = semver_tags(&tags);
            let Some(latest) = versions.last() else {
                continue;
            };
            let key = ExpertKey::new(&name, latest)?;
            let description = self
                .manifest(&key, &repository, latest)
                .await
                .ok()
                .and_then(|m| m.annotations.get(ANNOTATION_DESCRIPTION).cloned());
            let haystack =
                format!("{name} {}", description.as_deref().unwrap_or("")).to_lowercase();
            if haystack.contains(&text.to_lowercase()) {
                listings.push(Listing {
                    name,
                    description,
                    versions,
                });
            }
        }
        Ok(listings)
    }

    async fn publish(&self, artifact: &Artifact) -> Result<(), RegistryError> {
        let key = &artifact.key;
        let repository = self.repository(key.repository());
        let scope = format!("repository:{repository}:pull,push");
        if self
            .exists(&repository, &format!("manifests/{}", key.version), &scope)
            .await?
        {
            return Err(RegistryError::AlreadyExists {
                registry: self.label.clone(),
                key: key.to_string(),
            });
        }
        let config_digest = self.push_blob(&repository, EMPTY_CONFIG).await?;
        let text_digest = self
            .push_blob(&repository, artifact.text.as_bytes())
            .await?;
        let expert = &artifact.expert;
        let mut annotations = BTreeMap::from([
            (ANNOTATION_VERSION.to_string(), key.version.clone()),
            (
                ANNOTATION_CREATED.to_string(),
                crate::time::rfc3339(crate::time::now_millis()),
            ),
            (
                ANNOTATION_STATUS.to_string(),
                Status::Available.as_str().to_string(),
            ),
            (
                ANNOTATION_DELEGATES.to_string(),
                expert.delegates().join(","),
            ),
            (
                ANNOTATION_TAGS.to_string(),
                expert.tags.as_deref().unwrap_or_default().join(","),
            ),
        ]);
        if let Some(description) = &expert.description {
            annotations.insert(ANNOTATION_DESCRIPTION.to_string(), description.clone());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.into()),
            artifact_type: Some(ARTIFACT_TYPE.into()),
            config: Descriptor {
                media_type: EMPTY_CONFIG_MEDIA_TYPE.into(),
                digest: config_digest,
                size: EMPTY_CONFIG.len() as u64,
                annotations: BTreeMap::new(),
            },
            layers: vec![Descriptor {
                media_type: TEXT_MEDIA_TYPE.into(),
                digest: text_digest,
                size: artifact.text.len() as u64,
                annotations: BTreeMap::from([(
                    ANNOTATION_TITLE.to_string(),
                    "expert.toml".to_string(),
                )]),
            }],
            annotations,
        };
        self.put_manifest(&repository, &key.version, &manifest)
            .await
    }

    async fn tag(&self, key: &ExpertKey, tags: &[String]) -> Result<(), RegistryError> {
        if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
            return Err(RegistryError::BadTag { tag: bad.clone() });
        }
        let repository = self.repository(key.repository());
        let manifest = self.manifest(key, &repository, &key.version).await?;
        for tag in tags {
            self.put_manifest(&repository, tag, &manifest).await?;
        }
        Ok(())
    }

    async fn set_status(&self, key: &ExpertKey, status: Status) -> Result<(), RegistryError> {
        let repository = self.repository(key.repository());
        let mut manifest = self.manifest(key, &repository, &key.version).await?;
        manifest
            .annotations
            .insert(ANNOTATION_STATUS.to_string(), status.as_str().to_string());
        // Same layer, same content digest: only the manifest's annotations change.
        self.put_manifest(&repository, &key.version, &manifest)
            .await
    }

    async fn unpublish(&self, key: &ExpertKey) -> Result<(), RegistryError> {
        let repository = self.repository(key.repository());
        let url = self.url(&repository, &format!("manifests/{}", key.version));
        let scope = format!("repository:{repository}:pull,push,delete");
        let sent = self
            .manifest_of_key(Method::HEAD, key, &url, &scope)
            .await?;
        let digest = sent
            .response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| RegistryError::BadResponse {
                url: url.clone(),
                expected: "a Docker-Content-Digest header".into(),
                detail: "missing".into(),
            })?;
        let url = self.url(&repository, &format!("manifests/{digest}"));
        let sent = self.send(Method::DELETE, &url, &scope, &[], None).await?;
        match sent.response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Err(RegistryError::Unsupported {
                    registry: self.label.clone(),
                    operation: "deleting manifests (deletes are disabled on this registry)".into(),
                })
            }
            _ => Err(self.fail(sent).await),
        }
    }
}

impl OciRegistry {
    /// Every repository of `/v2/_catalog`, page by page (`last=`, as its Link header says).
    async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        const PAGE: usize = 100;
        let mut repositories: Vec<String> = Vec::new();
        loop {
            let mut url = format!("{}/v2/_catalog?n={PAGE}", self.base);
            if let Some(last) = repositories.last() {
                url.push_str("&last=");
                url.extend(url::form_urlencoded::byte_serialize(last.as_bytes()));
            }
            let sent = self
                .send(Method::GET, &url, "registry:catalog:*", &[], None)
                .await
                .map_err(|err| match err {
                    RegistryError::Unauthorized { .. } => self.no_catalog(),
                    other => other,
                })?;
            if !sent.response.status().is_success() {
                return Err(self.no_catalog());
            }
            let more = sent.response.headers().contains_key(reqwest::header::LINK);
            let body =
                fetch::read_limited(sent.response, &url, "a catalog", MAX_JSON_BYTES).await?;
            #[derive(Deserialize)]
            struct Catalog {
                repositories: Option<Vec<String>>,
            }
            let page: Catalog = fetch::json(&body, &url, "a catalog ({\"repositories\": [...]})")?;
            let page = page.repositories.unwrap_or_default();
            let full = page.len() >= PAGE;
            repositories.extend(page);
            if !(more && full) {
                return Ok(repositories);
            }
        }
    }

    fn no_catalog(&self) -> RegistryError {
        RegistryError::Unsupported {
            registry: self.label.clone(),
            operation: "listing repositories (/v2/_catalog); use `perstack info NAME` instead"
                .into(),
        }
    }
}

/// `Basic realm=...` or `Bearer realm="...",service="...",scope="..."`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            value
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        params.insert(name.trim().to_ascii_lowercase(), value);
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// Basic credentials for `host`: `PERSTACK_REGISTRY_USERNAME`/`PERSTACK_REGISTRY_PASSWORD`, else
/// the `auths` entry of `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`).
fn credentials_for(host: &str) -> Option<(String, String)> {
    if let (Ok(user), Ok(password)) = (
        std::env::var("PERSTACK_REGISTRY_USERNAME"),
        std::env::var("PERSTACK_REGISTRY_PASSWORD"),
    ) {
        return Some((user, password));
    }
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    docker_credentials(&text, host)
}

fn docker_credentials(config_json: &str, host: &str) -> Option<(String, String)> {
    let config: serde_json::Value = serde_json::from_str(config_json).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(name, entry)| {
        let bare = name
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        bare.eq_ignore_ascii_case(host).then_some(entry)
    })?;
    if let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some((user.to_string(), password.to_string()));
    }
    let user = entry.get("username")?.as_str()?;
    let password = entry.get("password")?.as_str()?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge("Basic realm=\"test\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                "Bearer realm=\"https://ghcr.io/token\",service=\"ghcr.io\",scope=\"repository:acme/x:pull\""
            ),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:acme/x:pull".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn docker_config_auths() {
        let config = r#"{"auths":{"https://ghcr.io":{"auth":"dXNlcjpwYXNz"},"reg.local:5000":{"username":"u","password":"p"}}}"#;
        assert_eq!(
            docker_credentials(config, "ghcr.io"),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(
            docker_credentials(config, "reg.local:5000"),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(docker_credentials(config, "docker.io"), None);
        assert_eq!(docker_credentials("garbage", "ghcr.io"), None);
    }

    #[test]
    fn tags_and_versions() {
        assert!(valid_tag("1.2.0"));
        assert!(valid_tag("latest"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag("a/b"));
        let tags = vec!["latest".into(), "1.10.0".into(), "1.2.0".into()];
        assert_eq!(semver_tags(&tags), vec!["1.2.0", "1.10.0"]);
    }
}
