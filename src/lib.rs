//! Perstack: a runtime and terminal workbench for Experts defined in `perstack.toml`.

pub mod cli;
pub mod definition;
pub mod llm;
pub mod tool;
