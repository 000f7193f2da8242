//! Tools the model can call, grouped into skills.

pub mod base;
pub mod delegate;
pub mod event;
pub mod lock;
pub mod manager;
pub mod mcp;
pub mod workspace;

pub use event::{ConnectedInfo, SkillEvent, SkillEventKind};
pub use manager::{SkillError, SkillManager, SkillManagerOptions};
