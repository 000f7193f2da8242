//! [`Frozen`]: a value that never changes once made. Clones share it, and its JSON is made once
//! and then copied into every file and line it appears in.
//!
//! A run's conversation only grows: at step 1,000 each checkpoint and event repeats some 2,000
//! messages that were already serialised hundreds of times. Frozen messages make that a copy.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

pub struct Frozen<T>(Arc<ValueWithJson<T>>);

struct ValueWithJson<T> {
    value: T,
    /// serde_json's compact form of `value`, made on first use; `None` if it failed (then the
    /// value is serialised each time, and reports its own error).
    json: OnceLock<Option<Box<RawValue>>>,
}

impl<T> Frozen<T> {
    pub fn new(value: T) -> Self {
        Frozen(Arc::new(ValueWithJson {
            value,
            json: OnceLock::new(),
        }))
    }

    /// True when both are clones of one frozen value.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T> From<T> for Frozen<T> {
    fn from(value: T) -> Self {
        Frozen::new(value)
    }
}

impl<T> Clone for Frozen<T> {
    fn clone(&self) -> Self {
        Frozen(self.0.clone())
    }
}

impl<T> Deref for Frozen<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T> AsRef<T> for Frozen<T> {
    fn as_ref(&self) -> &T {
        &self.0.value
    }
}

impl<T: PartialEq> PartialEq for Frozen<T> {
    fn eq(&self, other: &Self) -> bool {
        Frozen::ptr_eq(self, other) || self.0.value == other.0.value
    }
}

/// Prints as the value itself, so debug output is the same as an unfrozen value's.
impl<T: fmt::Debug> fmt::Debug for Frozen<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.value.fmt(f)
    }
}

/// Writes the JSON made on first use. With serde_json's writer (every file and JSONL line) that
/// is a copy of the same bytes the value would give; `serde_json::to_value` parses it back. Run
/// data is only ever written as JSON: another format would see serde_json's raw-value wrapper.
impl<T: Serialize> Serialize for Frozen<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = self
            .0
            .json
            .get_or_init(|| serde_json::value::to_raw_value(&self.0.value).ok());
        match json {
            Some(raw) => raw.serialize(serializer),
            None => self.0.value.serialize(serializer),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Frozen<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Frozen::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::message::{Message, Part};

    #[test]
    fn frozen_values_serialise_to_the_same_bytes_every_time() {
        let message = Message::expert(vec![Part::text("line \"one\"\nline two")]);
        let plain = serde_json::to_string(&vec![message.clone(), message.clone()]).expect("json");
        let frozen = Frozen::new(message.clone());
        let list = vec![frozen.clone(), frozen.clone()];
        assert_eq!(serde_json::to_string(&list).expect("json"), plain);
        assert_eq!(serde_json::to_string(&list).expect("json"), plain);
        assert_eq!(
            serde_json::to_value(&frozen).expect("value"),
            serde_json::to_value(&message).expect("value")
        );
        let back: Vec<Frozen<Message>> = serde_json::from_str(&plain).expect("parses");
        assert_eq!(back, list);
        assert_eq!(format!("{:?}", frozen), format!("{:?}", message));
    }
}
