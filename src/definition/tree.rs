//! perstack.toml as a tree of spanned TOML values, the form the field checks read.
//!
//! Usual files are built straight from the parser's events ([`super::tree_events`]); anything
//! that path does not take on (a syntax error, dotted keys, arrays of tables, a table written
//! after its subtables) goes through `toml`'s own tree instead, which also words every syntax
//! error. Both give the same tree for the same file.
//!
//! Every table entry of a file lives in one vector and every list item in another; tables link
//! their entries by position. A file of a thousand Experts is then built and dropped with a
//! handful of allocations instead of one or two per table.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use foldhash::fast::RandomState;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use toml::value::Datetime;

pub type Key<'i> = Spanned<Cow<'i, str>>;

/// A value as kept in the [`Document`]: tables and lists point at their contents.
pub(super) enum Stored<'i> {
    String(Cow<'i, str>),
    /// The number as decoded for `i64::from_str_radix`, and its radix.
    Integer(Cow<'i, str>, u32),
    /// The number as written, for `f64` to parse.
    Float(Cow<'i, str>),
    Boolean(bool),
    Datetime(Datetime),
    /// Positions in [`Document::items`].
    Array(Range<usize>),
    Table(TableHead),
}

pub(super) type Slot<'i> = Spanned<Stored<'i>>;

struct Entry<'i> {
    key: Key<'i>,
    slot: Slot<'i>,
    /// The table's next entry, or [`NONE`].
    next: usize,
}

const NONE: usize = usize::MAX;

/// Below this many entries a scan is cheaper than hashing.
const INDEX_FROM: usize = 16;

/// A table's entries, in the order written, as a chain through [`Document::entries`].
#[derive(Clone, Copy)]
pub(super) struct TableHead {
    first: usize,
    last: usize,
    len: usize,
    /// Written as `{ ... }`, so no header may add to it.
    inline: bool,
}

impl TableHead {
    pub(super) const fn new(inline: bool) -> Self {
        Self {
            first: NONE,
            last: NONE,
            len: 0,
            inline,
        }
    }

    pub(super) fn is_inline(&self) -> bool {
        self.inline
    }
}

pub struct Document<'i> {
    entries: Vec<Entry<'i>>,
    items: Vec<Slot<'i>>,
    /// Positions of entries by key, for tables large enough to be worth it (`experts`); by the
    /// position of the table's first entry, which never changes.
    index: HashMap<usize, HashMap<Cow<'i, str>, usize, RandomState>, RandomState>,
    pub(super) root: TableHead,
}

impl<'i> Document<'i> {
    pub(super) fn with_capacity(entries: usize, items: usize) -> Self {
        Self {
            entries: Vec::with_capacity(entries),
            items: Vec::with_capacity(items),
            index: HashMap::default(),
            root: TableHead::new(false),
        }
    }

    pub fn root(&self) -> Table<'_, 'i> {
        Table {
            doc: self,
            head: self.root,
        }
    }

    /// Where `key` is among the entries of `table`.
    pub(super) fn position(&self, table: &TableHead, key: &str) -> Option<usize> {
        if table.len >= INDEX_FROM {
            return self.index.get(&table.first)?.get(key).copied();
        }
        let mut at = table.first;
        while let Some(entry) = self.entries.get(at) {
            if entry.key.get_ref() == key {
                return Some(at);
            }
            at = entry.next;
        }
        None
    }

    /// Adds an entry the caller knows is new to `table`, returning its position.
    pub(super) fn push(&mut self, table: &mut TableHead, key: Key<'i>, slot: Slot<'i>) -> usize {
        let at = self.entries.len();
        if table.len + 1 == INDEX_FROM {
            let mut index =
                HashMap::with_capacity_and_hasher(2 * INDEX_FROM, RandomState::default());
            let mut next = table.first;
            while let Some(entry) = self.entries.get(next) {
                index.insert(entry.key.get_ref().clone(), next);
                next = entry.next;
            }
            index.insert(key.get_ref().clone(), at);
            self.index.insert(table.first, index);
        } else if table.len >= INDEX_FROM {
            if let Some(index) = self.index.get_mut(&table.first) {
                index.insert(key.get_ref().clone(), at);
            }
        }
        match self.entries.get_mut(table.last) {
            Some(last) => last.next = at,
            None => table.first = at,
        }
        table.last = at;
        table.len += 1;
        self.entries.push(Entry {
            key,
            slot,
            next: NONE,
        });
        at
    }

