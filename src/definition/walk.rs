//! Reading typed values out of the spanned TOML tree, collecting every problem on the way.

use std::ops::Range;

use super::diagnostic::{Severity, closest};
use super::tree::{Key, List, Node, Table, Value};

pub type Span = Range<usize>;
pub type Entry<'t, 'i> = (&'t Key<'i>, Node<'t, 'i>);

/// Where a value stands, named the way messages name it. Built without allocating, since most
/// places never need to be written out.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    Top,
    Provider,
    ProviderSetting,
    Expert(&'a str),
    Skill {
        expert: &'a str,
        skill: &'a str,
    },
    Tool {
        expert: &'a str,
        skill: &'a str,
        tool: &'a str,
    },
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Top => f.write_str("the top level"),
            Place::Provider => f.write_str("[provider]"),
            Place::ProviderSetting => f.write_str("[provider.setting]"),
            Place::Expert(key) => write!(f, "expert \"{key}\""),
            Place::Skill { expert, skill } => write!(f, "skill \"{skill}\" of expert \"{expert}\""),
            Place::Tool {
                expert,
                skill,
                tool,
            } => {
                write!(
                    f,
                    "tool \"{tool}\" of skill \"{skill}\" of expert \"{expert}\""
                )
            }
        }
    }
}

/// A problem found while walking, before it is given a file and line.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
    pub span: Span,
}

#[derive(Default)]
pub struct Walker {
    pub findings: Vec<Finding>,
}

impl Walker {
    pub fn error(&mut self, code: &'static str, span: Span, message: String, help: Option<String>) {
        self.findings.push(Finding {
            severity: Severity::Error,
            code,
            message,
            help,
            span,
        });
    }

    pub fn warn(&mut self, code: &'static str, span: Span, message: String, help: Option<String>) {
        self.findings.push(Finding {
            severity: Severity::Warning,
            code,
            message,
            help,
            span,
        });
    }

