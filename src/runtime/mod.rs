//! Executes Experts. Knows nothing of any UI: it emits [`event::RunEvent`]s and obeys controls.

mod calls;
pub mod checkpoint;
pub mod compare;
pub mod control;
mod emitter;
pub mod event;
pub mod frozen;
mod generate;
pub mod id;
pub mod job;
pub mod machine;
pub mod message;
pub mod prompt;
mod request;
pub mod run;
mod session;
pub mod variant;
pub mod writer;

pub use session::{
    Canceller, JobHandle, JobStart, Overrides, PrepareError, Runtime, StartError, answers_for,
};
