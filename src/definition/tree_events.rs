//! Building the tree straight from the TOML parser's events, without `toml`'s intermediate event
//! list and maps: loading a file of a thousand Experts is mostly this.
//!
//! Only the plain shape of TOML is taken on: `[headers]` that name new tables, single keys,
//! arrays and inline tables. Anything else gives up (`None`), and the caller reads the file
//! through `toml` instead; giving up is always safe, so every doubt gives up.

use std::borrow::Cow;

use toml::Spanned;
use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::parser::{
    Event, EventKind, EventReceiver, RecursionGuard, ValidateWhitespace, parse_document,
};
use toml_parser::{ErrorSink, ParseError, Source, Span};

use super::tree::{Document, Key, Slot, Stored, TableHead};

/// How deep arrays and inline tables may nest, and how long a header may be, as in `toml`.
const DEPTH_LIMIT: u32 = 80;

pub fn build(input: &str) -> Option<Document<'_>> {
    let source = Source::new(input);
    let tokens = source.lex().into_vec();
    // Sized from the tokens so that a large file rarely regrows them.
    let mut builder = Builder {
        source,
        doc: Document::with_capacity(tokens.len() / 8, tokens.len() / 32),
        current: TableHead::new(false),
        current_header: None,
        keys: Vec::new(),
        pending: None,
        open: Vec::new(),
        items: Vec::new(),
        header_start: None,
        ok: true,
    };
    let mut failed = Failed(false);
    {
        let mut whitespace = ValidateWhitespace::new(&mut builder, source);
        let mut guard = RecursionGuard::new(&mut whitespace, DEPTH_LIMIT);
        parse_document(&tokens, &mut guard, &mut failed);
    }
    builder.finish_table();
    let done = builder.ok
        && !failed.0
        && builder.open.is_empty()
        && builder.keys.is_empty()
        && builder.pending.is_none()
        && builder.header_start.is_none();
    done.then_some(builder.doc)
}

/// Only whether anything went wrong matters here; `toml` words the errors.
struct Failed(bool);

impl ErrorSink for Failed {
    fn report_error(&mut self, _error: ParseError) {
        self.0 = true;
    }
}

/// A value still being written: an array or inline table whose closing bracket is to come.
enum Open<'i> {
    /// Its items so far are those of [`Builder::items`] from `first`.
    Array { start: usize, first: usize },
    Inline {
        start: usize,
        table: TableHead,
        key: Option<Key<'i>>,
    },
}

/// A table that headers add to: the root, or the table entry at a position.
type TableAt = Option<usize>;

struct Builder<'i> {
    source: Source<'i>,
    doc: Document<'i>,
    /// The table `key = value` lines go to: the root until the first header, then the table of
    /// the last header, which joins its parent when the next header starts (as in `toml`).
    current: TableHead,
    /// The last header's key, span and parent table.
    current_header: Option<(Key<'i>, std::ops::Range<usize>, TableAt)>,
    /// Keys read since the last `=` or header.
    keys: Vec<Key<'i>>,
    /// The key of a `key = value` line whose value is still being read.
    pending: Option<Key<'i>>,
    open: Vec<Open<'i>>,
    /// Items of the open arrays, innermost last.
    items: Vec<Slot<'i>>,
    /// Where the header being read starts, between `[` and `]`.
    header_start: Option<usize>,
    /// False once the file turns out to need `toml`; what follows is then only skimmed.
    ok: bool,
}

