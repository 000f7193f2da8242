//! Shared test helpers. Each test crate uses only part of them.
#![allow(dead_code)]

pub mod llm_cases;
pub mod mcp;
pub mod mock_llm;
pub mod pty;

#[allow(unused_imports)]
pub use mcp::*;
