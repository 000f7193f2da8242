//! Checks that look across Experts: delegates that name nobody, cycles, the base skill, tool names.

use std::collections::{HashMap, HashSet};

use super::diagnostic::closest;
use super::model::*;
use super::parse::SpanMap;
use super::walk::Walker;

pub fn check(walker: &mut Walker, config: &Config, spans: &SpanMap) {
    for (key, expert) in &config.experts {
        let Some(expert_spans) = spans.get(key) else {
            continue;
        };
        check_delegates(walker, spans, key, expert, expert_spans);
        check_base_skill(walker, key, expert, expert_spans);
        check_tool_names(walker, key, expert, expert_spans);
    }
    check_cycles(walker, config, spans);
}

fn check_delegates(
    walker: &mut Walker,
    all_spans: &SpanMap,
    key: &str,
    expert: &Expert,
    spans: &super::parse::ExpertSpans,
) {
    let mut seen = HashSet::new();
    for (index, delegate) in expert.delegates().iter().enumerate() {
        let span = spans
            .delegates
            .get(index)
            .cloned()
            .unwrap_or(spans.key.clone());
        if !seen.insert(delegate.as_str()) {
            walker.warn(
                "duplicate-delegate",
                span,
                format!("expert \"{key}\" lists delegate \"{delegate}\" twice"),
                Some("remove the second entry".into()),
            );
            continue;
        }
        // An Expert whose own definition has errors still counts as defined here.
        if all_spans.contains_key(delegate) {
            continue;
        }
        if delegate.starts_with('@') {
            walker.warn(
                "registry-delegate",
                span,
                format!(
                    "delegate \"{delegate}\" of expert \"{key}\" is not defined in this file; registry Experts are not fetched by this version"
                ),
                Some(format!("define [experts.\"{delegate}\"] here to run it offline")),
            );
            continue;
        }
        let help = match closest(delegate, all_spans.keys().map(String::as_str)) {
            Some(suggestion) => format!("did you mean \"{suggestion}\"?"),
            None => format!("define [experts.\"{delegate}\"] or remove it from `delegates`"),
        };
        walker.error(
            "unknown-delegate",
            span,
            format!("delegate \"{delegate}\" of expert \"{key}\" names no known Expert"),
            Some(help),
        );
    }
}

fn check_base_skill(
    walker: &mut Walker,
    key: &str,
    expert: &Expert,
    spans: &super::parse::ExpertSpans,
) {
    let Some(skills) = &expert.skills else {
        return;
    };
    let has_base = spans.skill_names.iter().any(|name| name == BASE_SKILL_NAME)
        || skills
            .values()
            .any(|skill| matches!(skill, Skill::McpStdio(s) if s.is_base()));
    if !has_base {
        walker.error(
            "missing-base-skill",
            spans.skills_key.clone().unwrap_or(spans.key.clone()),
            format!("expert \"{key}\" has a `skills` table without \"{BASE_SKILL_NAME}\", so it cannot complete its run"),
            Some(format!(
                "add [experts.\"{key}\".skills.\"{BASE_SKILL_NAME}\"] with type = \"mcpStdioSkill\", command = \"npx\", packageName = \"{BASE_SKILL_NAME}\""
            )),
        );
    }
}

/// Tools are offered to the model by bare name, so names known before any server starts must not
/// collide: delegates with each other and with interactive tools.
fn check_tool_names(
    walker: &mut Walker,
    key: &str,
    expert: &Expert,
    spans: &super::parse::ExpertSpans,
) {
    #[derive(PartialEq)]
    enum Owner<'a> {
        Interactive(&'a str),
        Delegate(&'a str),
    }
    let mut owners: HashMap<&str, Owner<'_>> = HashMap::new();
    for (name, skill) in expert.skills.iter().flat_map(|s| s.iter()) {
        if let Skill::Interactive(interactive) = skill {
            for tool in interactive.tools.keys() {
                owners.insert(tool, Owner::Interactive(name));
            }
        }
    }
    for (index, delegate) in expert.delegates().iter().enumerate() {
        let tool = delegate_tool_name(delegate);
        let owner = match owners.get(tool) {
            None => {
                owners.insert(tool, Owner::Delegate(delegate));
                continue;
            }
            // The same delegate listed twice is reported as a duplicate, not a collision.
            Some(Owner::Delegate(other)) if other == delegate => continue,
            Some(Owner::Delegate(other)) => format!("delegate \"{other}\""),
            Some(Owner::Interactive(skill)) => format!("interactive skill \"{skill}\""),
        };
        let span = spans
            .delegates
            .get(index)
            .cloned()
            .unwrap_or(spans.key.clone());
        walker.error(
            "tool-name-collision",
            span,
            format!(
                "expert \"{key}\": delegate \"{delegate}\" is offered as tool `{tool}`, which {owner} already provides"
            ),
            Some("rename one of them; the model calls tools by bare name".into()),
        );
    }
}

fn check_cycles(walker: &mut Walker, config: &Config, spans: &SpanMap) {
    // Iterative depth-first search; each cycle is reported once, at its first Expert in file order.
    let mut reported: HashSet<Vec<String>> = HashSet::new();
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 = on the path, 2 = done
    for start in config.experts.keys() {
        if state.contains_key(start.as_str()) {
            continue;
        }
        let mut path: Vec<&str> = vec![start];
        let mut next_child: Vec<usize> = vec![0];
        state.insert(start, 1);
        while let Some(&node) = path.last() {
            let depth = path.len() - 1;
            let children = config
                .experts
                .get(node)
                .map(|e| e.delegates())
                .unwrap_or(&[]);
            let Some(child) = children.get(next_child[depth]) else {
                state.insert(node, 2);
                path.pop();
                next_child.pop();
                continue;
            };
            next_child[depth] += 1;
            if !config.experts.contains_key(child) {
                continue;
            }
            match state.get(child.as_str()) {
                Some(1) => {
                    let from = path.iter().position(|n| n == child).unwrap_or(0);
                    let cycle: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
                    let mut canonical = cycle.clone();
                    canonical.sort();
                    if reported.insert(canonical) {
                        let mut shown = cycle.clone();
                        shown.push(child.clone());
                        let span = spans.get(&cycle[0]).map(|s| s.key.clone()).unwrap_or(0..0);
                        walker.warn(
                            "delegation-cycle",
                            span,
                            format!("delegation cycle: {}", shown.join(" → ")),
                            Some("a cycle can recurse until maxSteps or the depth limit stops it; make sure some Expert in it answers without delegating".into()),
                        );
                    }
                }
                Some(_) => {}
                None => {
                    state.insert(child, 1);
                    path.push(child);
                    next_child.push(0);
                }
            }
        }
    }
}
