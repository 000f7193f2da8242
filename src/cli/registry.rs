//! The registry verbs: `publish`, `unpublish`, `tag`, `status`, `search`, `info`.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{ConfigArgs, exit, load_or_report};
use crate::definition::{self, Config};
use crate::registry::key::is_registry_key;
use crate::registry::{
    Address, AnyRegistry, Artifact, ExpertKey, Options, Registry, RegistryError, Status,
};

/// Where the registry is, for every verb that talks to one.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// The registry: oci://HOST[:PORT]/NAMESPACE or a Perstack API URL (default: PERSTACK_REGISTRY,
    /// then `registry` or `perstackApiBaseUrl` in perstack.toml, then the hosted registry)
    #[arg(long, value_name = "ADDRESS")]
    pub registry: Option<String>,
    /// Allow plain http to a registry that is not on this machine
    #[arg(long)]
    pub insecure_registry: bool,
}

impl RegistryArgs {
    /// The address to use; `config` is perstack.toml when there is one.
    pub fn address(&self, config: Option<&Config>) -> Result<Address, RegistryError> {
        if let Some(address) = &self.registry {
            return Address::parse(address);
        }
        Address::of_config(config.unwrap_or(&Config::default()))
    }

    pub fn options(&self) -> Options {
        Options::from_env(self.insecure_registry)
    }
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The Expert to publish (a key of [experts]; may be omitted when there is only one)
    pub expert: Option<String>,
    /// Show what would be published and stop
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The Expert version: @scope/name@1.2.0 or name@1.2.0
    pub key: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Path to perstack.toml (read only for its `registry` setting)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    #[command(flatten)]
    pub target: KeyArgs,
    /// Tags to add (e.g. latest, stable)
    #[arg(required = true)]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: KeyArgs,
    /// available, deprecated or disabled
    pub status: Status,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Text to look for in names and descriptions (all Experts when omitted)
    pub text: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Path to perstack.toml (read only for its `registry` setting)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// perstack.toml when one is named or found; registry verbs work without one.
fn optional_config(path: Option<&std::path::Path>) -> Option<Config> {
    let cwd = std::env::current_dir().ok()?;
    let path = definition::discover(path, &cwd).ok()?;
    definition::load_file(&path)
        .ok()
        .map(|loaded| loaded.config)
}

fn block_on<F: Future<Output = ExitCode>>(future: F) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::from(exit::INVALID)
        }
    }
}

fn open(args: &RegistryArgs, config: Option<&Config>) -> Result<(AnyRegistry, Address), ExitCode> {
    let opened = args
        .address(config)
        .and_then(|address| Ok((AnyRegistry::open(&address, &args.options())?, address)));
    opened.map_err(|err| fail(&err))
}

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(exit::INVALID)
}

/// What `publish` would send, or why it cannot: the Expert must be valid (it loaded), and every
/// delegate must be a registry key, since nobody else has this file's local Experts.
pub fn prepare_publish(config: &Config, expert: Option<&str>) -> Result<Artifact, String> {
    let name = match expert {
        Some(name) => name.to_string(),
        None => match config.experts.keys().collect::<Vec<_>>().as_slice() {
            [only] => only.to_string(),
            keys => {
                let listed: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
                return Err(format!(
                    "name the Expert to publish: perstack publish <expert> (one of: {})",
                    listed.join(", ")
                ));
            }
        },
    };
    let Some(local) = config.experts.get(&name) else {
        return Err(format!("there is no [experts.\"{name}\"] in perstack.toml"));
    };
    let local_only: Vec<&str> = local
        .delegates()
        .iter()
        .filter(|d| !is_registry_key(d))
        .map(String::as_str)
        .collect();
    if !local_only.is_empty() {
        return Err(format!(
            "expert \"{name}\" delegates to local-only Experts: {}; publish them first and name them by registry key (@scope/name@1.2.0)",
            local_only.join(", ")
        ));
    }
    Artifact::from_local(&name, local).map_err(|err| err.to_string())
}

