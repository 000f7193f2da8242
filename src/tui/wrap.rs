//! Wrapping one line of text into screen rows, computed for the lines on screen only. Nothing
//! is cut: every character of a line lands on some row, however long the line is.
//!
//! Two ways: `Chars` breaks at the column (exact text, such as a raw request body, where a
//! break must not hide a space), `Words` breaks after a space when it can (prose, such as the
//! conversation view; the space a row ends with is not drawn).

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::ops::Range;

use unicode_width::UnicodeWidthChar;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapMode {
    Chars,
    Words,
}

/// The rows of one line: byte ranges into it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    /// An ASCII line broken at the column: row `i` is `i * width ..`, with no table to build,
    /// so a 2 MB line costs nothing to scroll through.
    Fixed {
        len: usize,
        width: usize,
    },
    Ranges(Vec<Range<usize>>),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::Fixed { len, width } => len.div_ceil(*width).max(1),
            Rows::Ranges(ranges) => ranges.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The byte range of row `i` (an empty range past the end).
    pub fn get(&self, i: usize) -> Range<usize> {
        match self {
            Rows::Fixed { len, width } => {
                let start = (i * width).min(*len);
                start..(start + width).min(*len)
            }
            Rows::Ranges(ranges) => ranges.get(i).cloned().unwrap_or_else(|| {
                let end = ranges.last().map_or(0, |r| r.end);
                end..end
            }),
        }
    }

    /// The row holding byte `offset`.
    pub fn row_of(&self, offset: usize) -> usize {
        match self {
            Rows::Fixed { width, .. } => (offset / width).min(self.len() - 1),
            Rows::Ranges(ranges) => ranges
                .partition_point(|r| r.end <= offset)
                .min(ranges.len().saturating_sub(1)),
        }
    }
}

/// Lines this long keep their rows for the next frames: finding them walks the whole line
/// (milliseconds for a megabyte), hashing it to look them up is a tenth of that.
const CACHED_FROM: usize = 16 * 1024;
const CACHE_SLOTS: usize = 8;

type CacheKey = (u64, usize, usize, WrapMode);

thread_local! {
    static CACHE: RefCell<Vec<(CacheKey, Rows)>> = const { RefCell::new(Vec::new()) };
}

/// The rows `text` takes at `width` columns (at least one, even for an empty line).
pub fn rows(text: &str, width: usize, mode: WrapMode) -> Rows {
    let width = width.max(1);
    if mode == WrapMode::Chars && text.is_ascii() && !text.contains('\t') {
        return Rows::Fixed {
            len: text.len(),
            width,
        };
    }
    if text.len() < CACHED_FROM {
        return walk(text, width, mode);
    }
    let key = (
        foldhash::fast::FixedState::with_seed(0).hash_one(text),
        text.len(),
        width,
        mode,
    );
    if let Some(rows) =
        CACHE.with_borrow(|c| c.iter().find(|(k, _)| *k == key).map(|(_, r)| r.clone()))
    {
        return rows;
    }
    let rows = walk(text, width, mode);
    CACHE.with_borrow_mut(|cache| {
        if cache.len() >= CACHE_SLOTS {
            cache.remove(0);
        }
        cache.push((key, rows.clone()));
    });
    rows
}

fn walk(text: &str, width: usize, mode: WrapMode) -> Rows {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut col = 0;
    // Where the current row may break: just after its last space.
    let mut after_space: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let w = char_width(c);
        if col + w > width && i > start {
            match (mode, after_space) {
                (WrapMode::Words, _) if c == ' ' => {
                    // The space at the break is not drawn: the next row starts after it.
                    ranges.push(start..i);
                    start = i + 1;
                    col = 0;
                    after_space = None;
                    continue;
                }
                (WrapMode::Words, Some(at)) if at > start => {
                    ranges.push(start..at);
                    start = at;
                    col = text[at..i].chars().map(char_width).sum();
                }
                _ => {
                    ranges.push(start..i);
                    start = i;
                    col = 0;
                }
            }
            after_space = None;
        }
        col += w;
        if c == ' ' {
            after_space = Some(i + 1);
        }
    }
    ranges.push(start..text.len());
    Rows::Ranges(ranges)
}

/// Columns a character takes; a tab counts as one (it is drawn as a space).
pub fn char_width(c: char) -> usize {
    if c == '\t' { 1 } else { c.width().unwrap_or(0) }
}

/// Byte offsets of `needle` in `haystack`, ASCII letters matched without regard to case (so
/// the offsets are offsets into the text as it is, not into a lowercased copy).
pub fn find_all(haystack: &str, needle: &str) -> Vec<usize> {
    let (hay, needle) = (haystack.as_bytes(), needle.as_bytes());
    if needle.is_empty() || needle.len() > hay.len() {
        return Vec::new();
    }
    let first = needle[0].to_ascii_lowercase();
    let mut found = Vec::new();
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if hay[i].to_ascii_lowercase() == first
            && hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
        {
            found.push(i);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str, width: usize, mode: WrapMode) -> Vec<&str> {
        let rows = rows(text, width, mode);
        // A row that breaks after a space keeps it at its end, where it shows as nothing.
        (0..rows.len())
            .map(|i| text[rows.get(i)].trim_end_matches(' '))
            .collect()
    }

    #[test]
    fn chars_keep_every_character_of_a_long_ascii_line() {
        let line = "x".repeat(20_001);
        let rows = rows(&line, 40, WrapMode::Chars);
        assert_eq!(rows.len(), 501);
        assert_eq!(rows.get(500), 20_000..20_001);
        assert_eq!(rows.row_of(20_000), 500);
    }

    #[test]
    fn chars_break_wide_characters_by_their_columns() {
        assert_eq!(
            texts("日本語のテキスト", 5, WrapMode::Chars),
            ["日本", "語の", "テキ", "スト"]
        );
        assert_eq!(
            texts("héllo wörld", 4, WrapMode::Chars),
            ["héll", "o wö", "rld"]
        );
    }

    #[test]
    fn words_break_after_spaces_and_hard_break_long_words() {
        assert_eq!(
            texts("the quick brown fox jumps", 10, WrapMode::Words),
            ["the quick", "brown fox", "jumps"]
        );
        assert_eq!(
            texts("abcdefghijkl mn", 5, WrapMode::Words),
            ["abcde", "fghij", "kl mn"]
        );
        assert_eq!(texts("", 5, WrapMode::Words), [""]);
    }

    #[test]
    fn words_lose_no_character_but_the_spaces_they_break_at() {
        let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod";
        for width in 1..30 {
            let joined: String = texts(text, width, WrapMode::Words).concat();
            assert_eq!(
                joined.replace(' ', ""),
                text.replace(' ', ""),
                "width {width}"
            );
            for row in texts(text, width, WrapMode::Words) {
                assert!(row.chars().count() <= width, "{row:?} at {width}");
            }
        }
    }

    #[test]
    fn long_lines_get_the_same_rows_from_the_cache() {
        let line = "é".repeat(20_000) + " and more words to break at";
        let first = rows(&line, 37, WrapMode::Words);
        assert_eq!(rows(&line, 37, WrapMode::Words), first);
        assert_ne!(rows(&line, 38, WrapMode::Words), first);
        let other = line.replace("more", "less");
        assert_eq!(rows(&other, 37, WrapMode::Words).len(), first.len());
    }

    #[test]
    fn find_all_ignores_ascii_case_and_keeps_offsets() {
        assert_eq!(find_all("Système SYSTEM system", "system"), [9, 16]);
        assert_eq!(find_all("aaa", "aa"), [0]);
        assert!(find_all("abc", "").is_empty());
    }
}
