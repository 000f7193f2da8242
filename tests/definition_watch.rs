//! Hot reload of perstack.toml in the three ways editors save: truncate-then-write, write a
//! temp file and rename it over (VS Code, JetBrains), and vim's rename-to-backup-then-write.

use std::path::Path;
use std::time::{Duration, Instant};

use perstack::definition::load_file;
use perstack::definition::watch::{ConfigWatcher, Reload};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

const VALID: &str = "[experts.a]\ninstruction = \"first\"\n";
const CHANGED: &str = "[experts.a]\ninstruction = \"second\"\n[experts.b]\ninstruction = \"new\"\n";
const INVALID: &str = "[experts.a]\ndescription = \"no instruction\"\n";
const FIXED: &str = "[experts.a]\ninstruction = \"third\"\n";

#[derive(Clone, Copy, Debug)]
enum Style {
    TruncateWrite,
    TempRename,
    VimBackup,
}

fn save(path: &Path, text: &str, style: Style) {
    match style {
        Style::TruncateWrite => std::fs::write(path, text).expect("write"),
        Style::TempRename => {
            let temp = path.with_file_name(".perstack.toml.tmp-save");
            std::fs::write(&temp, text).expect("write temp");
            std::fs::rename(&temp, path).expect("rename over");
        }
        Style::VimBackup => {
            let backup = path.with_file_name("perstack.toml~");
            std::fs::rename(path, &backup).expect("backup");
            std::fs::write(path, text).expect("write new");
            std::fs::remove_file(&backup).expect("remove backup");
        }
    }
}

/// Every reload until things are quiet, and how long the first one took.
async fn collect(
    events: &mut UnboundedReceiver<Reload>,
    since: Instant,
) -> (Vec<Reload>, Duration) {
    let first = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("a reload arrives")
        .expect("channel open");
    let latency = since.elapsed();
    let mut all = vec![first];
    while let Ok(Some(more)) = tokio::time::timeout(Duration::from_millis(300), events.recv()).await
    {
        all.push(more);
    }
    (all, latency)
}

fn applied(events: &[Reload]) -> Vec<String> {
    match events.last() {
        Some(Reload::Applied { changes, .. }) => changes.clone(),
        other => panic!("expected an applied reload last, got {other:?}"),
    }
}

#[tokio::test]
async fn every_save_style_reloads_valid_and_reports_invalid_files() {
    let mut latencies = Vec::new();
    for style in [Style::TruncateWrite, Style::TempRename, Style::VimBackup] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("perstack.toml");
        std::fs::write(&path, VALID).expect("write");
        let loaded = load_file(&path).expect("valid");
        let (sender, mut events) = unbounded_channel();
        let _watcher =
            ConfigWatcher::start(&loaded, Duration::from_millis(50), sender).expect("watch");

        let at = Instant::now();
        save(&path, CHANGED, style);
        let (reloads, latency) = collect(&mut events, at).await;
        latencies.push(latency);
        assert!(
            reloads.iter().all(|r| matches!(r, Reload::Applied { .. })),
            "{style:?}: a valid save never reports errors: {reloads:?}"
        );
        let changes = applied(&reloads);
        assert!(
            changes.contains(&"expert \"b\" added".to_string()),
            "{style:?}: {changes:?}"
        );
        assert!(
            changes.contains(&"expert \"a\": instruction changed".to_string()),
            "{style:?}: {changes:?}"
        );
        if let Some(Reload::Applied { loaded, .. }) = reloads.last() {
            assert_eq!(loaded.config.experts["a"].instruction, "second");
        }

        let at = Instant::now();
        save(&path, INVALID, style);
        let (reloads, latency) = collect(&mut events, at).await;
        latencies.push(latency);
        match reloads.last() {
            Some(Reload::Failed { diagnostics }) => {
                assert!(
                    diagnostics.iter().any(|d| d.code == "missing-instruction"),
                    "{style:?}"
                );
                let location = diagnostics[0].location.as_ref().expect("located");
                assert_eq!((location.line, location.column), (1, 10));
            }
            other => panic!("{style:?}: expected a failed reload, got {other:?}"),
        }

        let at = Instant::now();
        save(&path, FIXED, style);
        let (reloads, latency) = collect(&mut events, at).await;
        latencies.push(latency);
        let changes = applied(&reloads);
        assert!(
            changes
                .iter()
                .any(|c| c.contains("removed") || c.contains("changed")),
            "{style:?}: {changes:?}"
        );

        // Saving the same content again says nothing.
        save(&path, FIXED, style);
        assert!(
            tokio::time::timeout(Duration::from_millis(400), events.recv())
                .await
                .is_err(),
            "{style:?}: an unchanged save is quiet"
        );
    }
    latencies.sort();
    eprintln!(
        "reload latency over {} saves: median {:?}, worst {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[tokio::test]
async fn a_dotenv_change_is_a_reload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("perstack.toml");
    std::fs::write(&path, VALID).expect("write");
    let loaded = load_file(&path).expect("valid");
    let (sender, mut events) = unbounded_channel();
    let _watcher = ConfigWatcher::start(&loaded, Duration::from_millis(50), sender).expect("watch");
    std::fs::write(dir.path().join(".env"), "KEY=value\n").expect("write env");
    let (reloads, _) = collect(&mut events, Instant::now()).await;
    assert_eq!(applied(&reloads), ["an environment file changed"]);
    std::fs::write(dir.path().join("unrelated.txt"), "x").expect("write");
    assert!(
        tokio::time::timeout(Duration::from_millis(400), events.recv())
            .await
            .is_err()
    );
}
