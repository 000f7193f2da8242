//! Perstack: a runtime and terminal workbench for Experts defined in `perstack.toml`.

pub mod cli;
pub mod definition;
pub mod editor;
pub mod http;
pub mod llm;
pub mod registry;
pub mod runtime;
pub mod sandbox;
pub mod skills;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod tool;
pub mod tui;
