//! Syntax highlighting: syntect styles turned into ratatui spans, one line at a time, cached
//! by the hash of the line's text so scrolling re-highlights nothing.
//!
//! Lines are highlighted on their own, starting from a state primed as "inside a JSON object".
//! Pretty-printed JSON keeps every token on one line, so this matches a whole-document pass
//! closely, and it lets a 5 MB body be laid out only where it is visible.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::OnceLock;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use syntect::highlighting::{
    FontStyle, HighlightState, Highlighter as SynHighlighter, Theme, ThemeSet,
};
use syntect::parsing::{ParseState, ScopeStack, SyntaxReference, SyntaxSet};

/// Above this many cached lines the cache starts over: memory stays bounded.
const CACHE_LIMIT: usize = 20_000;
/// Of a very long line only this prefix is parsed; the rest keeps the style the prefix ends
/// in (in pretty JSON, the string the long value is), so a 2 MB line costs no more than this.
const MAX_LINE: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Json,
    Plain,
}

struct Assets {
    syntaxes: SyntaxSet,
    themes: ThemeSet,
}

// Loading the bundled definitions takes a few milliseconds: done once, on first use.
fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| Assets {
        syntaxes: SyntaxSet::load_defaults_newlines(),
        themes: ThemeSet::load_defaults(),
    })
}

pub struct Highlighter {
    theme_name: String,
    cache: RefCell<HashMap<u64, Line<'static>>>,
}

impl Highlighter {
    pub fn new(theme_name: &str) -> Self {
        Highlighter {
            theme_name: theme_name.to_string(),
            cache: RefCell::new(HashMap::new()),
        }
    }

    fn theme(&self) -> Option<&'static Theme> {
        let themes = &assets().themes.themes;
        themes
            .get(&self.theme_name)
            .or_else(|| themes.get("base16-ocean.dark"))
    }

    /// The highlighted line, all of it; plain text when the language or theme is unknown.
    pub fn line(&self, lang: Lang, text: &str) -> Line<'static> {
        let spans = self
            .styles(lang, text)
            .into_iter()
            .map(|(range, style)| Span::styled(text[range].to_string(), style))
            .collect::<Vec<_>>();
        Line::from(spans)
    }

    /// The style of every byte of `text`, as ranges that cover it in order.
    pub fn styles(&self, lang: Lang, text: &str) -> Vec<(Range<usize>, Style)> {
        let prefix = cut(text, MAX_LINE);
        let mut styles = Vec::new();
        let mut at = 0;
        for span in self.prefix_line(lang, prefix).spans {
            let end = at + span.content.len();
            styles.push((at..end, span.style));
            at = end;
        }
        match styles.last_mut() {
            Some((range, _)) => range.end = text.len(),
            None => styles.push((0..text.len(), Style::default())),
        }
        styles
    }

    fn prefix_line(&self, lang: Lang, text: &str) -> Line<'static> {
        if lang == Lang::Plain {
            return Line::raw(text.to_string());
        }
        let key = {
            let mut hasher = DefaultHasher::new();
            (lang, text).hash(&mut hasher);
            hasher.finish()
        };
        if let Some(line) = self.cache.borrow().get(&key) {
            return line.clone();
        }
        let line = self
            .highlight(text)
            .unwrap_or_else(|| Line::raw(text.to_string()));
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, line.clone());
        line
    }

    fn highlight(&self, text: &str) -> Option<Line<'static>> {
        let assets = assets();
        let syntax: &SyntaxReference = assets.syntaxes.find_syntax_by_extension("json")?;
        let theme = self.theme()?;
        let highlighter = SynHighlighter::new(theme);
        let mut parse = ParseState::new(syntax);
        let mut state = HighlightState::new(&highlighter, ScopeStack::new());
        // Prime the parser as inside an object, so `"key":` reads as a key.
        let _ = parse.parse_line("{\n", &assets.syntaxes).ok()?;
        let line = format!("{text}\n");
        let ops = parse.parse_line(&line, &assets.syntaxes).ok()?;
        let ranges: Vec<_> = syntect::highlighting::RangedHighlightIterator::new(
            &mut state,
            &ops,
            &line,
            &highlighter,
        )
        .collect();
        let spans = ranges
            .into_iter()
            .filter_map(|(style, piece, _)| {
                let piece = piece.trim_end_matches('\n');
                (!piece.is_empty()).then(|| Span::styled(piece.to_string(), convert(style)))
            })
            .collect::<Vec<_>>();
        Some(Line::from(spans))
    }
}

fn convert(style: syntect::highlighting::Style) -> Style {
    let fg = style.foreground;
    let mut out = Style::default().fg(Color::Rgb(fg.r, fg.g, fg.b));
    if style.font_style.contains(FontStyle::BOLD) {
        out = out.add_modifier(Modifier::BOLD);
    }
    if style.font_style.contains(FontStyle::ITALIC) {
        out = out.add_modifier(Modifier::ITALIC);
    }
    out
}

/// The longest prefix of at most `max` bytes that ends on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_get_colours_and_keep_their_text() {
        let h = Highlighter::new("base16-ocean.dark");
        let line = h.line(Lang::Json, r#"  "model": "claude", "n": 3,"#);
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, r#"  "model": "claude", "n": 3,"#);
        let colours: std::collections::HashSet<_> = line.spans.iter().map(|s| s.style.fg).collect();
        assert!(colours.len() >= 2, "{line:?}");
        // The second call comes from the cache.
        assert_eq!(h.line(Lang::Json, r#"  "model": "claude", "n": 3,"#), line);
    }

    #[test]
    fn every_theme_name_a_theme_file_may_use_is_bundled() {
        for name in crate::tui::theme::SYNTAX_THEMES {
            assert!(assets().themes.themes.contains_key(name), "{name}");
        }
    }

    #[test]
    fn a_line_longer_than_what_is_parsed_is_kept_whole() {
        let h = Highlighter::new("base16-ocean.dark");
        let long = format!(r#"  "system": "{}end of it","#, "word ".repeat(2_000));
        let line = h.line(Lang::Json, &long);
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, long);
        let styles = h.styles(Lang::Json, &long);
        assert_eq!(styles.last().map(|(r, _)| r.end), Some(long.len()));
        assert!(styles.windows(2).all(|w| w[0].0.end == w[1].0.start));
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 10), "abc");
    }
}
