//! The workbench's text boxes: an editor over `ratatui-textarea` (cursor moves, word jumps,
//! undo, paste, multi-line with Alt-Enter) that turns the keys meaning "submit", "close" and
//! "walk the history" into outcomes for `AppState`, and the history of queries kept in
//! `perstack/history.jsonl` (one JSON string a line, so a multi-line query stays one entry).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Style;
use ratatui_textarea::{CursorMove, TextArea};

/// A box never grows past this many lines; a longer text scrolls inside it.
pub const MAX_VISIBLE_LINES: usize = 8;

/// Entries kept in the history file; the oldest go first.
pub const HISTORY_CAP: usize = 1_000;

/// What a key did to a text box, for the state around it to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Enter: the text is done.
    Submit,
    /// Esc or Ctrl-C.
    Close,
    /// ↑ on the first line: the previous entry of the history is wanted.
    Older,
    /// ↓ on the last line: the next entry of the history (or the draft) is wanted.
    Newer,
    /// The text or the cursor changed, or nothing happened.
    Edited,
}

/// One text box. Compared by its text and cursor: the editor's undo stack and scroll position
/// are not what makes two boxes the same.
#[derive(Debug, Clone)]
pub struct TextInput {
    /// Boxed: the editor is large, and modes are moved around by value.
    editor: Box<TextArea<'static>>,
    multi_line: bool,
}

impl Default for TextInput {
    fn default() -> Self {
        TextInput::multi_line("")
    }
}

impl PartialEq for TextInput {
    fn eq(&self, other: &Self) -> bool {
        self.multi_line == other.multi_line
            && self.editor.lines() == other.editor.lines()
            && self.cursor() == other.cursor()
    }
}

impl From<&str> for TextInput {
    fn from(text: &str) -> Self {
        TextInput::multi_line(text)
    }
}

impl TextInput {
    /// A box for queries and answers: Alt-Enter (or Shift-Enter, or Ctrl-J) starts a new line.
    pub fn multi_line(text: &str) -> Self {
        TextInput::with_text(text, true)
    }

    /// A box for one line (search): newlines, typed or pasted, become spaces.
    pub fn single_line(text: &str) -> Self {
        TextInput::with_text(&text.replace(['\r', '\n'], " "), false)
    }

    fn with_text(text: &str, multi_line: bool) -> Self {
        TextInput {
            editor: editor_with(text),
            multi_line,
        }
    }

    /// The whole text, its lines joined by `\n`.
    pub fn text(&self) -> String {
        self.editor.lines().join("\n")
    }

    /// Nothing but whitespace.
    pub fn is_blank(&self) -> bool {
        self.editor.lines().iter().all(|l| l.trim().is_empty())
    }

    pub fn line_count(&self) -> usize {
        self.editor.lines().len()
    }

    /// Lines the box shows: its text's, at least one, at most `MAX_VISIBLE_LINES`.
    pub fn visible_lines(&self) -> usize {
        self.line_count().clamp(1, MAX_VISIBLE_LINES)
    }

    /// (line, column in characters) of the cursor.
    pub fn cursor(&self) -> (usize, usize) {
        let cursor = self.editor.cursor();
        (cursor.0, cursor.1)
    }

    /// The editor, for drawing.
    pub fn editor(&self) -> &TextArea<'static> {
        &self.editor
    }

    /// Replaces the text; the cursor goes to its end.
    pub fn replace(&mut self, text: &str) {
        self.editor = editor_with(text);
    }

    /// Puts the cursor at the end of the first line (after ↑ recalled an entry, so that ↑
    /// again goes further back at once).
    fn cursor_to_first_line(&mut self) {
        self.editor.move_cursor(CursorMove::Top);
        self.editor.move_cursor(CursorMove::End);
    }

    /// Inserts pasted text at the cursor. Terminals send a pasted line break as `\r`.
    pub fn paste(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        if self.multi_line {
            self.editor.insert_str(text);
        } else {
            self.editor.insert_str(text.replace('\n', " "));
        }
    }

    /// Applies a key: the editing ones change the text; the others come back as an outcome.
    pub fn on_key(&mut self, key: KeyEvent) -> KeyOutcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        let plain = !ctrl && !alt;
        let (line, _) = self.cursor();
        match key.code {
            KeyCode::Esc => KeyOutcome::Close,
            KeyCode::Char('c') if ctrl => KeyOutcome::Close,
            KeyCode::Enter if (alt || shift) && self.multi_line => {
                self.editor.insert_newline();
                KeyOutcome::Edited
            }
            // Ctrl-J is a line feed: a new line in terminals that send Alt-Enter as Enter.
            KeyCode::Char('j') if ctrl && self.multi_line => {
                self.editor.insert_newline();
                KeyOutcome::Edited
            }
            KeyCode::Enter => KeyOutcome::Submit,
            KeyCode::Up if plain && line == 0 => KeyOutcome::Older,
            KeyCode::Down if plain && line + 1 >= self.line_count() => KeyOutcome::Newer,
            // As in a shell: Ctrl-U deletes to the start of the line, Ctrl-Z undoes.
            KeyCode::Char('u') if ctrl => {
                self.editor.delete_line_by_head();
                KeyOutcome::Edited
            }
            KeyCode::Char('z') if ctrl => {
                self.editor.undo();
                KeyOutcome::Edited
            }
            KeyCode::Tab | KeyCode::BackTab => KeyOutcome::Edited,
            _ => {
                self.editor.input(key);
                KeyOutcome::Edited
            }
        }
    }
}

