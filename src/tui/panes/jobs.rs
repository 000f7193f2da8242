//! The job picker (`J`, and at the start of `perstack start --storage …`): the jobs of the store
//! the workbench writes to (the workspace's, or a remote one), newest first, with the columns of
//! `perstack jobs`. Enter shows the chosen job in all four panes; a job still running elsewhere
//! is followed ([`follow_job`]), its new steps appearing as they are stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};
use tokio::sync::mpsc;

use super::{Component, Ctx, moved, overlay};
use crate::cli::jobs::{header, pending_row, row};
use crate::runtime::checkpoint::{Job, JobStatus};
use crate::runtime::event::RunEvent;
use crate::store::{Follower, JobStore as _, Store};
use crate::tui::app::{AppState, Effect, Mode, Msg};

/// What the picker lists: every job id of the store at once (one listing), and the records
/// read so far; a row without its record shows its id and start until the record comes.
#[derive(Debug, Clone, Default)]
pub struct JobPicker {
    /// The store listed, for the title.
    pub location: String,
    /// The rows: job ids, newest first.
    pub ids: Vec<String>,
    pub records: HashMap<String, Job>,
    /// Listing in progress.
    pub loading: bool,
    /// Pages of records still to come after the ids.
    pub pages_left: usize,
    pub error: Option<String>,
    pub cursor: usize,
}

/// How often a job still running elsewhere is polled for new objects.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

impl AppState {
    /// Opens the picker and asks for the listing.
    pub fn open_job_picker(&mut self) -> Vec<Effect> {
        self.picker.loading = true;
        self.picker.error = None;
        self.mode = Mode::Jobs;
        vec![Effect::ListJobs]
    }

    pub(crate) fn on_job_ids_listed(&mut self, location: String, ids: Result<Vec<String>, String>) {
        self.picker.location = location;
        match ids {
            Ok(ids) => {
                self.picker.cursor = self.picker.cursor.min(ids.len().saturating_sub(1));
                let listed: std::collections::HashSet<&String> = ids.iter().collect();
                self.picker.records.retain(|id, _| listed.contains(id));
                self.picker.pages_left = ids.len().div_ceil(FIRST_PAGE);
                self.picker.loading = self.picker.pages_left > 0;
                self.picker.ids = ids;
                self.picker.error = None;
            }
            Err(error) => {
                self.picker.loading = false;
                self.picker.error = Some(error);
            }
        }
    }

    pub(crate) fn on_jobs_listed(&mut self, location: String, jobs: Result<Vec<Job>, String>) {
        self.picker.location = location;
        match jobs {
            Ok(jobs) => {
                for job in jobs {
                    self.picker.records.insert(job.id.clone(), job);
                }
                self.picker.pages_left = self.picker.pages_left.saturating_sub(1);
                self.picker.loading = self.picker.pages_left > 0;
            }
            Err(error) => {
                self.picker.loading = false;
                self.picker.error = Some(error);
            }
        }
    }

    pub(crate) fn on_jobs_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let len = self.picker.ids.len();
        let page = self.height.saturating_sub(6).max(1) as isize;
        let delta = match key.code {
            KeyCode::Down | KeyCode::Char('j') => 1,
            KeyCode::Up | KeyCode::Char('k') => -1,
            KeyCode::PageDown => page,
            KeyCode::PageUp => -page,
            KeyCode::Home | KeyCode::Char('g') => isize::MIN / 2,
            KeyCode::End | KeyCode::Char('G') => isize::MAX / 2,
            KeyCode::Char('r') => return self.open_job_picker(),
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                let Some(job_id) = self.picker.ids.get(self.picker.cursor).cloned() else {
                    return Vec::new();
                };
                if self.job_state.active() && self.job_id.as_deref() != Some(&job_id) {
                    self.status = Some("a run is active: wait, or cancel it with x".into());
                    return Vec::new();
                }
                self.clear_job();
                self.status = Some(format!("loading job {job_id}"));
                return vec![Effect::OpenJob { job_id }];
            }
            _ => {
                self.mode = Mode::Normal;
                return Vec::new();
            }
        };
        self.picker.cursor = moved(self.picker.cursor, delta, len);
        Vec::new()
    }
}

pub struct JobsOverlay;

