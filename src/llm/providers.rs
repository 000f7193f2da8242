//! Every fact about a provider in one row: its environment variables, default endpoint and
//! model, wire format and prices. The definition layer names providers; the factory, the CLI and
//! the workbench's status bar read their facts from here, so adding a provider is one row here
//! plus one arm in `factory.rs`.

use crate::definition::ProviderName;

/// The shape of the bytes on the wire: which file of this module speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// Anthropic Messages (`anthropic.rs`).
    AnthropicMessages,
    /// OpenAI Chat Completions and the servers that copy it (`openai.rs`).
    OpenAiChat,
    /// Google Generative Language `streamGenerateContent` (`google.rs`).
    GoogleGenerate,
    /// Amazon Bedrock Runtime ConverseStream, SigV4-signed, event-stream framed (`bedrock.rs`).
    BedrockConverse,
    /// Vertex AI: Gemini or Claude by model name, Google OAuth (`vertex.rs`).
    Vertex,
    /// Answers from a script or a recording (`replay.rs`).
    Replay,
}

#[derive(Debug, Clone, Copy)]
pub struct ProviderInfo {
    pub name: ProviderName,
    /// The variable that holds the API key, where the provider takes one.
    pub api_key_env: Option<&'static str>,
    /// The variable that overrides the base URL.
    pub base_url_env: Option<&'static str>,
    /// Where requests go when neither the file nor the environment says.
    pub default_base_url: Option<&'static str>,
    /// The model used when neither the file nor `--model` names one.
    pub default_model: &'static str,
    pub wire: WireFormat,
}

pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// One row per provider, in [`ProviderName::ALL`] order.
pub const PROVIDERS: [ProviderInfo; 9] = [
    ProviderInfo {
        name: ProviderName::Anthropic,
        api_key_env: Some("ANTHROPIC_API_KEY"),
        base_url_env: Some("ANTHROPIC_BASE_URL"),
        default_base_url: Some("https://api.anthropic.com/v1"),
        default_model: "claude-sonnet-4-5",
        wire: WireFormat::AnthropicMessages,
    },
    ProviderInfo {
        name: ProviderName::Openai,
        api_key_env: Some("OPENAI_API_KEY"),
        base_url_env: Some("OPENAI_BASE_URL"),
        default_base_url: Some("https://api.openai.com/v1"),
        default_model: "gpt-4.1",
        wire: WireFormat::OpenAiChat,
    },
    ProviderInfo {
        name: ProviderName::Google,
        api_key_env: Some("GOOGLE_GENERATIVE_AI_API_KEY"),
        base_url_env: Some("GOOGLE_GENERATIVE_AI_BASE_URL"),
        default_base_url: Some("https://generativelanguage.googleapis.com/v1beta"),
        default_model: "gemini-2.5-flash",
        wire: WireFormat::GoogleGenerate,
    },
    ProviderInfo {
        name: ProviderName::Ollama,
        api_key_env: None,
        base_url_env: Some("OLLAMA_BASE_URL"),
        default_base_url: Some("http://localhost:11434/v1"),
        default_model: "qwen3:8b",
        wire: WireFormat::OpenAiChat,
    },
    ProviderInfo {
        name: ProviderName::AzureOpenai,
        api_key_env: Some("AZURE_API_KEY"),
        base_url_env: Some("AZURE_BASE_URL"),
        // Made from `resourceName` (or AZURE_RESOURCE_NAME) when no base URL is given.
        default_base_url: None,
        default_model: "gpt-4.1",
        wire: WireFormat::OpenAiChat,
    },
    ProviderInfo {
        name: ProviderName::AmazonBedrock,
        api_key_env: None,
        base_url_env: None,
        default_base_url: None,
        default_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        wire: WireFormat::BedrockConverse,
    },
    ProviderInfo {
        name: ProviderName::GoogleVertex,
        api_key_env: None,
        base_url_env: Some("GOOGLE_VERTEX_BASE_URL"),
        // Made from the location when no base URL is given.
        default_base_url: None,
        default_model: "gemini-2.5-flash",
        wire: WireFormat::Vertex,
    },
    ProviderInfo {
        name: ProviderName::Deepseek,
        api_key_env: Some("DEEPSEEK_API_KEY"),
        base_url_env: Some("DEEPSEEK_BASE_URL"),
        default_base_url: Some("https://api.deepseek.com/v1"),
        default_model: "deepseek-chat",
        wire: WireFormat::OpenAiChat,
    },
    ProviderInfo {
        name: ProviderName::Replay,
        api_key_env: None,
        base_url_env: None,
        default_base_url: None,
        default_model: "replay",
        wire: WireFormat::Replay,
    },
];

/// The row of `name`.
pub fn info(name: ProviderName) -> &'static ProviderInfo {
    // The table is in `ProviderName::ALL` order; a test keeps it so.
    let index = ProviderName::ALL
        .iter()
        .position(|p| *p == name)
        .unwrap_or(0);
    &PROVIDERS[index]
}

