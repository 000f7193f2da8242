//! From the spanned TOML tree to [`Config`], checking each field where it stands.

use super::diagnostic::closest;
use super::model::*;
use super::tree::{Node, Table, Value};
use super::walk::{Place, Span, Walker, describe, entry};
use indexmap::IndexMap;

const TOP_KEYS: &[&str] = &[
    "model",
    "reasoningBudget",
    "maxSteps",
    "maxRetries",
    "timeout",
    "provider",
    "experts",
    "envPath",
    "runtime",
    "perstackApiBaseUrl",
    "perstackBaseSkillCommand",
    "registry",
    "otel",
    "storage",
];
const PROVIDER_KEYS: &[&str] = &["providerName", "setting"];
const EXPERT_KEYS: &[&str] = &[
    "instruction",
    "description",
    "version",
    "delegates",
    "tags",
    "skills",
    "minRuntimeVersion",
    "providerTools",
    "providerToolOptions",
    "providerSkills",
];
const STDIO_KEYS: &[&str] = &[
    "type",
    "command",
    "packageName",
    "args",
    "description",
    "rule",
    "pick",
    "omit",
    "requiredEnv",
    "lazyInit",
    "allowedDomains",
];
const SSE_KEYS: &[&str] = &[
    "type",
    "endpoint",
    "description",
    "rule",
    "pick",
    "omit",
    "allowedDomains",
];
const INTERACTIVE_KEYS: &[&str] = &["type", "description", "rule", "tools"];
const INTERACTIVE_TOOL_KEYS: &[&str] = &["description", "inputJsonSchema"];

/// Where the parts of each Expert stand, for the checks that look across Experts. Names are
/// borrowed from the file.
#[derive(Debug, Default)]
pub struct ExpertSpans<'t> {
    pub key: Span,
    pub skills_key: Option<Span>,
    /// Every skill name written, including skills whose own definition has errors.
    pub skill_names: Vec<&'t str>,
    pub delegates: Vec<Span>,
}

pub type SpanMap<'t> = IndexMap<&'t str, ExpertSpans<'t>, foldhash::fast::RandomState>;

pub fn config<'t>(walker: &mut Walker, root: Table<'t, '_>) -> (Config, SpanMap<'t>) {
    walker.check_keys(root, TOP_KEYS, Place::Top);
    let mut spans = SpanMap::default();
    let mut config = Config {
        model: walker.string(root, "model", Place::Top),
        reasoning_budget: reasoning_budget(walker, root),
        max_steps: walker.integer(root, "maxSteps", Place::Top, 1),
        max_retries: walker.integer(root, "maxRetries", Place::Top, 0),
        timeout: walker.integer(root, "timeout", Place::Top, 1),
        env_path: walker.strings(root, "envPath", Place::Top),
        runtime: entry(root, "runtime").and_then(|(_, v)| walker.plain_value(v)),
        perstack_api_base_url: walker
            .str(root, "perstackApiBaseUrl", Place::Top)
            .and_then(|(url, span)| check_url(walker, "perstackApiBaseUrl", url, span)),
        perstack_base_skill_command: base_skill_command(walker, root),
        registry: registry_address(walker, root),
        provider: walker
            .table(root, "provider", Place::Top)
            .and_then(|(table, span)| provider(walker, table, span)),
        otel: walker.boolean(root, "otel", Place::Top),
        storage: walker
            .str(root, "storage", Place::Top)
            .and_then(|(url, span)| check_storage_url(walker, url, span)),
        experts: IndexMap::new(),
    };
    // Provider tools are checked against the provider and model the file names.
    let offered = config
        .provider_name()
        .provider_tools(config.model.as_deref().unwrap_or_default());
    let provider_name = config.provider_name();
    if let Some((experts, experts_span)) = walker.table(root, "experts", Place::Top) {
        config.experts.reserve(experts.len());
        spans.reserve(experts.len());
        for (key, value) in experts.iter() {
            let name: &str = key.get_ref();
            let place = Place::Expert(name);
            let help = || {
                Some(format!(
                    "write it as [experts.\"{name}\"] with an `instruction`"
                ))
            };
            let Some(table) = walker.expect_table(value, place, help) else {
                continue;
            };
            check_expert_key(walker, name, key.span());
            let mut expert_spans = ExpertSpans {
                key: key.span(),
                ..Default::default()
            };
            let offer = Offer {
                provider: provider_name,
                tools: offered,
            };
            if let Some(parsed) = expert(walker, name, table, key.span(), &mut expert_spans, offer)
            {
                config.experts.insert(name.to_owned(), parsed);
            }
            spans.insert(name, expert_spans);
        }
        if experts.is_empty() {
            walker.warn(
                "no-experts",
                experts_span,
                "the `experts` table is empty".into(),
                Some("add an Expert: [experts.\"my-expert\"] with an `instruction`".into()),
            );
        }
    }
    (config, spans)
}

