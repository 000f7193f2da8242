//! perstack.toml as a tree of spanned TOML values, the form the field checks read.
//!
//! Usual files are built straight from the parser's events ([`super::tree_events`]); anything
//! that path does not take on (a syntax error, dotted keys, arrays of tables, a table written
//! after its subtables) goes through `toml`'s own tree instead, which also words every syntax
//! error. Both give the same tree for the same file.

use std::borrow::Cow;
use std::collections::HashMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use toml::value::Datetime;

pub type Key<'i> = Spanned<Cow<'i, str>>;
pub type Node<'i> = Spanned<Value<'i>>;

#[derive(Debug)]
pub enum Value<'i> {
    String(Cow<'i, str>),
    /// The number as decoded for `i64::from_str_radix`, and its radix.
    Integer(Cow<'i, str>, u32),
    /// The number as written, for `f64` to parse.
    Float(Cow<'i, str>),
    Boolean(bool),
    Datetime(Datetime),
    Array(Vec<Node<'i>>),
    Table(Table<'i>),
}

/// Entries in the order written. Large tables (`experts`) also keep an index by key, so that
/// building a file of many Experts stays linear.
#[derive(Default)]
pub struct Table<'i> {
    entries: Vec<(Key<'i>, Node<'i>)>,
    /// Boxed so that small tables, nearly all of them, stay small.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<Cow<'i, str>, usize>>>,
    /// Written as `{ ... }`, so no header may add to it.
    inline: bool,
}

/// Below this many entries a scan is cheaper than hashing.
const INDEX_FROM: usize = 16;

impl<'i> Table<'i> {
    pub(super) fn inline() -> Self {
        Self {
            inline: true,
            ..Self::default()
        }
    }

    pub(super) fn is_inline(&self) -> bool {
        self.inline
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key<'i>, &Node<'i>)> {
        self.entries.iter().map(|(key, node)| (key, node))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<(&Key<'i>, &Node<'i>)> {
        self.position(key)
            .and_then(|at| self.entries.get(at))
            .map(|(key, node)| (key, node))
    }

    pub(super) fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k.get_ref() == key),
        }
    }

    /// Adds an entry the caller knows is new, returning its position.
    pub(super) fn push(&mut self, key: Key<'i>, node: Node<'i>) -> usize {
        let at = self.entries.len();
        if let Some(index) = &mut self.index {
            index.insert(key.get_ref().clone(), at);
        } else if at + 1 >= INDEX_FROM {
            let mut index: HashMap<_, _> = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.get_ref().clone(), i))
                .collect();
            index.insert(key.get_ref().clone(), at);
            self.index = Some(Box::new(index));
        }
        self.entries.push((key, node));
        at
    }

    pub(super) fn node_mut(&mut self, at: usize) -> Option<&mut Node<'i>> {
        self.entries.get_mut(at).map(|(_, node)| node)
    }
}

impl std::fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Parses a whole file: the tree, or the syntax errors that keep it from being read.
pub fn parse(source: &str) -> Result<Table<'_>, Vec<toml::de::Error>> {
    if let Some(root) = super::tree_events::build(source) {
        return Ok(root);
    }
    let (root, errors) = DeTable::parse_recoverable(source);
    if errors.is_empty() {
        Ok(table(root.into_inner()))
    } else {
        Err(errors)
    }
}

fn table(de: DeTable<'_>) -> Table<'_> {
    let mut out = Table::default();
    for (key, value) in de {
        out.push(key, node(value));
    }
    out
}

fn node(value: Spanned<DeValue<'_>>) -> Node<'_> {
    let span = value.span();
    let value = match value.into_inner() {
        DeValue::String(s) => Value::String(s),
        DeValue::Integer(i) => Value::Integer(Cow::Owned(i.as_str().to_owned()), i.radix()),
        DeValue::Float(f) => Value::Float(Cow::Owned(f.as_str().to_owned())),
        DeValue::Boolean(b) => Value::Boolean(b),
        DeValue::Datetime(d) => Value::Datetime(d),
        DeValue::Array(items) => Value::Array(items.into_iter().map(node).collect()),
        DeValue::Table(t) => Value::Table(table(t)),
    };
    Spanned::new(span, value)
}

#[cfg(test)]
mod tests {
    use super::super::tree_events;
    use super::*;

    /// The tree built from events is exactly the one `toml` builds, spans included, and the
    /// events path gives up on every file `toml` rejects.
    fn same_tree(source: &str) {
        let (root, errors) = DeTable::parse_recoverable(source);
        let expected = errors
            .is_empty()
            .then(|| format!("{:?}", table(root.into_inner())));
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
        let root = parse(later_parent).expect("valid TOML");
        let experts = root.get("experts").map(|(_, node)| node.get_ref());
        let Some(Value::Table(experts)) = experts else {
            panic!("experts is a table: {root:?}")
        };
        let keys: Vec<&str> = match experts.get("a") {
            Some((_, node)) => match node.get_ref() {
                Value::Table(a) => a.iter().map(|(k, _)| k.get_ref().as_ref()).collect(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        assert_eq!(keys, ["skills", "instruction"]);
        let errors = parse("a = 1\na = 2\n").expect_err("duplicate key");
        assert!(errors[0].message().contains("duplicate key"), "{errors:?}");
    }
}