/// US dollars per million input and output tokens, matched by model-name prefix (the first
/// match wins, so longer prefixes come first). Prices move; this is a guide for an estimate.
const PRICES: &[(&str, f64, f64)] = &[
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5", 1.25, 10.0),
    ("o3", 2.0, 8.0),
    ("gemini-2.5-pro", 1.25, 10.0),
    ("gemini-2.5-flash", 0.3, 2.5),
    ("deepseek-chat", 0.27, 1.1),
];

/// The model's name as the price table writes it: Bedrock ids lose their cross-region prefix
/// (`us.`, `eu.`, `apac.`, `global.`) and publisher (`anthropic.`, `google.`); Vertex ids
/// their publisher path. Versions after the name (`-20250929-v1:0`, `@20250929`) are past the
/// prefix that is matched.
fn price_name(model: &str) -> &str {
    let mut name = model.rsplit('/').next().unwrap_or(model);
    for region in ["us.", "eu.", "apac.", "global.", "us-gov."] {
        if let Some(rest) = name.strip_prefix(region) {
            name = rest;
            break;
        }
    }
    for publisher in ["anthropic.", "google.", "openai.", "deepseek."] {
        if let Some(rest) = name.strip_prefix(publisher) {
            return rest;
        }
    }
    name
}

/// The estimated cost in dollars, or None for a model not in the table.
pub fn estimate_cost(model: &str, input_tokens: u64, output_tokens: u64) -> Option<f64> {
    let model = price_name(model);
    let (_, input, output) = PRICES
        .iter()
        .find(|(prefix, _, _)| model.starts_with(prefix))?;
    Some((input_tokens as f64 * input + output_tokens as f64 * output) / 1_000_000.0)
}

/// US dollars per use of a tool the provider runs, by model-name prefix and the tool's name
/// as the provider reports it. Anthropic bills web search at $10 per 1,000 searches (web fetch
/// is free); OpenAI $10 per 1,000 web searches on reasoning models and $25 on the others,
/// $2.50 per 1,000 file searches; Google $35 per 1,000 prompts grounded with Google Search.
/// Code execution is billed by container time, which no answer reports: not estimated.
const PROVIDER_TOOL_PRICES: &[(&str, &str, f64)] = &[
    ("claude-", "web_search", 0.01),
    ("gpt-5", "web_search", 0.01),
    ("o3", "web_search", 0.01),
    ("o4", "web_search", 0.01),
    ("gpt-4", "web_search", 0.025),
    ("gpt-", "file_search", 0.0025),
    ("o3", "file_search", 0.0025),
    ("o4", "file_search", 0.0025),
    ("gemini-", "googleSearch", 0.035),
];

/// The estimated cost in dollars of `uses` uses of the provider tool `tool`, or None when
/// the table has no per-use price for it.
pub fn provider_tool_cost(model: &str, tool: &str, uses: u64) -> Option<f64> {
    let model = price_name(model);
    let (_, _, price) = PROVIDER_TOOL_PRICES
        .iter()
        .find(|(prefix, name, _)| model.starts_with(prefix) && *name == tool)?;
    Some(uses as f64 * price)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_provider_in_order() {
        for (row, name) in PROVIDERS.iter().zip(ProviderName::ALL) {
            assert_eq!(row.name, name);
            assert_eq!(info(name).name, name);
        }
    }

    #[test]
    fn known_models_have_a_price_and_others_none() {
        let (input, output) = (1_000_000, 100_000);
        assert_eq!(estimate_cost("claude-sonnet-4-5", input, output), Some(4.5));
        assert_eq!(estimate_cost("gpt-4.1-mini", input, output), Some(0.56));
        assert_eq!(estimate_cost("replay", input, output), None);
    }

    #[test]
    fn web_searches_have_a_per_use_price() {
        assert_eq!(
            provider_tool_cost("claude-sonnet-4-5", "web_search", 3),
            Some(0.03)
        );
        assert_eq!(provider_tool_cost("gpt-4.1", "web_search", 2), Some(0.05));
        assert_eq!(
            provider_tool_cost("gemini-2.5-flash", "googleSearch", 1),
            Some(0.035)
        );
        assert_eq!(
            provider_tool_cost("claude-sonnet-4-5", "web_fetch", 3),
            None
        );
    }

    #[test]
    fn bedrock_and_vertex_ids_find_their_model_price() {
        let (input, output) = (1_000_000, 100_000);
        for id in [
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5@20250929",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ] {
            assert_eq!(estimate_cost(id, input, output), Some(4.5), "{id}");
        }
        assert_eq!(estimate_cost("gemini-2.5-pro", input, output), Some(2.25));
        assert_eq!(
            estimate_cost("us.amazon.nova-pro-v1:0", input, output),
            None
        );
    }
}
