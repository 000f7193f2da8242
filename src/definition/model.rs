//! The perstack.toml format as typed data.
//!
//! Optional fields stay `Option` so that a file loaded and written back says exactly what the user
//! wrote; defaults are applied by the accessor methods, in one place.

use indexmap::IndexMap;
use serde::Serialize;

pub const DEFAULT_MAX_STEPS: u64 = 100;
pub const DEFAULT_MAX_RETRIES: u64 = 5;
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;
pub const DEFAULT_VERSION: &str = "1.0.0";
pub const DEFAULT_ENV_PATHS: [&str; 2] = [".env", ".env.local"];
pub const BASE_SKILL_NAME: &str = "@perstack/base";
pub const MAX_INSTRUCTION_BYTES: usize = 20 * 1024;
pub const MAX_DESCRIPTION_CHARS: usize = 2048;
pub const MAX_TAGS: usize = 8;

/// A whole perstack.toml.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_budget: Option<ReasoningBudget>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_path: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<toml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perstack_api_base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perstack_base_skill_command: Option<Vec<String>>,
    /// Where registry Experts are published and fetched: `oci://HOST[:PORT]/NAMESPACE`, or the
    /// base URL of a Perstack registry API (default: `perstackApiBaseUrl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// `otel = true`: every run is exported as an OpenTelemetry trace (as with `--otel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otel: Option<bool>,
    /// `storage = "s3://bucket/prefix"`: jobs are stored there instead of under the workspace
    /// (as with `--storage`, which wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub experts: IndexMap<String, Expert>,
}

impl Config {
    pub fn max_steps(&self) -> u64 {
        self.max_steps.unwrap_or(DEFAULT_MAX_STEPS)
    }
    pub fn max_retries(&self) -> u64 {
        self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES)
    }
    pub fn timeout_ms(&self) -> u64 {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT_MS)
    }
    pub fn reasoning_budget(&self) -> ReasoningBudget {
        self.reasoning_budget.unwrap_or(ReasoningBudget::Low)
    }
    pub fn env_paths(&self) -> Vec<String> {
        match &self.env_path {
            Some(paths) => paths.clone(),
            None => DEFAULT_ENV_PATHS.iter().map(|p| p.to_string()).collect(),
        }
    }
    pub fn provider_name(&self) -> ProviderName {
        self.provider
            .as_ref()
            .map(|p| p.provider_name)
            .unwrap_or(ProviderName::Anthropic)
    }
}

/// How much the model may think before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningBudget {
    None,
    Minimal,
    Low,
    Medium,
    High,
    Tokens(u64),
}

impl ReasoningBudget {
    pub const NAMES: [&'static str; 5] = ["none", "minimal", "low", "medium", "high"];

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "minimal" => Self::Minimal,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            _ => return None,
        })
    }

    /// Thinking budget in tokens for providers that take a number (Anthropic, Gemini).
    pub fn budget_tokens(self) -> Option<u64> {
        match self {
            Self::None => None,
            Self::Minimal => Some(1024),
            Self::Low => Some(2048),
            Self::Medium => Some(5000),
            Self::High => Some(10000),
            Self::Tokens(0) => None,
            Self::Tokens(n) => Some(n),
        }
    }
}

impl Serialize for ReasoningBudget {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::None => serializer.serialize_str("none"),
            Self::Minimal => serializer.serialize_str("minimal"),
            Self::Low => serializer.serialize_str("low"),
            Self::Medium => serializer.serialize_str("medium"),
            Self::High => serializer.serialize_str("high"),
            Self::Tokens(n) => serializer.serialize_u64(*n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    pub provider_name: ProviderName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<ProviderSetting>,
}

/// The providers Perstack knows, plus `replay` (offline answers from a script or a recording).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderName {
    Anthropic,
    Openai,
    Google,
    Ollama,
    AzureOpenai,
    AmazonBedrock,
    GoogleVertex,
    Deepseek,
    Replay,
}

