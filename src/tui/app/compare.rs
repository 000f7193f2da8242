//! A/B from a checkpoint: `A` in the Timeline asks what B changes (a model typed in, or the
//! Expert's instruction edited in $EDITOR), starts both forks at once, and keeps their events
//! for the compare view, which reads them through `runtime::compare` as `perstack diff` does.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{AppState, Effect, JobState, Mode};
use crate::runtime::checkpoint::{Checkpoint, CheckpointStatus};
use crate::runtime::compare::{Comparison, RunFacts};
use crate::runtime::event::{EventKind, RunEvent};
use crate::runtime::variant::Variant;
use crate::tui::input::TextInput;

/// Which fork of an A/B a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbSide {
    A,
    B,
}

impl AbSide {
    fn index(self) -> usize {
        match self {
            AbSide::A => 0,
            AbSide::B => 1,
        }
    }
}

/// What B changes, while it is being chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum AbChoice {
    /// B runs this model (typed in); A runs the model in force.
    Model { input: TextInput },
    /// B runs the Expert's instruction as edited in $EDITOR; A runs it as it is.
    Instruction,
}

/// One A/B comparison: where it forks, what each side runs with, and their events.
#[derive(Debug, Clone)]
pub struct AbCompare {
    pub expert_key: String,
    pub checkpoint: Arc<Checkpoint>,
    pub step: u64,
    /// Some while B's change is being chosen; None once both forks have started.
    pub choosing: Option<AbChoice>,
    pub variants: [Option<Variant>; 2],
    /// The forks' run ids, as each job reports its first event.
    pub runs: [Option<String>; 2],
    /// The top-level events seen since the forks started (request bodies left out).
    events: Vec<RunEvent>,
    /// Forks whose jobs have not reported their end.
    pub running: usize,
    /// Forks whose run has ended (their last event seen).
    ended: Vec<String>,
    /// The selected row of the comparison.
    pub cursor: usize,
    /// Enter: the selected row's answer and arguments whole instead of cut.
    pub whole: bool,
}

impl AbCompare {
    /// Both runs, step by step; a side not yet started is empty.
    pub fn comparison(&self) -> Comparison {
        let side = |i: usize| match &self.runs[i] {
            Some(run_id) => RunFacts::from_events(run_id, &self.events, self.variants[i].clone()),
            None => RunFacts {
                variant: self.variants[i].clone(),
                ..RunFacts::default()
            },
        };
        Comparison::new(side(0), side(1))
    }

    /// Keeps the events a comparison reads: those of top-level runs while the forks run (their
    /// run ids may come after their first events), then only the forks'. Request bodies are
    /// dropped: only the model is read.
    pub fn observe(&mut self, event: &RunEvent) {
        if self.choosing.is_some() || event.parent_run_id.is_some() || event.kind.is_delta() {
            return;
        }
        let ours = self.runs.iter().flatten().any(|run| *run == event.run_id);
        if !ours && (self.running == 0 || self.ended.len() >= 2) {
            return;
        }
        if event.kind.is_terminal()
            && !matches!(event.kind, EventKind::StopRunByDelegate { .. })
            && !self.ended.contains(&event.run_id)
        {
            self.ended.push(event.run_id.clone());
        }
        let mut event = event.clone();
        if let EventKind::LlmRequest { request, .. } = &mut event.kind {
            request.body = String::new();
        }
        self.events.push(event);
    }

    /// True while one fork has ended and the other still runs.
    pub fn forks_running(&self) -> bool {
        self.choosing.is_none() && self.running > 0 && self.ended.len() < 2
    }
}

