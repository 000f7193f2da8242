//! File and directory tools, every path confined to the workspace.

use std::io;
use std::path::Path;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ToolError;
use super::args::Args;
use crate::skills::workspace::Workspace;
use crate::tool::ToolOutput;

/// Larger text files are refused: reading them whole would flood the model's context.
pub const MAX_TEXT_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// At most this much text goes back to the model from one readTextFile call.
pub const MAX_TEXT_OUTPUT_BYTES: usize = 256 * 1024;
/// listDirectory shows at most this many entries.
pub const MAX_LIST_ENTRIES: usize = 1000;

type Result<T> = std::result::Result<T, ToolError>;

fn io_error(action: &str, ws: &Workspace, path: &Path, source: io::Error) -> ToolError {
    ToolError::Io {
        action: action.to_string(),
        path: ws.display(path),
        source,
    }
}

pub async fn read_text_file(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let path = ws.resolve(&args.string("path")?)?;
    let from = args.opt_u64("from")?;
    let to = args.opt_u64("to")?;
    let column = args.opt_u64("column")?.unwrap_or(1);
    let text = read_whole_text(ws, &path, "readTextFile", "head, tail or grep").await?;
    let shown = ws.display(&path);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let total = lines.len() as u64;
    let first = from.unwrap_or(1);
    let last = to.unwrap_or(total).min(total);
    if first == 0 {
        return Err(ToolError::message(
            "`from` is a 1-based line number; use 1 for the first line",
        ));
    }
    if column == 0 {
        return Err(ToolError::message(
            "`column` is a 1-based character position; use 1 for the start of the line",
        ));
    }
    if let Some(to) = to
        && to < first
    {
        return Err(ToolError::message(format!(
            "`to` ({to}) is before `from` ({first}); lines are numbered from 1 and both are inclusive"
        )));
    }
    if total > 0 && first > total {
        return Err(ToolError::message(format!(
            "`from` ({first}) is past the end of {shown}, which has {total} lines"
        )));
    }
    let mut out = String::new();
    let mut shown_last = first.saturating_sub(1);
    let range = lines
        .iter()
        .zip(1u64..)
        .skip(first.saturating_sub(1) as usize)
        .take(last.saturating_sub(first.saturating_sub(1)) as usize);
    for (&line, number) in range {
        let start_column = if number == first { column } else { 1 };
        let line = skip_chars(line, start_column - 1).ok_or_else(|| {
            ToolError::message(format!(
                "`column` ({column}) is past the end of line {number} of {shown}, which has {} characters",
                line.chars().count()
            ))
        })?;
        if out.len() + line.len() <= MAX_TEXT_OUTPUT_BYTES {
            out.push_str(line);
            shown_last = number;
            continue;
        }
        if out.is_empty() {
            // One line longer than a whole answer: hand it out in pieces, each saying where
            // the next starts, so every character can be reached.
            let piece = &line[..floor_char_boundary(line, MAX_TEXT_OUTPUT_BYTES)];
            let end_column = start_column + piece.chars().count() as u64 - 1;
            out.push_str(piece);
            out.push_str(&format!(
                "\n[truncated: line {number} is too long for one call; showed its characters \
                 {start_column}-{end_column}; pass from: {number}, column: {} to read on]",
                end_column + 1
            ));
            return Ok(ToolOutput::text(out));
        }
        break;
    }
    if shown_last < last {
        out.push_str(&format!(
            "\n[truncated: showed lines {first}-{shown_last} of {total}; \
             pass from: {} to read on]",
            shown_last + 1
        ));
    }
    Ok(ToolOutput::text(out))
}

/// `line` without its first `count` characters; `None` when it has fewer. The line end counts
/// as a character, so a column just past the text (at the line end) is still valid.
fn skip_chars(line: &str, count: u64) -> Option<&str> {
    if count == 0 {
        return Some(line);
    }
    let mut indices = line.char_indices().map(|(i, _)| i).chain([line.len()]);
    let start = indices.nth(usize::try_from(count).ok()?)?;
    (start < line.len()).then(|| &line[start..])
}

/// The largest char boundary of `text` at or below `max`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut cut = max.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

pub async fn write_text_file(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let path = ws.resolve(&args.string("path")?)?;
    let text = args.string("text")?;
    create_parent(ws, &path).await?;
    overwrite(ws, &path, text.as_bytes()).await?;
    Ok(ToolOutput::text(format!(
        "wrote {} bytes to {}",
        text.len(),
        ws.display(&path)
    )))
}

pub async fn append_text_file(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let path = ws.resolve(&args.string("path")?)?;
    let text = args.string("text")?;
    create_parent(ws, &path).await?;
    let mut options = tokio::fs::OpenOptions::new();
    options.append(true).create(true);
    let (mut file, _) = open_regular(ws, &path, &mut options, "open").await?;
    file.write_all(text.as_bytes())
        .await
        .map_err(|e| io_error("append to", ws, &path, e))?;
    file.flush()
        .await
        .map_err(|e| io_error("append to", ws, &path, e))?;
    Ok(ToolOutput::text(format!(
        "appended {} bytes to {}",
        text.len(),
        ws.display(&path)
    )))
}