impl ProviderName {
    pub const ALL: [ProviderName; 9] = [
        Self::Anthropic,
        Self::Openai,
        Self::Google,
        Self::Ollama,
        Self::AzureOpenai,
        Self::AmazonBedrock,
        Self::GoogleVertex,
        Self::Deepseek,
        Self::Replay,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::Openai => "openai",
            Self::Google => "google",
            Self::Ollama => "ollama",
            Self::AzureOpenai => "azure-openai",
            Self::AmazonBedrock => "amazon-bedrock",
            Self::GoogleVertex => "google-vertex",
            Self::Deepseek => "deepseek",
            Self::Replay => "replay",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The provider tools (Perstack's names) this provider runs for `model`. Vertex offers
    /// Google's for Gemini and Anthropic's for Claude; replay answers from a script, so it
    /// takes every name.
    pub fn provider_tools(self, model: &str) -> &'static [&'static str] {
        const ANTHROPIC: &[&str] = &["webSearch", "webFetch", "codeExecution"];
        const OPENAI: &[&str] = &[
            "webSearch",
            "fileSearch",
            "codeInterpreter",
            "imageGeneration",
        ];
        const GOOGLE: &[&str] = &[
            "googleSearch",
            "codeExecution",
            "urlContext",
            "fileSearch",
            "googleMaps",
        ];
        const EVERY: &[&str] = &[
            "webSearch",
            "webFetch",
            "codeExecution",
            "fileSearch",
            "codeInterpreter",
            "imageGeneration",
            "googleSearch",
            "urlContext",
            "googleMaps",
        ];
        match self {
            Self::Anthropic => ANTHROPIC,
            Self::Openai | Self::AzureOpenai => OPENAI,
            Self::Google => GOOGLE,
            Self::GoogleVertex if model.starts_with("claude") => ANTHROPIC,
            Self::GoogleVertex => GOOGLE,
            Self::Replay => EVERY,
            Self::Ollama | Self::Deepseek | Self::AmazonBedrock => &[],
        }
    }
}

impl std::fmt::Display for ProviderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[provider.setting]`: the common fields typed, provider-specific ones kept as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSetting {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<IndexMap<String, String>>,
    /// organization, project, name (OpenAI); resourceName, apiVersion, deployment (Azure);
    /// script / recording (replay); anything else a provider takes.
    #[serde(flatten)]
    pub extra: IndexMap<String, toml::Value>,
}

impl ProviderSetting {
    pub fn extra_str(&self, key: &str) -> Option<&str> {
        self.extra.get(key).and_then(|v| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Expert {
    pub instruction: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegates: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_runtime_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skills: Option<IndexMap<String, Skill>>,
    /// Tools the provider runs itself (`webSearch`, `codeExecution`, ...): see
    /// [`ProviderName::provider_tools`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_tools: Option<Vec<String>>,
    /// Options per provider tool, kept as written (`webSearch = { maxUses = 3 }`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_tool_options: Option<IndexMap<String, toml::Value>>,
    /// Anthropic Agent Skills loaded into the provider's container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_skills: Option<Vec<ProviderSkill>>,
}

/// An Anthropic Agent Skill: one Anthropic publishes, or one the project defines.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ProviderSkill {
    #[serde(rename_all = "camelCase")]
    Builtin {
        skill_id: String,
    },
    Custom {
        name: String,
        definition: String,
    },
}

impl ProviderSkill {
    pub const BUILTIN_IDS: [&'static str; 4] = ["pdf", "docx", "pptx", "xlsx"];
}

impl Expert {
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or(DEFAULT_VERSION)
    }

    pub fn delegates(&self) -> &[String] {
        self.delegates.as_deref().unwrap_or(&[])
    }

    /// The skills in force: an Expert without a `skills` table gets the base skill alone.
    pub fn effective_skills(&self) -> IndexMap<String, Skill> {
        match &self.skills {
            Some(skills) => skills.clone(),
            None => IndexMap::from([(BASE_SKILL_NAME.to_string(), Skill::base())]),
        }
    }
}

/// The name a delegate is offered under: the last `/` segment of its key, without a version.
pub fn delegate_tool_name(expert_key: &str) -> &str {
    let last = expert_key.rsplit('/').next().unwrap_or(expert_key);
    match last.find('@') {
        Some(0) | None => last,
        Some(at) => &last[..at],
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Skill {
    #[serde(rename = "mcpStdioSkill")]
    McpStdio(McpStdioSkill),
    #[serde(rename = "mcpSseSkill")]
    McpSse(McpSseSkill),
    #[serde(rename = "interactiveSkill")]
    Interactive(InteractiveSkill),
}

impl Skill {
    pub const TYPES: [&'static str; 3] = ["mcpStdioSkill", "mcpSseSkill", "interactiveSkill"];

    pub fn base() -> Self {
        Skill::McpStdio(McpStdioSkill {
            command: "npx".into(),
            package_name: Some(BASE_SKILL_NAME.into()),
            args: None,
            description: None,
            rule: None,
            pick: None,
            omit: None,
            required_env: None,
            lazy_init: None,
            allowed_domains: None,
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Skill::McpStdio(_) => "mcpStdioSkill",
            Skill::McpSse(_) => "mcpSseSkill",
            Skill::Interactive(_) => "interactiveSkill",
        }
    }

    pub fn rule(&self) -> Option<&str> {
        match self {
            Skill::McpStdio(s) => s.rule.as_deref(),
            Skill::McpSse(s) => s.rule.as_deref(),
            Skill::Interactive(s) => s.rule.as_deref(),
        }
    }

    pub fn description(&self) -> Option<&str> {
        match self {
            Skill::McpStdio(s) => s.description.as_deref(),
            Skill::McpSse(s) => s.description.as_deref(),
            Skill::Interactive(s) => s.description.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpStdioSkill {
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pick: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omit: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_env: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lazy_init: Option<bool>,
    /// Hosts the server may reach through the sandbox's proxy (exact or `*.` wildcards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
}

impl McpStdioSkill {
    /// `npx` + packageName means `npx -y <packageName>`; `uvx` + packageName means `uvx <pkg>`.
    pub fn command_line(&self) -> (String, Vec<String>) {
        match (&self.package_name, &self.args) {
            (Some(package), _) if self.command == "npx" => {
                ("npx".into(), vec!["-y".into(), package.clone()])
            }
            (Some(package), _) => (self.command.clone(), vec![package.clone()]),
            (None, Some(args)) => (self.command.clone(), args.clone()),
            (None, None) => (self.command.clone(), Vec::new()),
        }
    }

    /// True when this entry names the built-in base skill rather than a process to spawn.
    pub fn is_base(&self) -> bool {
        self.package_name.as_deref() == Some(BASE_SKILL_NAME)
            || self
                .args
                .as_ref()
                .is_some_and(|args| args.iter().any(|a| a == BASE_SKILL_NAME))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpSseSkill {
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pick: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omit: Option<Vec<String>>,
    /// Hosts this skill may use; when given, the endpoint's host must be one of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InteractiveSkill {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub tools: IndexMap<String, InteractiveTool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InteractiveTool {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema, kept as the string the user wrote (validated to be an object schema).
    pub input_json_schema: String,
}

impl InteractiveTool {
    pub fn input_schema(&self) -> serde_json::Value {
        serde_json::from_str(&self.input_json_schema)
            .unwrap_or_else(|_| serde_json::json!({"type": "object"}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegate_tool_names_use_the_last_segment_without_version() {
        assert_eq!(delegate_tool_name("researcher"), "researcher");
        assert_eq!(delegate_tool_name("@acme/writer"), "writer");
        assert_eq!(delegate_tool_name("@acme/writer@1.2.0"), "writer");
        assert_eq!(delegate_tool_name("team/sub/deep"), "deep");
    }

    #[test]
    fn npx_package_runs_with_yes_flag() {
        let Skill::McpStdio(base) = Skill::base() else {
            unreachable!()
        };
        assert_eq!(
            base.command_line(),
            (
                "npx".to_string(),
                vec!["-y".to_string(), BASE_SKILL_NAME.to_string()]
            )
        );
        assert!(base.is_base());
    }

    #[test]
    fn reasoning_budget_maps_to_tokens() {
        assert_eq!(ReasoningBudget::Low.budget_tokens(), Some(2048));
        assert_eq!(ReasoningBudget::None.budget_tokens(), None);
        assert_eq!(ReasoningBudget::Tokens(777).budget_tokens(), Some(777));
    }
}
