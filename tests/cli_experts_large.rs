//! `perstack experts` on definitions built to blow up a naive tree: shared delegates whose
//! paths double at every level, and a very long chain.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `perstack experts` on `source`, killed if it takes longer than `limit`.
fn experts(source: &str, limit: Duration) -> (Option<i32>, String, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("perstack.toml"), source).expect("write config");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_perstack"))
        .arg("experts")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    let mut stdout = child.stdout.take().expect("stdout");
    // Read at most a bounded amount: a runaway tree must fail the test, not fill the disk.
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut out = Vec::new();
        let _ = (&mut stdout).take(64 * 1024 * 1024).read_to_end(&mut out);
        out
    });
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("perstack experts took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().expect("reader");
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn forty_levels_of_shared_delegates_print_each_expert_once() {
    let mut source =
        String::from("[experts.t]\ninstruction = \"x\"\ndelegates = [\"a0\", \"b0\"]\n");
    for n in 0..40 {
        for p in ["a", "b"] {
            source.push_str(&format!("[experts.{p}{n}]\ninstruction = \"x\"\n"));
            if n < 39 {
                source.push_str(&format!("delegates = [\"a{}\", \"b{}\"]\n", n + 1, n + 1));
            }
        }
    }
    assert!(source.len() < 5000, "a 4 KB file");
    let (code, out, took) = experts(&source, Duration::from_secs(20));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.len() < 64 * 1024, "{} bytes in {took:?}", out.len());
    assert!(out.contains("delegate a3  (see above)"), "{out}");
    assert_eq!(out.matches("b39  v1.0.0").count(), 1);
}

#[test]
fn a_twenty_thousand_long_chain_prints_linear_output() {
    let count = 20_000;
    let mut source = String::new();
    for n in 0..count {
        source.push_str(&format!("[experts.c{n}]\ninstruction = \"x\"\n"));
        if n + 1 < count {
            source.push_str(&format!("delegates = [\"c{}\"]\n", n + 1));
        }
    }
    let (code, out, took) = experts(&source, Duration::from_secs(60));
    assert_eq!(code, Some(0));
    // Linear: a few hundred bytes an Expert, not the 1.2 GB of ever deeper indentation.
    assert!(out.len() < 300 * count, "{} bytes in {took:?}", out.len());
    assert_eq!(out.matches(&format!("c{}  v1.0.0", count - 1)).count(), 1);
}
