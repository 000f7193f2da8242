//! `perstack install`: start every Expert's skills and write perstack.lock with their tools.

use std::process::ExitCode;

use tokio::sync::mpsc::unbounded_channel;

use super::{ConfigArgs, exit, load_or_report};
use crate::definition::{self, LoadedConfig};
use crate::skills::lock::{Lock, lock_path, write_lock};
use crate::skills::workspace::Workspace;
use crate::skills::{SkillEvent, SkillEventKind, SkillManager, SkillManagerOptions};

pub(super) fn run(args: &ConfigArgs) -> ExitCode {
    let loaded = match load_or_report(args) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INVALID);
        }
    };
    runtime.block_on(async {
        tokio::select! {
            code = install(&loaded) => code,
            // Returning drops the skills, which kills every server process group.
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted; nothing was written");
                ExitCode::from(exit::INVALID)
            }
        }
    })
}

async fn install(loaded: &LoadedConfig) -> ExitCode {
    let env = match definition::load_env(loaded, &[]) {
        Ok(env) => env,
        Err(diagnostic) => {
            eprintln!("{}", diagnostic.render());
            return ExitCode::from(exit::INVALID);
        }
    };
    let workspace = match Workspace::new(&loaded.dir) {
        Ok(workspace) => workspace,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INVALID);
        }
    };
    let (sender, mut events) = unbounded_channel::<SkillEvent>();
    // Warnings reach the user; server stderr would only be noise here.
    let printer = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let SkillEventKind::Warning { message } = event.kind {
                eprintln!("warning: skill {}: {message}", event.skill_name);
            }
        }
    });
    let mut lock = Lock::default();
    let mut summary = Vec::new();
    let mut failed = false;
    for (key, expert) in &loaded.config.experts {
        // Installing runs the servers: confined like a run, unless `runtime = "local"`.
        let options = SkillManagerOptions {
            sandbox: crate::sandbox::Sandbox::from_config(&loaded.config),
            ..SkillManagerOptions::default()
        };
        match SkillManager::start(expert, workspace.clone(), &env, sender.clone(), options).await {
            Ok(manager) => {
                let locked = manager.locked();
                manager.shutdown().await;
                let tools: usize = locked.skills.values().map(|s| s.tools.len()).sum();
                summary.push(format!(
                    "  {key}: {tools} tool(s) from {} skill(s)",
                    locked.skills.len()
                ));
                lock.experts.insert(key.clone(), locked);
            }
            Err(e) => {
                eprintln!("error: expert {key}: {e}");
                failed = true;
            }
        }
    }
    drop(sender);
    let _ = printer.await;
    if failed {
        eprintln!("perstack.lock was not written");
        return ExitCode::from(exit::INVALID);
    }
    let path = lock_path(&loaded.path);
    if let Err(e) = write_lock(&path, &lock) {
        eprintln!("error: {e}");
        return ExitCode::from(exit::INVALID);
    }
    println!("wrote {}", path.display());
    for line in summary {
        println!("{line}");
    }
    ExitCode::from(exit::OK)
}