pub async fn edit_text_file(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let path = ws.resolve(&args.string("path")?)?;
    let old_text = args.string("oldText")?;
    let new_text = args.string("newText")?;
    let shown = ws.display(&path);
    if old_text.is_empty() {
        return Err(ToolError::message(
            "`oldText` is empty; give the exact text to replace (use appendTextFile to add at the end)",
        ));
    }
    let text = read_whole_text(ws, &path, "editTextFile", "sed").await?;
    match text.matches(old_text.as_str()).count() {
        0 => Err(ToolError::message(format!(
            "`oldText` was not found in {shown}; it must match the file exactly, including \
             whitespace and line breaks (read the file first)"
        ))),
        1 => {
            let edited = text.replacen(old_text.as_str(), &new_text, 1);
            overwrite(ws, &path, edited.as_bytes()).await?;
            Ok(ToolOutput::text(format!("edited {shown}")))
        }
        n => Err(ToolError::message(format!(
            "`oldText` occurs {n} times in {shown} but must occur exactly once; include more \
             surrounding text to make it unique"
        ))),
    }
}

/// A whole text file, refused when it is not a regular file, larger than
/// [`MAX_TEXT_FILE_BYTES`] (`tool` and `instead` name the tool and the exec commands to use),
/// or not UTF-8.
async fn read_whole_text(ws: &Workspace, path: &Path, tool: &str, instead: &str) -> Result<String> {
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true);
    let (file, meta) = open_regular(ws, path, &mut options, "read").await?;
    let too_large = |size: u64| {
        ToolError::message(format!(
            "{} is {size} bytes, more than the {MAX_TEXT_FILE_BYTES} bytes {tool} handles; \
             use exec with a tool such as {instead} instead",
            ws.display(path)
        ))
    };
    if meta.len() > MAX_TEXT_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    // Bounded even if the file grows after the check.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_TEXT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| io_error("read", ws, path, e))?;
    if bytes.len() as u64 > MAX_TEXT_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| {
        ToolError::message(format!(
            "{} is not UTF-8 text; use readImageFile for images or exec for binary files",
            ws.display(path)
        ))
    })
}

/// Replaces the content of a regular file, creating it if needed.
async fn overwrite(ws: &Workspace, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    let (mut file, _) = open_regular(ws, path, &mut options, "write").await?;
    file.write_all(bytes)
        .await
        .map_err(|e| io_error("write", ws, path, e))?;
    file.flush()
        .await
        .map_err(|e| io_error("write", ws, path, e))
}

/// Opens a regular file without ever waiting on a FIFO or a device, which could hold the call
/// (and the process) forever: other kinds are refused before opening, and the open itself is
/// non-blocking so one swapped in after the check is refused too instead of waited on.
async fn open_regular(
    ws: &Workspace,
    path: &Path,
    options: &mut tokio::fs::OpenOptions,
    action: &str,
) -> Result<(tokio::fs::File, std::fs::Metadata)> {
    match tokio::fs::metadata(path).await {
        Ok(meta) => refuse_irregular(ws, path, &meta)?,
        // A missing file is the open's to create or report.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(action, ws, path, e)),
    }
    let file = options
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .await
        .map_err(|e| io_error(action, ws, path, e))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| io_error(action, ws, path, e))?;
    refuse_irregular(ws, path, &meta)?;
    Ok((file, meta))
}

fn refuse_irregular(ws: &Workspace, path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let shown = ws.display(path);
    if meta.is_dir() {
        return Err(ToolError::message(format!(
            "{shown} is a directory; use listDirectory to see its contents"
        )));
    }
    if !meta.is_file() {
        return Err(ToolError::message(format!(
            "{shown} is not a regular file (a FIFO, socket or device); the file tools only \
             work on regular files"
        )));
    }
    Ok(())
}

pub async fn move_file(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let source = ws.resolve_entry(&args.string("source")?)?;
    let destination = ws.resolve_entry(&args.string("destination")?)?;
    refuse_root(ws, &source)?;
    refuse_root(ws, &destination)?;
    tokio::fs::symlink_metadata(&source)
        .await
        .map_err(|e| io_error("move", ws, &source, e))?;
    if tokio::fs::symlink_metadata(&destination).await.is_ok() {
        return Err(ToolError::message(format!(
            "{} already exists; delete it first or choose another destination",
            ws.display(&destination)
        )));
    }
    create_parent(ws, &destination).await?;
    tokio::fs::rename(&source, &destination)
        .await
        .map_err(|e| io_error("move", ws, &source, e))?;
    Ok(ToolOutput::text(format!(
        "moved {} to {}",
        ws.display(&source),
        ws.display(&destination)
    )))
}

