//! The offline example runs end to end (RELEASE_NOTES.md is written), and its JSONL, with ids,
//! times and paths normalised, matches the committed snapshot: any change to what the runtime
//! emits shows up in review.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

struct Normaliser {
    ids: HashMap<String, String>,
    replacements: Vec<(String, String)>,
}

impl Normaliser {
    fn string(&mut self, text: &str) -> String {
        if is_id(text) {
            let next = format!("<id{}>", self.ids.len() + 1);
            return self.ids.entry(text.to_string()).or_insert(next).clone();
        }
        let mut out = text.to_string();
        for (from, to) in &self.replacements {
            out = out.replace(from.as_str(), to);
        }
        let out = mask_datetimes(&out);
        // Ids inside text (a delegated run's id in a result, a checkpoint id) too.
        out.split_inclusive(|c: char| !c.is_ascii_alphanumeric())
            .map(|piece| {
                let (word, tail) = piece.split_at(
                    piece
                        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                        .len(),
                );
                if is_id(word) {
                    let next = format!("<id{}>", self.ids.len() + 1);
                    format!("{}{tail}", self.ids.entry(word.to_string()).or_insert(next))
                } else {
                    piece.to_string()
                }
            })
            .collect()
    }

    fn value(&mut self, value: &mut Value) {
        match value {
            Value::String(text) => *text = self.string(text),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    let timing = key == "timestamp" || key.ends_with("At") || key.ends_with("Ms");
                    if timing && v.is_number() {
                        *v = Value::from(0);
                    } else {
                        self.value(v);
                    }
                }
            }
            _ => {}
        }
    }
}

fn is_id(text: &str) -> bool {
    text.len() == 24
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        && text.chars().any(|c| c.is_ascii_digit())
}

/// `2026-11-25T15:41:40Z` → `<datetime>`.
fn mask_datetimes(text: &str) -> String {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:ddZ";
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| {
                if *s == b'd' {
                    b.is_ascii_digit()
                } else {
                    s == b
                }
            });
        if fits {
            out.push_str("<datetime>");
            i += shape.len();
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[test]
fn the_scripted_example_emits_the_snapshot_jsonl() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        root.join("CHANGELOG.md"),
        workspace.path().join("CHANGELOG.md"),
    )
    .expect("copy");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_perstack"))
        .args([
            "run",
            "release-notes",
            "Write release notes for developers",
            "--replay",
        ])
        .arg(root.join("assets/demo.replay.toml"))
        .arg("--config")
        .arg(root.join("perstack.toml"))
        .arg("--workspace")
        .arg(workspace.path())
        .output()
        .expect("binary runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let notes = std::fs::read_to_string(workspace.path().join("RELEASE_NOTES.md"))
        .expect("the writer wrote the notes");
    assert!(notes.starts_with("# perstack 0.1.0"));
    let workspace_path = workspace
        .path()
        .canonicalize()
        .expect("canonical")
        .display()
        .to_string();
    let mut normaliser = Normaliser {
        ids: HashMap::new(),
        replacements: vec![
            (workspace_path, "<workspace>".into()),
            (root.display().to_string(), "<repo>".into()),
            (env!("CARGO_PKG_VERSION").to_string(), "<version>".into()),
        ],
    };
    let mut lines = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut event: Value = serde_json::from_str(line).expect("each line is JSON");
        normaliser.value(&mut event);
        lines.push(event.to_string());
    }
    insta::assert_snapshot!(lines.join("\n"));
}
