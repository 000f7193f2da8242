//! `JobData`: a read-only view of the job's data (definitions, runs, timeline and the shared
//! selection) that a pane reads while it handles a key or a click. It borrows `AppState`'s fields
//! one by one, so the panes can be borrowed mutably beside it.

use indexmap::IndexMap;

use super::{AppState, ExpertInfo, ExpertRow, RunView, StepView, TimelineEntry, ToolCallView};
use crate::registry::RegistryEntry;
use crate::tui::panes::Panes;

#[derive(Clone, Copy)]
pub struct JobData<'a> {
    pub experts: &'a [ExpertInfo],
    /// Registry Experts of perstack.lock, listed after the local ones.
    pub registry: &'a [RegistryEntry],
    pub runs: &'a IndexMap<String, RunView>,
    pub root_run: Option<&'a str>,
    pub timeline: &'a [TimelineEntry],
    pub selected_expert: usize,
    pub selected_run: Option<&'a str>,
    /// A timeline entry being inspected; None follows the live state.
    pub pinned: Option<usize>,
}

impl<'a> JobData<'a> {
    /// The run the Prompt and Tool calls panes show.
    pub fn current_run(&self) -> Option<&'a RunView> {
        self.selected_run
            .or(self.root_run)
            .and_then(|id| self.runs.get(id))
    }

    /// The step shown: the pinned checkpoint's, else `chosen`, else the latest.
    pub fn step_at(&self, chosen: Option<u64>) -> Option<(u64, &'a StepView)> {
        let run = self.current_run()?;
        match self.pinned_step().or(chosen) {
            Some(n) => run.steps.range(..=n).next_back().map(|(k, v)| (*k, v)),
            None => run.steps.iter().next_back().map(|(k, v)| (*k, v)),
        }
    }

    pub fn pinned_step(&self) -> Option<u64> {
        let entry = self.timeline.get(self.pinned?)?;
        (Some(&entry.run_id) == self.current_run().map(|r| &r.run_id)).then_some(entry.step)
    }

    /// The calls the Tool calls pane lists (only those up to a pinned checkpoint).
    pub fn visible_calls(&self) -> &'a [ToolCallView] {
        let Some(run) = self.current_run() else {
            return &[];
        };
        match self.pinned_step() {
            Some(step) => {
                let n = run.calls.iter().take_while(|c| c.step <= step).count();
                &run.calls[..n]
            }
            None => &run.calls,
        }
    }

    /// The rows of the Experts pane: the live run tree first (when there is a job), then the
    /// definitions, the selected Expert opened to its skills, tools and delegates.
    pub fn expert_rows(&self) -> Vec<ExpertRow> {
        let mut rows = Vec::new();
        if let Some(root) = self.root_run {
            rows.push(ExpertRow::Header("Runs"));
            self.push_run_rows(root, 0, &mut rows);
            // Forks are top-level runs of the same job, after the original.
            for fork in self
                .runs
                .values()
                .filter(|r| r.parent.is_none() && r.run_id != root)
            {
                self.push_run_rows(&fork.run_id, 0, &mut rows);
            }
        }
        rows.push(ExpertRow::Header("Definitions"));
        for (i, expert) in self.experts.iter().enumerate() {
            rows.push(ExpertRow::Expert(i));
            if i != self.selected_expert {
                continue;
            }
            for (s, skill) in expert.skills.iter().enumerate() {
                rows.push(ExpertRow::Skill {
                    expert: i,
                    skill: s,
                });
                match &skill.tools {
                    Some(tools) => {
                        for tool in tools {
                            rows.push(ExpertRow::Detail(format!("      {tool}")));
                        }
                    }
                    None => rows.push(ExpertRow::Detail(
                        "      tools listed after `perstack install`".into(),
                    )),
                }
            }
            for delegate in &expert.delegates {
                rows.push(ExpertRow::Detail(format!("  → {delegate}")));
            }
        }
        if !self.registry.is_empty() {
            rows.push(ExpertRow::Header(
                "Registry (Enter reads the published text)",
            ));
            rows.extend((0..self.registry.len()).map(ExpertRow::Registry));
        }
        rows
    }

    fn push_run_rows(&self, run_id: &str, depth: usize, rows: &mut Vec<ExpertRow>) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        rows.push(ExpertRow::Run {
            run_id: run_id.to_string(),
            depth,
        });
        // Depth is bounded by the runtime's delegation limit.
        for child in &run.children {
            self.push_run_rows(child, depth + 1, rows);
        }
    }
}

/// The view of `$state`'s job fields, borrowing each field on its own so that the borrow does
/// not cover `$state.panes`.
macro_rules! job_data {
    ($state:expr) => {
        JobData {
            experts: &$state.experts,
            registry: &$state.registry,
            runs: &$state.runs,
            root_run: $state.root_run.as_deref(),
            timeline: &$state.timeline,
            selected_expert: $state.selected_expert,
            selected_run: $state.selected_run.as_deref(),
            pinned: $state.pinned,
        }
    };
}

impl AppState {
    /// The job's data, for reading.
    pub fn job(&self) -> JobData<'_> {
        job_data!(self)
    }

    /// The panes to change and the job's data to read, borrowed side by side.
    pub(super) fn panes_and_job(&mut self) -> (&mut Panes, JobData<'_>) {
        let job = job_data!(self);
        (&mut self.panes, job)
    }
}
