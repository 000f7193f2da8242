//! `perstack experts`: the delegation tree of every Expert, with its skills and model.

use std::collections::HashSet;

use crate::definition::{Config, Expert, Skill};

/// Roots are the Experts nobody delegates to; Experts only reachable through a cycle follow.
pub fn render_tree(config: &Config) -> String {
    let delegated: HashSet<&str> = config
        .experts
        .values()
        .flat_map(|e| e.delegates().iter().map(String::as_str))
        .collect();
    let model = config.model.as_deref().unwrap_or("(no model set)");
    let mut out = format!(
        "model {model} · provider {} · maxSteps {}\n",
        config.provider_name(),
        config.max_steps()
    );
    let mut shown: HashSet<String> = HashSet::new();
    let roots = config
        .experts
        .keys()
        .filter(|k| !delegated.contains(k.as_str()))
        .chain(config.experts.keys());
    for key in roots {
        if shown.contains(key) {
            continue;
        }
        out.push('\n');
        let mut path = Vec::new();
        render_expert(config, key, "", &mut path, &mut shown, &mut out);
    }
    out
}

fn render_expert(
    config: &Config,
    key: &str,
    prefix: &str,
    path: &mut Vec<String>,
    shown: &mut HashSet<String>,
    out: &mut String,
) {
    shown.insert(key.to_string());
    let Some(expert) = config.experts.get(key) else {
        out.push_str(&format!("{key}  (not defined here)\n"));
        return;
    };
    out.push_str(&format!("{key}  v{}\n", expert.version()));
    path.push(key.to_string());
    let lines = child_lines(expert);
    let count = lines.len() + expert.delegates().len();
    let mut index = 0;
    for line in lines {
        index += 1;
        let branch = if index == count { "└─ " } else { "├─ " };
        out.push_str(&format!("{prefix}{branch}{line}\n"));
    }
    for delegate in expert.delegates() {
        index += 1;
        let last = index == count;
        let branch = if last { "└─ " } else { "├─ " };
        let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
        out.push_str(&format!("{prefix}{branch}delegate "));
        if path.iter().any(|p| p == delegate) {
            out.push_str(&format!("{delegate}  (cycle)\n"));
        } else if !config.experts.contains_key(delegate) {
            out.push_str(&format!("{delegate}  (not defined here)\n"));
        } else {
            render_expert(config, delegate, &child_prefix, path, shown, out);
        }
    }
    path.pop();
}

fn child_lines(expert: &Expert) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(description) = &expert.description {
        let first = description.lines().next().unwrap_or_default();
        lines.push(format!("“{}”", truncate(first, 90)));
    }
    for (name, skill) in expert.effective_skills() {
        let detail = match &skill {
            Skill::McpStdio(s) if s.is_base() => "built in".to_string(),
            Skill::McpStdio(s) => {
                let (command, args) = s.command_line();
                format!("stdio: {command} {}", args.join(" "))
            }
            Skill::McpSse(s) => format!("http: {}", s.endpoint),
            Skill::Interactive(s) => format!(
                "interactive: {}",
                s.tools.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        lines.push(format!("skill {name}  ({})", detail.trim_end()));
    }
    lines
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}
