//! A small incremental Server-Sent Events parser.
//!
//! Bytes arrive in arbitrary network chunks; only complete lines are decoded, so a UTF-8
//! character split across chunks is joined before decoding. Lines end with `\n`, `\r\n` or `\r`.

/// One dispatched event. `event` is empty when the stream named none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// The longest line (and the most data in one event) a parser takes by default.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("line {line} is not valid UTF-8")]
    InvalidUtf8 { line: usize },
    #[error("line {line} is not an SSE field: {text:?}")]
    Malformed { line: usize, text: String },
    /// A line (or the data of one event) over the limit: a stream that never ends its line
    /// must not grow without bound.
    #[error("{what} is longer than {limit} bytes")]
    TooLong { what: String, limit: usize },
    /// A binary framing (AWS event-stream) that does not decode.
    #[error("{0}")]
    Framing(String),
}

#[derive(Debug)]
pub struct SseParser {
    /// The longest line, and the most data one event may collect.
    max_line: usize,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to that line end.
    skip_lf: bool,
    event: String,
    data: String,
    has_data: bool,
    line_no: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE_BYTES)
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that refuses lines, and events' data, longer than `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> Self {
        SseParser {
            max_line,
            partial: Vec::new(),
            skip_lf: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            line_no: 0,
        }
    }

    fn line_too_long(&self) -> SseError {
        SseError::TooLong {
            what: format!("line {}", self.line_no + 1),
            limit: self.max_line,
        }
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.skip_lf {
            self.skip_lf = false;
            if let [b'\n', rest @ ..] = bytes {
                bytes = rest;
            }
        }
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, rest) = bytes.split_at(pos);
            let ending = rest[0];
            bytes = &rest[1..];
            if ending == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
            if self.partial.len() + line.len() > self.max_line {
                return Err(self.line_too_long());
            }
            if self.partial.is_empty() {
                self.line(line, out)?;
            } else {
                let mut joined = std::mem::take(&mut self.partial);
                joined.extend_from_slice(line);
                let result = self.line(&joined, out);
                joined.clear();
                self.partial = joined;
                result?;
            }
        }
        if self.partial.len() + bytes.len() > self.max_line {
            return Err(self.line_too_long());
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    /// Ends the stream: a last line without a line end still counts, and a pending event is
    /// dispatched (servers often omit the final blank line).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.line_no += 1;
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment / keep-alive
        }
        let text =
            std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8 { line: self.line_no })?;
        let (field, value) = match text.find(':') {
            Some(i) => {
                let value = &text[i + 1..];
                (&text[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (text, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_line {
                    return Err(SseError::TooLong {
                        what: format!("the data of the event ending at line {}", self.line_no),
                        limit: self.max_line,
                    });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "id" | "retry" => {}
            // A field name that is no name (`{"error": ...}`, `<html>`) means the server wrote
            // something other than SSE: say so instead of skipping it silently.
            _ if !text.contains(':')
                || !field
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                return Err(SseError::Malformed {
                    line: self.line_no,
                    text: text.chars().take(200).collect(),
                });
            }
            _ => {} // unknown fields are ignored, as the SSE standard says
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out)?;
        }
        parser.finish(&mut out)?;
        Ok(out)
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    const SAMPLE: &str = ": keep-alive\r\nevent: a\r\ndata: {\"x\":\"é→😀\"}\r\n\r\ndata: line1\ndata: line2\n\n\
                          data:no-space\r\rid: 7\nretry: 10\nevent: b\ndata\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            ev("a", "{\"x\":\"é→😀\"}"),
            ev("", "line1\nline2"),
            ev("", "no-space"),
            ev("b", ""),
        ]
    }

    #[test]
    fn parses_fields_comments_and_line_ends() {
        assert_eq!(parse_all(&[SAMPLE.as_bytes()]).unwrap(), expected());
    }

    #[test]
    fn any_split_point_gives_the_same_events() {
        let bytes = SAMPLE.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(parse_all(&[a, b]).unwrap(), expected(), "split at {split}");
        }
        // One byte at a time: every UTF-8 character and every CRLF arrives in pieces.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&singles).unwrap(), expected());
    }

    #[test]
    fn last_event_without_blank_line_is_dispatched() {
        assert_eq!(
            parse_all(&[b"data: [DONE]"]).unwrap(),
            vec![ev("", "[DONE]")]
        );
    }

    #[test]
    fn plain_json_line_is_an_error() {
        let err = parse_all(&[b"{\"error\": \"boom\"}\n\n"]).unwrap_err();
        assert!(matches!(err, SseError::Malformed { line: 1, .. }), "{err}");
    }

    #[test]
    fn a_line_over_the_limit_is_refused_without_growing() {
        // Split or whole, ended or not: a line over the limit is an error once it is seen.
        let mut parser = SseParser::with_max_line(16);
        let mut out = Vec::new();
        parser.feed(b"data: 0123456789", &mut out).unwrap();
        let err = parser.feed(b"abcdef", &mut out).unwrap_err();
        assert_eq!(
            err,
            SseError::TooLong {
                what: "line 1".into(),
                limit: 16
            }
        );
        let mut parser = SseParser::with_max_line(16);
        let err = parser
            .feed(b"data: ok\n\ndata: 0123456789abcdef\n\n", &mut out)
            .unwrap_err();
        assert!(
            matches!(err, SseError::TooLong { ref what, .. } if what == "line 3"),
            "{err}"
        );
        assert_eq!(
            out,
            vec![ev("", "ok")],
            "events before the long line still count"
        );
        // Exactly at the limit is fine.
        assert_eq!(
            SseParser::with_max_line(16)
                .feed(b"data: 0123456789\n\n", &mut Vec::new())
                .map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn an_event_with_too_much_data_is_refused() {
        let mut parser = SseParser::with_max_line(16);
        let err = parser
            .feed(b"data: 12345\ndata: 12345\ndata: 12345\n", &mut Vec::new())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the data of the event ending at line 3 is longer than 16 bytes"),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let err = parse_all(&[b"data: \xff\xfe\n\n"]).unwrap_err();
        assert_eq!(err, SseError::InvalidUtf8 { line: 1 });
    }
}
