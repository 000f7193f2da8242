//! Picks and configures a provider from `[provider]` and the environment.
//!
//! Settings in the file win over env vars. Providers never read the process environment: the
//! caller passes it (merged with the dotenv files), so tests can inject their own.
//!
//! `[provider.setting]` keys read here: `baseUrl`, `headers`, `apiKey` (all providers);
//! `organization`, `project` (openai: sent as OpenAI-Organization / OpenAI-Project);
//! `resourceName`, `deployment` (default: the model), `apiVersion` (default 2024-10-21)
//! (azure-openai); `script` (replay: path relative to the project directory); `region`,
//! `profile` (amazon-bedrock: else AWS_REGION / AWS_DEFAULT_REGION / the profile's region, and
//! AWS_PROFILE; the endpoint from baseUrl, AWS_ENDPOINT_URL_BEDROCK_RUNTIME or AWS_ENDPOINT_URL);
//! `project`, `location` (google-vertex: else GOOGLE_VERTEX_PROJECT / GOOGLE_CLOUD_PROJECT / the
//! key file's project, and GOOGLE_VERTEX_LOCATION / GOOGLE_CLOUD_LOCATION / us-central1; baseUrl
//! or GOOGLE_VERTEX_BASE_URL replaces `https://LOCATION-aiplatform.googleapis.com/v1`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::anthropic::Anthropic;
use super::aws;
use super::bedrock::Bedrock;
use super::google::Google;
use super::google_auth::GoogleAuth;
use super::openai::OpenAi;
use super::providers::{self, AZURE_DEFAULT_API_VERSION};
use super::replay::Replay;
use super::vertex::Vertex;
use super::{LanguageModel, LlmError, http};
use crate::definition::{ProviderName, ProviderSetting};

