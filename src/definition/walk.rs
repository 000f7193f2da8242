//! Reading typed values out of the spanned TOML tree, collecting every problem on the way.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Severity, closest};

pub type Span = Range<usize>;
pub type Entry<'t, 'i> = (
    &'t Spanned<toml::de::DeString<'i>>,
    &'t Spanned<DeValue<'i>>,
);

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
    pub fn check_keys(&mut self, table: &DeTable<'_>, known: &[&str], place: Place<'_>) {
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

    fn wrong_type(
        &mut self,
        key: &str,
        place: Place<'_>,
        expected: &str,
        value: &Spanned<DeValue<'_>>,
    ) {
        self.error(
            "wrong-type",
            value.span(),
            format!(
                "`{key}` in {place} must be {expected}, found {}",
                describe(value.get_ref())
            ),
            None,
        );
    }

    pub fn string(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        place: Place<'_>,
    ) -> Option<(String, Span)> {
        let (_, value) = entry(table, key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((s.to_string(), value.span())),
            _ => {
                self.wrong_type(key, place, "a string", value);
                None
            }
        }
    }

    pub fn boolean(&mut self, table: &DeTable<'_>, key: &str, place: Place<'_>) -> Option<bool> {
        let (_, value) = entry(table, key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, place, "true or false", value);
                None
            }
        }
    }

    /// A whole number no smaller than `min`.
    pub fn integer(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        place: Place<'_>,
        min: u64,
    ) -> Option<u64> {
        let (_, value) = entry(table, key)?;
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
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

    pub fn string_list(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        place: Place<'_>,
    ) -> Option<Vec<(String, Span)>> {
        let (_, value) = entry(table, key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(key, place, "a list of strings", value);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                other => {
                    ok = false;
                    self.error(
                        "wrong-type",
                        item.span(),
                        format!(
                            "every item of `{key}` in {place} must be a string, found {}",
                            describe(other)
                        ),
                        None,
                    );
                }
            }
        }
        ok.then_some(out)
    }

    pub fn table<'t, 'i>(
        &mut self,
        table: &'t DeTable<'i>,
        key: &str,
        place: Place<'_>,
    ) -> Option<(&'t DeTable<'i>, Span)> {
        let (key_span, value) = entry(table, key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some((t, key_span.span())),
            _ => {
                self.wrong_type(key, place, "a table", value);
                None
            }
        }
    }

    /// A value that must be a table (an Expert, a skill, a tool); anything else is reported.
    pub fn expect_table<'t, 'i>(
        &mut self,
        value: &'t Spanned<DeValue<'i>>,
        place: Place<'_>,
        help: Option<String>,
    ) -> Option<&'t DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                self.error(
                    "wrong-type",
                    value.span(),
                    format!("{place} must be a table, found {}", describe(other)),
                    help,
                );
                None
            }
        }
    }

    /// A value kept as written (provider-specific settings, `runtime`).
    pub fn plain_value(&mut self, value: &Spanned<DeValue<'_>>) -> Option<toml::Value> {
        Some(match value.get_ref() {
            DeValue::String(s) => toml::Value::String(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
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
            DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
                Ok(x) => toml::Value::Float(x),
                Err(_) => toml::Value::Float(f64::NAN),
            },
            DeValue::Boolean(b) => toml::Value::Boolean(*b),
            DeValue::Datetime(d) => toml::Value::Datetime(*d),
            DeValue::Array(items) => {
                toml::Value::Array(items.iter().filter_map(|v| self.plain_value(v)).collect())
            }
            DeValue::Table(t) => {
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

pub fn entry<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<Entry<'t, 'i>> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
}

pub fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "a whole number",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}
