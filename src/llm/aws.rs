//! AWS credentials, region and SigV4 signing for Bedrock.
//!
//! Credentials come, like every AWS tool takes them, from `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else from the profile (`AWS_PROFILE`, or
//! `default`) in the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//! `~/.aws/credentials`) or config file (`AWS_CONFIG_FILE`, default `~/.aws/config`). The
//! environment is passed in, never read here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret and token never reach a log.
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Where the credentials and region were looked for, to say so when none were found.
pub struct AwsProfile {
    pub name: String,
    pub credentials_file: PathBuf,
    pub config_file: PathBuf,
    credentials: HashMap<String, String>,
    config: HashMap<String, String>,
}

impl AwsProfile {
    /// Reads the profile `name` (else `AWS_PROFILE`, else `default`) from the shared files.
    /// Missing files are fine: the environment may hold everything.
    pub fn load(name: Option<&str>, env: &HashMap<String, String>) -> Self {
        let var = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let name = name
            .or_else(|| var("AWS_PROFILE"))
            .unwrap_or("default")
            .to_string();
        let home = var("HOME").map(PathBuf::from).unwrap_or_default();
        let credentials_file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws/credentials"));
        let config_file = var("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws/config"));
        // The config file names sections `[profile NAME]`, except `[default]`.
        let config_section = if name == "default" {
            name.clone()
        } else {
            format!("profile {name}")
        };
        AwsProfile {
            credentials: read_section(&credentials_file, &name),
            config: read_section(&config_file, &config_section),
            name,
            credentials_file,
            config_file,
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.credentials
            .get(key)
            .or_else(|| self.config.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn region(&self) -> Option<&str> {
        self.config.get("region").map(String::as_str)
    }

    /// The environment's keys, else the profile's.
    pub fn credentials(&self, env: &HashMap<String, String>) -> Option<AwsCredentials> {
        let var = |k: &str| {
            env.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            return Some(AwsCredentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: var("AWS_SESSION_TOKEN"),
            });
        }
        Some(AwsCredentials {
            access_key_id: self.get("aws_access_key_id")?.to_string(),
            secret_access_key: self.get("aws_secret_access_key")?.to_string(),
            session_token: self.get("aws_session_token").map(str::to_string),
        })
    }
}

/// The `key = value` lines of `[section]` in an INI file; empty when the file or section is
/// missing.
fn read_section(path: &Path, section: &str) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    parse_section(&text, section)
}

fn parse_section(text: &str, section: &str) -> HashMap<String, String> {
    let mut values = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            values.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    values
}

/// What a signature is for: the region and the service's signing name.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// Signs a request with SigV4: the headers to add (`x-amz-date`, `authorization`, and
/// `x-amz-security-token` with temporary credentials). `headers` are signed as given.
pub fn sign_request(
    credentials: &AwsCredentials,
    scope: &Scope<'_>,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "perstack",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_keys_win_over_the_profile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let creds = dir.path().join("credentials");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s3cr3t\n\n[work]\naws_access_key_id=AKIDWORK\naws_secret_access_key=w\naws_session_token=tok\n",
        )
        .expect("write");
        let config = dir.path().join("config");
        std::fs::write(&config, "[profile work]\nregion = eu-west-3\n").expect("write");
        let files = [
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().expect("utf8")),
            ("AWS_CONFIG_FILE", config.to_str().expect("utf8")),
        ];
        let plain = env(&files);
        let default = AwsProfile::load(None, &plain);
        assert_eq!(
            default.credentials(&plain).map(|c| c.access_key_id),
            Some("AKIDFILE".into())
        );
        assert_eq!(default.region(), None);

        let work = AwsProfile::load(Some("work"), &plain);
        let got = work.credentials(&plain).expect("work creds");
        assert_eq!(got.session_token.as_deref(), Some("tok"));
        assert_eq!(work.region(), Some("eu-west-3"));

        let mut with_env = plain.clone();
        with_env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDENV".into());
        with_env.insert("AWS_SECRET_ACCESS_KEY".into(), "e".into());
        assert_eq!(
            work.credentials(&with_env).map(|c| c.access_key_id),
            Some("AKIDENV".into())
        );
        let nothing = env(&[("HOME", dir.path().join("nowhere").to_str().expect("utf8"))]);
        assert_eq!(AwsProfile::load(None, &nothing).credentials(&nothing), None);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let creds = AwsCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: "TOPSECRET".into(),
            session_token: Some("SESSIONTOKEN".into()),
        };
        let shown = format!("{creds:?}");
        assert!(shown.contains("AKID") && !shown.contains("TOPSECRET"));
        assert!(!shown.contains("SESSIONTOKEN"));
    }

    /// AWS's published SigV4 example (get-vanilla from the signature test suite).
    #[test]
    fn signature_matches_the_aws_test_suite() {
        let creds = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let headers = sign_request(
            &creds,
            &Scope {
                region: "us-east-1",
                service: "service",
            },
            "GET",
            "https://example.amazonaws.com/",
            &[("host".into(), "example.amazonaws.com".into())],
            b"",
            time,
        )
        .expect("sign");
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            auth,
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }
}
