//! The AWS event-stream framing (`application/vnd.amazon.eventstream`) that Bedrock streams in.
//!
//! A message is a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes),
//! typed headers, a payload, and a CRC32 of everything before it. Each message becomes one
//! [`SseEvent`] so the providers' decoders stay format-neutral: `event` is the `:event-type`
//! header, or `exception:<:exception-type>` / `error:<:error-code>` for failures, and `data` is
//! the payload (JSON for Bedrock). Written here rather than taken from `aws-smithy-eventstream`
//! because it decodes several times faster (see `benches/llm.rs`).

use super::sse::{SseError, SseEvent};

const PRELUDE: usize = 12;
const TRAILER: usize = 4;
/// The smallest message: a prelude and a message CRC, no headers, no payload.
const MIN_MESSAGE: usize = PRELUDE + TRAILER;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("event-stream message of {length} bytes is shorter than its own framing")]
    TooShort { length: usize },
    #[error("event-stream prelude checksum mismatch (the stream is corrupt)")]
    PreludeChecksum,
    #[error("event-stream message checksum mismatch (the stream is corrupt)")]
    MessageChecksum,
    #[error("event-stream headers are malformed: {0}")]
    Headers(&'static str),
    #[error("event-stream payload is not UTF-8")]
    NotUtf8,
    #[error("the stream ended inside an event-stream message ({0} bytes left over)")]
    Truncated(usize),
}

/// Incremental decoder: feed network chunks, get whole messages.
#[derive(Debug)]
pub struct EventStreamParser {
    buffer: Vec<u8>,
    /// Where the undecoded bytes of `buffer` start (compacted lazily).
    start: usize,
    max_message: usize,
}

impl EventStreamParser {
    /// `max_message` caps one message, so a corrupt length cannot make us buffer forever.
    pub fn with_max_message(max_message: usize) -> Self {
        EventStreamParser {
            buffer: Vec::new(),
            start: 0,
            max_message,
        }
    }

    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        // Whole messages straight from the input when nothing is buffered: no copy.
        let mut input = bytes;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
            loop {
                match self.next_length(input)? {
                    Some(len) if len <= input.len() => {
                        out.push(decode_message(&input[..len]).map_err(frame)?);
                        input = &input[len..];
                    }
                    _ => break,
                }
            }
            self.buffer.extend_from_slice(input);
            return Ok(());
        }
        self.buffer.extend_from_slice(input);
        loop {
            let pending = &self.buffer[self.start..];
            match self.next_length(pending)? {
                Some(len) if len <= pending.len() => {
                    out.push(decode_message(&pending[..len]).map_err(frame)?);
                    self.start += len;
                }
                _ => break,
            }
        }
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        Ok(())
    }

    /// The stream ended: leftover bytes mean a message was cut.
    pub fn finish(&mut self, _out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let left = self.buffer.len() - self.start;
        if left > 0 {
            return Err(frame(FrameError::Truncated(left)));
        }
        Ok(())
    }

    /// The total length of the message at the start of `bytes`, once the prelude is there.
    fn next_length(&self, bytes: &[u8]) -> Result<Option<usize>, SseError> {
        if bytes.len() < PRELUDE {
            return Ok(None);
        }
        let total = be_u32(&bytes[0..4]) as usize;
        if crc32(&bytes[0..8]) != be_u32(&bytes[8..12]) {
            return Err(frame(FrameError::PreludeChecksum));
        }
        if total < MIN_MESSAGE {
            return Err(frame(FrameError::TooShort { length: total }));
        }
        if total > self.max_message {
            return Err(SseError::TooLong {
                what: "an event-stream message".into(),
                limit: self.max_message,
            });
        }
        Ok(Some(total))
    }
}