impl AppState {
    /// `A` in the Timeline: choose what B changes, for the checkpoint at `index`.
    pub(super) fn open_ab(&mut self, index: usize) -> Vec<Effect> {
        if self.job_state.active() {
            self.status = Some("a run is active: wait, or cancel it with x, then compare".into());
            return Vec::new();
        }
        if self.provider_error.is_some() {
            self.status = Some("no model provider: press r to use the replay provider".into());
            return Vec::new();
        }
        let Some(entry) = self.timeline.get(index) else {
            self.status = Some("no checkpoint to compare from yet".into());
            return Vec::new();
        };
        if entry.status == CheckpointStatus::Completed {
            self.status = Some("this checkpoint ends its run: compare from an earlier one".into());
            return Vec::new();
        }
        self.compare = Some(AbCompare {
            expert_key: entry.expert_key.clone(),
            checkpoint: entry.checkpoint.clone(),
            step: entry.step,
            choosing: Some(AbChoice::Model {
                input: TextInput::single_line(""),
            }),
            variants: [None, None],
            runs: [None, None],
            events: Vec::new(),
            running: 0,
            ended: Vec::new(),
            cursor: 0,
            whole: false,
        });
        self.mode = Mode::Compare;
        Vec::new()
    }

    /// Keys of the compare overlay: choosing B's change, then reading the comparison.
    pub(super) fn on_compare_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(compare) = &mut self.compare else {
            self.mode = Mode::Normal;
            return Vec::new();
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match &mut compare.choosing {
            Some(choice) => match (key.code, choice) {
                (KeyCode::Esc, _) => {
                    self.compare = None;
                    self.mode = Mode::Normal;
                }
                (KeyCode::Char('c'), _) if ctrl => {
                    self.compare = None;
                    self.mode = Mode::Normal;
                }
                (KeyCode::Tab | KeyCode::BackTab, choice) => {
                    *choice = match choice {
                        AbChoice::Model { .. } => AbChoice::Instruction,
                        AbChoice::Instruction => AbChoice::Model {
                            input: TextInput::single_line(""),
                        },
                    };
                }
                (KeyCode::Enter, AbChoice::Model { input }) => {
                    let model = input.text().trim().to_string();
                    if model.is_empty() {
                        self.status = Some("type the model B runs, e.g. gpt-4.1-mini".into());
                        return Vec::new();
                    }
                    let a = Variant::model(self.model.clone());
                    return self.start_ab(a_variant(a), Variant::model(model));
                }
                (KeyCode::Enter, AbChoice::Instruction) => {
                    return vec![Effect::EditVariantInstruction {
                        expert_key: compare.expert_key.clone(),
                    }];
                }
                (_, AbChoice::Model { input }) => {
                    // Enter and Esc are taken above; ↑/↓ have no history here.
                    input.on_key(key);
                }
                _ => {}
            },
            None => {
                let rows = compare.comparison().rows.len();
                match key.code {
                    KeyCode::Down | KeyCode::Char('j') => {
                        compare.cursor = (compare.cursor + 1).min(rows.saturating_sub(1));
                    }
                    KeyCode::Up | KeyCode::Char('k') => {
                        compare.cursor = compare.cursor.saturating_sub(1)
                    }
                    KeyCode::Home | KeyCode::Char('g') => compare.cursor = 0,
                    KeyCode::End | KeyCode::Char('G') => compare.cursor = rows.saturating_sub(1),
                    KeyCode::Enter => compare.whole = !compare.whole,
                    KeyCode::Char('x') if self.job_state.active() => {
                        return vec![Effect::Cancel];
                    }
                    // The comparison stays: `C` in the Timeline opens it again.
                    _ => self.mode = Mode::Normal,
                }
            }
        }
        Vec::new()
    }

    /// The edited instruction came back from $EDITOR: B runs with it, A as it is.
    pub fn instruction_edited(&mut self, edited: Option<String>) -> Vec<Effect> {
        match edited {
            Some(text) => self.start_ab(None, Variant::instruction(text)),
            None => {
                self.status = Some(
                    "the instruction was not changed: nothing to compare (Tab: a model instead)"
                        .into(),
                );
                Vec::new()
            }
        }
    }