impl<'i> Builder<'i> {
    /// The text of a key or scalar, unless the file is already given up on.
    fn raw(
        &mut self,
        kind: EventKind,
        span: Span,
        encoding: Option<Encoding>,
    ) -> Option<toml_parser::Raw<'i>> {
        if !self.ok {
            return None;
        }
        let raw = self.source.get(Event::new_unchecked(kind, encoding, span));
        self.ok = raw.is_some();
        raw
    }

    /// A finished value goes to the innermost open array or inline table, else to the table of
    /// the last header under the key just read.
    fn place(&mut self, slot: Slot<'i>) {
        match self.open.last_mut() {
            Some(Open::Array { .. }) => self.items.push(slot),
            Some(Open::Inline { table, key, .. }) => match key.take() {
                Some(key) => self.ok &= insert(&mut self.doc, table, key, slot),
                None => self.ok = false,
            },
            None => match self.pending.take() {
                Some(key) => self.ok &= insert(&mut self.doc, &mut self.current, key, slot),
                None => self.ok = false,
            },
        }
    }

    fn finish_table(&mut self) {
        let table = std::mem::replace(&mut self.current, TableHead::new(false));
        match self.current_header.take() {
            None => self.doc.root = table,
            Some((key, span, parent)) => match self.table(parent) {
                Some(mut head) => {
                    self.doc
                        .push(&mut head, key, Spanned::new(span, Stored::Table(table)));
                    self.set_table(parent, head);
                }
                None => self.ok = false,
            },
        }
    }

    /// `[a.b.c]`: `a` and `b` are found or made, `c` must be new.
    fn header(&mut self, start: usize, end: usize) {
        self.finish_table();
        let mut keys = std::mem::take(&mut self.keys);
        if keys.len() >= DEPTH_LIMIT as usize {
            self.ok = false;
            return;
        }
        let Some(last) = keys.pop() else {
            self.ok = false;
            return;
        };
        let mut parent: TableAt = None;
        for key in keys.drain(..) {
            let Some(mut head) = self.table(parent) else {
                self.ok = false;
                return;
            };
            let at = match self.doc.position(&head, key.get_ref()) {
                Some(at) => at,
                None => {
                    let span = key.span();
                    let implicit = Stored::Table(TableHead::new(false));
                    let at = self.doc.push(&mut head, key, Spanned::new(span, implicit));
                    self.set_table(parent, head);
                    at
                }
            };
            parent = Some(at);
        }
        match self.table(parent) {
            Some(head) if self.doc.position(&head, last.get_ref()).is_none() => {
                self.current_header = Some((last, start..end, parent));
                self.keys = keys;
            }
            _ => self.ok = false,
        }
    }

    /// The table headers may add to at `at`; none if it is not one, or is written inline.
    fn table(&self, at: TableAt) -> Option<TableHead> {
        let head = match at {
            None => self.doc.root,
            Some(at) => match self.doc.slot(at)?.get_ref() {
                Stored::Table(head) => *head,
                _ => return None,
            },
        };
        (!head.is_inline()).then_some(head)
    }

    fn set_table(&mut self, at: TableAt, head: TableHead) {
        match at {
            None => self.doc.root = head,
            Some(at) => {
                if let Some(Stored::Table(table)) = self.doc.slot_mut(at).map(|s| s.get_mut()) {
                    *table = head;
                }
            }
        }
    }
}

fn insert<'i>(doc: &mut Document<'i>, table: &mut TableHead, key: Key<'i>, slot: Slot<'i>) -> bool {
    if doc.position(table, key.get_ref()).is_some() {
        return false;
    }
    doc.push(table, key, slot);
    true
}

impl EventReceiver for Builder<'_> {
    fn std_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.ok &= self.keys.is_empty() && self.open.is_empty() && self.pending.is_none();
        self.header_start = Some(span.start());
    }

    fn std_table_close(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        match self.header_start.take() {
            Some(start) => self.header(start, span.end()),
            None => self.ok = false,
        }
    }

    fn array_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.ok = false;
    }

    fn inline_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.open.push(Open::Inline {
            start: span.start(),
            table: TableHead::new(true),
            key: None,
        });
        true
    }

    fn inline_table_close(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        match self.open.pop() {
            Some(Open::Inline {
                start,
                table,
                key: None,
            }) => self.place(Spanned::new(start..span.end(), Stored::Table(table))),
            _ => self.ok = false,
        }
    }

    fn array_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.open.push(Open::Array {
            start: span.start(),
            first: self.items.len(),
        });
        true
    }

    fn array_close(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        match self.open.pop() {
            Some(Open::Array { start, first }) if first <= self.items.len() => {
                let items = self.doc.push_items(self.items.drain(first..));
                self.place(Spanned::new(start..span.end(), Stored::Array(items)))
            }
            _ => self.ok = false,
        }
    }

    fn simple_key(&mut self, span: Span, encoding: Option<Encoding>, error: &mut dyn ErrorSink) {
        let Some(raw) = self.raw(EventKind::SimpleKey, span, encoding) else {
            return;
        };
        let mut decoded = Cow::Borrowed("");
        raw.decode_key(&mut decoded, error);
        self.keys
            .push(Spanned::new(span.start()..span.end(), decoded));
    }

    fn key_sep(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        // Dotted keys outside headers are left to `toml`.
        self.ok &= self.header_start.is_some();
    }

    fn key_val_sep(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        let key = self.keys.pop();
        self.ok &= key.is_some() && self.keys.is_empty();
        match self.open.last_mut() {
            Some(Open::Inline { key: slot, .. }) if slot.is_none() => *slot = key,
            None if self.pending.is_none() => self.pending = key,
            _ => self.ok = false,
        }
    }

    fn scalar(&mut self, span: Span, encoding: Option<Encoding>, error: &mut dyn ErrorSink) {
        let Some(raw) = self.raw(EventKind::Scalar, span, encoding) else {
            return;
        };
        let mut decoded = Cow::Borrowed("");
        let value = match raw.decode_scalar(&mut decoded, error) {
            ScalarKind::String => Stored::String(decoded),
            ScalarKind::Boolean(b) => Stored::Boolean(b),
            ScalarKind::DateTime => match decoded.parse() {
                Ok(datetime) => Stored::Datetime(datetime),
                Err(_) => {
                    self.ok = false;
                    return;
                }
            },
            ScalarKind::Float => Stored::Float(decoded),
            ScalarKind::Integer(radix) => Stored::Integer(decoded, radix.value()),
        };
        self.place(Spanned::new(span.start()..span.end(), value));
    }

    fn error(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.ok = false;
    }
}
