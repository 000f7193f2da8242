//! `perstack experts`: the delegation tree of every Expert, with its skills and model.

use std::collections::HashSet;

use crate::definition::{Config, Expert, ProviderSkill, Skill};

/// Deeper delegation is not indented further: the Expert there starts a tree of its own below,
/// so lines stay short however long a chain is.
const MAX_NESTING: usize = 32;

/// Roots are the Experts nobody delegates to; Experts only reachable through a cycle follow.
/// Every Expert is expanded once; where it appears again it is a reference.
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
    let mut shown: HashSet<&str> = HashSet::new();
    let roots = config
        .experts
        .keys()
        .filter(|k| !delegated.contains(k.as_str()))
        .chain(config.experts.keys());
    for key in roots {
        let mut trees = vec![key.as_str()];
        while let Some(root) = trees.pop() {
            if shown.contains(root) {
                continue;
            }
            out.push('\n');
            let deferred = render_expert(config, root, &mut shown, &mut out);
            // In the order met, before the next root.
            trees.extend(deferred.into_iter().rev());
        }
    }
    out
}

/// What is left to do while walking one tree, kept on an explicit stack so that a long
/// delegation chain costs heap, not call stack.
enum Task<'a> {
    /// `key`'s own header (after the text already on the line), then its children.
    Expert {
        key: &'a str,
        prefix: String,
        depth: usize,
    },
    /// One child line of an Expert.
    Line(String),
    /// A `delegate` line; what follows the name depends on what was shown by the time it comes.
    Delegate {
        key: &'a str,
        prefix: String,
        last: bool,
        depth: usize,
    },
    /// `key` is no longer on the path from the root.
    Leave(&'a str),
}