impl Component for JobsOverlay {
    fn draw(&self, frame: &mut Frame, area: Rect, state: &AppState, ctx: &Ctx) {
        let picker = &state.picker;
        let reading = if picker.loading && !picker.ids.is_empty() {
            format!(
                " · reading records ({} of {})",
                picker.records.len(),
                picker.ids.len()
            )
        } else {
            String::new()
        };
        let title = format!(
            " Jobs in {}{reading} · Enter shows one (a running job is followed) · r refreshes · Esc closes ",
            if picker.location.is_empty() {
                "the store"
            } else {
                &picker.location
            }
        );
        let (panel, block) = overlay(area, title, ctx);
        let mut lines = vec![Line::styled(header(), ctx.theme.muted())];
        if let Some(error) = &picker.error {
            lines.push(Line::styled(error.clone(), ctx.theme.error()));
        } else if picker.loading && picker.ids.is_empty() {
            lines.push(Line::styled("listing…", ctx.theme.muted()));
        } else if picker.ids.is_empty() {
            lines.push(Line::styled(
                "no jobs yet: run one with i, or `perstack run`",
                ctx.theme.muted(),
            ));
        }
        // Keep the cursor in view: the rows below the header scroll with it.
        let visible = panel.height.saturating_sub(3).max(1) as usize;
        let first = picker.cursor.saturating_sub(visible - 1);
        for (i, id) in picker.ids.iter().enumerate().skip(first).take(visible) {
            let record = picker.records.get(id);
            let style = if i == picker.cursor {
                ctx.theme.selected()
            } else if record.is_some_and(|job| job.status == JobStatus::Running) {
                ctx.theme.accent()
            } else if record.is_none() {
                ctx.theme.muted()
            } else {
                ctx.theme.base()
            };
            let text = record.map_or_else(|| pending_row(id, picker.loading), row);
            lines.push(Line::styled(text, style));
        }
        frame.render_widget(Clear, panel);
        frame.render_widget(Paragraph::new(lines).block(block), panel);
    }
}

/// Job records read at once; the picker fills a page at a time, newest first.
pub const FIRST_PAGE: usize = 100;

/// The jobs of `store` for the picker: every id at once ([`Msg::JobIdsListed`], one listing of
/// the store, newest first since job ids begin with their creation time), then their records a
/// page of [`FIRST_PAGE`] at a time ([`Msg::JobsListed`]). A thousand records from a remote
/// store take a while; the list, and the first screen of it, should not.
pub fn list_jobs(store: &dyn Store, mut send: impl FnMut(Msg)) {
    let location = store.location();
    let mut ids = match store.children("") {
        Ok(ids) => ids,
        Err(err) => {
            return send(Msg::JobIdsListed {
                location,
                ids: Err(err.to_string()),
            });
        }
    };
    ids.sort_by(|a, b| b.cmp(a));
    send(Msg::JobIdsListed {
        location: location.clone(),
        ids: Ok(ids.clone()),
    });
    for page in ids.chunks(FIRST_PAGE) {
        send(Msg::JobsListed {
            location: location.clone(),
            jobs: Ok(store.jobs_of(page)),
        });
    }
}

