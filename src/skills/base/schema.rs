//! The tool definitions the base skill offers: names and argument shapes as in the original
//! `@perstack/base`, descriptions written for this implementation.

use serde_json::{Value, json};

use super::exec::{DEFAULT_TIMEOUT, MAX_OUTPUT_BYTES, MAX_TIMEOUT};
use super::media::MAX_IMAGE_BYTES;
use crate::tool::ToolDefinition;

fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> ToolDefinition {
    ToolDefinition {
        name: name.to_string(),
        description: description.to_string(),
        input_schema: json!({
            "type": "object",
            "properties": properties,
            "required": required,
        }),
    }
}

fn path_prop(what: &str) -> Value {
    json!({"type": "string", "description": format!("{what}, relative to the workspace root")})
}

pub fn definitions() -> Vec<ToolDefinition> {
    vec![
        tool(
            "attemptCompletion",
            "Call this when the task is done. If todos are still open they are returned and \
             the run goes on: finish or complete them, then call this again. Otherwise the run \
             ends and your next answer is the final result.",
            json!({}),
            &[],
        ),
        tool(
            "todo",
            "Keep a todo list for the task. Adds `newTodos` (each gets a numeric id, counting \
             from 0) and marks the todos whose ids are in `completedTodos` as done. Returns the \
             whole list after every call.",
            json!({
                "newTodos": {"type": "array", "items": {"type": "string"},
                             "description": "Titles of todos to add"},
                "completedTodos": {"type": "array", "items": {"type": "number"},
                                   "description": "Ids of todos that are now completed"},
            }),
            &[],
        ),
        tool(
            "clearTodo",
            "Remove every todo and restart ids from 0.",
            json!({}),
            &[],
        ),
        tool(
            "exec",
            &format!(
                "Run a program directly (no shell: to use pipes or globs, run `sh` with args \
                 [\"-c\", \"...\"]). The environment holds only PATH, HOME, SHELL, TERM and \
                 LANG plus `env`. Returns the exit code and the requested streams, each cut at \
                 {MAX_OUTPUT_BYTES} bytes. Times out after `timeout` ms (default {}, at most \
                 {}); on timeout, and when the program exits, the program and any processes it \
                 started are killed, so do not use it to start servers in the background.",
                DEFAULT_TIMEOUT.as_millis(),
                MAX_TIMEOUT.as_millis()
            ),
            json!({
                "command": {"type": "string", "description": "Program name (looked up in PATH) or path"},
                "args": {"type": "array", "items": {"type": "string"}, "description": "Arguments, one per element"},
                "env": {"type": "object",
                        "description": "Extra environment variables, string values ({} for none)"},
                "cwd": path_prop("Working directory (\".\" for the workspace root)"),
                "stdout": {"type": "boolean", "description": "Return standard output"},
                "stderr": {"type": "boolean", "description": "Return standard error"},
                "timeout": {"type": "number", "description": "Timeout in milliseconds"},
            }),
            &["command", "args", "env", "cwd", "stdout", "stderr"],
        ),
        tool(
            "readTextFile",
            "Read a UTF-8 text file, whole or only lines `from` to `to` (1-based, inclusive). \
             Long results are cut; the note at the end says where to continue.",
            json!({
                "path": path_prop("File to read"),
                "from": {"type": "number", "description": "First line to return (1-based)"},
                "to": {"type": "number", "description": "Last line to return (inclusive)"},
                "column": {"type": "number", "description": "Character of line `from` to start at (1-based), for lines too long for one call"},
            }),
            &["path"],
        ),
        tool(
            "writeTextFile",
            "Create or overwrite a text file with `text`. Missing parent directories are created.",
            json!({"path": path_prop("File to write"), "text": {"type": "string", "description": "The full new content"}}),
            &["path", "text"],
        ),
        tool(
            "appendTextFile",
            "Append `text` to the end of a file, creating it if it does not exist. Include a \
             leading newline if the file does not end with one.",
            json!({"path": path_prop("File to append to"), "text": {"type": "string", "description": "Text to add"}}),
            &["path", "text"],
        ),
        tool(
            "editTextFile",
            "Replace `oldText` with `newText` in a file. `oldText` must occur exactly once and \
             match exactly, whitespace included; add surrounding lines to make it unique.",
            json!({
                "path": path_prop("File to edit"),
                "oldText": {"type": "string", "description": "Exact text to replace"},
                "newText": {"type": "string", "description": "Replacement text"},
            }),
            &["path", "oldText", "newText"],
        ),
        tool(
            "moveFile",
            "Move or rename a file or directory. The destination must not exist yet; its \
             parent directories are created.",
            json!({"source": path_prop("Existing file or directory"), "destination": path_prop("New path")}),
            &["source", "destination"],
        ),
        tool(
            "deleteFile",
            "Delete a file (or a symlink). Use deleteDirectory for directories.",
            json!({"path": path_prop("File to delete")}),
            &["path"],
        ),
        tool(
            "listDirectory",
            "List a directory: each entry's name, type (file, directory, symlink, other) and \
             size in bytes.",
            json!({"path": path_prop("Directory to list (\".\" for the workspace root)")}),
            &["path"],
        ),
        tool(
            "createDirectory",
            "Create a directory and any missing parents. Succeeds if it already exists.",
            json!({"path": path_prop("Directory to create")}),
            &["path"],
        ),
        tool(
            "deleteDirectory",
            "Delete a directory. It must be empty unless `recursive` is true.",
            json!({
                "path": path_prop("Directory to delete"),
                "recursive": {"type": "boolean", "description": "Also delete everything inside (default false)"},
            }),
            &["path"],
        ),
        tool(
            "getFileInfo",
            "Metadata of a file or directory: type, size, times, permissions, symlink target.",
            json!({"path": path_prop("File or directory")}),
            &["path"],
        ),
        tool(
            "healthCheck",
            "Check that the base skill works; returns its status and the workspace root.",
            json!({}),
            &[],
        ),
        tool(
            "readImageFile",
            &format!(
                "Read a PNG, JPEG, GIF or WebP image (at most {MAX_IMAGE_BYTES} bytes) so you \
                 can see it."
            ),
            json!({"path": path_prop("Image file")}),
            &["path"],
        ),
        tool(
            "readPdfFile",
            "Read a PDF file. Not supported in this version: it answers with an error.",
            json!({"path": path_prop("PDF file")}),
            &["path"],
        ),
    ]
}
