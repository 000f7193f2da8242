//! Executes Experts. Knows nothing of any UI: it emits [`event::RunEvent`]s and obeys controls.

pub mod checkpoint;
pub mod event;
pub mod id;
pub mod machine;
pub mod message;
pub mod prompt;
pub mod run;
pub mod writer;