    /// Both forks of the A/B at once, differing only in their variant.
    fn start_ab(&mut self, a: Option<Variant>, b: Variant) -> Vec<Effect> {
        let Some(compare) = &mut self.compare else {
            return Vec::new();
        };
        compare.choosing = None;
        compare.variants = [a.clone(), Some(b.clone())];
        compare.running = 2;
        let fork = |variant: Option<Variant>, side: AbSide| Effect::Fork {
            expert_key: compare.expert_key.clone(),
            checkpoint: compare.checkpoint.clone(),
            variant,
            ab: Some(side),
        };
        let effects = vec![fork(a, AbSide::A), fork(Some(b.clone()), AbSide::B)];
        self.status = Some(format!(
            "A/B from {} step {}: B runs with {}",
            compare.expert_key,
            compare.step,
            b.label()
        ));
        self.job_state = JobState::Running;
        self.select_next_root = true;
        self.pinned = None;
        effects
    }

    /// After an event: the first fork to end leaves the workbench busy while the other runs.
    pub(super) fn ab_keep_busy(&mut self) {
        if !self.job_state.active() && self.compare.as_ref().is_some_and(|c| c.forks_running()) {
            self.job_state = JobState::Running;
            self.status = Some("one fork has ended; the other still runs".into());
        }
    }

    /// A fork of the A/B reported its run id.
    pub(super) fn ab_run(&mut self, side: AbSide, run_id: String) {
        if let Some(compare) = &mut self.compare {
            compare.runs[side.index()] = Some(run_id);
        }
    }

    /// A job ended. True when it was one fork of an A/B whose other fork still runs: the
    /// workbench stays busy until both have ended.
    pub(super) fn ab_job_ended(&mut self, error: &Option<String>) -> bool {
        let Some(compare) = &mut self.compare else {
            return false;
        };
        if compare.running == 0 {
            return false;
        }
        compare.running -= 1;
        if compare.running > 0 {
            if let Some(error) = error {
                self.status = Some(format!("error in one fork: {error}"));
            }
            return true;
        }
        false
    }

    /// `C` in the Timeline: the last comparison again.
    pub(super) fn reopen_ab(&mut self) {
        match &self.compare {
            Some(compare) if compare.choosing.is_none() => self.mode = Mode::Compare,
            _ => self.status = Some("no A/B yet: A on a checkpoint starts one".into()),
        }
    }
}

