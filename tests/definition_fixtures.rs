//! Every fixture states what the loader must say about it, in `# expect:` lines at its top:
//! `# expect: <error|warning> <line>:<column> <code> <fragment of the message or help>`.

use std::path::{Path, PathBuf};

use perstack::definition::{Diagnostic, Severity, parse_str};

struct Expectation {
    severity: Severity,
    line: usize,
    column: usize,
    code: String,
    fragment: String,
}

fn expectations(source: &str, file: &Path) -> Vec<Expectation> {
    source
        .lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .map(|spec| {
            let mut parts = spec.splitn(4, ' ');
            let severity = match parts.next() {
                Some("error") => Severity::Error,
                Some("warning") => Severity::Warning,
                other => panic!("{}: bad severity {other:?}", file.display()),
            };
            let position = parts.next().unwrap_or_default();
            let (line, column) = position
                .split_once(':')
                .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)))
                .unwrap_or_else(|| panic!("{}: bad position {position:?}", file.display()));
            Expectation {
                severity,
                line,
                column,
                code: parts.next().unwrap_or_default().to_string(),
                fragment: parts.next().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

fn matches(diagnostic: &Diagnostic, expected: &Expectation) -> bool {
    let Some(location) = &diagnostic.location else {
        return false;
    };
    let text = format!(
        "{} {}",
        diagnostic.message,
        diagnostic.help.as_deref().unwrap_or("")
    );
    diagnostic.severity == expected.severity
        && location.line == expected.line
        && location.column == expected.column
        && diagnostic.code == expected.code
        && text.contains(&expected.fragment)
}

fn check_expectations(file: &Path, source: &str, diagnostics: &[Diagnostic]) {
    for expected in expectations(source, file) {
        assert!(
            diagnostics.iter().any(|d| matches(d, &expected)),
            "{}: expected {:?} {}:{} {} containing {:?}, got:\n{}",
            file.display(),
            expected.severity,
            expected.line,
            expected.column,
            expected.code,
            expected.fragment,
            diagnostics
                .iter()
                .map(Diagnostic::render)
                .collect::<String>()
        );
    }
}

#[test]
fn every_bad_fixture_fails_with_its_expected_diagnostics() {
    let files = fixtures("bad");
    assert!(files.len() >= 30, "only {} bad fixtures", files.len());
    for file in files {
        let source = std::fs::read_to_string(&file).expect("fixture is UTF-8");
        assert!(
            !expectations(&source, &file).is_empty(),
            "{} states no expectation",
            file.display()
        );
        match parse_str(&source, &file) {
            Ok(_) => panic!("{} loaded, but it is invalid", file.display()),
            Err(diagnostics) => {
                assert!(diagnostics.iter().any(Diagnostic::is_error));
                check_expectations(&file, &source, &diagnostics);
                for diagnostic in &diagnostics {
                    let location = diagnostic
                        .location
                        .as_ref()
                        .expect("every finding has a place");
                    assert_eq!(location.file, file);
                    assert!(location.line >= 1 && location.column >= 1);
                    let rendered = diagnostic.render();
                    assert!(rendered.contains(&format!(
                        "{}:{}:{}",
                        file.display(),
                        location.line,
                        location.column
                    )));
                }
            }
        }
    }
}

#[test]
fn every_good_fixture_loads_with_its_expected_warnings() {
    let files = fixtures("good");
    assert!(files.len() >= 5);
    for file in files {
        let source = std::fs::read_to_string(&file).expect("fixture is UTF-8");
        match parse_str(&source, &file) {
            Ok((_, warnings)) => {
                check_expectations(&file, &source, &warnings);
                let expected = expectations(&source, &file).len();
                assert_eq!(
                    warnings.len(),
                    expected,
                    "{}: unexpected warnings:\n{}",
                    file.display(),
                    warnings.iter().map(Diagnostic::render).collect::<String>()
                );
            }
            Err(diagnostics) => panic!(
                "{} failed to load:\n{}",
                file.display(),
                diagnostics
                    .iter()
                    .map(Diagnostic::render)
                    .collect::<String>()
            ),
        }
    }
}

#[test]
fn good_fixtures_round_trip_through_toml() {
    let mut files = fixtures("good");
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("perstack.toml"));
    for file in files {
        let source = std::fs::read_to_string(&file).expect("fixture is UTF-8");
        let (config, _) = parse_str(&source, &file).expect("good fixture loads");
        let written = toml::to_string(&config).expect("config serialises");
        let (reloaded, _) = parse_str(&written, Path::new("written.toml")).unwrap_or_else(|d| {
            panic!(
                "{} written back does not load:\n{written}\n{}",
                file.display(),
                d.iter().map(Diagnostic::render).collect::<String>()
            )
        });
        assert_eq!(
            config,
            reloaded,
            "{} changed in the round trip",
            file.display()
        );
    }
}
