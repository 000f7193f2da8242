//! Sandbox overhead: spawning `true` confined (namespaces, Landlock, seccomp, with the policy
//! prepared per spawn as `exec` does) against unconfined, and one HTTP request on loopback
//! through the filtering proxy against the same request sent directly.
//!
//! Before the criterion runs, each pair is measured 100 times and the medians and their
//! difference are printed: the targets are < 5 ms per confined spawn and < 1 ms per proxied
//! request.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use perstack::sandbox::proxy::ProxyListener;
use perstack::sandbox::{Confinement, Sandbox};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const SAMPLES: usize = 100;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn spawn_true(workspace: &std::path::Path, confined: bool) {
    let mut command = Command::new("true");
    command.stdin(Stdio::null()).stdout(Stdio::null());
    let confinement = confined.then(|| {
        let policy = Sandbox::confined().policy(workspace, Vec::new(), Vec::new());
        Confinement::prepare(&policy, None).expect("sandbox supported")
    });
    if let Some(confinement) = &confinement {
        confinement.apply(&mut command);
    }
    let status = command.status().expect("spawn true");
    assert!(status.success());
}

fn spawn(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("workspace");
    let measure = |confined| {
        median(
            (0..SAMPLES)
                .map(|_| {
                    let started = Instant::now();
                    spawn_true(dir.path(), confined);
                    started.elapsed()
                })
                .collect(),
        )
    };
    let plain = measure(false);
    let confined = measure(true);
    println!(
        "spawn `true`, median of {SAMPLES}: unconfined {plain:?}, confined {confined:?}, \
         overhead {:?}",
        confined.saturating_sub(plain)
    );
    let mut group = c.benchmark_group("sandbox spawn");
    group.bench_function("unconfined true", |b| {
        b.iter(|| spawn_true(dir.path(), false))
    });
    group.bench_function("confined true", |b| b.iter(|| spawn_true(dir.path(), true)));
    group.finish();
}

async fn hello_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("listener");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    port
}

/// One GET on a fresh connection, to `connect_port`, asking for `target`.
async fn get(connect_port: u16, target: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", connect_port))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    assert!(response.starts_with(b"HTTP/1.1 200"));
}

fn proxied(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let (server, proxy) = rt.block_on(async {
        let server = hello_server().await;
        let proxy = ProxyListener::start("bench", vec!["localhost".into()], Arc::new(|_| {}))
            .await
            .expect("proxy");
        (server, proxy)
    });
    let url = format!("http://localhost:{server}/");
    let measure = |through_proxy: bool| {
        rt.block_on(async {
            let mut samples = Vec::with_capacity(SAMPLES);
            for _ in 0..SAMPLES {
                let started = Instant::now();
                if through_proxy {
                    get(proxy.port(), &url).await;
                } else {
                    get(server, "/").await;
                }
                samples.push(started.elapsed());
            }
            median(samples)
        })
    };
    let direct = measure(false);
    let via_proxy = measure(true);
    println!(
        "HTTP GET on loopback, median of {SAMPLES}: direct {direct:?}, through the proxy \
         {via_proxy:?}, overhead {:?}",
        via_proxy.saturating_sub(direct)
    );
    let mut group = c.benchmark_group("sandbox proxy");
    group.bench_function("direct GET", |b| b.iter(|| rt.block_on(get(server, "/"))));
    group.bench_function("proxied GET", |b| {
        b.iter(|| rt.block_on(get(proxy.port(), &url)))
    });
    group.finish();
}

criterion_group!(benches, spawn, proxied);
criterion_main!(benches);
