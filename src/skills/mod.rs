//! Tools the model can call, grouped into skills.

pub mod base;
pub mod workspace;