pub fn build_provider(
    name: ProviderName,
    setting: Option<&ProviderSetting>,
    model: &str,
    env: &HashMap<String, String>,
    project_dir: &Path,
) -> Result<Arc<dyn LanguageModel>, LlmError> {
    let provider = name.as_str();
    let info = providers::info(name);
    let config_err = |message: String| LlmError::Config {
        provider: provider.to_string(),
        message,
    };
    let extra = |key: &str| {
        setting
            .and_then(|s| s.extra_str(key))
            .filter(|v| !v.is_empty())
    };
    let from_env = |var: Option<&str>| {
        var.and_then(|v| env.get(v))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let base_url = |default: Option<&str>| -> Result<Option<String>, LlmError> {
        let url = setting
            .and_then(|s| s.base_url.clone())
            .filter(|u| !u.is_empty())
            .or_else(|| from_env(info.base_url_env))
            .or_else(|| default.map(str::to_string));
        if let Some(url) = &url {
            let parsed =
                url::Url::parse(url).map_err(|e| config_err(format!("baseUrl {url:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(config_err(format!("baseUrl {url:?} must be http or https")));
            }
        }
        Ok(url.map(|u| u.trim_end_matches('/').to_string()))
    };
    let api_key = || -> Option<String> {
        extra("apiKey")
            .map(str::to_string)
            .or_else(|| from_env(info.api_key_env))
    };
    let required_key = || {
        api_key().ok_or_else(|| LlmError::MissingApiKey {
            provider: provider.to_string(),
            env: info.api_key_env.unwrap_or("an API key").to_string(),
        })
    };
    let headers: Vec<(String, String)> = setting
        .and_then(|s| s.headers.as_ref())
        .map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let need = |url: Option<String>| url.ok_or_else(|| config_err("baseUrl is required".into()));
    let limits = http::StreamLimits::from_env(env)?;

    Ok(match name {
        ProviderName::Anthropic => {
            let url = need(base_url(info.default_base_url)?)?;
            let mut client = Anthropic::new(model, url, required_key()?, headers)?;
            client.limits = limits;
            Arc::new(client)
        }
        ProviderName::Google => {
            let url = need(base_url(info.default_base_url)?)?;
            let mut client = Google::new(model, url, required_key()?, headers)?;
            client.limits = limits;
            Arc::new(client)
        }
        ProviderName::Openai => {
            let url = need(base_url(info.default_base_url)?)?;
            let mut headers = headers;
            if let Some(org) = extra("organization") {
                headers.push(("OpenAI-Organization".into(), org.to_string()));
            }
            if let Some(project) = extra("project") {
                headers.push(("OpenAI-Project".into(), project.to_string()));
            }
            let mut client = OpenAi::new(provider, model, &url, Some(required_key()?), headers)?;
            client.key_env = info.api_key_env;
            client.openai_dialect = true;
            client.responses_url = Some(format!("{}/responses", url.trim_end_matches('/')));
            client.limits = limits;
            Arc::new(client)
        }
        ProviderName::Deepseek => {
            let url = need(base_url(info.default_base_url)?)?;
            let mut client = OpenAi::new(provider, model, &url, Some(required_key()?), headers)?;
            client.key_env = info.api_key_env;
            client.limits = limits;
            Arc::new(client)
        }
        ProviderName::Ollama => {
            let url = need(base_url(info.default_base_url)?)?;
            // Local servers take no key; one is sent if given (e.g. behind a proxy).
            let mut client = OpenAi::new(provider, model, &url, api_key(), headers)?;
            client.limits = limits;
            Arc::new(client)
        }
        ProviderName::AzureOpenai => {
            let url = match base_url(None)? {
                Some(url) => url,
                None => {
                    let resource = extra("resourceName")
                        .map(str::to_string)
                        .or_else(|| from_env(Some("AZURE_RESOURCE_NAME")))
                        .ok_or_else(|| {
                            config_err(
                                "set baseUrl or resourceName (or AZURE_RESOURCE_NAME)".into(),
                            )
                        })?;
                    format!("https://{resource}.openai.azure.com")
                }
            };
            let deployment = extra("deployment").unwrap_or(model);
            let version = extra("apiVersion").unwrap_or(AZURE_DEFAULT_API_VERSION);
            let mut client =
                OpenAi::azure(model, &url, deployment, version, required_key()?, headers)?;
            client.limits = limits;
            Arc::new(client)
        }
        ProviderName::Replay => {
            let script = extra("script").ok_or_else(|| {
                config_err(
                    "replay needs `script` (a path relative to the project) in [provider.setting]"
                        .into(),
                )
            })?;
            Arc::new(Replay::from_file(project_dir.join(script), model)?)
        }
        ProviderName::AmazonBedrock => {
            let profile = aws::AwsProfile::load(extra("profile"), env);
            let region = extra("region")
                .map(str::to_string)
                .or_else(|| from_env(Some("AWS_REGION")))
                .or_else(|| from_env(Some("AWS_DEFAULT_REGION")))
                .or_else(|| profile.region().map(str::to_string))
                .ok_or_else(|| {
                    config_err(format!(
                        "no region: set region in [provider.setting], AWS_REGION, or region in profile {:?} of {}",
                        profile.name,
                        profile.config_file.display()
                    ))
                })?;
            let credentials = profile.credentials(env).ok_or_else(|| LlmError::MissingCredentials {
                provider: provider.to_string(),
                fix: format!(
                    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile {:?} to {} (AWS_PROFILE picks the profile)",
                    profile.name,
                    profile.credentials_file.display()
                ),
            })?;
            // The standard AWS endpoint overrides, service-specific first (VPC endpoints, proxies).
            let endpoint = match base_url(None)? {
                Some(url) => url,
                None => match from_env(Some("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"))
                    .or_else(|| from_env(Some("AWS_ENDPOINT_URL")))
                {
                    Some(url) => {
                        url::Url::parse(&url)
                            .map_err(|e| config_err(format!("AWS endpoint URL {url:?}: {e}")))?;
                        url.trim_end_matches('/').to_string()
                    }
                    None => Bedrock::regional_endpoint(&region),
                },
            };
            let mut client = Bedrock::new(model, region, endpoint, credentials, headers)?;
            client.limits = limits;
            Arc::new(client)
        }
        ProviderName::GoogleVertex => {
            let auth = Arc::new(GoogleAuth::from_env(env)?);
            let project = extra("project")
                .map(str::to_string)
                .or_else(|| from_env(Some("GOOGLE_VERTEX_PROJECT")))
                .or_else(|| from_env(Some("GOOGLE_CLOUD_PROJECT")))
                .or_else(|| auth.project_id.clone())
                .ok_or_else(|| {
                    config_err(format!(
                        "no project: set project in [provider.setting] or GOOGLE_VERTEX_PROJECT ({} names none)",
                        auth.source.display()
                    ))
                })?;
            let location = extra("location")
                .map(str::to_string)
                .or_else(|| from_env(Some("GOOGLE_VERTEX_LOCATION")))
                .or_else(|| from_env(Some("GOOGLE_CLOUD_LOCATION")))
                .unwrap_or_else(|| "us-central1".to_string());
            let mut client = Vertex::new(model, project, location, base_url(None)?, auth, headers)?;
            client.limits = limits;
            Arc::new(client)
        }
    })
}
