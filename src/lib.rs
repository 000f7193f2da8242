//! Perstack: a runtime and terminal workbench for Experts defined in `perstack.toml`.

pub mod cli;
pub mod definition;
pub mod http;
pub mod skills;
pub mod tool;