/// Sends every stored event of `job_id` to `events`, in order, then, while its record says it
/// is running, what is stored after, every `every`. Reading happens on blocking threads; the
/// UI only receives events. Ends when the job is no longer running or no one listens.
pub async fn follow_job(
    store: Arc<dyn Store>,
    job_id: String,
    events: mpsc::UnboundedSender<RunEvent>,
    msgs: mpsc::UnboundedSender<Msg>,
    every: Duration,
) {
    let mut follower = Follower::new(&job_id);
    let mut first = true;
    loop {
        let (store_now, id) = (store.clone(), job_id.clone());
        // The status is read before the poll: a job seen ended has all its events stored.
        let polled = tokio::task::spawn_blocking(move || {
            let running = store_now
                .read_job(&id)
                .map(|job| job.status == JobStatus::Running);
            let fresh = follower.poll(&*store_now);
            (follower, running, fresh)
        })
        .await;
        let Ok((returned, running, fresh)) = polled else {
            return;
        };
        follower = returned;
        for value in fresh {
            match serde_json::from_value::<RunEvent>(value) {
                Ok(event) => {
                    if events.send(event).is_err() {
                        return;
                    }
                }
                Err(err) => tracing::warn!("a stored event of {job_id} is skipped: {err}"),
            }
        }
        let running = match running {
            Ok(running) => running,
            Err(err) => {
                let _ = msgs.send(Msg::Status(format!("job {job_id}: {err}")));
                return;
            }
        };
        if first {
            let note = if running {
                format!("following job {job_id}: it is running elsewhere")
            } else {
                format!("job {job_id} loaded from {}", store.location())
            };
            let _ = msgs.send(Msg::Status(note));
            first = false;
        }
        if !running {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::checkpoint::Usage;
    use crate::tui::highlight::Highlighter;
    use crate::tui::test_support::example_config;
    use crate::tui::theme::Theme;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn job(id: &str, status: JobStatus, steps: u64, started_at: u64) -> Job {
        Job {
            id: id.into(),
            status,
            coordinator_expert_key: "writer".into(),
            total_steps: steps,
            max_steps: 100,
            usage: Usage {
                total_tokens: steps * 1000,
                ..Usage::default()
            },
            started_at,
            finished_at: None,
            trace_id: None,
        }
    }

    fn picker_state() -> AppState {
        let mut state = AppState::new(&example_config(), "claude-sonnet-4-5".into());
        state.update(Msg::Resize {
            width: 120,
            height: 12,
        });
        let effects = state.open_job_picker();
        assert_eq!(effects, [Effect::ListJobs]);
        let jobs = vec![
            job("job-running", JobStatus::Running, 7, 1_767_225_600_000),
            job("job-done", JobStatus::Completed, 12, 1_767_222_000_000),
            job("job-failed", JobStatus::Failed, 3, 1_767_218_400_000),
        ];
        state.update(Msg::JobIdsListed {
            location: "s3://jobs/team/ci".into(),
            ids: Ok(jobs.iter().map(|job| job.id.clone()).collect()),
        });
        state.update(Msg::JobsListed {
            location: "s3://jobs/team/ci".into(),
            jobs: Ok(jobs),
        });
        state
    }

    fn screen(state: &AppState) -> String {
        let mut terminal = Terminal::new(TestBackend::new(120, 12)).expect("terminal");
        let theme = Theme::default();
        let highlighter = Highlighter::new(&theme.syntax);
        let ctx = Ctx {
            theme: &theme,
            highlighter: &highlighter,
        };
        terminal
            .draw(|frame| JobsOverlay.draw(frame, frame.area(), state, &ctx))
            .expect("draw");
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_picker_lists_jobs_with_the_columns_of_perstack_jobs() {
        let mut state = picker_state();
        let key = |code| KeyEvent::from(code);
        state.update(Msg::Key(key(KeyCode::Char('j'))));
        insta::assert_snapshot!(screen(&state));
    }

    #[test]
    fn enter_asks_for_the_job_and_clears_the_panes() {
        let mut state = picker_state();
        state.update(Msg::Key(KeyEvent::from(KeyCode::Down)));
        let effects = state.update(Msg::Key(KeyEvent::from(KeyCode::Enter)));
        assert_eq!(
            effects,
            [Effect::OpenJob {
                job_id: "job-done".into()
            }]
        );
        assert_eq!(state.mode, Mode::Normal);
        assert!(state.runs.is_empty() && state.job_id.is_none());
    }

    #[test]
    fn a_long_listing_gives_every_id_at_once_then_the_records_a_page_at_a_time() {
        use crate::store::{FsStore, JobStore as _};
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsStore::new(dir.path());
        for n in 0..=FIRST_PAGE as u64 {
            let record = job(&format!("job-{n:04}"), JobStatus::Completed, 1, 1_000 + n);
            store.write_job(&record).expect("write");
        }
        let mut state = picker_state();
        let mut sizes = Vec::new();
        list_jobs(&store, |msg| {
            match &msg {
                Msg::JobIdsListed { ids: Ok(ids), .. } => sizes.push(("ids", ids.len())),
                Msg::JobsListed { jobs: Ok(jobs), .. } => sizes.push(("records", jobs.len())),
                other => panic!("{other:?}"),
            }
            state.update(msg);
            if sizes.len() == 1 {
                let shown = screen(&state);
                assert!(shown.contains("reading records (0 of 101)"), "{shown}");
                assert!(
                    shown.contains("job-0100"),
                    "every id is a row at once: {shown}"
                );
            }
        });
        assert_eq!(
            sizes,
            [
                ("ids", FIRST_PAGE + 1),
                ("records", FIRST_PAGE),
                ("records", 1)
            ]
        );
        assert_eq!(
            state.picker.ids[0],
            format!("job-{FIRST_PAGE:04}"),
            "newest first"
        );
        assert_eq!(state.picker.ids[FIRST_PAGE], "job-0000");
        assert_eq!(state.picker.records.len(), FIRST_PAGE + 1);
        assert!(!state.picker.loading);
        assert!(!screen(&state).contains("reading records"));
    }

    #[test]
    fn a_job_without_a_readable_record_still_has_its_row() {
        let mut state = picker_state();
        let id = crate::runtime::id::new_id();
        state.update(Msg::JobIdsListed {
            location: "s3://jobs".into(),
            ids: Ok(vec![id.clone()]),
        });
        state.update(Msg::JobsListed {
            location: "s3://jobs".into(),
            jobs: Ok(Vec::new()),
        });
        let shown = screen(&state);
        let row = shown.lines().find(|line| line.contains(&id)).expect("row");
        assert!(row.contains("no record"), "{row}");
        let year = crate::time::rfc3339(crate::runtime::id::created_at(&id).expect("time"));
        assert!(
            row.contains(&year[..10]),
            "the start read from the id: {row}"
        );
    }

    #[test]
    fn a_store_that_cannot_be_listed_says_why() {
        let mut state = picker_state();
        state.update(Msg::JobsListed {
            location: "s3://jobs".into(),
            jobs: Err("cannot read s3://jobs/perstack/jobs: connection refused".into()),
        });
        assert!(screen(&state).contains("connection refused"));
    }
}