/// The text shown before publishing (and all of `--dry-run`).
pub fn render_publish_plan(artifact: &Artifact, address: &str) -> String {
    let mut out = format!("{} → {address}\ndigest {}\n", artifact.key, artifact.digest);
    let requirements = &artifact.requirements;
    out.push_str(&format!(
        "env vars its skills get: {}\ndomains its skills reach: {}\n",
        list_or_none(&requirements.required_env),
        list_or_none(&requirements.allowed_domains)
    ));
    out.push_str("--- published text ---\n");
    out.push_str(&artifact.text);
    if !artifact.text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("--- end ---\n");
    out
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

pub(super) fn publish(args: &PublishArgs) -> ExitCode {
    let loaded = match load_or_report(&args.config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let artifact = match prepare_publish(&loaded.config, args.expert.as_deref()) {
        Ok(artifact) => artifact,
        Err(message) => return fail(&message),
    };
    let address = match args.registry.address(Some(&loaded.config)) {
        Ok(address) => address,
        Err(err) => return fail(&err),
    };
    print!("{}", render_publish_plan(&artifact, &address.to_string()));
    if args.dry_run {
        println!("dry run: nothing was published");
        return ExitCode::from(exit::OK);
    }
    block_on(async {
        let (registry, _) = match open(&args.registry, Some(&loaded.config)) {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        match registry.publish(&artifact).await {
            Ok(()) => {
                println!("published {}", artifact.key);
                ExitCode::from(exit::OK)
            }
            Err(err) => fail(&err),
        }
    })
}

fn parse_key(text: &str) -> Result<ExpertKey, ExitCode> {
    ExpertKey::parse(text).map_err(|err| fail(&err))
}

pub(super) fn unpublish(args: &KeyArgs) -> ExitCode {
    keyed(args, "unpublished", |registry, key| async move {
        registry.unpublish(&key).await
    })
}

pub(super) fn tag(args: &TagArgs) -> ExitCode {
    let tags = args.tags.clone();
    keyed(&args.target, "tagged", move |registry, key| async move {
        registry.tag(&key, &tags).await
    })
}

pub(super) fn status(args: &StatusArgs) -> ExitCode {
    let status = args.status;
    keyed(
        &args.target,
        status.as_str(),
        move |registry, key| async move { registry.set_status(&key, status).await },
    )
}

fn keyed<F, Fut>(args: &KeyArgs, done: &str, operation: F) -> ExitCode
where
    F: FnOnce(std::rc::Rc<AnyRegistry>, ExpertKey) -> Fut,
    Fut: Future<Output = Result<(), RegistryError>>,
{
    let key = match parse_key(&args.key) {
        Ok(key) => key,
        Err(code) => return code,
    };
    let config = optional_config(args.config.as_deref());
    block_on(async {
        let (registry, _) = match open(&args.registry, config.as_ref()) {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        match operation(std::rc::Rc::new(registry), key.clone()).await {
            Ok(()) => {
                println!("{key}: {done}");
                ExitCode::from(exit::OK)
            }
            Err(err) => fail(&err),
        }
    })
}

pub(super) fn search(args: &SearchArgs) -> ExitCode {
    let config = optional_config(args.config.as_deref());
    block_on(async {
        let (registry, _) = match open(&args.registry, config.as_ref()) {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        match registry.search(args.text.as_deref().unwrap_or("")).await {
            Ok(listings) if listings.is_empty() => {
                println!("no Experts found");
                ExitCode::from(exit::OK)
            }
            Ok(listings) => {
                for listing in listings {
                    println!(
                        "{}  [{}]  {}",
                        listing.name,
                        listing.versions.join(", "),
                        listing.description.unwrap_or_default()
                    );
                }
                ExitCode::from(exit::OK)
            }
            Err(err) => fail(&err),
        }
    })
}

/// `perstack info KEY`: versions, and the details of the version named (or the newest).
pub(super) fn info(args: &KeyArgs) -> ExitCode {
    let config = optional_config(args.config.as_deref());
    let (name, version) = match ExpertKey::parse(&args.key) {
        Ok(key) => (key.name, Some(key.version)),
        Err(_) => (args.key.clone(), None),
    };
    block_on(async {
        let (registry, _) = match open(&args.registry, config.as_ref()) {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        let versions = match registry.versions(&name).await {
            Ok(versions) => versions,
            Err(err) => return fail(&err),
        };
        println!("{name}");
        println!("versions:");
        for v in &versions {
            println!("  {} ({})", v.version, v.status.as_str());
        }
        let Some(version) = version.or_else(|| versions.last().map(|v| v.version.clone())) else {
            return ExitCode::from(exit::OK);
        };
        let key = match ExpertKey::new(&name, &version) {
            Ok(key) => key,
            Err(err) => return fail(&err),
        };
        match registry.get(&key).await {
            Ok(fetched) => {
                print!("{}", render_info(&fetched.artifact, fetched.status));
                ExitCode::from(exit::OK)
            }
            Err(err) => fail(&err),
        }
    })
}

pub fn render_info(artifact: &Artifact, status: Status) -> String {
    let expert = &artifact.expert;
    let skills: Vec<String> = expert.effective_skills().keys().cloned().collect();
    format!(
        "{} ({})\ndescription: {}\ndelegates: {}\nskills: {}\nenv vars its skills get: {}\ndomains its skills reach: {}\ndigest: {}\n",
        artifact.key,
        status.as_str(),
        expert.description.as_deref().unwrap_or("-"),
        list_or_none(expert.delegates()),
        skills.join(", "),
        list_or_none(&artifact.requirements.required_env),
        list_or_none(&artifact.requirements.allowed_domains),
        artifact.digest
    )
}
