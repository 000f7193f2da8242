//! Finding, reading and checking perstack.toml, and reading the dotenv files it names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, LineIndex};
use super::model::Config;
use super::walk::Walker;
use super::{parse, tree, validate};

pub const CONFIG_FILE_NAME: &str = "perstack.toml";

/// A perstack.toml that loaded without errors, with its warnings.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub path: PathBuf,
    /// The directory that relative paths in the file (envPath, replay scripts) are resolved from.
    pub dir: PathBuf,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no {CONFIG_FILE_NAME} found in {} or any directory above it; create one there or pass --config PATH",
        start.display()
    )]
    NotFound { start: PathBuf },
    #[error("{} has {} error(s)", path.display(), diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid {
        path: PathBuf,
        /// Every problem found, errors and warnings, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

/// `--config PATH` if given, else the nearest perstack.toml from `start` upwards.
pub fn discover(explicit: Option<&Path>, start: &Path) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let found = start
        .ancestors()
        .map(|dir| dir.join(CONFIG_FILE_NAME))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| ConfigError::NotFound {
            start: start.to_path_buf(),
        })?;
    // Diagnostics read better as `perstack.toml:3:1` than with the whole path of the cwd.
    Ok(found
        .strip_prefix(start)
        .map(Path::to_path_buf)
        .unwrap_or(found))
}

pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let invalid = |diagnostic: Diagnostic| ConfigError::Invalid {
        path: path.to_path_buf(),
        diagnostics: vec![diagnostic],
    };
    let bytes = std::fs::read(path).map_err(|err| {
        invalid(Diagnostic::for_file(
            path,
            "unreadable",
            format!("cannot read {}: {err}", path.display()),
            Some("check the path and its permissions, or pass --config PATH".into()),
        ))
    })?;
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    match parse_bytes(&bytes, path) {
        Ok((config, warnings)) => Ok(LoadedConfig {
            config,
            path: path.to_path_buf(),
            dir,
            warnings,
        }),
        Err(diagnostics) => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            diagnostics,
        }),
    }
}

/// [`parse_str`] for raw file content, which may not be UTF-8.
pub fn parse_bytes(
    bytes: &[u8],
    path: &Path,
) -> Result<(Config, Vec<Diagnostic>), Vec<Diagnostic>> {
    match std::str::from_utf8(bytes) {
        Ok(source) => parse_str(source, path),
        Err(err) => {
            let offset = err.valid_up_to();
            let valid = String::from_utf8_lossy(&bytes[..offset]);
            let mut diagnostic = Diagnostic::for_file(
                path,
                "not-utf8",
                format!(
                    "{} is not valid UTF-8 (bad byte at offset {offset})",
                    path.display()
                ),
                Some("save the file as UTF-8".into()),
            );
            diagnostic.location = Some(LineIndex::new(&valid).location(path, &(offset..offset)));
            Err(vec![diagnostic])
        }
    }
}

/// Parse and check a whole file. `Ok` carries the warnings; `Err` carries every diagnostic
/// (errors and warnings) in file order. Never panics, whatever the input.
pub fn parse_str(source: &str, path: &Path) -> Result<(Config, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut walker = Walker::default();
    let (document, syntax_errors) = match tree::parse(source) {
        Ok(document) => (Some(document), Vec::new()),
        Err(errors) => (None, errors),
    };
    for err in &syntax_errors {
        let span = err.span().unwrap_or(0..0);
        let message = err.message().trim().to_string();
        walker.error(
            "toml-syntax",
            span,
            format!("TOML syntax: {message}"),
            Some(syntax_help(&message)),
        );
    }
    let (config, spans) = match &document {
        Some(document) => parse::config(&mut walker, document.root()),
        // A broken file gives a broken tree: report the syntax alone rather than guesses.
        None => (Config::default(), Default::default()),
    };
    if document.is_some() {
        validate::check(&mut walker, &config, &spans, path);
    }
    let mut findings = walker.findings;
    if findings.is_empty() {
        return Ok((config, Vec::new()));
    }
    let index = LineIndex::new(source);
    findings.sort_by_key(|f| (f.span.start, std::cmp::Reverse(f.severity)));
    let diagnostics: Vec<Diagnostic> = findings
        .into_iter()
        .map(|f| Diagnostic {
            severity: f.severity,
            code: f.code,
            message: f.message,
            help: f.help,
            location: Some(index.location(path, &f.span)),
        })
        .collect();
    if diagnostics.iter().any(Diagnostic::is_error) {
        Err(diagnostics)
    } else {
        Ok((config, diagnostics))
    }
}

