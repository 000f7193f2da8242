//! Loading and validating perstack.toml: a generated 1,000-Expert / 5,000-skill file, and the
//! example project.

use std::fmt::Write as _;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use perstack::definition::parse_str;

/// 1,000 Experts, each with the base skill and four more (stdio, sse, interactive, stdio),
/// delegating to the next three (a deep acyclic tree, as real teams are).
fn generated(experts: usize) -> String {
    let mut out = String::from(
        "model = \"claude-sonnet-4-5\"\nmaxSteps = 500\n[provider]\nproviderName = \"anthropic\"\n",
    );
    for i in 0..experts {
        let delegates: Vec<String> = (i + 1..experts.min(i + 4))
            .map(|d| format!("\"expert-{d}\""))
            .collect();
        let _ = write!(
            out,
            r#"
[experts."expert-{i}"]
version = "1.2.{i}"
description = "Expert number {i}, which does one small thing well."
tags = ["generated", "n{i}"]
delegates = [{delegates}]
instruction = """
You are expert {i}. Read the query, do the work with your tools, and answer briefly.
"""
[experts."expert-{i}".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
[experts."expert-{i}".skills."files"]
type = "mcpStdioSkill"
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "."]
pick = ["read_file", "list_directory"]
requiredEnv = ["HOME"]
[experts."expert-{i}".skills."search"]
type = "mcpSseSkill"
endpoint = "http://127.0.0.1:8931/mcp"
[experts."expert-{i}".skills."ask"]
type = "interactiveSkill"
[experts."expert-{i}".skills."ask".tools.ask{i}]
description = "Ask the user"
inputJsonSchema = '{{"type":"object","properties":{{"question":{{"type":"string"}}}},"required":["question"]}}'
[experts."expert-{i}".skills."time"]
type = "mcpStdioSkill"
command = "uvx"
packageName = "mcp-server-time"
"#,
            delegates = delegates.join(", ")
        );
    }
    out
}

fn bench(c: &mut Criterion) {
    let big = generated(1000);
    let path = Path::new("generated.toml");
    let (config, warnings) = parse_str(&big, path).expect("generated file is valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.experts.len(), 1000);
    let skills: usize = config
        .experts
        .values()
        .map(|e| e.effective_skills().len())
        .sum();
    assert_eq!(skills, 5000);
    eprintln!("generated file: {} bytes", big.len());
    c.bench_function("load+validate 1000 experts / 5000 skills", |b| {
        b.iter(|| parse_str(std::hint::black_box(&big), path))
    });

    let example_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("perstack.toml");
    let example = std::fs::read_to_string(&example_path).expect("example exists");
    c.bench_function("load+validate the example", |b| {
        b.iter(|| parse_str(std::hint::black_box(&example), &example_path))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches, parse_benches);

#[allow(dead_code)]
fn parse_only(c: &mut Criterion) {
    let big = generated(1000);
    c.bench_function("toml parse only", |b| {
        b.iter(|| {
            toml::de::DeTable::parse_recoverable(std::hint::black_box(&big))
                .1
                .len()
        })
    });
}
criterion_group!(parse_benches, parse_only);