/// A's variant names the model it runs, so both sides say what they ran with.
fn a_variant(variant: Variant) -> Option<Variant> {
    variant
        .model
        .as_deref()
        .is_some_and(|m| !m.is_empty())
        .then_some(variant)
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::tui::app::Msg;
    use crate::tui::keymap::PaneId;
    use crate::tui::test_support;

    fn key(code: KeyCode) -> Msg {
        Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    /// A workbench with the scripted job finished and the Timeline focused at a step checkpoint.
    fn at_a_step() -> AppState {
        let mut app = AppState::new(&test_support::example_config(), "gpt-4.1".into());
        let script = test_support::scripted_run(test_support::Moment::Completed);
        for event in script.events {
            app.update(Msg::Run(Box::new(event)));
        }
        app.focus = PaneId::Timeline;
        let index = app
            .timeline
            .iter()
            .position(|e| e.run_id == test_support::COORD)
            .expect("the coordinator has checkpoints");
        app.panes.timeline.cursor = index;
        app
    }

    #[test]
    fn a_on_a_checkpoint_forks_twice_differing_only_in_the_variant() {
        let mut app = at_a_step();
        assert!(app.update(key(KeyCode::Char('A'))).is_empty());
        assert_eq!(app.mode, Mode::Compare);
        for c in "gpt-4.1-mini".chars() {
            app.update(key(KeyCode::Char(c)));
        }
        let effects = app.update(key(KeyCode::Enter));
        let [
            Effect::Fork {
                expert_key: key_a,
                checkpoint: checkpoint_a,
                variant: variant_a,
                ab: Some(AbSide::A),
            },
            Effect::Fork {
                expert_key: key_b,
                checkpoint: checkpoint_b,
                variant: variant_b,
                ab: Some(AbSide::B),
            },
        ] = effects.as_slice()
        else {
            panic!("two forks, A then B: {effects:?}");
        };
        assert_eq!(key_a, key_b);
        assert!(Arc::ptr_eq(checkpoint_a, checkpoint_b), "one checkpoint");
        assert_eq!(variant_a, &Some(Variant::model("gpt-4.1")));
        assert_eq!(variant_b, &Some(Variant::model("gpt-4.1-mini")));
        assert!(app.job_state.active());

        // A's events arrive before its run id is reported; B answers otherwise.
        let checkpoint = checkpoint_a.clone();
        let a_events = test_support::fork_run(&checkpoint, "as now");
        let b_events: Vec<RunEvent> = test_support::fork_run(&checkpoint, "as now")
            .into_iter()
            .map(|mut event| {
                event.run_id = "run-fork-b".into();
                if let EventKind::CompleteRun { text, step, .. } = &mut event.kind {
                    *text = "Another answer.".into();
                    step.started_at += 1;
                }
                event
            })
            .collect();
        let a_run = a_events[0].run_id.clone();
        for event in a_events {
            app.update(Msg::Run(Box::new(event)));
        }
        app.update(Msg::AbRun {
            side: AbSide::A,
            run_id: a_run,
        });
        app.update(Msg::JobEnded { error: None });
        assert!(app.job_state.active(), "B still runs");
        app.update(Msg::AbRun {
            side: AbSide::B,
            run_id: "run-fork-b".into(),
        });
        for event in b_events {
            app.update(Msg::Run(Box::new(event)));
        }
        app.update(Msg::JobEnded { error: None });
        assert!(!app.job_state.active());
        let comparison = app.compare.as_ref().expect("the comparison").comparison();
        assert_eq!(comparison.rows.len(), 1);
        assert_eq!(comparison.divergence, Some(0), "the answers differ");
        assert_eq!(comparison.b.steps[0].answer, "Another answer.");
        // Esc closes the view; C in the Timeline opens it again.
        app.update(key(KeyCode::Esc));
        assert_eq!(app.mode, Mode::Normal);
        app.update(key(KeyCode::Char('C')));
        assert_eq!(app.mode, Mode::Compare);
    }

    #[test]
    fn the_model_box_edits_like_the_other_text_boxes() {
        let mut app = at_a_step();
        app.update(key(KeyCode::Char('A')));
        for c in "gpt-4.1".chars() {
            app.update(key(KeyCode::Char(c)));
        }
        app.update(key(KeyCode::Home));
        for c in "my-".chars() {
            app.update(key(KeyCode::Char(c)));
        }
        app.update(key(KeyCode::End));
        app.update(key(KeyCode::Backspace));
        let Some(AbChoice::Model { input }) = app.compare.as_ref().and_then(|c| c.choosing.clone())
        else {
            panic!("the model box is open");
        };
        assert_eq!(input.text(), "my-gpt-4.");
        assert_eq!(input.cursor(), (0, 9));
    }

    #[test]
    fn the_instruction_choice_goes_through_the_editor() {
        let mut app = at_a_step();
        app.update(key(KeyCode::Char('A')));
        app.update(key(KeyCode::Tab));
        let effects = app.update(key(KeyCode::Enter));
        let [Effect::EditVariantInstruction { expert_key }] = effects.as_slice() else {
            panic!("the editor first: {effects:?}");
        };
        assert_eq!(
            Some(expert_key),
            app.compare.as_ref().map(|c| &c.expert_key)
        );
        assert!(
            app.instruction_edited(None).is_empty(),
            "unchanged: no forks"
        );
        let effects = app.instruction_edited(Some("Answer in French.".into()));
        let variants: Vec<_> = effects
            .iter()
            .map(|e| match e {
                Effect::Fork { variant, .. } => variant.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            variants,
            vec![None, Some(Variant::instruction("Answer in French."))]
        );
    }

    #[test]
    fn a_completed_checkpoint_or_a_running_job_starts_no_comparison() {
        let mut app = at_a_step();
        app.job_state = JobState::Running;
        app.update(key(KeyCode::Char('A')));
        assert_eq!(app.mode, Mode::Normal);
        assert!(app.compare.is_none());
    }
}
