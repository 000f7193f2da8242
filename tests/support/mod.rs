//! Shared test helpers. Each test crate uses only part of them.
#![allow(dead_code)]

pub mod bedrock;
pub mod llm_cases;
pub mod mcp;
pub mod mock_llm;
pub mod phoenix;
pub mod pty;
pub mod registry;

#[allow(unused_imports)]
pub use mcp::*;

/// A shell script that stands in for the person's `$EDITOR`: it runs `script` on the file it is
/// given (`"$1"`). Returns its path.
pub fn editor_script(dir: &std::path::Path, script: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("editor.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write editor");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}
