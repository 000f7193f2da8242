//! readImageFile and readPdfFile.

use base64::Engine;

use super::ToolError;
use super::args::Args;
use crate::skills::workspace::Workspace;
use crate::tool::{ToolContent, ToolOutput};

/// Providers reject larger images (Anthropic's limit is 5 MB per image).
pub const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;

pub async fn read_image_file(ws: &Workspace, args: &Args) -> Result<ToolOutput, ToolError> {
    let path = ws.resolve(&args.string("path")?)?;
    let shown = ws.display(&path);
    let io_error = |source| ToolError::Io {
        action: "read".to_string(),
        path: shown.clone(),
        source,
    };
    let meta = tokio::fs::metadata(&path).await.map_err(io_error)?;
    if !meta.is_file() {
        return Err(ToolError::message(format!("{shown} is not a file")));
    }
    if meta.len() > MAX_IMAGE_BYTES {
        return Err(ToolError::message(format!(
            "{shown} is {} bytes; images larger than {MAX_IMAGE_BYTES} bytes are not sent to the model",
            meta.len()
        )));
    }
    let bytes = tokio::fs::read(&path).await.map_err(io_error)?;
    let Some(mime_type) = sniff_image(&bytes) else {
        return Err(ToolError::message(format!(
            "{shown} is not a PNG, JPEG, GIF or WebP image (checked its first bytes)"
        )));
    };
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let mut contents = vec![ToolContent::Image {
        mime_type: mime_type.to_string(),
        data: base64::engine::general_purpose::STANDARD.encode(&bytes),
    }];
    // The bytes decide the type; a misleading extension is worth a note.
    if let Some(ext) = extension
        && mime_for_extension(&ext).is_some_and(|m| m != mime_type)
    {
        contents.push(ToolContent::text(format!(
            "note: {shown} has extension .{ext} but its content is {mime_type}"
        )));
    }
    Ok(ToolOutput {
        contents,
        is_error: false,
    })
}

pub async fn read_pdf_file(ws: &Workspace, args: &Args) -> Result<ToolOutput, ToolError> {
    // Resolve anyway so escape attempts get the same answer as everywhere else.
    let path = ws.resolve(&args.string("path")?)?;
    Err(ToolError::message(format!(
        "reading PDF files is not supported in this version of the base skill ({}); \
         try exec with a converter such as pdftotext if one is installed",
        ws.display(&path)
    )))
}

fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

fn mime_for_extension(ext: &str) -> Option<&'static str> {
    match ext {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_supported_format() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff_image(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff_image(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_image(b"RIFF"), None);
        assert_eq!(sniff_image(b"hello"), None);
    }
}