/// An editor holding `text`, the cursor at its end.
fn editor_with(text: &str) -> Box<TextArea<'static>> {
    let mut editor = TextArea::new(text.split('\n').map(str::to_string).collect());
    // The line under the cursor is not underlined: the box holds few lines.
    editor.set_cursor_line_style(Style::default());
    editor.move_cursor(CursorMove::Bottom);
    editor.move_cursor(CursorMove::End);
    Box::new(editor)
}

/// The queries typed in this project, oldest first, and where ↑/↓ are in them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryHistory {
    entries: Vec<String>,
    /// The entry shown while walking; None when the box holds the person's own draft.
    walk: Option<usize>,
    /// What the box held when the walk began, given back by ↓ past the newest entry.
    draft: String,
}

impl QueryHistory {
    pub fn new(entries: Vec<String>) -> Self {
        let mut history = QueryHistory::default();
        for entry in entries {
            history.push(&entry);
        }
        history
    }

    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Adds a submitted query; false when it repeats the newest entry (nothing to remember).
    pub fn push(&mut self, query: &str) -> bool {
        self.walk = None;
        if query.trim().is_empty() || self.entries.last().is_some_and(|last| last == query) {
            return false;
        }
        self.entries.push(query.to_string());
        if self.entries.len() > HISTORY_CAP {
            let excess = self.entries.len() - HISTORY_CAP;
            self.entries.drain(..excess);
        }
        true
    }

    /// A box opened: the walk starts again from the newest entry.
    pub fn restart(&mut self) {
        self.walk = None;
        self.draft.clear();
    }

    /// ↑: shows the entry before the one shown (the newest one first); false at the oldest.
    pub fn older(&mut self, input: &mut TextInput) -> bool {
        let next = match self.walk {
            None => self.entries.len().checked_sub(1),
            Some(i) => i.checked_sub(1),
        };
        let Some(i) = next else {
            return false;
        };
        if self.walk.is_none() {
            self.draft = input.text();
        }
        self.walk = Some(i);
        input.replace(&self.entries[i]);
        input.cursor_to_first_line();
        true
    }

    /// ↓: shows the entry after the one shown, or past the newest the draft; false when not
    /// walking.
    pub fn newer(&mut self, input: &mut TextInput) -> bool {
        let Some(i) = self.walk else {
            return false;
        };
        if i + 1 < self.entries.len() {
            self.walk = Some(i + 1);
            input.replace(&self.entries[i + 1]);
        } else {
            self.walk = None;
            input.replace(&std::mem::take(&mut self.draft));
        }
        true
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "could not read the query history {}: {source} (fix its permissions, or delete it to start afresh)",
        path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "could not save the query to {}: {source} (is the workspace writable?)",
        path.display()
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the history of the project in `workspace` is kept.
pub fn history_path(workspace: &Path) -> PathBuf {
    workspace.join("perstack").join("history.jsonl")
}

/// The entries of a history file, oldest first; none when it does not exist yet. A line that
/// is not a JSON string (an edit by hand gone wrong) is skipped rather than losing the rest.
pub fn load_history(path: &Path) -> Result<Vec<String>, HistoryError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(HistoryError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<String>(line).ok())
        .collect())
}