fn frame(error: FrameError) -> SseError {
    SseError::Framing(error.to_string())
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn be_u16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// One whole message (its prelude checksum already checked) → an event.
pub fn decode_message(message: &[u8]) -> Result<SseEvent, FrameError> {
    let total = message.len();
    if total < MIN_MESSAGE {
        return Err(FrameError::TooShort { length: total });
    }
    let headers_len = be_u32(&message[4..8]) as usize;
    if crc32(&message[..total - TRAILER]) != be_u32(&message[total - TRAILER..]) {
        return Err(FrameError::MessageChecksum);
    }
    if PRELUDE + headers_len > total - TRAILER {
        return Err(FrameError::Headers("headers run past the message"));
    }
    let mut headers = &message[PRELUDE..PRELUDE + headers_len];
    let payload = &message[PRELUDE + headers_len..total - TRAILER];
    let (mut message_type, mut event_type, mut exception_type, mut error_code) =
        (None, None, None, None);
    while !headers.is_empty() {
        let name_len = headers[0] as usize;
        let name = headers
            .get(1..1 + name_len)
            .ok_or(FrameError::Headers("a header name runs past the headers"))?;
        let kind = *headers
            .get(1 + name_len)
            .ok_or(FrameError::Headers("a header has no type"))?;
        let rest = &headers[2 + name_len..];
        let (value, used) = header_value(kind, rest)?;
        match (name, value) {
            (b":message-type", Some(v)) => message_type = Some(v),
            (b":event-type", Some(v)) => event_type = Some(v),
            (b":exception-type", Some(v)) => exception_type = Some(v),
            (b":error-code", Some(v)) => error_code = Some(v),
            _ => {}
        }
        headers = &rest[used..];
    }
    fn text(bytes: &[u8]) -> Result<&str, FrameError> {
        std::str::from_utf8(bytes).map_err(|_| FrameError::NotUtf8)
    }
    let event = match message_type {
        Some(b"exception") => format!("exception:{}", text(exception_type.unwrap_or(b""))?),
        Some(b"error") => format!("error:{}", text(error_code.unwrap_or(b""))?),
        _ => text(event_type.unwrap_or(b""))?.to_string(),
    };
    Ok(SseEvent {
        event,
        data: text(payload)?.to_string(),
    })
}

/// A header value of type `kind` at the start of `bytes`: the bytes of a string or byte-array
/// value (None for other types), and how many bytes it took.
fn header_value(kind: u8, bytes: &[u8]) -> Result<(Option<&[u8]>, usize), FrameError> {
    let fixed = |n: usize| {
        if bytes.len() < n {
            Err(FrameError::Headers("a header value runs past the headers"))
        } else {
            Ok((None, n))
        }
    };
    match kind {
        0 | 1 => Ok((None, 0)), // true, false
        2 => fixed(1),
        3 => fixed(2),
        4 => fixed(4),
        5 | 8 => fixed(8), // int64, timestamp
        9 => fixed(16),    // uuid
        6 | 7 => {
            if bytes.len() < 2 {
                return Err(FrameError::Headers("a header value has no length"));
            }
            let len = be_u16(bytes) as usize;
            let value = bytes
                .get(2..2 + len)
                .ok_or(FrameError::Headers("a header value runs past the headers"))?;
            Ok((Some(value), 2 + len))
        }
        _ => Err(FrameError::Headers("unknown header value type")),
    }
}

/// Encodes one message with string headers: for tests, benchmarks and the mock server.
pub fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in headers {
        head.push(name.len() as u8);
        head.extend_from_slice(name.as_bytes());
        head.push(7);
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        head.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE + head.len() + payload.len() + TRAILER;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An `event` message as Bedrock sends it.
pub fn encode_event(event_type: &str, payload: &str) -> Vec<u8> {
    encode_message(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut parser = EventStreamParser::with_max_message(1 << 20);
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out)?;
        }
        parser.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn messages_split_anywhere_decode_the_same() {
        let mut bytes = encode_event("messageStart", r#"{"role":"assistant"}"#);
        bytes.extend(encode_event(
            "contentBlockDelta",
            r#"{"delta":{"text":"hé"}}"#,
        ));
        let whole = decode(&[&bytes]).expect("whole");
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[1].event, "contentBlockDelta");
        assert_eq!(whole[1].data, r#"{"delta":{"text":"hé"}}"#);
        for cut in 1..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(decode(&[a, b]).expect("split"), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode(&bytewise).expect("bytewise"), whole);
    }

    #[test]
    fn exceptions_are_named_by_their_type() {
        let bytes = encode_message(
            &[
                (":exception-type", "throttlingException"),
                (":message-type", "exception"),
            ],
            br#"{"message":"slow down"}"#,
        );
        let events = decode(&[&bytes]).expect("decode");
        assert_eq!(events[0].event, "exception:throttlingException");
    }

    #[test]
    fn corrupt_messages_are_errors_not_panics() {
        let good = encode_event("messageStop", r#"{"stopReason":"end_turn"}"#);
        let mut payload_flip = good.clone();
        payload_flip[good.len() - 6] ^= 1;
        assert!(
            matches!(decode(&[&payload_flip]), Err(SseError::Framing(m)) if m.contains("message checksum"))
        );
        let mut prelude_flip = good.clone();
        prelude_flip[2] ^= 1;
        assert!(
            matches!(decode(&[&prelude_flip]), Err(SseError::Framing(m)) if m.contains("prelude"))
        );
        assert!(
            matches!(decode(&[&good[..good.len() - 1]]), Err(SseError::Framing(m)) if m.contains("ended inside"))
        );
        let mut parser = EventStreamParser::with_max_message(16);
        assert!(matches!(
            parser.feed(&good, &mut Vec::new()),
            Err(SseError::TooLong { .. })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 7u32;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                bytes.push((seed >> 16) as u8);
            }
            let _ = decode(&[&bytes]);
            // A valid prelude with garbage headers must not panic either.
            if len >= 4 {
                let mut framed = encode_message(&[], &bytes);
                framed[4..8].copy_from_slice(&(len as u32).to_be_bytes());
                let end = framed.len() - TRAILER;
                let crc = crc32(&framed[..end]);
                framed[end..].copy_from_slice(&crc.to_be_bytes());
                let _ = decode_message(&framed);
            }
        }
    }
}