    pub(super) fn slot(&self, at: usize) -> Option<&Slot<'i>> {
        self.entries.get(at).map(|entry| &entry.slot)
    }

    pub(super) fn slot_mut(&mut self, at: usize) -> Option<&mut Slot<'i>> {
        self.entries.get_mut(at).map(|entry| &mut entry.slot)
    }

    /// Stores the items of a list, returning where they went.
    pub(super) fn push_items(&mut self, items: impl IntoIterator<Item = Slot<'i>>) -> Range<usize> {
        let start = self.items.len();
        self.items.extend(items);
        start..self.items.len()
    }
}

/// A table of the document.
#[derive(Clone, Copy)]
pub struct Table<'t, 'i> {
    doc: &'t Document<'i>,
    head: TableHead,
}

impl<'t, 'i> Table<'t, 'i> {
    pub fn iter(self) -> impl Iterator<Item = (&'t Key<'i>, Node<'t, 'i>)> {
        let doc = self.doc;
        let mut at = self.head.first;
        std::iter::from_fn(move || {
            let entry = doc.entries.get(at)?;
            at = entry.next;
            Some((&entry.key, Node::new(doc, &entry.slot)))
        })
    }

    pub fn len(self) -> usize {
        self.head.len
    }

    pub fn is_empty(self) -> bool {
        self.head.len == 0
    }

    pub fn get(self, key: &str) -> Option<(&'t Key<'i>, Node<'t, 'i>)> {
        let entry = self.doc.entries.get(self.doc.position(&self.head, key)?)?;
        Some((&entry.key, Node::new(self.doc, &entry.slot)))
    }
}

/// A value of the document with the span it was written at.
#[derive(Clone, Copy)]
pub struct Node<'t, 'i> {
    doc: &'t Document<'i>,
    slot: &'t Slot<'i>,
}

#[derive(Clone, Copy)]
pub enum Value<'t, 'i> {
    String(&'t str),
    /// The number as decoded for `i64::from_str_radix`, and its radix.
    Integer(&'t str, u32),
    Float(&'t str),
    Boolean(bool),
    Datetime(&'t Datetime),
    Array(List<'t, 'i>),
    Table(Table<'t, 'i>),
}

impl<'t, 'i> Node<'t, 'i> {
    fn new(doc: &'t Document<'i>, slot: &'t Slot<'i>) -> Self {
        Self { doc, slot }
    }

    pub fn span(self) -> Range<usize> {
        self.slot.span()
    }

    pub fn value(self) -> Value<'t, 'i> {
        match self.slot.get_ref() {
            Stored::String(s) => Value::String(s),
            Stored::Integer(digits, radix) => Value::Integer(digits, *radix),
            Stored::Float(f) => Value::Float(f),
            Stored::Boolean(b) => Value::Boolean(*b),
            Stored::Datetime(d) => Value::Datetime(d),
            Stored::Array(range) => Value::Array(List {
                doc: self.doc,
                items: self.doc.items.get(range.clone()).unwrap_or_default(),
            }),
            Stored::Table(head) => Value::Table(Table {
                doc: self.doc,
                head: *head,
            }),
        }
    }
}

/// The items of a TOML array.
#[derive(Clone, Copy)]
pub struct List<'t, 'i> {
    doc: &'t Document<'i>,
    items: &'t [Slot<'i>],
}

impl<'t, 'i> List<'t, 'i> {
    pub fn len(self) -> usize {
        self.items.len()
    }

    pub fn iter(self) -> impl Iterator<Item = Node<'t, 'i>> {
        let doc = self.doc;
        self.items.iter().map(move |slot| Node::new(doc, slot))
    }
}

impl std::fmt::Debug for Table<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl std::fmt::Debug for Node<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = self.span();
        match self.value() {
            Value::String(s) => write!(f, "{span:?} {s:?}"),
            Value::Integer(digits, radix) => write!(f, "{span:?} {digits}/{radix}"),
            Value::Float(x) => write!(f, "{span:?} {x}"),
            Value::Boolean(b) => write!(f, "{span:?} {b}"),
            Value::Datetime(d) => write!(f, "{span:?} {d}"),
            Value::Array(items) => {
                write!(f, "{span:?} ")?;
                f.debug_list().entries(items.iter()).finish()
            }
            Value::Table(table) => write!(f, "{span:?} {table:?}"),
        }
    }
}

impl std::fmt::Debug for Document<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.root().fmt(f)
    }
}

