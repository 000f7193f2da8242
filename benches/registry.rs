//! Registry speed: a cold `install` of 50 registry Experts from a local OCI registry (Debian's
//! docker-registry on 127.0.0.1, empty cache, fresh connections), and resolving the same 50 from
//! the lock and the cache as every run start does.
//!
//! Targets: cold install < 1 s; resolving from lock and cache < 5 ms.

#[allow(dead_code)] // the bench uses the anonymous registry only
#[path = "../tests/support/registry.rs"]
mod local_registry;

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use perstack::definition::{Config, parse_str};
use perstack::registry::cache::Cache;
use perstack::registry::resolve::{attach_from, install};
use perstack::registry::{Address, AnyRegistry, Artifact, Options, Registry};
use perstack::skills::lock::RegistryPins;
use tokio::runtime::Runtime;

const EXPERTS: usize = 50;

fn published(i: usize) -> Artifact {
    let source = format!(
        "[experts.\"@bench/expert{i}\"]\nversion = \"1.0.0\"\ndescription = \"Bench Expert {i}\"\ninstruction = \"You are bench Expert number {i}. Answer briefly.\"\n"
    );
    let (config, _) = parse_str(&source, Path::new("perstack.toml")).expect("bench Expert");
    let (name, expert) = config.experts.into_iter().next().expect("one Expert");
    Artifact::from_local(&name, &expert).expect("artifact")
}

fn consumer() -> Config {
    let delegates: Vec<String> = (0..EXPERTS)
        .map(|i| format!("\"@bench/expert{i}@1.0.0\""))
        .collect();
    let source = format!(
        "[experts.lead]\ninstruction = \"Lead.\"\ndelegates = [{}]\n",
        delegates.join(", ")
    );
    parse_str(&source, Path::new("perstack.toml"))
        .expect("consumer")
        .0
}

fn bench_registry(c: &mut Criterion) {
    let registry = local_registry::LocalRegistry::start();
    let address = Address::parse(&registry.address("bench")).expect("address");
    let runtime = Runtime::new().expect("tokio");
    let options = Options::default();
    runtime.block_on(async {
        let client = AnyRegistry::open(&address, &options).expect("open");
        for i in 0..EXPERTS {
            client.publish(&published(i)).await.expect("publish");
        }
    });
    let config = consumer();
    let caches = tempfile::tempdir().expect("cache dir");

    let mut group = c.benchmark_group("registry");
    group.sample_size(10);
    let mut round = 0;
    group.bench_function("cold install of 50 Experts", |b| {
        b.iter(|| {
            round += 1;
            let cache = Cache::at(caches.path().join(format!("cold{round}")));
            let client = AnyRegistry::open(&address, &options).expect("open");
            let installed = runtime
                .block_on(install(
                    &config,
                    &RegistryPins::new(),
                    &[],
                    &client,
                    &address,
                    &cache,
                ))
                .expect("install");
            assert_eq!(installed.locked.len(), EXPERTS);
        })
    });
    group.finish();

    let cache = Cache::at(caches.path().join("warm"));
    let client = AnyRegistry::open(&address, &options).expect("open");
    let locked = runtime
        .block_on(install(
            &config,
            &RegistryPins::new(),
            &[],
            &client,
            &address,
            &cache,
        ))
        .expect("install")
        .locked;
    c.bench_function("registry/resolve 50 from lock and cache", |b| {
        b.iter(|| {
            let mut run_config = config.clone();
            attach_from(&mut run_config, &locked, &cache, &options).expect("attach");
            assert_eq!(run_config.experts.len(), EXPERTS + 1);
        })
    });
}

criterion_group!(benches, bench_registry);
criterion_main!(benches);