fn reasoning_budget(walker: &mut Walker, root: Table<'_, '_>) -> Option<ReasoningBudget> {
    let (_, value) = entry(root, "reasoningBudget")?;
    let help = format!(
        "use one of {} or a number of tokens",
        ReasoningBudget::NAMES
            .map(|n| format!("\"{n}\""))
            .join(", ")
    );
    match value.value() {
        Value::String(name) => match ReasoningBudget::from_name(name) {
            Some(budget) => Some(budget),
            None => {
                walker.error(
                    "invalid-value",
                    value.span(),
                    format!("`reasoningBudget` \"{name}\" is not a known budget"),
                    Some(match closest(name, ReasoningBudget::NAMES) {
                        Some(s) => format!("did you mean \"{s}\"? ({help})"),
                        None => help,
                    }),
                );
                None
            }
        },
        Value::Integer(..) => walker
            .integer(root, "reasoningBudget", Place::Top, 0)
            .map(ReasoningBudget::Tokens),
        other => {
            walker.error(
                "wrong-type",
                value.span(),
                format!(
                    "`reasoningBudget` must be a string or a number, found {}",
                    describe(other)
                ),
                Some(help),
            );
            None
        }
    }
}

fn base_skill_command(walker: &mut Walker, root: Table<'_, '_>) -> Option<Vec<String>> {
    let (_, value) = entry(root, "perstackBaseSkillCommand")?;
    if let Value::String(command) = value.value() {
        return Some(vec![command.to_string()]);
    }
    walker.strings(root, "perstackBaseSkillCommand", Place::Top)
}

/// `storage = "s3://bucket"` or `"s3://bucket/prefix"`.
fn check_storage_url(walker: &mut Walker, text: &str, span: Span) -> Option<String> {
    let parsed = url::Url::parse(text);
    let bucket = parsed.as_ref().ok().and_then(|url| url.host_str());
    match (&parsed, bucket) {
        (Ok(url), Some(bucket)) if url.scheme() == "s3" && !bucket.is_empty() => {
            Some(text.to_owned())
        }
        _ => {
            walker.error(
                "invalid-storage",
                span,
                format!("`storage` \"{text}\" is not an S3 location"),
                Some(
                    "write it as \"s3://bucket\" or \"s3://bucket/prefix\", or remove it to keep \
                     jobs under the workspace's perstack/jobs"
                        .into(),
                ),
            );
            None
        }
    }
}

fn check_url(walker: &mut Walker, key: &str, text: &str, span: Span) -> Option<String> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Some(text.to_owned())
        }
        Ok(_) if !text.contains("://") => {
            walker.error(
                "invalid-url",
                span,
                format!("`{key}` \"{text}\" is not a URL: it has no scheme such as http://"),
                Some(format!(
                    "write it as \"http://{text}\" or \"https://{text}\""
                )),
            );
            None
        }
        Ok(url) => {
            walker.error(
                "invalid-url",
                span,
                format!(
                    "`{key}` \"{text}\" has scheme `{}`; only http and https are supported",
                    url.scheme()
                ),
                Some("write a full URL such as \"https://example.com/v1\"".into()),
            );
            None
        }
        Err(err) => {
            walker.error(
                "invalid-url",
                span,
                format!("`{key}` \"{text}\" is not a URL ({err})"),
                Some(
                    "write a full URL with its scheme, such as \"http://localhost:8080/mcp\""
                        .into(),
                ),
            );
            None
        }
    }
}

