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

use super::tree::{Key, Node, Table, Value};

/// How deep arrays and inline tables may nest, and how long a header may be, as in `toml`.
const DEPTH_LIMIT: u32 = 80;

pub fn build(input: &str) -> Option<Table<'_>> {
    let source = Source::new(input);
    let tokens = source.lex().into_vec();
    let mut builder = Builder {
        source,
        root: Table::default(),
        current: Table::default(),
        current_header: None,
        parent_path: Vec::new(),
        keys: Vec::new(),
        pending: None,
        open: Vec::new(),
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
    done.then_some(builder.root)
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
    Array {
        start: usize,
        items: Vec<Node<'i>>,
    },
    Inline {
        start: usize,
        table: Table<'i>,
        key: Option<Key<'i>>,
    },
}

struct Builder<'i> {
    source: Source<'i>,
    root: Table<'i>,
    /// The table `key = value` lines go to: the root until the first header, then the table of
    /// the last header, which joins its parent when the next header starts (as in `toml`).
    current: Table<'i>,
    /// The last header's key and span.
    current_header: Option<(Key<'i>, std::ops::Range<usize>)>,
    /// Positions leading from the root to the parent of the last header's table.
    parent_path: Vec<usize>,
    /// Keys read since the last `=` or header.
    keys: Vec<Key<'i>>,
    /// The key of a `key = value` line whose value is still being read.
    pending: Option<Key<'i>>,
    open: Vec<Open<'i>>,
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
    fn place(&mut self, node: Node<'i>) {
        match self.open.last_mut() {
            Some(Open::Array { items, .. }) => items.push(node),
            Some(Open::Inline { table, key, .. }) => match key.take() {
                Some(key) => self.ok &= insert(table, key, node),
                None => self.ok = false,
            },
            None => match self.pending.take() {
                Some(key) => self.ok &= insert(&mut self.current, key, node),
                None => self.ok = false,
            },
        }
    }

    fn finish_table(&mut self) {
        let table = std::mem::take(&mut self.current);
        match self.current_header.take() {
            None => self.root = table,
            Some((key, span)) => match table_at(&mut self.root, &self.parent_path) {
                Some(parent) => {
                    parent.push(key, Spanned::new(span, Value::Table(table)));
                }
                None => self.ok = false,
            },
        }
    }

    /// `[a.b.c]`: `a` and `b` are found or made, `c` must be new.
    fn header(&mut self, start: usize, end: usize) {
        self.finish_table();
        let mut keys = std::mem::take(&mut self.keys);
        self.parent_path.clear();
        if keys.len() >= DEPTH_LIMIT as usize {
            self.ok = false;
            return;
        }
        let Some(last) = keys.pop() else {
            self.ok = false;
            return;
        };
        let mut table = &mut self.root;
        for key in keys.drain(..) {
            let at = match table.position(key.get_ref()) {
                Some(at) => at,
                None => {
                    let span = key.span();
                    table.push(key, Spanned::new(span, Value::Table(Table::default())))
                }
            };
            self.parent_path.push(at);
            table = match table.node_mut(at).map(|node| node.get_mut()) {
                Some(Value::Table(child)) if !child.is_inline() => child,
                _ => {
                    self.ok = false;
                    return;
                }
            };
        }
        if table.position(last.get_ref()).is_some() {
            self.ok = false;
            return;
        }
        self.current_header = Some((last, start..end));
        self.keys = keys;
    }
}

fn insert<'i>(table: &mut Table<'i>, key: Key<'i>, node: Node<'i>) -> bool {
    if table.position(key.get_ref()).is_some() {
        return false;
    }
    table.push(key, node);
    true
}

fn table_at<'t, 'i>(mut table: &'t mut Table<'i>, path: &[usize]) -> Option<&'t mut Table<'i>> {
    for &at in path {
        table = match table.node_mut(at)?.get_mut() {
            Value::Table(child) => child,
            _ => return None,
        };
    }
    Some(table)
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
            table: Table::inline(),
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
            }) => self.place(Spanned::new(start..span.end(), Value::Table(table))),
            _ => self.ok = false,
        }
    }

    fn array_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.open.push(Open::Array {
            start: span.start(),
            items: Vec::new(),
        });
        true
    }

    fn array_close(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        match self.open.pop() {
            Some(Open::Array { start, items }) => {
                self.place(Spanned::new(start..span.end(), Value::Array(items)))
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
            ScalarKind::String => Value::String(decoded),
            ScalarKind::Boolean(b) => Value::Boolean(b),
            ScalarKind::DateTime => match decoded.parse() {
                Ok(datetime) => Value::Datetime(datetime),
                Err(_) => {
                    self.ok = false;
                    return;
                }
            },
            ScalarKind::Float => Value::Float(decoded),
            ScalarKind::Integer(radix) => Value::Integer(decoded, radix.value()),
        };
        self.place(Spanned::new(span.start()..span.end(), value));
    }

    fn error(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.ok = false;
    }
}
