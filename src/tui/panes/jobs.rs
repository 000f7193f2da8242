//! The job picker (`J`, and at the start of `perstack start --storage …`): the jobs of the store
//! the workbench writes to (the workspace's, or a remote one), newest first, with the columns of
//! `perstack jobs`. Enter shows the chosen job in all four panes; a job still running elsewhere
//! is followed ([`follow_job`]), its new steps appearing as they are stored.

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};
use tokio::sync::mpsc;

use super::{Component, Ctx, moved, overlay};
use crate::cli::jobs::{header, row};
use crate::runtime::checkpoint::{Job, JobStatus};
use crate::runtime::event::RunEvent;
use crate::store::{Follower, JobStore as _, Store};
use crate::tui::app::{AppState, Effect, Mode, Msg};

/// What the picker lists.
#[derive(Debug, Clone, Default)]
pub struct JobPicker {
    /// The store listed, for the title.
    pub location: String,
    pub jobs: Vec<Job>,
    /// Listing in progress.
    pub loading: bool,
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

    pub(crate) fn on_jobs_listed(&mut self, location: String, jobs: Result<Vec<Job>, String>) {
        self.picker.loading = false;
        self.picker.location = location;
        match jobs {
            Ok(jobs) => {
                self.picker.cursor = self.picker.cursor.min(jobs.len().saturating_sub(1));
                self.picker.jobs = jobs;
                self.picker.error = None;
            }
            Err(error) => self.picker.error = Some(error),
        }
    }

    pub(crate) fn on_jobs_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let len = self.picker.jobs.len();
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
                let Some(job) = self.picker.jobs.get(self.picker.cursor) else {
                    return Vec::new();
                };
                let job_id = job.id.clone();
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
        let title = format!(
            " Jobs in {} · Enter shows one (a running job is followed) · r refreshes · Esc closes ",
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
        } else if picker.loading && picker.jobs.is_empty() {
            lines.push(Line::styled("listing…", ctx.theme.muted()));
        } else if picker.jobs.is_empty() {
            lines.push(Line::styled(
                "no jobs yet: run one with i, or `perstack run`",
                ctx.theme.muted(),
            ));
        }
        // Keep the cursor in view: the rows below the header scroll with it.
        let visible = panel.height.saturating_sub(3).max(1) as usize;
        let first = picker.cursor.saturating_sub(visible - 1);
        for (i, job) in picker.jobs.iter().enumerate().skip(first).take(visible) {
            let style = if i == picker.cursor {
                ctx.theme.selected()
            } else if job.status == JobStatus::Running {
                ctx.theme.accent()
            } else {
                ctx.theme.base()
            };
            lines.push(Line::styled(row(job), style));
        }
        frame.render_widget(Clear, panel);
        frame.render_widget(Paragraph::new(lines).block(block), panel);
    }
}

/// Jobs whose records the picker shows before it has them all.
pub const FIRST_PAGE: usize = 100;

/// The jobs of `store`, newest first, as [`Msg::JobsListed`]: the newest [`FIRST_PAGE`] first
/// (job ids begin with their creation time), then all of them. A thousand records from a remote
/// store take a while; the first screen should not.
pub fn list_jobs(store: &dyn Store, mut send: impl FnMut(Msg)) {
    let location = store.location();
    let mut ids = match store.children("") {
        Ok(ids) => ids,
        Err(err) => {
            return send(Msg::JobsListed {
                location,
                jobs: Err(err.to_string()),
            });
        }
    };
    ids.sort_by(|a, b| b.cmp(a));
    if ids.len() > FIRST_PAGE {
        send(Msg::JobsListed {
            location: location.clone(),
            jobs: Ok(store.jobs_of(&ids[..FIRST_PAGE])),
        });
    }
    send(Msg::JobsListed {
        location,
        jobs: Ok(store.jobs_of(&ids)),
    });
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
        state.update(Msg::JobsListed {
            location: "s3://jobs/team/ci".into(),
            jobs: Ok(vec![
                job("job-running", JobStatus::Running, 7, 1_767_225_600_000),
                job("job-done", JobStatus::Completed, 12, 1_767_222_000_000),
                job("job-failed", JobStatus::Failed, 3, 1_767_218_400_000),
            ]),
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
    fn a_long_listing_shows_the_newest_page_first_then_all() {
        use crate::store::{FsStore, JobStore as _};
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsStore::new(dir.path());
        for n in 0..=FIRST_PAGE as u64 {
            let record = job(&format!("job-{n:04}"), JobStatus::Completed, 1, 1_000 + n);
            store.write_job(&record).expect("write");
        }
        let mut pages = Vec::new();
        list_jobs(&store, |msg| match msg {
            Msg::JobsListed { jobs: Ok(jobs), .. } => pages.push(jobs),
            other => panic!("{other:?}"),
        });
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [FIRST_PAGE, FIRST_PAGE + 1]);
        assert_eq!(
            pages[0][0].id,
            format!("job-{FIRST_PAGE:04}"),
            "newest first"
        );
        assert_eq!(pages[1][FIRST_PAGE].id, "job-0000");
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