/// Parses a whole file: the tree, or the syntax errors that keep it from being read.
pub fn parse(source: &str) -> Result<Document<'_>, Vec<toml::de::Error>> {
    if let Some(document) = super::tree_events::build(source) {
        return Ok(document);
    }
    let (root, errors) = DeTable::parse_recoverable(source);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut document = Document::with_capacity(0, 0);
    document.root = table(&mut document, root.into_inner());
    Ok(document)
}

fn table<'i>(doc: &mut Document<'i>, de: DeTable<'i>) -> TableHead {
    let mut head = TableHead::new(false);
    for (key, value) in de {
        let slot = slot(doc, value);
        doc.push(&mut head, key, slot);
    }
    head
}

fn slot<'i>(doc: &mut Document<'i>, value: Spanned<DeValue<'i>>) -> Slot<'i> {
    let span = value.span();
    let stored = match value.into_inner() {
        DeValue::String(s) => Stored::String(s),
        DeValue::Integer(i) => Stored::Integer(Cow::Owned(i.as_str().to_owned()), i.radix()),
        DeValue::Float(f) => Stored::Float(Cow::Owned(f.as_str().to_owned())),
        DeValue::Boolean(b) => Stored::Boolean(b),
        DeValue::Datetime(d) => Stored::Datetime(d),
        DeValue::Array(items) => {
            let items: Vec<Slot<'i>> = items.into_iter().map(|item| slot(doc, item)).collect();
            Stored::Array(doc.push_items(items))
        }
        DeValue::Table(t) => Stored::Table(table(doc, t)),
    };
    Spanned::new(span, stored)
}

#[cfg(test)]
mod tests {
    use super::super::tree_events;
    use super::*;

    /// The tree built from events is exactly the one `toml` builds, spans included, and the
    /// events path gives up on every file `toml` rejects.
    fn same_tree(source: &str) {
        let (root, errors) = DeTable::parse_recoverable(source);
        let expected = errors.is_empty().then(|| {
            let mut document = Document::with_capacity(0, 0);
            document.root = table(&mut document, root.into_inner());
            format!("{document:?}")
        });
        let built = tree_events::build(source).map(|tree| format!("{tree:?}"));
        if built.is_some() {
            assert_eq!(built, expected, "{source}");
        }
    }

    /// Each file, then the file without each line, with each line twice, and cut after it.
    fn variants(source: &str) -> Vec<String> {
        let lines: Vec<&str> = source.split_inclusive('\n').collect();
        let mut out = vec![source.to_string()];
        for at in 0..lines.len() {
            let (before, after) = lines.split_at(at);
            out.push(before.concat() + &after[1..].concat());
            out.push(before.concat() + after[0] + &after.concat());
            out.push(before.concat() + after[0]);
        }
        out
    }