/// Adds `query` to the history file (unless it repeats the newest entry), keeping the newest
/// `HISTORY_CAP`. The file is rewritten through a temporary one, so a crash leaves the old one.
pub fn append_history(path: &Path, query: &str) -> Result<(), HistoryError> {
    let write_error = |source| HistoryError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut history = QueryHistory::new(load_history(path)?);
    if !history.push(query) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(write_error)?;
    }
    let mut text = String::new();
    for entry in history.entries() {
        // Serialising a string cannot fail.
        text.push_str(&serde_json::to_string(entry).unwrap_or_default());
        text.push('\n');
    }
    let temporary = path.with_extension("jsonl.tmp");
    let mut file = fs::File::create(&temporary).map_err(write_error)?;
    file.write_all(text.as_bytes()).map_err(write_error)?;
    drop(file);
    fs::rename(&temporary, path).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(input: &mut TextInput, code: KeyCode, modifiers: KeyModifiers) -> KeyOutcome {
        input.on_key(KeyEvent::new(code, modifiers))
    }

    fn typed(input: &mut TextInput, text: &str) {
        for c in text.chars() {
            press(input, KeyCode::Char(c), KeyModifiers::NONE);
        }
    }

    #[test]
    fn keys_edit_at_the_cursor_and_jump_words() {
        let mut input = TextInput::default();
        typed(&mut input, "write notes");
        press(&mut input, KeyCode::Home, KeyModifiers::NONE);
        assert_eq!(input.cursor(), (0, 0));
        press(&mut input, KeyCode::Right, KeyModifiers::CONTROL);
        typed(&mut input, "short ");
        assert_eq!(input.text(), "write short notes");
        press(&mut input, KeyCode::Char('b'), KeyModifiers::ALT);
        assert_eq!(input.cursor(), (0, 6));
        press(&mut input, KeyCode::End, KeyModifiers::NONE);
        press(&mut input, KeyCode::Backspace, KeyModifiers::NONE);
        assert_eq!(input.text(), "write short note");
        press(&mut input, KeyCode::Char('u'), KeyModifiers::CONTROL);
        assert!(input.is_blank());
    }

    #[test]
    fn alt_enter_and_paste_make_lines_and_enter_submits() {
        let mut input = TextInput::default();
        typed(&mut input, "one");
        assert_eq!(
            press(&mut input, KeyCode::Enter, KeyModifiers::ALT),
            KeyOutcome::Edited
        );
        input.paste("two\r\nthree\rfour");
        assert_eq!(input.text(), "one\ntwo\nthree\nfour");
        assert_eq!(input.visible_lines(), 4);
        assert_eq!(
            press(&mut input, KeyCode::Enter, KeyModifiers::NONE),
            KeyOutcome::Submit
        );
        // ↑ moves between lines; only on the first line does it ask for the history.
        assert_eq!(
            press(&mut input, KeyCode::Up, KeyModifiers::NONE),
            KeyOutcome::Edited
        );
        input.replace("one");
        assert_eq!(
            press(&mut input, KeyCode::Up, KeyModifiers::NONE),
            KeyOutcome::Older
        );
    }

    #[test]
    fn a_single_line_box_keeps_one_line() {
        let mut input = TextInput::single_line("a\nb");
        input.paste(" c\nd");
        press(&mut input, KeyCode::Enter, KeyModifiers::ALT);
        assert_eq!(input.text(), "a b c d");
    }

    #[test]
    fn the_history_walks_back_and_forth_and_gives_back_the_draft() {
        let mut history = QueryHistory::new(vec!["first".into(), "second\nline".into()]);
        assert!(!history.push("second\nline"), "a repeat is not remembered");
        let mut input = TextInput::from("draft");
        assert!(history.older(&mut input));
        assert_eq!(input.text(), "second\nline");
        assert_eq!(input.cursor().0, 0, "↑ again goes further back at once");
        assert!(history.older(&mut input));
        assert_eq!(input.text(), "first");
        assert!(!history.older(&mut input));
        assert!(history.newer(&mut input));
        assert!(history.newer(&mut input));
        assert_eq!(input.text(), "draft");
        assert!(!history.newer(&mut input));
    }

    #[test]
    fn the_history_file_keeps_lines_and_drops_repeats_and_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = history_path(dir.path());
        assert!(load_history(&path).expect("no file yet").is_empty());
        append_history(&path, "two\nlines").expect("written");
        append_history(&path, "two\nlines").expect("written");
        append_history(&path, "after").expect("written");
        assert_eq!(
            load_history(&path).expect("read"),
            ["two\nlines".to_string(), "after".to_string()]
        );
        for i in 0..HISTORY_CAP {
            append_history(&path, &format!("q{i}")).expect("written");
        }
        let entries = load_history(&path).expect("read");
        assert_eq!(entries.len(), HISTORY_CAP);
        assert_eq!(entries[0], "q0");
    }

    #[test]
    fn a_history_that_cannot_be_written_says_where_and_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file being written should be.
        let path = history_path(dir.path());
        fs::create_dir_all(path.with_extension("jsonl.tmp")).expect("created");
        let err = append_history(&path, "q").expect_err("not writable");
        let message = err.to_string();
        assert!(message.contains("history.jsonl"), "{message}");
        assert!(message.contains("writable"), "{message}");
    }
}
