//! Reading a registry Expert's published text: scrolling, closing, and vendoring it into
//! perstack.toml (`V`), after which the authoring loop applies to it like any local Expert.

use crossterm::event::{KeyCode, KeyEvent};

use super::{AppState, Effect, Mode};

impl AppState {
    /// The published text's lines, for the overlay and for scrolling.
    pub fn published_lines(&self, index: usize) -> Vec<&str> {
        self.registry
            .get(index)
            .and_then(|entry| entry.text.as_deref())
            .map(|text| text.lines().collect())
            .unwrap_or_default()
    }

    pub(super) fn on_published_key(
        &mut self,
        index: usize,
        scroll: usize,
        key: KeyEvent,
    ) -> Vec<Effect> {
        let len = self.published_lines(index).len();
        let page = self.height.saturating_sub(6).max(1) as usize;
        let scroll = match key.code {
            KeyCode::Down | KeyCode::Char('j') => scroll + 1,
            KeyCode::Up | KeyCode::Char('k') => scroll.saturating_sub(1),
            KeyCode::PageDown | KeyCode::Char(' ') => scroll + page,
            KeyCode::PageUp => scroll.saturating_sub(page),
            KeyCode::Home | KeyCode::Char('g') => 0,
            KeyCode::End | KeyCode::Char('G') => len,
            KeyCode::Char('V') => {
                self.mode = Mode::Normal;
                let Some(entry) = self.registry.get(index) else {
                    return Vec::new();
                };
                return match crate::registry::vendored_text(entry) {
                    Ok(text) => vec![Effect::Vendor {
                        key: entry.key.clone(),
                        text,
                    }],
                    Err(err) => {
                        self.status = Some(format!("cannot vendor {}: {err}", entry.key));
                        Vec::new()
                    }
                };
            }
            _ => {
                self.mode = Mode::Normal;
                return Vec::new();
            }
        };
        self.mode = Mode::Published {
            index,
            scroll: scroll.min(len.saturating_sub(1)),
        };
        Vec::new()
    }
}