fn provider(walker: &mut Walker, table: Table<'_, '_>, table_span: Span) -> Option<Provider> {
    walker.check_keys(table, PROVIDER_KEYS, Place::Provider);
    let names = ProviderName::ALL.map(|p| p.as_str());
    let provider_name = match walker.str(table, "providerName", Place::Provider) {
        Some((name, span)) => match ProviderName::from_name(name) {
            Some(p) => Some(p),
            None => {
                let valid = names.join(", ");
                walker.error(
                    "unknown-provider",
                    span,
                    format!("unknown providerName \"{name}\""),
                    Some(match closest(name, names) {
                        Some(s) => format!("did you mean \"{s}\"? Valid providers: {valid}"),
                        None => format!("valid providers: {valid}"),
                    }),
                );
                None
            }
        },
        None => {
            if entry(table, "providerName").is_none() {
                walker.error(
                    "missing-field",
                    table_span,
                    "[provider] has no `providerName`".into(),
                    Some(format!(
                        "add providerName = \"anthropic\" (one of: {})",
                        names.join(", ")
                    )),
                );
            }
            None
        }
    };
    let setting = walker
        .table(table, "setting", Place::Provider)
        .map(|(setting, _)| provider_setting(walker, setting));
    Some(Provider {
        provider_name: provider_name?,
        setting,
    })
}

fn provider_setting(walker: &mut Walker, table: Table<'_, '_>) -> ProviderSetting {
    let mut setting = ProviderSetting {
        base_url: walker
            .str(table, "baseUrl", Place::ProviderSetting)
            .and_then(|(url, span)| check_url(walker, "baseUrl", url, span)),
        ..Default::default()
    };
    if let Some((headers, _)) = walker.table(table, "headers", Place::ProviderSetting) {
        let mut map = IndexMap::new();
        for (name, value) in headers.iter() {
            match value.value() {
                Value::String(v) => {
                    map.insert(name.get_ref().to_string(), v.to_string());
                }
                other => walker.error(
                    "wrong-type",
                    value.span(),
                    format!(
                        "header `{}` must be a string, found {}",
                        name.get_ref(),
                        describe(other)
                    ),
                    None,
                ),
            }
        }
        setting.headers = Some(map);
    }
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        if name != "baseUrl" && name != "headers" {
            if let Some(v) = walker.plain_value(value) {
                setting.extra.insert(name.to_string(), v);
            }
        }
    }
    setting
}

fn check_expert_key(walker: &mut Walker, name: &str, span: Span) {
    if name.trim().is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        walker.error(
            "invalid-expert-key",
            span,
            format!("expert key \"{name}\" is empty or contains spaces"),
            Some("use lowercase words joined by - or _, such as \"code-reviewer\"".into()),
        );
    } else if delegate_tool_name(name).is_empty() {
        walker.error(
            "invalid-expert-key",
            span,
            format!("expert key \"{name}\" ends with `/`, so it has no name to be called by"),
            Some("end the key with a name, such as \"@acme/reviewer\"".into()),
        );
    }
}

/// What the file's provider runs itself, for checking `providerTools`.
#[derive(Clone, Copy)]
struct Offer {
    provider: ProviderName,
    tools: &'static [&'static str],
}

