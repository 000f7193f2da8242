//! perstack.toml: the typed model, loading with precise diagnostics, and validation.

pub mod model;

pub use model::*;
