//! A finished span, independent of any wire format, and the ids spans are named by.
//!
//! Ids are derived from the job's own ids (job, run, tool call), so the live export and a later
//! `perstack export otel` of the same job produce the same trace, and a delegate run finds the
//! span of the tool call that started it without having seen its parent's events.

/// A span attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
    StrList(Vec<String>),
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> Self {
        AttrValue::Str(value.to_string())
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> Self {
        AttrValue::Str(value)
    }
}

impl From<u64> for AttrValue {
    fn from(value: u64) -> Self {
        AttrValue::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<bool> for AttrValue {
    fn from(value: bool) -> Self {
        AttrValue::Bool(value)
    }
}

pub type Attributes = Vec<(&'static str, AttrValue)>;

/// OTLP span kinds we use: the run and tools work inside the process; a model call goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal,
    Client,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Unset,
    Error(String),
}

/// Something that happened during a span (a retry), at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub name: &'static str,
    pub time_ms: u64,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: SpanKind,
    pub start_ms: u64,
    pub end_ms: u64,
    pub attributes: Attributes,
    pub events: Vec<SpanEvent>,
    pub status: Status,
}

impl Span {
    /// The value of one attribute, for tests and readers.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// FNV-1a over the parts, each followed by a separator so ("ab","c") and ("a","bc") differ.
fn fnv(seed: u64, parts: &[&str]) -> u64 {
    let mut hash = seed;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// A second, unrelated seed for the trace id's other half.
const FNV_OFFSET_2: u64 = 0x6c62_272e_07bb_0142;

/// The trace of a job: the same for every export of it. Never all zeros (invalid in OTLP).
pub fn trace_id(job_id: &str) -> [u8; 16] {
    let high = fnv(FNV_OFFSET, &["trace", job_id]);
    let low = fnv(FNV_OFFSET_2, &["trace", job_id]) | 1;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&high.to_be_bytes());
    id[8..].copy_from_slice(&low.to_be_bytes());
    id
}

/// A span id from the ids that name what the span stands for. Never all zeros.
pub fn span_id(parts: &[&str]) -> [u8; 8] {
    (fnv(FNV_OFFSET, parts) | 1).to_be_bytes()
}

/// The usual text form: 32 lowercase hex digits.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_never_zero() {
        assert_eq!(trace_id("job1"), trace_id("job1"));
        assert_ne!(trace_id("job1"), trace_id("job2"));
        assert_ne!(span_id(&["ab", "c"]), span_id(&["a", "bc"]));
        assert_ne!(trace_id(""), [0; 16]);
        assert_ne!(span_id(&[]), [0; 8]);
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(hex(&trace_id("j")).len(), 32);
    }
}
