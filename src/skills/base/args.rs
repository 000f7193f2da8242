//! Reading a tool's JSON arguments with errors that name the offending field.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("arguments must be a JSON object, got {0}")]
    NotObject(&'static str),
    #[error("missing required argument `{0}`")]
    Missing(String),
    #[error("argument `{name}` must be {expected}")]
    Invalid {
        name: String,
        expected: &'static str,
    },
}

/// A tool call's arguments. `null` counts as `{}` because models send it for argument-less tools.
pub struct Args {
    map: Map<String, Value>,
}

impl Args {
    pub fn new(value: Value) -> Result<Self, ArgError> {
        match value {
            Value::Object(map) => Ok(Args { map }),
            Value::Null => Ok(Args { map: Map::new() }),
            other => Err(ArgError::NotObject(type_name(&other))),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        // An explicit null is treated like an absent optional field.
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn required<'a>(&'a self, name: &str) -> Result<&'a Value, ArgError> {
        self.get(name)
            .ok_or_else(|| ArgError::Missing(name.to_string()))
    }

    pub fn string(&self, name: &str) -> Result<String, ArgError> {
        as_string(name, self.required(name)?)
    }

    pub fn bool(&self, name: &str) -> Result<bool, ArgError> {
        self.required(name)?
            .as_bool()
            .ok_or_else(|| invalid(name, "a boolean"))
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ArgError> {
        self.get(name)
            .map(|v| v.as_bool().ok_or_else(|| invalid(name, "a boolean")))
            .transpose()
    }

    /// A non-negative whole number (models sometimes send `5.0`, which is accepted).
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, ArgError> {
        self.get(name)
            .map(|v| as_u64(v).ok_or_else(|| invalid(name, "a non-negative integer")))
            .transpose()
    }

    pub fn string_array(&self, name: &str) -> Result<Vec<String>, ArgError> {
        string_array(name, self.required(name)?)
    }

    pub fn opt_string_array(&self, name: &str) -> Result<Option<Vec<String>>, ArgError> {
        self.get(name).map(|v| string_array(name, v)).transpose()
    }

    pub fn opt_u64_array(&self, name: &str) -> Result<Option<Vec<u64>>, ArgError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let expected = "an array of non-negative integers";
        let items = value.as_array().ok_or_else(|| invalid(name, expected))?;
        items
            .iter()
            .map(|item| as_u64(item).ok_or_else(|| invalid(name, expected)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An object whose values are all strings, e.g. environment variables.
    pub fn string_map(&self, name: &str) -> Result<Vec<(String, String)>, ArgError> {
        let object = self
            .required(name)?
            .as_object()
            .ok_or_else(|| invalid(name, "an object of string values"))?;
        object
            .iter()
            .map(|(key, value)| Ok((key.clone(), as_string(&format!("{name}.{key}"), value)?)))
            .collect()
    }
}

fn invalid(name: &str, expected: &'static str) -> ArgError {
    ArgError::Invalid {
        name: name.to_string(),
        expected,
    }
}

fn as_string(name: &str, value: &Value) -> Result<String, ArgError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(name, "a string"))
}

fn as_u64(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        let f = value.as_f64()?;
        (f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64).then_some(f as u64)
    })
}

fn string_array(name: &str, value: &Value) -> Result<Vec<String>, ArgError> {
    let expected = "an array of strings";
    let items = value.as_array().ok_or_else(|| invalid(name, expected))?;
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(name, expected))
        })
        .collect()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field() {
        let args = Args::new(json!({"path": 3, "env": {"A": 1}})).expect("object");
        assert_eq!(
            args.string("path").expect_err("invalid").to_string(),
            "argument `path` must be a string"
        );
        assert_eq!(
            args.string("text").expect_err("missing").to_string(),
            "missing required argument `text`"
        );
        assert_eq!(
            args.string_map("env").expect_err("invalid").to_string(),
            "argument `env.A` must be a string"
        );
        assert!(Args::new(json!([1])).is_err());
        assert!(Args::new(Value::Null).is_ok());
    }

    #[test]
    fn numbers_accept_whole_floats_only() {
        let args = Args::new(json!({"a": 5.0, "b": 1.5, "c": -1, "d": [0, 2]})).expect("object");
        assert_eq!(args.opt_u64("a").expect("a"), Some(5));
        assert!(args.opt_u64("b").is_err());
        assert!(args.opt_u64("c").is_err());
        assert_eq!(args.opt_u64("missing").expect("none"), None);
        assert_eq!(args.opt_u64_array("d").expect("d"), Some(vec![0, 2]));
    }
}
