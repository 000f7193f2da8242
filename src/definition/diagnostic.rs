//! Problems found in a perstack.toml, each with its place in the file and a fix.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// Where in a file a diagnostic points. Lines and columns are 1-based; columns count characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    /// The text of `line`, quoted in the human rendering.
    pub source_line: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable short name, for scripts and tests (`missing-instruction`, `unknown-key`, ...).
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// A diagnostic about a whole file (unreadable, not UTF-8, ...).
    pub fn for_file(
        path: &Path,
        code: &'static str,
        message: String,
        help: Option<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message,
            help,
            location: Some(Location {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                end_line: 1,
                end_column: 1,
                source_line: String::new(),
            }),
        }
    }

    /// Human rendering: `error[code]: message`, the place, the quoted line with a caret, the fix.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{severity}[{}]: {}", self.code, self.message);
        if let Some(loc) = &self.location {
            let _ = writeln!(
                out,
                "  --> {}:{}:{}",
                loc.file.display(),
                loc.line,
                loc.column
            );
            if !loc.source_line.is_empty() {
                let gutter = loc.line.to_string().len();
                let pad = " ".repeat(gutter);
                let line_text = loc.source_line.replace('\t', " ");
                let width = if loc.end_line == loc.line && loc.end_column > loc.column {
                    loc.end_column - loc.column
                } else {
                    line_text
                        .chars()
                        .count()
                        .saturating_sub(loc.column - 1)
                        .max(1)
                };
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{} | {}", loc.line, line_text);
                let _ = writeln!(
                    out,
                    "{pad} | {}{}",
                    " ".repeat(loc.column - 1),
                    "^".repeat(width.min(120))
                );
            }
        }
        if let Some(help) = &self.help {
            let gutter = self
                .location
                .as_ref()
                .map_or(1, |l| l.line.to_string().len());
            let _ = writeln!(out, "{} = help: {help}", " ".repeat(gutter));
        }
        out
    }
}

/// Byte offsets → line/column, built once per file.
pub struct LineIndex<'a> {
    source: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(source: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex {
            source,
            line_starts,
        }
    }

    /// 1-based line and character column of a byte offset (clamped to the source).
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.source, offset.min(self.source.len()));
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self.source[start..offset].chars().count() + 1;
        (line + 1, column)
    }

    fn line_text(&self, line: usize) -> &'a str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.source.len());
        self.source[start..end].trim_end_matches(['\n', '\r'])
    }

    pub fn location(&self, file: &Path, span: &Range<usize>) -> Location {
        let (line, column) = self.line_column(span.start);
        let (end_line, end_column) = self.line_column(span.end.max(span.start));
        Location {
            file: file.to_path_buf(),
            line,
            column,
            end_line,
            end_column,
            source_line: self.line_text(line).to_string(),
        }
    }
}

fn floor_char_boundary(s: &str, mut offset: usize) -> usize {
    while offset > 0 && !s.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The closest candidate by edit distance, if it is close enough to be a likely typo.
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_columns_count_characters() {
        let index = LineIndex::new("a = 1\nnamé = \"x\"\n");
        assert_eq!(index.line_column(0), (1, 1));
        assert_eq!(index.line_column(6), (2, 1));
        // byte 12 is after "namé =" (é is two bytes)
        assert_eq!(index.line_column(12), (2, 6));
        assert_eq!(index.line_column(999), (3, 1));
    }

    #[test]
    fn closest_finds_typos_only() {
        let keys = ["instruction", "description", "delegates"];
        assert_eq!(closest("instrucion", keys), Some("instruction"));
        assert_eq!(closest("delegate", keys), Some("delegates"));
        assert_eq!(closest("zzz", keys), None);
    }

    #[test]
    fn render_quotes_the_line_with_a_caret() {
        let source = "[experts.\"a\"]\nmaxStep = 3\n";
        let index = LineIndex::new(source);
        let diagnostic = Diagnostic {
            severity: Severity::Warning,
            code: "unknown-key",
            message: "unknown key `maxStep`".into(),
            help: Some("did you mean `maxSteps`?".into()),
            location: Some(index.location(Path::new("perstack.toml"), &(14..21))),
        };
        let text = diagnostic.render();
        assert!(text.contains("warning[unknown-key]: unknown key `maxStep`"));
        assert!(text.contains("--> perstack.toml:2:1"));
        assert!(text.contains("2 | maxStep = 3"));
        assert!(text.contains("  | ^^^^^^^\n"));
        assert!(text.contains("  = help: did you mean `maxSteps`?"));
    }
}
