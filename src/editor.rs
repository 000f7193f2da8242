//! Hands a text to the person's editor (`$VISUAL`, then `$EDITOR`, then `vi`) and reads back
//! what they saved. Used for editing a paused run's request, headless and in the workbench.

use std::io;
use std::path::Path;
use std::process::Command;

/// What came back from the editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    Changed(String),
    Unchanged,
}

/// The editor command, as the person set it (it may carry arguments: `code --wait`).
pub fn editor_command() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string())
}

/// JSON pretty-printed, so a person edits lines rather than one long one; other text as it is.
pub fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

/// Writes `text` to a temporary `*.{extension}` file in `dir`, runs the editor on it and waits.
/// The caller owns the terminal: it must hand it over before and take it back after.
pub fn edit_text(text: &str, dir: &Path, extension: &str) -> io::Result<Edited> {
    std::fs::create_dir_all(dir)?;
    let file = TempFile(dir.join(format!(
        "edit-{}-{}.{extension}",
        std::process::id(),
        crate::runtime::id::new_id()
    )));
    std::fs::write(file.path(), text)?;
    let editor = editor_command();
    // Through the shell, so an editor given with arguments works as it does in git.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start `{editor}`: {e}")))?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "`{editor}` exited with {status}; the request is left as it was"
        )));
    }
    let edited = std::fs::read_to_string(file.path())?;
    Ok(if edited == text {
        Edited::Unchanged
    } else {
        Edited::Changed(edited)
    })
}

/// The shell command that opens `file` at `line` in `editor`: `-g FILE:LINE` for VS Code and
/// its builds, `+LINE FILE` for the rest (vim, nano, emacs, helix, micro and kakoune all take
/// it). The file is passed as `$1`, never spliced into the command.
pub fn command_at_line(editor: &str, line: usize) -> String {
    let program = editor
        .split_whitespace()
        .next()
        .and_then(|p| Path::new(p).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    match program {
        "code" | "code-insiders" | "codium" | "vscodium" | "cursor" => {
            format!("{editor} -g \"$1\":{line}")
        }
        _ => format!("{editor} +{line} \"$1\""),
    }
}

/// Runs the editor on `file` at `line` and waits; what it saves is the file itself.
/// The caller owns the terminal: it must hand it over before and take it back after.
pub fn open_at(file: &Path, line: usize) -> io::Result<()> {
    let editor = editor_command();
    let status = Command::new("sh")
        .arg("-c")
        .arg(command_at_line(&editor, line.max(1)))
        .arg("sh")
        .arg(file)
        .status()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start `{editor}`: {e}")))?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "`{editor}` exited with {status} on {}",
            file.display()
        )));
    }
    Ok(())
}

/// Removed when dropped, whatever the editor did.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test changes the process environment, so the cases run in order inside it.
    #[test]
    fn the_editor_sees_the_text_and_its_save_comes_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        // SAFETY: no other test in this crate reads VISUAL or EDITOR.
        unsafe {
            std::env::remove_var("VISUAL");
            std::env::set_var("EDITOR", "sed -i s/old/new/");
        }
        let out = edit_text("{\"a\":\"old\"}", dir.path(), "json").expect("edits");
        assert_eq!(out, Edited::Changed("{\"a\":\"new\"}".into()));
        let out = edit_text("{\"a\":1}", dir.path(), "json").expect("edits");
        assert_eq!(out, Edited::Unchanged);
        unsafe { std::env::set_var("EDITOR", "false") };
        let err = edit_text("x", dir.path(), "json").expect_err("a failing editor");
        assert!(err.to_string().contains("`false` exited"), "{err}");
        // The editor is told the line; this one writes what it was given next to the file.
        let file = dir.path().join("perstack.toml");
        std::fs::write(&file, "x").expect("write");
        let log = dir.path().join("args");
        unsafe {
            std::env::set_var(
                "EDITOR",
                format!("sh -c 'echo \"$0 $1\" > {}'", log.display()),
            )
        };
        open_at(&file, 12).expect("opens");
        let args = std::fs::read_to_string(&log).expect("the editor ran");
        assert_eq!(args.trim(), format!("+12 {}", file.display()));
        unsafe { std::env::remove_var("EDITOR") };
    }

    #[test]
    fn the_line_goes_where_each_editor_reads_it() {
        assert_eq!(command_at_line("vim", 7), "vim +7 \"$1\"");
        assert_eq!(command_at_line("hx", 7), "hx +7 \"$1\"");
        assert_eq!(
            command_at_line("emacsclient -t", 7),
            "emacsclient -t +7 \"$1\""
        );
        assert_eq!(command_at_line("code --wait", 7), "code --wait -g \"$1\":7");
        assert_eq!(
            command_at_line("/usr/bin/codium --wait", 3),
            "/usr/bin/codium --wait -g \"$1\":3"
        );
    }
}