fn syntax_help(message: &str) -> String {
    if message.contains("duplicate key") {
        "each key may appear once per table; remove or rename the repeated one".into()
    } else if message.contains("string") || message.contains("quote") {
        "close every string with the quote it opened with; use ''' or \"\"\" for text over several lines".into()
    } else {
        "see https://toml.io for the syntax; the caret marks where parsing stopped making sense"
            .into()
    }
}

/// The environment a run sees: the process environment over the dotenv files of `envPath`
/// (later files over earlier ones, so `.env.local` overrides `.env`). Missing files are fine; a
/// file that cannot be parsed is an error naming the file and line.
pub fn load_env(
    loaded: &LoadedConfig,
    extra_env_paths: &[PathBuf],
) -> Result<HashMap<String, String>, Box<Diagnostic>> {
    let mut env = HashMap::new();
    let mut files: Vec<PathBuf> = loaded
        .config
        .env_paths()
        .iter()
        .map(|p| loaded.dir.join(p))
        .collect();
    files.extend(extra_env_paths.iter().cloned());
    for file in files {
        if !file.is_file() {
            continue;
        }
        let iter = dotenvy::from_path_iter(&file).map_err(|err| dotenv_error(&file, err))?;
        for item in iter {
            let (key, value) = item.map_err(|err| dotenv_error(&file, err))?;
            env.insert(key, value);
        }
    }
    env.extend(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    );
    Ok(env)
}

fn dotenv_error(file: &Path, err: dotenvy::Error) -> Box<Diagnostic> {
    let (message, line) = match &err {
        dotenvy::Error::LineParse(text, index) => (
            format!(
                "cannot parse {} near `{text}` (character {index})",
                file.display()
            ),
            Some(text.clone()),
        ),
        other => (format!("cannot read {}: {other}", file.display()), None),
    };
    let mut diagnostic = Diagnostic::for_file(
        file,
        "dotenv",
        message,
        Some("write one KEY=value a line; quote values with spaces".into()),
    );
    if let (Some(location), Some(line)) = (&mut diagnostic.location, line) {
        location.source_line = line;
    }
    Box::new(diagnostic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(dir: &Path, env_path: Option<Vec<String>>) -> LoadedConfig {
        LoadedConfig {
            config: Config {
                env_path,
                ..Config::default()
            },
            path: dir.join(CONFIG_FILE_NAME),
            dir: dir.to_path_buf(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn dotenv_files_layer_under_the_process_environment() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join(".env"),
            "PERSTACK_T_A=from-env\nPERSTACK_T_B=from-env\nPATH=not-the-path\n",
        )
        .expect("write");
        std::fs::write(dir.path().join(".env.local"), "PERSTACK_T_B=from-local\n").expect("write");
        let env = load_env(&loaded(dir.path(), None), &[]).expect("env loads");
        assert_eq!(
            env.get("PERSTACK_T_A").map(String::as_str),
            Some("from-env")
        );
        assert_eq!(
            env.get("PERSTACK_T_B").map(String::as_str),
            Some("from-local")
        );
        assert_ne!(env.get("PATH").map(String::as_str), Some("not-the-path"));
    }

    #[test]
    fn missing_dotenv_files_are_fine_and_broken_ones_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = loaded(dir.path(), Some(vec!["nope.env".into(), "bad.env".into()]));
        assert!(load_env(&config, &[]).is_ok());
        std::fs::write(
            dir.path().join("bad.env"),
            "GOOD=1\nthis line is not an assignment\n",
        )
        .expect("write");
        let err = load_env(&config, &[]).expect_err("bad file is reported");
        assert_eq!(err.code, "dotenv");
        assert!(err.message.contains("bad.env"), "{}", err.message);
    }

    #[test]
    fn discovery_prefers_the_explicit_path_then_walks_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).expect("mkdir");
        assert!(matches!(
            discover(None, &nested),
            Err(ConfigError::NotFound { .. })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), "").expect("write");
        assert_eq!(
            discover(None, &nested).expect("found"),
            dir.path().join(CONFIG_FILE_NAME)
        );
        assert_eq!(
            discover(None, dir.path()).expect("found"),
            PathBuf::from(CONFIG_FILE_NAME)
        );
        assert_eq!(
            discover(Some(Path::new("x.toml")), &nested).expect("explicit"),
            PathBuf::from("x.toml")
        );
    }
}
