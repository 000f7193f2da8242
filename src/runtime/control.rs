//! Step-through debugging. Breakpoints are runtime state, not UI state: the driver asks the
//! [`Debugger`] at each pause point (before a model call, before a tool call, after a step, on an
//! error); when one matches, the run emits `paused` and waits for a [`Control`].

use std::str::FromStr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};

/// What a person (or a script) tells a paused run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Control {
    /// Go on, and pause again at the next pause point, whatever the breakpoints.
    Step,
    /// Go on until the next breakpoint.
    Continue,
    /// Stop the run here, keeping its checkpoint (as a cancel does).
    Abort,
    /// Replace the body of the request about to be sent (only while paused before a model
    /// call). The run stays paused, so the edit can be looked at before it goes.
    Edit { body: String },
}

impl FromStr for Control {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "step" | "s" => Ok(Control::Step),
            "continue" | "c" => Ok(Control::Continue),
            "abort" | "a" => Ok(Control::Abort),
            other => Err(format!(
                "unknown control `{other}`: use step, continue or abort"
            )),
        }
    }
}

/// Where a run can pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "point",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum PausePoint {
    BeforeLlm,
    BeforeTool {
        skill_name: String,
        tool_name: String,
        /// Which call of the step, so a UI can point at it.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        tool_call_id: String,
    },
    AfterStep,
    OnError {
        message: String,
    },
}

/// One breakpoint; `expert` limits it to one Expert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakpoint {
    pub kind: BreakKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum BreakKind {
    BeforeLlm,
    /// Before any tool call, or only those of a skill, a tool, or a skill's tool.
    BeforeTool {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skill: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
    },
    AfterStep,
    OnError,
}

impl FromStr for Breakpoint {
    type Err = String;

    /// `before-llm`, `before-tool`, `before-tool=TOOL`, `before-tool=SKILL/TOOL`, `after-step`,
    /// `on-error`; any of them may end with `@EXPERT`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (spec, expert) = match text.rsplit_once('@') {
            // `@` also starts scoped names (`@perstack/base`): only a trailing `@name` with no
            // `/` after it is an Expert.
            Some((spec, expert))
                if !spec.is_empty() && !spec.ends_with('=') && !spec.ends_with('/') =>
            {
                (spec, Some(expert.to_string()))
            }
            _ => (text, None),
        };
        let kind = match spec.split_once('=') {
            None if spec == "before-llm" => BreakKind::BeforeLlm,
            None if spec == "before-tool" => BreakKind::BeforeTool {
                skill: None,
                tool: None,
            },
            None if spec == "after-step" => BreakKind::AfterStep,
            None if spec == "on-error" => BreakKind::OnError,
            Some(("before-tool", target)) if !target.is_empty() => match target.rsplit_once('/') {
                Some((skill, tool)) => BreakKind::BeforeTool {
                    skill: Some(skill.to_string()),
                    tool: (!tool.is_empty() && tool != "*").then(|| tool.to_string()),
                },
                None => BreakKind::BeforeTool {
                    skill: None,
                    tool: Some(target.to_string()),
                },
            },
            _ => {
                return Err(format!(
                    "unknown breakpoint `{text}`: use before-llm, before-tool[=skill/tool], after-step or on-error, optionally with @expert"
                ));
            }
        };
        Ok(Breakpoint { kind, expert })
    }
}

impl Breakpoint {
    pub fn matches(&self, expert: &str, point: &PausePoint) -> bool {
        if self.expert.as_deref().is_some_and(|e| e != expert) {
            return false;
        }
        match (&self.kind, point) {
            (BreakKind::BeforeLlm, PausePoint::BeforeLlm)
            | (BreakKind::AfterStep, PausePoint::AfterStep)
            | (BreakKind::OnError, PausePoint::OnError { .. }) => true,
            (
                BreakKind::BeforeTool { skill, tool },
                PausePoint::BeforeTool {
                    skill_name,
                    tool_name,
                    ..
                },
            ) => {
                skill.as_deref().is_none_or(|s| s == skill_name)
                    && tool.as_deref().is_none_or(|t| t == tool_name)
            }
            _ => false,
        }
    }
}

/// Breakpoints and the controls that answer pauses, shared by every run of a job.
pub struct Debugger {
    breakpoints: RwLock<Vec<Breakpoint>>,
    /// True after `step`: the next pause point pauses whatever the breakpoints.
    stepping: AtomicBool,
    /// Set when there is anything to check, so a run without breakpoints pays one atomic load.
    armed: AtomicBool,
    controls: Mutex<mpsc::UnboundedReceiver<Control>>,
}

impl Debugger {
    pub fn new(breakpoints: Vec<Breakpoint>) -> (Self, mpsc::UnboundedSender<Control>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let armed = !breakpoints.is_empty();
        let debugger = Debugger {
            breakpoints: RwLock::new(breakpoints),
            stepping: AtomicBool::new(false),
            armed: AtomicBool::new(armed),
            controls: Mutex::new(receiver),
        };
        (debugger, sender)
    }

