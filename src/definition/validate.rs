//! Checks that look across Experts: delegates that name nobody, cycles, the base skill, tool names.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use foldhash::fast::RandomState;

use super::diagnostic::closest;
use super::model::*;
use super::parse::{ExpertSpans, SpanMap};
use super::walk::Walker;

/// `path` is the file checked: registry delegates are looked up in the perstack.lock beside it.
pub fn check(walker: &mut Walker, config: &Config, spans: &SpanMap<'_>, path: &Path) {
    // Emptied for each Expert rather than made anew, so a thousand Experts cost two allocations.
    let mut seen = HashSet::default();
    let mut owners = HashMap::default();
    let mut locked = LockedKeys::Unread(path);
    for (key, expert) in &config.experts {
        let Some(expert_spans) = spans.get(key.as_str()) else {
            continue;
        };
        check_delegates(
            walker,
            spans,
            key,
            expert,
            expert_spans,
            &mut seen,
            &mut locked,
        );
        check_base_skill(walker, key, expert, expert_spans);
        check_tool_names(walker, key, expert, expert_spans, &mut owners);
    }
    check_cycles(walker, config, spans);
}

fn check_delegates<'c>(
    walker: &mut Walker,
    all_spans: &SpanMap<'_>,
    key: &str,
    expert: &'c Expert,
    spans: &ExpertSpans<'_>,
    seen: &mut HashSet<&'c str, RandomState>,
    locked: &mut LockedKeys<'_>,
) {
    seen.clear();
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
        if all_spans.contains_key(delegate.as_str()) {
            continue;
        }
        // A pinned registry key (`@scope/name@1.2.0`, `name@1.2.0`) is fetched by `perstack
        // install` into perstack.lock; until then a run refuses it, and this says so early.
        if is_pinned_registry_key(delegate) {
            if !locked.contains(delegate) {
                walker.warn(
                    "registry-not-locked",
                    span,
                    format!(
                        "delegate \"{delegate}\" of expert \"{key}\" is a registry Expert that is not in perstack.lock yet"
                    ),
                    Some("run `perstack install` to fetch it, check its digest and pin it".into()),
                );
            }
            continue;
        }
        if delegate.starts_with('@') {
            walker.warn(
                "registry-delegate",
                span,
                format!(
                    "delegate \"{delegate}\" of expert \"{key}\" is not defined in this file and names no version"
                ),
                Some(format!(
                    "pin a version to use it from the registry (\"{delegate}@1.0.0\", then `perstack install`), or define [experts.\"{delegate}\"] here"
                )),
            );
            continue;
        }
        let help = match closest(delegate, all_spans.keys().copied()) {
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

/// The keys of the `registry` table of perstack.lock beside the checked file, read on first
/// need: files without registry delegates never touch the disk.
enum LockedKeys<'p> {
    Unread(&'p Path),
    Read(HashSet<String>),
}

impl LockedKeys<'_> {
    fn contains(&mut self, key: &str) -> bool {
        if let LockedKeys::Unread(path) = self {
            let lock = path
                .parent()
                .unwrap_or(Path::new("."))
                .join("perstack.lock");
            let keys = std::fs::read_to_string(lock)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|lock| {
                    let registry = lock.get("registry")?.as_object()?;
                    Some(registry.keys().cloned().collect())
                })
                .unwrap_or_default();
            *self = LockedKeys::Read(keys);
        }
        matches!(self, LockedKeys::Read(keys) if keys.contains(key))
    }
}

/// `@scope/name@1.2.0` or `name@1.2.0`: a name, `@`, and an exact semver version.
fn is_pinned_registry_key(delegate: &str) -> bool {
    delegate
        .rfind('@')
        .filter(|&at| at > 0)
        .is_some_and(|at| semver::Version::parse(&delegate[at + 1..]).is_ok())
}

fn check_base_skill(walker: &mut Walker, key: &str, expert: &Expert, spans: &ExpertSpans<'_>) {
    let Some(skills) = &expert.skills else {
        return;
    };
    let has_base = spans.skill_names.contains(&BASE_SKILL_NAME)
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

#[derive(PartialEq)]
enum Owner<'a> {
    Interactive(&'a str),
    Delegate(&'a str),
}

/// Tools are offered to the model by bare name, so names known before any server starts must not
/// collide: delegates with each other and with interactive tools.
fn check_tool_names<'c>(
    walker: &mut Walker,
    key: &str,
    expert: &'c Expert,
    spans: &ExpertSpans<'_>,
    owners: &mut HashMap<&'c str, Owner<'c>, RandomState>,
) {
    owners.clear();
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

fn check_cycles(walker: &mut Walker, config: &Config, spans: &SpanMap<'_>) {
    // Iterative depth-first search over positions in `experts`; each cycle is reported once, at its
    // first Expert in file order.
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let names: Vec<&str> = config.experts.keys().map(String::as_str).collect();
    let mut reported: HashSet<Vec<&str>> = HashSet::new();
    let mut state = vec![NEW; names.len()];
    for start in 0..names.len() {
        if state[start] != NEW {
            continue;
        }
        let mut path: Vec<usize> = vec![start];
        let mut next_child: Vec<usize> = vec![0];
        state[start] = ON_PATH;
        while let Some(&node) = path.last() {
            let depth = path.len() - 1;
            let children = config
                .experts
                .get_index(node)
                .map(|(_, e)| e.delegates())
                .unwrap_or(&[]);
            let Some(child) = children.get(next_child[depth]) else {
                state[node] = DONE;
                path.pop();
                next_child.pop();
                continue;
            };
            next_child[depth] += 1;
            let Some(child) = config.experts.get_index_of(child.as_str()) else {
                continue;
            };
            match state[child] {
                ON_PATH => {
                    let from = path.iter().position(|&n| n == child).unwrap_or(0);
                    let cycle: Vec<&str> = path[from..].iter().map(|&n| names[n]).collect();
                    let mut canonical = cycle.clone();
                    canonical.sort();
                    if reported.insert(canonical) {
                        let mut shown = cycle.clone();
                        shown.push(names[child]);
                        let span = spans.get(cycle[0]).map(|s| s.key.clone()).unwrap_or(0..0);
                        walker.warn(
                            "delegation-cycle",
                            span,
                            format!("delegation cycle: {}", shown.join(" → ")),
                            Some("a cycle can recurse until maxSteps or the depth limit stops it; make sure some Expert in it answers without delegating".into()),
                        );
                    }
                }
                NEW => {
                    state[child] = ON_PATH;
                    path.push(child);
                    next_child.push(0);
                }
                _ => {}
            }
        }
    }
}