fn expert<'t>(
    walker: &mut Walker,
    name: &str,
    table: Table<'t, '_>,
    key_span: Span,
    spans: &mut ExpertSpans<'t>,
    offer: Offer,
) -> Option<Expert> {
    let place = Place::Expert(name);
    walker.check_keys(table, EXPERT_KEYS, place);
    let instruction = match walker.str(table, "instruction", place) {
        Some((text, span)) => {
            if text.len() > MAX_INSTRUCTION_BYTES {
                walker.error(
                    "instruction-too-long",
                    span.start..span.start + 3,
                    format!(
                        "the instruction of {place} is {} bytes; at most {MAX_INSTRUCTION_BYTES} (20 KB) are allowed",
                        text.len()
                    ),
                    Some("move detail into files the Expert reads, or split it into delegate Experts".into()),
                );
            } else if text.trim().is_empty() {
                walker.error(
                    "missing-instruction",
                    span.clone(),
                    format!("the instruction of {place} is empty"),
                    Some("say what this Expert does and how".into()),
                );
            }
            Some(text.to_owned())
        }
        None => {
            if entry(table, "instruction").is_none() {
                walker.error(
                    "missing-instruction",
                    key_span.clone(),
                    format!("{place} has no `instruction`"),
                    Some(format!(
                        "add instruction = \"\"\"...\"\"\" under [experts.\"{name}\"], saying what the Expert does"
                    )),
                );
            }
            None
        }
    };
    let description = walker.str(table, "description", place).map(|(text, span)| {
        let chars = text.chars().count();
        if chars > MAX_DESCRIPTION_CHARS {
            walker.error(
                "description-too-long",
                span.start..span.start + 1,
                format!("the description of {place} has {chars} characters; at most {MAX_DESCRIPTION_CHARS} are allowed"),
                Some("keep the description to what a caller needs to choose this Expert".into()),
            );
        }
        text.to_owned()
    });
    let version = walker.str(table, "version", place).map(|(text, span)| {
        if semver::Version::parse(text).is_err() {
            walker.error(
                "invalid-version",
                span,
                format!("version \"{text}\" of {place} is not a semantic version"),
                Some("write it as MAJOR.MINOR.PATCH, such as \"1.0.0\"".into()),
            );
        }
        text.to_owned()
    });
    let delegates = walker.string_list(table, "delegates", place).map(|items| {
        spans.delegates = items.iter().map(|(_, span)| span).collect();
        items.to_owned_vec()
    });
    let tags = walker.string_list(table, "tags", place).map(|items| {
        if let Some((_, span)) = items.iter().nth(MAX_TAGS) {
            walker.error(
                "too-many-tags",
                span,
                format!(
                    "{place} has {} tags; at most {MAX_TAGS} are allowed",
                    items.len()
                ),
                Some("keep the tags that help people find this Expert".into()),
            );
        }
        for (tag, span) in items.iter() {
            if !valid_tag(tag) {
                walker.error(
                    "invalid-tag",
                    span,
                    format!("tag \"{tag}\" of {place} does not match [a-z0-9][a-z0-9_-]*"),
                    Some(format!("write it as \"{}\"", suggest_tag(tag))),
                );
            }
        }
        items.to_owned_vec()
    });
    let min_runtime_version = walker.string(table, "minRuntimeVersion", place);
    let skills = walker.table(table, "skills", place).map(|(skills, span)| {
        spans.skills_key = Some(span);
        spans.skill_names.reserve(skills.len());
        let mut map = IndexMap::with_capacity(skills.len());
        for (skill_key, value) in skills.iter() {
            let skill_name: &str = skill_key.get_ref();
            spans.skill_names.push(skill_name);
            if let Some(parsed) = skill(walker, name, skill_name, skill_key.span(), value) {
                map.insert(skill_name.to_owned(), parsed);
            }
        }
        map
    });
    let provider_tools = walker
        .string_list(table, "providerTools", place)
        .map(|items| {
            for (tool, span) in items.iter() {
                if !offer.tools.contains(&tool) {
                    let offered = if offer.tools.is_empty() {
                        format!("{} runs no provider tools", offer.provider.as_str())
                    } else {
                        format!(
                            "{} offers {}",
                            offer.provider.as_str(),
                            offer
                                .tools
                                .iter()
                                .map(|t| format!("\"{t}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    let suggestion = closest(tool, offer.tools.iter().copied())
                        .map(|c| format!("did you mean \"{c}\"? "))
                        .unwrap_or_default();
                    walker.error(
                        "unknown-provider-tool",
                        span,
                        format!(
                            "provider tool \"{tool}\" of {place} is not offered by {}",
                            offer.provider.as_str()
                        ),
                        Some(format!("{suggestion}{offered}")),
                    );
                }
            }
            items.to_owned_vec()
        });
    let provider_tool_options =
        walker
            .table(table, "providerToolOptions", place)
            .map(|(options, _)| {
                let mut map = IndexMap::with_capacity(options.len());
                for (tool, value) in options.iter() {
                    if let Some(value) = walker.plain_value(value) {
                        map.insert(tool.get_ref().to_string(), value);
                    }
                }
                map
            });
    let provider_skills = provider_skills(walker, table, place);
    Some(Expert {
        instruction: instruction?,
        description,
        version,
        delegates,
        tags,
        min_runtime_version,
        skills,
        provider_tools,
        provider_tool_options,
        provider_skills,
    })
}

/// `providerSkills = [{ type = "builtin", skillId = "pdf" }, { type = "custom", name, definition }]`.
fn provider_skills(
    walker: &mut Walker,
    table: Table<'_, '_>,
    place: Place<'_>,
) -> Option<Vec<ProviderSkill>> {
    let (_, value) = entry(table, "providerSkills")?;
    let Value::Array(items) = value.value() else {
        walker.error(
            "wrong-type",
            value.span(),
            format!("`providerSkills` in {place} must be a list of tables"),
            Some("write providerSkills = [{ type = \"builtin\", skillId = \"pdf\" }]".into()),
        );
        return None;
    };
    let mut skills = Vec::new();
    for item in items.iter() {
        let help = || {
            Some("write { type = \"builtin\", skillId = \"pdf\" } or { type = \"custom\", name = \"...\", definition = \"...\" }".to_string())
        };
        let Some(skill) = walker.expect_table(item, place, help) else {
            continue;
        };
        let kind = walker.str(skill, "type", place);
        match kind {
            Some(("builtin", _)) => {
                walker.check_keys(skill, &["type", "skillId"], place);
                match walker.str(skill, "skillId", place) {
                    Some((id, span)) if !ProviderSkill::BUILTIN_IDS.contains(&id) => walker.error(
                        "unknown-provider-skill",
                        span,
                        format!("builtin provider skill \"{id}\" of {place} does not exist"),
                        Some(format!(
                            "use one of {}",
                            ProviderSkill::BUILTIN_IDS
                                .map(|i| format!("\"{i}\""))
                                .join(", ")
                        )),
                    ),
                    Some((id, _)) => skills.push(ProviderSkill::Builtin {
                        skill_id: id.to_string(),
                    }),
                    None => walker.error(
                        "missing-field",
                        item.span(),
                        format!("a builtin provider skill of {place} has no `skillId`"),
                        help(),
                    ),
                }
            }
            Some(("custom", _)) => {
                walker.check_keys(skill, &["type", "name", "definition"], place);
                match (
                    walker.string(skill, "name", place),
                    walker.string(skill, "definition", place),
                ) {
                    (Some(name), Some(definition)) => {
                        skills.push(ProviderSkill::Custom { name, definition })
                    }
                    _ => walker.error(
                        "missing-field",
                        item.span(),
                        format!("a custom provider skill of {place} needs `name` and `definition`"),
                        help(),
                    ),
                }
            }
            Some((other, span)) => walker.error(
                "unknown-provider-skill",
                span,
                format!("provider skill type \"{other}\" of {place} is not builtin or custom"),
                help(),
            ),
            None => walker.error(
                "missing-field",
                item.span(),
                format!("a provider skill of {place} has no `type`"),
                help(),
            ),
        }
    }
    Some(skills)
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn suggest_tag(tag: &str) -> String {
    let cleaned: String = tag
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches(['-', '_']);
    if trimmed.is_empty() {
        "tag".into()
    } else {
        trimmed.into()
    }
}

fn skill(
    walker: &mut Walker,
    expert: &str,
    name: &str,
    key_span: Span,
    value: Node<'_, '_>,
) -> Option<Skill> {
    let place = Place::Skill {
        expert,
        skill: name,
    };
    let table = walker.expect_table(value, place, || None)?;
    let valid_types = || Skill::TYPES.join(", ");
    let Some((kind, kind_span)) = walker.str(table, "type", place) else {
        if entry(table, "type").is_none() {
            walker.error(
                "missing-field",
                key_span,
                format!("{place} has no `type`"),
                Some(format!(
                    "add type = \"mcpStdioSkill\" (one of: {})",
                    valid_types()
                )),
            );
        }
        return None;
    };
    match kind {
        "mcpStdioSkill" => stdio_skill(walker, table, place, key_span).map(Skill::McpStdio),
        "mcpSseSkill" => sse_skill(walker, table, place, key_span).map(Skill::McpSse),
        "interactiveSkill" => {
            interactive_skill(walker, table, place, key_span).map(Skill::Interactive)
        }
        other => {
            walker.error(
                "unknown-skill-type",
                kind_span,
                format!("{place} has unknown type \"{other}\""),
                Some(match closest(other, Skill::TYPES) {
                    Some(s) => format!("did you mean \"{s}\"? Valid types: {}", valid_types()),
                    None => format!("valid types: {}", valid_types()),
                }),
            );
            None
        }
    }
}

fn stdio_skill(
    walker: &mut Walker,
    table: Table<'_, '_>,
    place: Place<'_>,
    key_span: Span,
) -> Option<McpStdioSkill> {
    walker.check_keys(table, STDIO_KEYS, place);
    let command = walker.str(table, "command", place);
    if command.is_none() && entry(table, "command").is_none() {
        walker.error(
            "missing-field",
            key_span.clone(),
            format!("{place} has no `command`"),
            Some(
                "add command = \"npx\" (with packageName) or the server's executable (with args)"
                    .into(),
            ),
        );
    }
    if let Some((text, span)) = &command {
        if text.trim().is_empty() {
            walker.error(
                "missing-field",
                span.clone(),
                format!("`command` of {place} is empty"),
                None,
            );
        }
    }
    let package_name = walker.string(table, "packageName", place);
    let args = walker.strings(table, "args", place);
    match (&package_name, &args, entry(table, "args")) {
        (Some(_), Some(_), Some((args_key, _))) => walker.error(
            "package-and-args",
            args_key.span(),
            format!("{place} has both `packageName` and `args`; give exactly one"),
            Some("keep packageName for `npx`/`uvx` packages, or args for any other command".into()),
        ),
        (None, None, None) if entry(table, "packageName").is_none() => walker.error(
            "package-or-args",
            key_span,
            format!("{place} has neither `packageName` nor `args`; give exactly one"),
            Some(
                "add packageName = \"@scope/server\" (run with npx -y) or args = [\"server.js\"]"
                    .into(),
            ),
        ),
        _ => {}
    }
    Some(McpStdioSkill {
        command: command?.0.to_owned(),
        package_name,
        args,
        description: walker.string(table, "description", place),
        rule: walker.string(table, "rule", place),
        pick: walker.strings(table, "pick", place),
        omit: walker.strings(table, "omit", place),
        required_env: walker.strings(table, "requiredEnv", place),
        lazy_init: walker.boolean(table, "lazyInit", place),
        allowed_domains: walker.strings(table, "allowedDomains", place),
    })
}

fn sse_skill(
    walker: &mut Walker,
    table: Table<'_, '_>,
    place: Place<'_>,
    key_span: Span,
) -> Option<McpSseSkill> {
    walker.check_keys(table, SSE_KEYS, place);
    let endpoint = match walker.str(table, "endpoint", place) {
        Some((url, span)) => check_url(walker, "endpoint", url, span),
        None => {
            if entry(table, "endpoint").is_none() {
                walker.error(
                    "missing-field",
                    key_span,
                    format!("{place} has no `endpoint`"),
                    Some("add endpoint = \"http://localhost:8080/mcp\"".into()),
                );
            }
            None
        }
    };
    let allowed_domains = walker.strings(table, "allowedDomains", place);
    let endpoint = endpoint?;
    let host = url::Url::parse(&endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    if let (Some(domains), Some(host), Some((_, span))) =
        (&allowed_domains, host, walker.str(table, "endpoint", place))
    {
        if !crate::sandbox::domain_allowed(domains, host.trim_matches(['[', ']'])) {
            walker.error(
                "endpoint-not-allowed",
                span,
                format!("the endpoint host {host} of {place} is not in its `allowedDomains`"),
                Some(format!(
                    "add \"{host}\" to allowedDomains, or point endpoint at a listed host"
                )),
            );
            return None;
        }
    }
    Some(McpSseSkill {
        endpoint,
        description: walker.string(table, "description", place),
        rule: walker.string(table, "rule", place),
        pick: walker.strings(table, "pick", place),
        omit: walker.strings(table, "omit", place),
        allowed_domains,
    })
}

fn interactive_skill(
    walker: &mut Walker,
    table: Table<'_, '_>,
    place: Place<'_>,
    key_span: Span,
) -> Option<InteractiveSkill> {
    walker.check_keys(table, INTERACTIVE_KEYS, place);
    let description = walker.string(table, "description", place);
    let rule = walker.string(table, "rule", place);
    let Some((tools_table, _)) = walker.table(table, "tools", place) else {
        if entry(table, "tools").is_none() {
            walker.error(
                "missing-field",
                key_span,
                format!("{place} has no `tools`"),
                Some("add a tool: [experts.\"x\".skills.\"y\".tools.askUser] with description and inputJsonSchema".into()),
            );
        }
        return None;
    };
    let mut tools = IndexMap::with_capacity(tools_table.len());
    let mut ok = true;
    for (tool_key, value) in tools_table.iter() {
        let tool_name: &str = tool_key.get_ref();
        let Place::Skill { expert, skill } = place else {
            continue;
        };
        let tool_place = Place::Tool {
            expert,
            skill,
            tool: tool_name,
        };
        if !valid_tool_name(tool_name) {
            walker.error(
                "invalid-tool-name",
                tool_key.span(),
                format!("{tool_place}: a tool name must be 1 to 64 letters, digits, `_` or `-`"),
                Some("model providers reject other names; rename the tool".into()),
            );
        }
        let Some(tool) = walker.expect_table(value, tool_place, || None) else {
            ok = false;
            continue;
        };
        walker.check_keys(tool, INTERACTIVE_TOOL_KEYS, tool_place);
        let tool_description = walker.string(tool, "description", tool_place);
        let Some((schema, span)) = walker.str(tool, "inputJsonSchema", tool_place) else {
            if entry(tool, "inputJsonSchema").is_none() {
                walker.error(
                    "missing-field",
                    tool_key.span(),
                    format!("{tool_place} has no `inputJsonSchema`"),
                    Some(
                        "add inputJsonSchema = '{\"type\": \"object\", \"properties\": {}}'".into(),
                    ),
                );
            }
            ok = false;
            continue;
        };
        if !check_object_schema(walker, schema, span, tool_place) {
            ok = false;
            continue;
        }
        tools.insert(
            tool_name.to_owned(),
            InteractiveTool {
                description: tool_description,
                input_json_schema: schema.to_owned(),
            },
        );
    }
    ok.then_some(InteractiveSkill {
        description,
        rule,
        tools,
    })
}

/// `registry = "oci://HOST[:PORT]/NAMESPACE"` or an `http(s)://` base URL of a Perstack registry.
fn registry_address(walker: &mut Walker, root: Table<'_, '_>) -> Option<String> {
    let (address, span) = walker.str(root, "registry", Place::Top)?;
    if address.starts_with("oci://") {
        return Some(address.to_string());
    }
    if address.starts_with("https://") || address.starts_with("http://") {
        return check_url(walker, "registry", address, span);
    }
    walker.error(
        "bad-registry",
        span,
        format!("registry \"{address}\" is neither an oci:// address nor an http(s) URL"),
        Some("write registry = \"oci://ghcr.io/your-org\" or the https:// URL of a Perstack registry".into()),
    );
    None
}

pub fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Only the top of the schema matters here; the rest is the provider's to read.
#[derive(serde::Deserialize)]
struct SchemaHead {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

fn check_object_schema(walker: &mut Walker, schema: &str, span: Span, place: Place<'_>) -> bool {
    let head = match serde_json::from_str::<SchemaHead>(schema) {
        Err(err) if !err.is_data() => {
            walker.error(
                "invalid-json-schema",
                span,
                format!("`inputJsonSchema` of {place} is not valid JSON: {err}"),
                Some(
                    "use a TOML literal string ('...') so backslashes and quotes stay as written"
                        .into(),
                ),
            );
            return false;
        }
        // serde reads a JSON array into a struct too, so the shape is checked by its first character.
        Ok(head) if schema.trim_start().starts_with('{') => head,
        _ => {
            walker.error(
                "invalid-json-schema",
                span,
                format!(
                    "`inputJsonSchema` of {place} must be a JSON object, not {}",
                    schema.trim()
                ),
                Some(
                    "write an object schema: {\"type\": \"object\", \"properties\": {...}}".into(),
                ),
            );
            return false;
        }
    };
    match head.kind {
        None => true,
        Some(serde_json::Value::String(t)) if t == "object" => true,
        Some(other) => {
            walker.error(
                "invalid-json-schema",
                span,
                format!("`inputJsonSchema` of {place} has \"type\": {other}; tool input must be an object schema"),
                Some("set \"type\": \"object\" and describe the fields under \"properties\"".into()),
            );
            false
        }
    }
}
