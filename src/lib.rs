//! Perstack: a runtime and terminal workbench for Experts defined in `perstack.toml`.

pub mod cli;
pub mod definition;
pub mod llm;
pub mod runtime;
pub mod skills;
pub mod tool;
pub mod tui;
