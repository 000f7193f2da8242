//! The loader never panics: mutated valid files and arbitrary bytes come back as diagnostics.

use std::path::Path;

use perstack::definition::{Diagnostic, parse_bytes};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = vec![std::fs::read(root.join("perstack.toml")).expect("example exists")];
    for dir in ["tests/fixtures/good", "tests/fixtures/bad"] {
        for entry in std::fs::read_dir(root.join(dir))
            .expect("fixtures exist")
            .flatten()
        {
            seeds.push(std::fs::read(entry.path()).expect("fixture readable"));
        }
    }
    seeds
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    DuplicateLine(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let tokens = prop::sample::select(vec![
        b"[".to_vec(),
        b"]".to_vec(),
        b"\"".to_vec(),
        b"'''".to_vec(),
        b"=".to_vec(),
        b"\n".to_vec(),
        b"[[experts]]\n".to_vec(),
        b"-9999999999999999999999".to_vec(),
        b"{".to_vec(),
        "é".as_bytes().to_vec(),
        vec![0xff, 0xfe],
        b"\\u{".to_vec(),
        b"type = \"mcpSseSkill\"\n".to_vec(),
        b"delegates = [\"a\", 1]\n".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop_oneof![tokens, prop::collection::vec(any::<u8>(), 0..8)]
        )
            .prop_map(|(i, bytes)| Mutation::Insert(i, bytes)),
        (any::<usize>(), 0usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len().max(1);
        match mutation {
            Mutation::Flip(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % len] = *b;
                }
            }
            Mutation::Insert(i, new) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::DuplicateLine(i) => {
                let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                let line = lines[i % lines.len()].to_vec();
                bytes.push(b'\n');
                bytes.extend(line);
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
        }
    }
    bytes
}

fn check(bytes: &[u8]) {
    let path = Path::new("fuzz/perstack.toml");
    let diagnostics = match parse_bytes(bytes, path) {
        Ok((_, warnings)) => warnings,
        Err(diagnostics) => {
            assert!(
                diagnostics.iter().any(Diagnostic::is_error),
                "a failure carries an error"
            );
            diagnostics
        }
    };
    for diagnostic in diagnostics {
        let location = diagnostic.location.as_ref().expect("located");
        assert!(location.line >= 1 && location.column >= 1);
        assert!(!diagnostic.message.is_empty());
        let _ = diagnostic.render();
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let seeds = seeds();
    let mut runner = TestRunner::new(Config {
        cases: 7_000,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..seeds.len(), prop::collection::vec(mutation(), 1..6));
    runner
        .run(&strategy, |(seed, mutations)| {
            check(&apply(seeds[seed].clone(), &mutations));
            Ok(())
        })
        .expect("no panic on mutated input");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut runner = TestRunner::new(Config {
        cases: 3_000,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        ".{0,300}".prop_map(String::into_bytes),
        "[a-z\\[\\]\"'=., \n{}0-9]{0,300}".prop_map(String::into_bytes),
    ];
    runner
        .run(&strategy, |bytes| {
            check(&bytes);
            Ok(())
        })
        .expect("no panic on arbitrary input");
}