    pub fn set_breakpoints(&self, breakpoints: Vec<Breakpoint>) {
        self.armed.store(
            !breakpoints.is_empty() || self.stepping.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
        if let Ok(mut current) = self.breakpoints.write() {
            *current = breakpoints;
        }
    }

    /// Forgets a `step` given at the end of an earlier job, so a new job pauses only at its
    /// breakpoints.
    pub fn stop_stepping(&self) {
        self.stepping.store(false, Ordering::SeqCst);
        let has_breakpoints = self
            .breakpoints
            .read()
            .map(|b| !b.is_empty())
            .unwrap_or(false);
        self.armed.store(has_breakpoints, Ordering::SeqCst);
    }

    pub fn breakpoints(&self) -> Vec<Breakpoint> {
        self.breakpoints
            .read()
            .map(|b| b.clone())
            .unwrap_or_default()
    }

    /// Whether a run of `expert` must pause at `point`.
    pub fn should_pause(&self, expert: &str, point: &PausePoint) -> bool {
        if !self.armed.load(Ordering::Relaxed) {
            return false;
        }
        self.stepping.load(Ordering::SeqCst)
            || self
                .breakpoints
                .read()
                .map(|b| b.iter().any(|bp| bp.matches(expert, point)))
                .unwrap_or(false)
    }

    /// Waits for the control that ends a pause. A closed control channel continues: nobody is
    /// left to answer, and a run must not hang on it.
    pub async fn wait(&self) -> Control {
        let control = self
            .controls
            .lock()
            .await
            .recv()
            .await
            .unwrap_or(Control::Continue);
        if matches!(control, Control::Edit { .. }) {
            // An edit keeps the run paused: nothing about stepping changes yet.
            return control;
        }
        if control == Control::Step {
            self.stepping.store(true, Ordering::SeqCst);
            self.armed.store(true, Ordering::SeqCst);
        } else {
            self.stop_stepping();
        }
        control
    }
}

impl Default for Debugger {
    fn default() -> Self {
        Debugger::new(Vec::new()).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(skill: &str, tool: &str) -> PausePoint {
        PausePoint::BeforeTool {
            skill_name: skill.into(),
            tool_name: tool.into(),
            tool_call_id: String::new(),
        }
    }

    #[test]
    fn breakpoints_parse_and_match() {
        let any: Breakpoint = "before-tool".parse().expect("parses");
        assert!(any.matches("a", &tool("@perstack/base", "exec")));
        let one: Breakpoint = "before-tool=@perstack/base/exec".parse().expect("parses");
        assert!(one.matches("a", &tool("@perstack/base", "exec")));
        assert!(!one.matches("a", &tool("@perstack/base", "readTextFile")));
        let bare: Breakpoint = "before-tool=exec".parse().expect("parses");
        assert!(bare.matches("a", &tool("other", "exec")));
        let scoped: Breakpoint = "before-llm@writer".parse().expect("parses");
        assert!(scoped.matches("writer", &PausePoint::BeforeLlm));
        assert!(!scoped.matches("reader", &PausePoint::BeforeLlm));
        let skill_only: Breakpoint = "before-tool=files/*".parse().expect("parses");
        assert!(skill_only.matches("a", &tool("files", "read")));
        assert!("after-step".parse::<Breakpoint>().is_ok());
        assert!("on-error".parse::<Breakpoint>().is_ok());
        let err = "before-lunch".parse::<Breakpoint>().expect_err("refused");
        assert!(err.contains("before-llm"));
        assert_eq!("step".parse::<Control>(), Ok(Control::Step));
        assert!("jump".parse::<Control>().is_err());
    }

    #[tokio::test]
    async fn step_pauses_at_the_next_point_and_continue_clears_it() {
        let (debugger, controls) = Debugger::new(vec!["after-step".parse().expect("parses")]);
        assert!(!debugger.should_pause("a", &PausePoint::BeforeLlm));
        assert!(debugger.should_pause("a", &PausePoint::AfterStep));
        controls.send(Control::Step).expect("send");
        assert_eq!(debugger.wait().await, Control::Step);
        assert!(
            debugger.should_pause("a", &PausePoint::BeforeLlm),
            "stepping pauses anywhere"
        );
        controls.send(Control::Continue).expect("send");
        assert_eq!(debugger.wait().await, Control::Continue);
        assert!(!debugger.should_pause("a", &PausePoint::BeforeLlm));
        debugger.set_breakpoints(Vec::new());
        assert!(!debugger.should_pause("a", &PausePoint::AfterStep));
        drop(controls);
        assert_eq!(
            debugger.wait().await,
            Control::Continue,
            "a closed channel continues"
        );
    }
}
