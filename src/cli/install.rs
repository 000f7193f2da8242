//! `perstack install`: resolve registry delegates, start every Expert's skills and write
//! perstack.lock with the registry Experts' digests and every skill's tools.

use std::process::ExitCode;

use clap::Args;
use tokio::sync::mpsc::unbounded_channel;

use super::registry::RegistryArgs;
use super::{ConfigArgs, exit, load_or_report};
use crate::definition::{self, LoadedConfig};
use crate::registry::resolve::{Installed, install as resolve_install};
use crate::registry::{AnyRegistry, ExpertKey, cache::Cache};
use crate::skills::lock::{Lock, RegistryPins, lock_path, read_registry, write_lock_with_registry};
use crate::skills::workspace::Workspace;
use crate::skills::{SkillEvent, SkillEventKind, SkillManager, SkillManagerOptions};

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Registry Experts to install by key besides the delegates (@scope/name@1.2.0), e.g. to
    /// run one directly with `perstack run`
    pub keys: Vec<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub(super) fn run(args: &InstallArgs) -> ExitCode {
    let loaded = match load_or_report(&args.config) {
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
            code = install(&loaded, args) => code,
            // Returning drops the skills, which kills every server process group.
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted; nothing was written");
                ExitCode::from(exit::INVALID)
            }
        }
    })
}

/// Resolves the registry Experts (nothing to do, and no network, when there are none).
async fn resolve_registry(
    loaded: &LoadedConfig,
    previous: &RegistryPins,
    args: &InstallArgs,
) -> Result<Installed, String> {
    let mut pinned = Vec::new();
    for key in &args.keys {
        pinned.push(ExpertKey::parse(key).map_err(|e| e.to_string())?);
    }
    let has_registry_delegates = loaded.config.experts.values().any(|e| {
        e.delegates().iter().any(|d| {
            !loaded.config.experts.contains_key(d) && crate::registry::key::is_registry_key(d)
        })
    });
    let has_pinned = previous.values().any(|e| e.pinned);
    if pinned.is_empty() && !has_registry_delegates && !has_pinned {
        return Ok(Installed::default());
    }
    let address = args
        .registry
        .address(Some(&loaded.config))
        .map_err(|e| e.to_string())?;
    let registry =
        AnyRegistry::open(&address, &args.registry.options()).map_err(|e| e.to_string())?;
    let cache = Cache::user().map_err(|e| e.to_string())?;
    resolve_install(
        &loaded.config,
        previous,
        &pinned,
        &registry,
        &address,
        &cache,
    )
    .await
    .map_err(|e| e.to_string())
}

async fn install(loaded: &LoadedConfig, args: &InstallArgs) -> ExitCode {
    let path = lock_path(&loaded.path);
    let previous = match read_registry(&path) {
        Ok(previous) => previous,
        Err(err) => {
            eprintln!("warning: {err}; writing a new one");
            RegistryPins::new()
        }
    };
    let installed = match resolve_registry(loaded, &previous, args).await {
        Ok(installed) => installed,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("perstack.lock was not written");
            return ExitCode::from(exit::INVALID);
        }
    };
    for warning in &installed.warnings {
        eprintln!("warning: {warning}");
    }
    // Registry Experts' skills are locked as the local ones are.
    let mut experts = loaded.config.experts.clone();
    experts.extend(installed.experts.clone());
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
    for (key, expert) in &experts {
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
    if let Err(e) = write_lock_with_registry(&path, &lock, &installed.locked) {
        eprintln!("error: {e}");
        return ExitCode::from(exit::INVALID);
    }
    println!("wrote {}", path.display());
    for line in summary {
        println!("{line}");
    }
    // Someone else's text: say what it will get from this machine.
    for (key, entry) in &installed.locked {
        let short: String = entry.digest.chars().take(19).collect();
        println!("  {key} from {} ({short}…)", entry.registry);
        println!(
            "    env vars its skills get: {}",
            or_none(&entry.required_env)
        );
        println!(
            "    domains its skills reach: {}",
            or_none(&entry.allowed_domains)
        );
    }
    ExitCode::from(exit::OK)
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
