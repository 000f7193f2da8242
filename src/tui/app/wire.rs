//! The MCP wire of the job, as `mcpFrame` events bring it: each tool call's frames, and each
//! skill's frames that belong to no call (the `initialize` and `tools/list` exchange, pings).

use std::collections::HashMap;

use crate::skills::mcp::wire::Direction;

/// One frame as the Tool calls pane shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrameView {
    pub direction: Direction,
    /// Microseconds since the Unix epoch.
    pub at_us: u64,
    pub bytes: u64,
    /// The exact text of the frame.
    pub frame: String,
    pub method: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct WireLog {
    /// Frames by tool call id, in the order they passed.
    calls: HashMap<String, Vec<WireFrameView>>,
    /// Frames of no call, by run id and skill name.
    skills: HashMap<(String, String), Vec<WireFrameView>>,
}

impl WireLog {
    pub fn record(
        &mut self,
        run_id: &str,
        skill: &str,
        tool_call_id: Option<String>,
        frame: WireFrameView,
    ) {
        match tool_call_id {
            Some(id) => self.calls.entry(id).or_default().push(frame),
            None => self
                .skills
                .entry((run_id.to_string(), skill.to_string()))
                .or_default()
                .push(frame),
        }
    }

    /// The frames of one tool call.
    pub fn of_call(&self, tool_call_id: &str) -> &[WireFrameView] {
        self.calls.get(tool_call_id).map_or(&[], Vec::as_slice)
    }

    /// The frames of a skill in a run that belong to no call: its handshake and listings.
    pub fn of_skill(&self, run_id: &str, skill: &str) -> &[WireFrameView] {
        self.skills
            .get(&(run_id.to_string(), skill.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    pub fn clear(&mut self) {
        self.calls.clear();
        self.skills.clear();
    }
}