/// Writes the tree of `root` and returns the Experts too deep to nest, to show as trees of
/// their own.
fn render_expert<'a>(
    config: &'a Config,
    root: &'a str,
    shown: &mut HashSet<&'a str>,
    out: &mut String,
) -> Vec<&'a str> {
    let mut path: HashSet<&str> = HashSet::new();
    let mut deferred = Vec::new();
    let mut tasks = vec![Task::Expert {
        key: root,
        prefix: String::new(),
        depth: 0,
    }];
    while let Some(task) = tasks.pop() {
        match task {
            Task::Line(line) => out.push_str(&line),
            Task::Leave(key) => {
                path.remove(key);
            }
            Task::Delegate {
                key,
                prefix,
                last,
                depth,
            } => {
                let branch = if last { "└─ " } else { "├─ " };
                out.push_str(&format!("{prefix}{branch}delegate "));
                if path.contains(key) {
                    out.push_str(&format!("{key}  (cycle)\n"));
                } else if !config.experts.contains_key(key) {
                    out.push_str(&format!("{key}  (not defined here)\n"));
                } else if shown.contains(key) {
                    out.push_str(&format!("{key}  (see above)\n"));
                } else if depth > MAX_NESTING {
                    out.push_str(&format!("{key}  (see below)\n"));
                    if !deferred.contains(&key) {
                        deferred.push(key);
                    }
                } else {
                    let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
                    tasks.push(Task::Expert {
                        key,
                        prefix: child_prefix,
                        depth,
                    });
                }
            }
            Task::Expert { key, prefix, depth } => {
                shown.insert(key);
                let Some(expert) = config.experts.get(key) else {
                    out.push_str(&format!("{key}  (not defined here)\n"));
                    continue;
                };
                out.push_str(&format!("{key}  v{}\n", expert.version()));
                path.insert(key);
                tasks.push(Task::Leave(key));
                let lines = child_lines(expert);
                let count = lines.len() + expert.delegates().len();
                for (index, delegate) in expert.delegates().iter().enumerate().rev() {
                    tasks.push(Task::Delegate {
                        key: delegate,
                        prefix: prefix.clone(),
                        last: lines.len() + index + 1 == count,
                        depth: depth + 1,
                    });
                }
                for (index, line) in lines.into_iter().enumerate().rev() {
                    let branch = if index + 1 == count {
                        "└─ "
                    } else {
                        "├─ "
                    };
                    tasks.push(Task::Line(format!("{prefix}{branch}{line}\n")));
                }
            }
        }
    }
    deferred
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
    // Tools and Agent Skills the provider runs itself.
    let tools = crate::llm::provider_tools::ProviderTool::of_expert(expert);
    if !tools.is_empty() {
        let shown: Vec<String> = tools
            .iter()
            .map(|tool| {
                if tool.options.is_empty() {
                    return tool.name.clone();
                }
                let options: Vec<String> = tool
                    .options
                    .iter()
                    .map(|(key, value)| format!("{key} {value}"))
                    .collect();
                format!("{} ({})", tool.name, options.join(", "))
            })
            .collect();
        lines.push(format!("provider tools  {}", shown.join(", ")));
    }
    for skill in expert.provider_skills.iter().flatten() {
        lines.push(match skill {
            ProviderSkill::Builtin { skill_id } => format!("provider skill {skill_id}  (builtin)"),
            ProviderSkill::Custom { name, .. } => format!("provider skill {name}  (custom)"),
        });
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;

    fn config(source: &str) -> Config {
        let (config, _) = crate::definition::parse_str(source, Path::new("perstack.toml"))
            .unwrap_or_else(|d| panic!("bad test config: {d:?}"));
        config
    }

    /// `t` delegates to a0 and b0; each aN and bN to aN+1 and bN+1: 2^levels paths.
    fn shared_delegates(levels: usize) -> String {
        let mut source =
            String::from("[experts.t]\ninstruction = \"x\"\ndelegates = [\"a0\", \"b0\"]\n");
        for n in 0..levels {
            for p in ["a", "b"] {
                source.push_str(&format!("[experts.{p}{n}]\ninstruction = \"x\"\n"));
                if n + 1 < levels {
                    source.push_str(&format!("delegates = [\"a{}\", \"b{}\"]\n", n + 1, n + 1));
                }
            }
        }
        source
    }

    #[test]
    fn provider_tools_show_with_their_options_and_the_agent_skills() {
        let tree = render_tree(&config(
            r#"[provider]
providerName = "anthropic"
[experts.r]
instruction = "x"
providerTools = ["webSearch", "codeExecution"]
providerSkills = [{ type = "builtin", skillId = "pdf" }]
[experts.r.providerToolOptions]
webSearch = { maxUses = 3 }
"#,
        ));
        assert!(
            tree.contains("provider tools  webSearch (maxUses 3), codeExecution"),
            "{tree}"
        );
        assert!(tree.contains("provider skill pdf  (builtin)"), "{tree}");
    }

    #[test]
    fn an_expert_already_shown_is_a_reference() {
        let tree = render_tree(&config(&shared_delegates(3)));
        assert_eq!(tree.matches("a2  v1.0.0").count(), 1, "{tree}");
        assert!(tree.contains("delegate b1  v1.0.0"), "{tree}");
        assert!(tree.contains("delegate a2  (see above)"), "{tree}");
        assert!(tree.contains("delegate b2  (see above)"), "{tree}");
        for key in ["t", "a0", "b0", "a1", "b1", "a2", "b2"] {
            assert_eq!(
                tree.matches(&format!("{key}  v1.0.0\n")).count(),
                1,
                "{key} expanded once:\n{tree}"
            );
        }
    }

    #[test]
    fn forty_levels_of_shared_delegates_stay_small_and_fast() {
        let source = shared_delegates(40);
        assert!(source.len() < 5000);
        let config = config(&source);
        let started = Instant::now();
        let tree = render_tree(&config);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(tree.len() < 64 * 1024, "{} bytes", tree.len());
        assert!(tree.contains("a39  v1.0.0"), "the deepest Expert is shown");
        assert!(tree.contains("b39  v1.0.0"), "the deepest Expert is shown");
    }

    #[test]
    fn a_twenty_thousand_long_chain_is_linear_and_off_the_call_stack() {
        let count = 20_000;
        let mut source = String::new();
        for n in 0..count {
            source.push_str(&format!("[experts.c{n}]\ninstruction = \"x\"\n"));
            if n + 1 < count {
                source.push_str(&format!("delegates = [\"c{}\"]\n", n + 1));
            }
        }
        let config = config(&source);
        // A small stack: rendering must not recurse per level.
        let tree = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || render_tree(&config))
            .expect("thread")
            .join()
            .expect("no stack overflow");
        assert!(tree.len() < 8 * 1024 * 1024, "{} bytes", tree.len());
        let longest = tree.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(longest <= 3 * (MAX_NESTING + 2) + 40, "{longest}");
        for n in [0, 1, 33, 10_000, count - 1] {
            assert_eq!(
                tree.matches(&format!("c{n}  v1.0.0\n")).count(),
                1,
                "c{n} expanded once"
            );
        }
        assert!(tree.contains(&format!("delegate c{}  (see below)", MAX_NESTING + 1)));
    }

    #[test]
    fn a_cycle_is_marked_not_followed() {
        let tree = render_tree(&config(
            "[experts.p]\ninstruction = \"x\"\ndelegates = [\"q\"]\n\
             [experts.q]\ninstruction = \"x\"\ndelegates = [\"p\"]\n",
        ));
        assert!(tree.contains("delegate p  (cycle)"), "{tree}");
        assert_eq!(tree.matches("q  v1.0.0").count(), 1, "{tree}");
    }
}
