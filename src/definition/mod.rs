//! perstack.toml: the typed model, loading with precise diagnostics, and validation.

pub mod diagnostic;
mod load;
pub mod model;
mod parse;
mod tree;
mod tree_events;
mod validate;
mod walk;
pub mod watch;

pub use diagnostic::{Diagnostic, Location, Severity};
pub use load::{
    CONFIG_FILE_NAME, ConfigError, LoadedConfig, discover, load_env, load_file, parse_bytes,
    parse_str,
};
pub use model::*;
pub use parse::valid_tool_name;
