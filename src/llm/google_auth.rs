//! Google OAuth access tokens for Vertex AI, from a service-account key file (a JWT signed with
//! its RS256 key, exchanged at its `token_uri`) or from application-default credentials of a
//! person (`authorized_user`: a refresh token exchanged the same way). A token is cached until
//! a minute before it expires, so one run asks once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::LlmError;

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// A token this close to its expiry is renewed before use.
const EARLY_RENEWAL: Duration = Duration::from_secs(60);
const PROVIDER: &str = "google-vertex";

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    quota_project_id: Option<String>,
}

enum Grant {
    ServiceAccount {
        email: String,
        key: Arc<ring::signature::RsaKeyPair>,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
    },
}

/// One source of tokens, shared by every request of a provider.
pub struct GoogleAuth {
    grant: Grant,
    pub token_uri: String,
    /// The project the key file names, used when no project is set.
    pub project_id: Option<String>,
    /// Where the credentials came from, named in errors.
    pub source: PathBuf,
    cached: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for GoogleAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleAuth")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn config_err(message: String) -> LlmError {
    LlmError::Config {
        provider: PROVIDER.into(),
        message,
    }
}

impl GoogleAuth {
    /// `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's application-default credentials file.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, LlmError> {
        let var = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let path = match var("GOOGLE_APPLICATION_CREDENTIALS") {
            Some(path) => PathBuf::from(path),
            None => {
                let config = var("CLOUDSDK_CONFIG")
                    .map(PathBuf::from)
                    .or_else(|| var("HOME").map(|h| Path::new(h).join(".config/gcloud")))
                    .unwrap_or_default();
                let adc = config.join("application_default_credentials.json");
                if !adc.exists() {
                    return Err(LlmError::MissingCredentials {
                        provider: PROVIDER.into(),
                        fix: format!(
                            "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run `gcloud auth application-default login` (looked for {})",
                            adc.display()
                        ),
                    });
                }
                adc
            }
        };
        Self::from_file(&path)
    }

    pub fn from_file(path: &Path) -> Result<Self, LlmError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_err(format!(
                "cannot read Google credentials {}: {e} (check GOOGLE_APPLICATION_CREDENTIALS)",
                path.display()
            ))
        })?;
        let key: KeyFile = serde_json::from_str(&text).map_err(|e| {
            config_err(format!(
                "{} is not a Google credentials JSON file: {e}",
                path.display()
            ))
        })?;
        let grant = match key.kind.as_str() {
            "service_account" => Grant::ServiceAccount {
                key: Arc::new(parse_private_key(&key.private_key).map_err(|e| {
                    config_err(format!(
                        "{}: private_key is not a PKCS#8 RSA key: {e}",
                        path.display()
                    ))
                })?),
                email: key.client_email,
            },
            "authorized_user" => Grant::AuthorizedUser {
                client_id: key.client_id,
                client_secret: key.client_secret,
                refresh_token: key.refresh_token,
            },
            other => {
                return Err(config_err(format!(
                    "{}: credentials of type {other:?} are not supported; use a service-account key or `gcloud auth application-default login`",
                    path.display()
                )));
            }
        };
        Ok(GoogleAuth {
            grant,
            token_uri: key
                .token_uri
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
            project_id: key.project_id.or(key.quota_project_id),
            source: path.to_path_buf(),
            cached: Mutex::new(None),
        })
    }

    /// The signed JWT a service account exchanges for a token, issued at `now`.
    fn assertion(&self, now: SystemTime) -> Result<Option<String>, LlmError> {
        let Grant::ServiceAccount { email, key } = &self.grant else {
            return Ok(None);
        };
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"iss": email, "scope": SCOPE, "aud": self.token_uri, "iat": iat, "exp": iat + 3600})
                .to_string(),
        );
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| {
            config_err(format!(
                "cannot sign with the key in {}",
                self.source.display()
            ))
        })?;
        Ok(Some(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    pub async fn token(&self, client: &reqwest::Client) -> Result<String, LlmError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() + EARLY_RENEWAL < *expires
        {
            return Ok(token.clone());
        }
        let form: Vec<(&str, String)> = match &self.grant {
            Grant::ServiceAccount { .. } => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                (
                    "assertion",
                    self.assertion(SystemTime::now())?.unwrap_or_default(),
                ),
            ],
            Grant::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
            } => vec![
                ("grant_type", "refresh_token".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
                ("refresh_token", refresh_token.clone()),
            ],
        };
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let fail = |message: String| LlmError::Http {
            provider: PROVIDER.into(),
            status: 401,
            message,
            retry_after: None,
            fix: Some(format!(
                "check the Google credentials in {}",
                self.source.display()
            )),
        };
        let response = client
            .post(&self.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| LlmError::Connection {
                provider: PROVIDER.into(),
                message: format!("token endpoint {}: {e}", self.token_uri),
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| LlmError::Connection {
            provider: PROVIDER.into(),
            message: format!("token endpoint {}: {e}", self.token_uri),
        })?;
        if !status.is_success() {
            return Err(fail(format!(
                "the token endpoint answered HTTP {}: {}",
                status.as_u16(),
                super::http::error_message(&bytes)
            )));
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|e| {
            fail(format!(
                "the token endpoint's answer has no access_token: {e}"
            ))
        })?;
        let expires = Instant::now() + Duration::from_secs(answer.expires_in.unwrap_or(3600));
        *cached = Some((answer.access_token.clone(), expires));
        Ok(answer.access_token)
    }
}

fn parse_private_key(pem: &str) -> Result<ring::signature::RsaKeyPair, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    let der = STANDARD.decode(body).map_err(|e| e.to_string())?;
    ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_file_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.json");
        std::fs::write(
            &path,
            r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#,
        )
        .expect("write");
        let err = GoogleAuth::from_file(&path).expect_err("bad key");
        assert!(err.to_string().contains("key.json"), "{err}");
        assert!(err.to_string().contains("PKCS#8"), "{err}");
        let env: HashMap<String, String> = [(
            "HOME".to_string(),
            dir.path().join("none").display().to_string(),
        )]
        .into();
        let err = GoogleAuth::from_env(&env).expect_err("nothing");
        assert!(
            err.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{err}"
        );
    }
}