    /// Unknown keys are warnings, never fatal: real files carry misplaced keys.
    pub fn check_keys(&mut self, table: Table<'_, '_>, known: &[&str], place: Place<'_>) {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let help = match closest(name, known.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            self.warn(
                "unknown-key",
                key.span(),
                format!("unknown key `{name}` in {place}; it is ignored"),
                Some(help),
            );
        }
    }

    fn wrong_type(&mut self, key: &str, place: Place<'_>, expected: &str, value: Node<'_, '_>) {
        self.error(
            "wrong-type",
            value.span(),
            format!(
                "`{key}` in {place} must be {expected}, found {}",
                describe(value.value())
            ),
            None,
        );
    }

    /// A string, borrowed from the file.
    pub fn str<'t>(
        &mut self,
        table: Table<'t, '_>,
        key: &str,
        place: Place<'_>,
    ) -> Option<(&'t str, Span)> {
        let (_, value) = entry(table, key)?;
        match value.value() {
            Value::String(s) => Some((s, value.span())),
            _ => {
                self.wrong_type(key, place, "a string", value);
                None
            }
        }
    }

    pub fn string(&mut self, table: Table<'_, '_>, key: &str, place: Place<'_>) -> Option<String> {
        self.str(table, key, place).map(|(s, _)| s.to_owned())
    }

    pub fn boolean(&mut self, table: Table<'_, '_>, key: &str, place: Place<'_>) -> Option<bool> {
        let (_, value) = entry(table, key)?;
        match value.value() {
            Value::Boolean(b) => Some(b),
            _ => {
                self.wrong_type(key, place, "true or false", value);
                None
            }
        }
    }

    /// A whole number no smaller than `min`.
    pub fn integer(
        &mut self,
        table: Table<'_, '_>,
        key: &str,
        place: Place<'_>,
        min: u64,
    ) -> Option<u64> {
        let (_, value) = entry(table, key)?;
        let parsed = match value.value() {
            Value::Integer(digits, radix) => i64::from_str_radix(digits, radix).ok(),
            _ => {
                self.wrong_type(key, place, "a whole number", value);
                return None;
            }
        };
        match parsed {
            Some(n) if n >= 0 && n as u64 >= min => Some(n as u64),
            Some(n) => {
                self.error(
                    "out-of-range",
                    value.span(),
                    format!("`{key}` in {place} is {n}, but it must be at least {min}"),
                    Some(format!(
                        "set `{key}` to {min} or more, or remove it for the default"
                    )),
                );
                None
            }
            None => {
                self.error(
                    "out-of-range",
                    value.span(),
                    format!("`{key}` in {place} is too large"),
                    None,
                );
                None
            }
        }
    }

    pub fn string_list<'t, 'i>(
        &mut self,
        table: Table<'t, 'i>,
        key: &str,
        place: Place<'_>,
    ) -> Option<StringList<'t, 'i>> {
        let (_, value) = entry(table, key)?;
        let Value::Array(items) = value.value() else {
            self.wrong_type(key, place, "a list of strings", value);
            return None;
        };
        let mut ok = true;
        for item in items.iter() {
            if let Value::String(_) = item.value() {
                continue;
            }
            ok = false;
            self.error(
                "wrong-type",
                item.span(),
                format!(
                    "every item of `{key}` in {place} must be a string, found {}",
                    describe(item.value())
                ),
                None,
            );
        }
        ok.then_some(StringList(items))
    }

    pub fn strings(
        &mut self,
        table: Table<'_, '_>,
        key: &str,
        place: Place<'_>,
    ) -> Option<Vec<String>> {
        self.string_list(table, key, place)
            .map(|list| list.to_owned_vec())
    }

    pub fn table<'t, 'i>(
        &mut self,
        table: Table<'t, 'i>,
        key: &str,
        place: Place<'_>,
    ) -> Option<(Table<'t, 'i>, Span)> {
        let (key_span, value) = entry(table, key)?;
        match value.value() {
            Value::Table(t) => Some((t, key_span.span())),
            _ => {
                self.wrong_type(key, place, "a table", value);
                None
            }
        }
    }

    /// A value that must be a table (an Expert, a skill, a tool); anything else is reported.
    pub fn expect_table<'t, 'i>(
        &mut self,
        value: Node<'t, 'i>,
        place: Place<'_>,
        help: impl FnOnce() -> Option<String>,
    ) -> Option<Table<'t, 'i>> {
        match value.value() {
            Value::Table(table) => Some(table),
            other => {
                self.error(
                    "wrong-type",
                    value.span(),
                    format!("{place} must be a table, found {}", describe(other)),
                    help(),
                );
                None
            }
        }
    }

    /// A value kept as written (provider-specific settings, `runtime`).
    pub fn plain_value(&mut self, value: Node<'_, '_>) -> Option<toml::Value> {
        Some(match value.value() {
            Value::String(s) => toml::Value::String(s.to_string()),
            Value::Integer(digits, radix) => match i64::from_str_radix(digits, radix) {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => {
                    self.error(
                        "out-of-range",
                        value.span(),
                        "this number is too large".into(),
                        None,
                    );
                    return None;
                }
            },
            Value::Float(f) => match f.replace('_', "").parse::<f64>() {
                Ok(x) => toml::Value::Float(x),
                Err(_) => toml::Value::Float(f64::NAN),
            },
            Value::Boolean(b) => toml::Value::Boolean(b),
            Value::Datetime(d) => toml::Value::Datetime(*d),
            Value::Array(items) => {
                toml::Value::Array(items.iter().filter_map(|v| self.plain_value(v)).collect())
            }
            Value::Table(t) => {
                let mut map = toml::Table::new();
                for (k, v) in t.iter() {
                    if let Some(v) = self.plain_value(v) {
                        map.insert(k.get_ref().to_string(), v);
                    }
                }
                toml::Value::Table(map)
            }
        })
    }
}

/// A list whose items were all found to be strings.
#[derive(Clone, Copy)]
pub struct StringList<'t, 'i>(List<'t, 'i>);

impl<'t> StringList<'t, '_> {
    pub fn len(self) -> usize {
        self.0.len()
    }

    pub fn to_owned_vec(self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.iter().map(|(s, _)| s.to_owned()));
        out
    }

    pub fn iter(self) -> impl Iterator<Item = (&'t str, Span)> {
        self.0.iter().filter_map(|item| match item.value() {
            Value::String(s) => Some((s, item.span())),
            _ => None,
        })
    }
}

pub fn entry<'t, 'i>(table: Table<'t, 'i>, key: &str) -> Option<Entry<'t, 'i>> {
    table.get(key)
}

pub fn describe(value: Value<'_, '_>) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(..) => "a whole number",
        Value::Float(_) => "a decimal number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}