pub async fn delete_file(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let path = ws.resolve_entry(&args.string("path")?)?;
    let meta = tokio::fs::symlink_metadata(&path)
        .await
        .map_err(|e| io_error("delete", ws, &path, e))?;
    if meta.is_dir() {
        return Err(ToolError::message(format!(
            "{} is a directory; use deleteDirectory",
            ws.display(&path)
        )));
    }
    tokio::fs::remove_file(&path)
        .await
        .map_err(|e| io_error("delete", ws, &path, e))?;
    Ok(ToolOutput::text(format!("deleted {}", ws.display(&path))))
}

pub async fn list_directory(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let path = ws.resolve(&args.string("path")?)?;
    let mut reader = tokio::fs::read_dir(&path)
        .await
        .map_err(|e| io_error("list", ws, &path, e))?;
    let mut items = Vec::new();
    let mut total = 0usize;
    while let Some(entry) = reader
        .next_entry()
        .await
        .map_err(|e| io_error("list", ws, &path, e))?
    {
        total += 1;
        if items.len() >= MAX_LIST_ENTRIES {
            continue;
        }
        // An entry that vanished or cannot be inspected is still listed, as "unknown".
        let meta = entry.metadata().await.ok();
        let kind = meta.as_ref().map_or("unknown", |m| kind_of(m.file_type()));
        let size = meta.as_ref().map_or(0, |m| m.len());
        items.push((entry.file_name().to_string_lossy().into_owned(), kind, size));
    }
    items.sort();
    let items: Vec<_> = items
        .into_iter()
        .map(|(name, kind, size)| json!({"name": name, "type": kind, "size": size}))
        .collect();
    let mut body = json!({"path": ws.display(&path), "items": items});
    if total > MAX_LIST_ENTRIES {
        body["truncated"] = json!(format!(
            "showing {MAX_LIST_ENTRIES} of {total} entries; use exec (e.g. find) to search"
        ));
    }
    Ok(ToolOutput::text(to_pretty(&body)))
}

pub async fn create_directory(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let path = ws.resolve(&args.string("path")?)?;
    tokio::fs::create_dir_all(&path)
        .await
        .map_err(|e| io_error("create directory", ws, &path, e))?;
    Ok(ToolOutput::text(format!(
        "created directory {}",
        ws.display(&path)
    )))
}

pub async fn delete_directory(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let path = ws.resolve_entry(&args.string("path")?)?;
    let recursive = args.opt_bool("recursive")?.unwrap_or(false);
    refuse_root(ws, &path)?;
    let shown = ws.display(&path);
    let meta = tokio::fs::symlink_metadata(&path)
        .await
        .map_err(|e| io_error("delete", ws, &path, e))?;
    if !meta.is_dir() {
        return Err(ToolError::message(format!(
            "{shown} is not a directory; use deleteFile"
        )));
    }
    let result = if recursive {
        tokio::fs::remove_dir_all(&path).await
    } else {
        tokio::fs::remove_dir(&path).await
    };
    match result {
        Ok(()) => Ok(ToolOutput::text(format!("deleted directory {shown}"))),
        Err(e) if !recursive && e.kind() == io::ErrorKind::DirectoryNotEmpty => {
            Err(ToolError::message(format!(
                "{shown} is not empty; pass recursive: true to delete it with its contents"
            )))
        }
        Err(e) => Err(io_error("delete", ws, &path, e)),
    }
}

pub async fn get_file_info(ws: &Workspace, args: &Args) -> Result<ToolOutput> {
    let entry = ws.resolve_entry(&args.string("path")?)?;
    let link = tokio::fs::symlink_metadata(&entry)
        .await
        .map_err(|e| io_error("inspect", ws, &entry, e))?;
    // Report what the path leads to; a link's target is inside (resolve_entry checked it).
    let meta = tokio::fs::metadata(&entry).await.unwrap_or(link.clone());
    let name = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".to_string());
    let extension = entry.extension().map(|e| e.to_string_lossy().into_owned());
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    };
    let mut body = json!({
        "path": ws.display(&entry),
        "absolutePath": entry.display().to_string(),
        "name": name,
        "extension": extension,
        "type": kind_of(meta.file_type()),
        "size": meta.len(),
        "modified": meta.modified().ok().map(crate::time::rfc3339_of),
        "created": meta.created().ok().map(crate::time::rfc3339_of),
        "accessed": meta.accessed().ok().map(crate::time::rfc3339_of),
        "permissions": format!("{mode:o}"),
        "readonly": meta.permissions().readonly(),
        "isSymlink": link.file_type().is_symlink(),
    });
    if link.file_type().is_symlink()
        && let Ok(target) = tokio::fs::read_link(&entry).await
    {
        body["symlinkTarget"] = json!(target.display().to_string());
    }
    Ok(ToolOutput::text(to_pretty(&body)))
}

fn refuse_root(ws: &Workspace, path: &Path) -> Result<()> {
    if path == ws.root() {
        return Err(ToolError::message(
            "that is the workspace root itself, which this tool does not change",
        ));
    }
    Ok(())
}

async fn create_parent(ws: &Workspace, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io_error("create directory", ws, parent, e))?;
    }
    Ok(())
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_file() {
        "file"
    } else {
        "other"
    }
}

pub(super) fn to_pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