    #[test]
    fn events_build_the_tree_toml_builds() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = std::fs::read_to_string(root.join("perstack.toml")).expect("example");
        assert!(
            tree_events::build(&example).is_some(),
            "the example takes the events path"
        );
        let mut sources = vec![example];
        for dir in ["tests/fixtures/good", "tests/fixtures/bad"] {
            for entry in std::fs::read_dir(root.join(dir))
                .expect("fixtures")
                .flatten()
            {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    sources.push(text);
                }
            }
        }
        for source in sources.iter().flat_map(|s| variants(s)) {
            same_tree(&source);
        }
    }

    #[test]
    fn events_take_on_plain_toml_and_leave_the_rest() {
        for source in [
            "",
            "\u{feff}model = 'x'\n",
            "a = 1\nb = 'two'\nc = \"th\\u00e9ree\"\nd = 1.5\ne = true\nf = 1979-05-27T07:32:00Z\n",
            "x = 0x1F\ny = -1_000\nz = 6e-3\nw = -inf\nv = nan\nu = 0o17\nt = 0b11\n",
            "big = 99999999999999999999\n",
            "a = [1, [2, 3], { b = 'c', d = [] }, ]\n",
            "a = {}\nb = { c = { d = 1 } }\n",
            "[a]\n[a.b]\n[a.b.c]\n[a.d]\n[e.f]\n[a.b.g]\nx = 1\n",
            "[\"quoted key\"]\n'lit' = 2\n\"\" = 3\n[\"quoted key\".'x y']\n",
            "[ a . b ]  # comment\nc = 1 # comment\n",
            "m = '''\nline\n'''\nn = \"\"\"\n\\\n  joined\"\"\"\n",
        ] {
            assert!(tree_events::build(source).is_some(), "{source}");
            same_tree(source);
        }
        for source in [
            // Valid, but left to toml.
            "a.b = 1\n[a.c]\nx = 1\n",
            "[a.b]\nx = 1\n[a]\ny = 2\n[a.c]\n",
            "[[a]]\nx = 1\n[[a]]\nx = 2\n[a.b]\n",
            "[a]\nb = { c.d = 1 }\n",
            // Invalid.
            "a = 1\na = 2\n",
            "[a]\n[a]\n",
            "a = {}\n[a.b]\n",
            "a = [1]\n[a.b]\n",
            "a = 1\n[a.b]\n",
            "[a]\nb = { c = 1 }\n[a.b.d]\n",
            "a = { b = 1, b = 2 }\n",
            "a = 1979-13-45\n",
            "a = \"\\q\"\n",
            "a = [\n",
            "[a\n",
            "a = 1 b = 2\n",
            "# \u{7} control in a comment\n",
            &format!("a = {}1{}\n", "[".repeat(90), "]".repeat(90)),
            &format!("[{}]\n", vec!["k"; 90].join(".")),
        ] {
            assert!(tree_events::build(source).is_none(), "{source}");
        }
    }

    #[test]
    fn files_the_events_path_leaves_are_read_through_toml() {
        let later_parent = "[experts.a.skills.s]\ntype = 'x'\n[experts.a]\ninstruction = 'i'\n";
        assert!(tree_events::build(later_parent).is_none());
        let document = parse(later_parent).expect("valid TOML");
        let experts = document.root().get("experts").map(|(_, node)| node.value());
        let Some(Value::Table(experts)) = experts else {
            panic!("experts is a table: {document:?}")
        };
        let keys: Vec<&str> = match experts.get("a").map(|(_, node)| node.value()) {
            Some(Value::Table(a)) => a.iter().map(|(k, _)| k.get_ref().as_ref()).collect(),
            _ => Vec::new(),
        };
        assert_eq!(keys, ["skills", "instruction"]);
        let errors = parse("a = 1\na = 2\n").expect_err("duplicate key");
        assert!(errors[0].message().contains("duplicate key"), "{errors:?}");
    }

    #[test]
    fn large_tables_are_found_by_key() {
        let source: String = (0..40).map(|i| format!("[t.k{i}]\nv = {i}\n")).collect();
        let document = parse(&source).expect("valid TOML");
        let Some(Value::Table(t)) = document.root().get("t").map(|(_, node)| node.value()) else {
            panic!("t is a table")
        };
        assert_eq!(t.len(), 40);
        for i in [0, 15, 16, 39] {
            let (key, _) = t.get(&format!("k{i}")).expect("found");
            assert_eq!(key.get_ref(), &format!("k{i}"));
        }
        assert!(t.get("k40").is_none());
        assert!(parse(&format!("{source}[t.k20]\n")).is_err());
    }
}
