//! The authoring loop in the real workbench, in a pseudo-terminal, on a copy of the example
//! project with the replay provider: hot reload in every save style editors use, the error
//! panel, a run that keeps its definitions while a fork takes the new ones, and a request
//! edited in $EDITOR while paused.

#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::pty::Pty;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A copy of the example project, so its perstack.toml can be rewritten.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        for file in ["perstack.toml", "CHANGELOG.md", "assets/demo.replay.toml"] {
            std::fs::copy(format!("{REPO}/{file}"), dir.path().join(file)).unwrap();
        }
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("perstack.toml")
    }

    fn original(&self) -> String {
        std::fs::read_to_string(format!("{REPO}/perstack.toml")).unwrap()
    }

    /// `perstack start` on this project; `extra` are more arguments.
    fn start(&self, extra: &[&str], env: &[(&str, &str)]) -> Pty {
        let config = self.config();
        let ws = self.path().to_str().unwrap();
        let replay = self.path().join("assets/demo.replay.toml");
        let mut args = vec![
            "start",
            "--replay",
            replay.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--workspace",
            ws,
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Pty::spawn_with_env(&args, 200, 50, env)
    }

    /// The bodies of every model request stored for each run, by run directory.
    fn requests_by_run(&self) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let jobs = self.path().join("perstack/jobs");
        for job in std::fs::read_dir(jobs).unwrap().flatten() {
            for run in std::fs::read_dir(job.path().join("runs"))
                .unwrap()
                .flatten()
            {
                let mut bodies = Vec::new();
                for event in std::fs::read_dir(run.path()).unwrap().flatten() {
                    if event
                        .file_name()
                        .to_string_lossy()
                        .ends_with("-llmRequest.json")
                    {
                        bodies.push(std::fs::read_to_string(event.path()).unwrap());
                    }
                }
                out.push((run.file_name().to_string_lossy().into_owned(), bodies));
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug)]
enum Save {
    /// Truncate the file and write it again (VS Code).
    Truncate,
    /// Write a new file and rename it over the old one (vim, most editors' "atomic save").
    Rename,
    /// Move the old file aside, rename the new one in, delete the old (JetBrains' safe write).
    SafeWrite,
}

fn save(path: &Path, text: &str, style: Save) {
    match style {
        Save::Truncate => std::fs::write(path, text).unwrap(),
        Save::Rename => {
            let tmp = path.with_extension("toml.swp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        Save::SafeWrite => {
            let tmp = path.with_file_name("perstack.toml___jb_tmp___");
            let old = path.with_file_name("perstack.toml___jb_old___");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(path, &old).unwrap();
            std::fs::rename(&tmp, path).unwrap();
            std::fs::remove_file(&old).unwrap();
        }
    }
}

/// The example with one more Expert, named `key`.
fn with_expert(original: &str, key: &str) -> String {
    format!(
        "{original}\n[experts.\"{key}\"]\ninstruction = \"Review the notes.\"\ndescription = \"Reviews\"\n"
    )
}

fn quit(pty: &mut Pty) {
    pty.send("q");
    // A run may still be active: the quit dialog asks, and y confirms.
    std::thread::sleep(Duration::from_millis(200));
    if pty.child.try_wait().unwrap().is_none() {
        pty.send("y");
    }
    let status = pty.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn reloads_follow_every_save_style_and_the_error_panel_clears_when_fixed() {
    let project = Project::new();
    let original = project.original();
    let mut pty = project.start(&[], &[]);
    pty.wait_screen("Definitions", Duration::from_secs(20));
    let mut times = Vec::new();
    let styles = [Save::Truncate, Save::Rename, Save::SafeWrite];
    for i in 0..20 {
        let key = format!("reviewer-{i:02}");
        let style = styles[i % 3];
        let started = Instant::now();
        save(&project.config(), &with_expert(&original, &key), style);
        pty.wait_screen(&format!("▸ {key}"), Duration::from_secs(10));
        times.push(started.elapsed());
        eprintln!("reload {i:2} ({style:?}): {:?}", started.elapsed());
    }
    times.sort();
    eprintln!(
        "write to updated Experts pane over 20 reloads: median {:?}, worst {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    // An invalid file: the panel lists the problem; the last good Experts stay.
    let broken = with_expert(&original, "reviewer-19").replace(
        "delegates = [\"changelog-reader\", \"writer\"]",
        "delegates = [\"changelog-reader\", \"writter\"]",
    );
    assert_ne!(
        broken,
        with_expert(&original, "reviewer-19"),
        "the example delegates to writer"
    );
    save(&project.config(), &broken, Save::Rename);
    pty.wait_screen(
        "perstack.toml does not load (1 error)",
        Duration::from_secs(10),
    );
    // The whole panel, down to the fix it suggests.
    pty.wait_screen("did you mean \"writer\"?", Duration::from_secs(10));
    let screen = pty.screen();
    assert!(screen.contains("perstack.toml:"), "{screen}");
    assert!(
        screen.contains("▸ reviewer-19"),
        "the last good Experts stay:\n{screen}"
    );
    // The fix clears it.
    save(
        &project.config(),
        &with_expert(&original, "reviewer-fixed"),
        Save::Truncate,
    );
    pty.wait_screen("▸ reviewer-fixed", Duration::from_secs(10));
    let screen = pty.screen();
    assert!(!screen.contains("does not load"), "{screen}");
    quit(&mut pty);
}

#[test]
fn a_running_run_keeps_its_definitions_and_a_fork_takes_the_new_ones() {
    let project = Project::new();
    let original = project.original();
    let marker = "Mention the version number first.";
    let mut pty = project.start(
        &[
            "release-notes",
            "Write release notes for developers",
            "--break",
            "before-llm@release-notes",
        ],
        &[],
    );
    pty.wait_screen("paused before the model call", Duration::from_secs(20));
    let edited = original.replacen(
        "You coordinate the writing of release notes.",
        &format!("You coordinate the writing of release notes. {marker}"),
        1,
    );
    assert_ne!(edited, original);
    save(&project.config(), &edited, Save::Rename);
    pty.wait_screen("perstack.toml reloaded", Duration::from_secs(10));
    // Continue through every pause of the original run.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pty.screen().contains(" completed  job") {
        assert!(Instant::now() < deadline, "{}", pty.screen());
        pty.send("c");
        std::thread::sleep(Duration::from_millis(150));
    }
    let runs = project.requests_by_run();
    assert!(
        runs.iter()
            .flat_map(|(_, b)| b)
            .all(|body| !body.contains(marker)),
        "the run in progress kept the definitions it started with"
    );
    // Fork the coordinator's first checkpoint: the Timeline lists the delegates' two
    // checkpoints first, then it.
    pty.send("4");
    pty.send("g");
    pty.send("j");
    pty.send("j");
    std::thread::sleep(Duration::from_millis(200));
    pty.send("F");
    pty.wait_screen("forking release-notes from step 1", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let forked = project
            .requests_by_run()
            .into_iter()
            .any(|(_, bodies)| bodies.iter().any(|b| b.contains(marker)));
        if forked && pty.screen().contains(" completed  job") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", pty.screen());
        pty.send("c");
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(
        pty.screen().contains("⑂"),
        "the fork shows as a branch:\n{}",
        pty.screen()
    );
    let before: usize = runs.len();
    assert!(
        project.requests_by_run().len() > before,
        "the fork is a new run"
    );
    quit(&mut pty);
}

#[test]
fn a_paused_request_is_edited_in_the_editor_and_the_edit_is_sent() {
    let project = Project::new();
    let editor = support::editor_script(
        project.path(),
        "sed -i 's/Write release notes for developers/Write SHORT release notes for developers/' \"$1\"",
    );
    let mut pty = project.start(
        &[
            "release-notes",
            "Write release notes for developers",
            "--break",
            "before-llm@release-notes",
        ],
        &[("EDITOR", editor.as_str()), ("VISUAL", "")],
    );
    pty.wait_screen("paused before the model call", Duration::from_secs(20));
    pty.send("E");
    pty.wait_screen("edited, to be sent", Duration::from_secs(10));
    // The screen is drawn whole after the editor returns, but it reaches the terminal in pieces.
    pty.wait_screen("Write SHORT release notes", Duration::from_secs(10));
    // The workbench has the keyboard back: continue to the end.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pty.screen().contains(" completed  job") {
        assert!(Instant::now() < deadline, "{}", pty.screen());
        pty.send("c");
        std::thread::sleep(Duration::from_millis(150));
    }
    let bodies: Vec<String> = project
        .requests_by_run()
        .into_iter()
        .flat_map(|(_, b)| b)
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("\"edited\":true") && b.contains("Write SHORT release notes")),
        "the edited request is recorded as edited"
    );
    let checkpoints = project.path().join("perstack/jobs");
    let recorded = walk(&checkpoints)
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("checkpoints")))
        .any(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("\"editedRequests\":[1]")
        });
    assert!(recorded, "the checkpoints record the edited step");
    quit(&mut pty);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn o_opens_the_expert_at_its_line_and_the_save_reloads() {
    let project = Project::new();
    let args_file = project.path().join("editor-args");
    // The editor is told `+LINE FILE`; this one notes both and adds an Expert to the file.
    let editor = support::editor_script(
        project.path(),
        &format!(
            "printf '%s\\n' \"$@\" > '{}'\nprintf '\\n[experts.\"added-in-editor\"]\\ninstruction = \"x\"\\n' >> \"$2\"",
            args_file.display()
        ),
    );
    let mut pty = project.start(&[], &[("EDITOR", editor.as_str()), ("VISUAL", "")]);
    pty.wait_screen("Definitions", Duration::from_secs(20));
    pty.send("1");
    pty.send("o");
    pty.wait_screen("added-in-editor", Duration::from_secs(10));
    let args = std::fs::read_to_string(&args_file).expect("the editor ran");
    let expected_line = project
        .original()
        .lines()
        .position(|l| l == "[experts.\"release-notes\"]")
        .expect("the example defines release-notes")
        + 1;
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            format!("+{expected_line}"),
            project.config().display().to_string()
        ]
    );
    quit(&mut pty);
}
