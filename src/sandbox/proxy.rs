//! The filtering proxy a confined process reaches the network through.
//!
//! Each skill gets its own listener on 127.0.0.1 (its own port), and Landlock lets the skill's
//! processes connect to that port only, so the port is the skill's identity: no other skill
//! can borrow its allow-list. The listener serves HTTP `CONNECT host:port` (HTTPS and any TCP)
//! and absolute-URI requests (`GET http://host/path`). A host on the skill's `allowedDomains`
//! is connected and relayed; any other gets `403 Forbidden` with a body that names the rule,
//! and a [`Denied`] report. The proxy resolves names itself: a confined process has no DNS.
//!
//! A plain-HTTP request is sent with `Connection: close`, so a kept-alive connection cannot
//! carry a second request to another host past the check.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::policy::domain_allowed;

/// The largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to an allowed host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A request the allow-list refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub skill_name: String,
    pub host: String,
    pub port: u16,
}

/// Called for every refused request.
pub type DeniedReport = Arc<dyn Fn(Denied) + Send + Sync>;

/// One skill's listener; stops when dropped.
pub struct ProxyListener {
    port: u16,
    task: JoinHandle<()>,
}

impl ProxyListener {
    /// Listens on an ephemeral loopback port for `skill_name`, allowing `domains`.
    pub async fn start(
        skill_name: &str,
        domains: Vec<String>,
        on_denied: DeniedReport,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let rules = Arc::new(Rules {
            skill_name: skill_name.to_string(),
            domains,
            on_denied,
        });
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rules = rules.clone();
                tokio::spawn(async move {
                    let _ = serve(client, &rules).await;
                });
            }
        });
        Ok(ProxyListener { port, task })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL the proxy variables point at.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ProxyListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Rules {
    skill_name: String,
    domains: Vec<String>,
    on_denied: DeniedReport,
}

/// What the client asked for.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    tunnel: bool,
    host: String,
    port: u16,
    /// For plain HTTP: the head to send to the origin, in origin form.
    forward_head: Vec<u8>,
}

async fn serve(mut client: TcpStream, rules: &Rules) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let (head, rest) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(read)) => read,
        _ => return reply(&mut client, 408, "request head not received in time\n").await,
    };
    let request = match parse(&head) {
        Ok(request) => request,
        Err(reason) => return reply(&mut client, 400, &format!("{reason}\n")).await,
    };
    if !domain_allowed(&rules.domains, &request.host) {
        (rules.on_denied)(Denied {
            skill_name: rules.skill_name.clone(),
            host: request.host.clone(),
            port: request.port,
        });
        let body = format!(
            "perstack sandbox: {}:{} is not in the allowedDomains of skill {}; add it to that \
             skill's allowedDomains in perstack.toml to allow it\n",
            request.host, request.port, rules.skill_name
        );
        return reply(&mut client, 403, &body).await;
    }
    let connect = TcpStream::connect((request.host.as_str(), request.port));
    let mut upstream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let body = format!("cannot connect to {}:{}: {e}\n", request.host, request.port);
            return reply(&mut client, 502, &body).await;
        }
        Err(_) => return reply(&mut client, 504, "connecting timed out\n").await,
    };
    upstream.set_nodelay(true)?;
    if request.tunnel {
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
    } else {
        upstream.write_all(&request.forward_head).await?;
    }
    if !rest.is_empty() {
        upstream.write_all(&rest).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Reads up to the blank line; returns the head and whatever came after it.
async fn read_head(client: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

fn parse(head: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {first:?}"));
    };
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_host_port(target, None)?;
        return Ok(Request {
            tunnel: true,
            host,
            port,
            forward_head: Vec::new(),
        });
    }
    let url = url::Url::parse(target).map_err(|_| {
        format!("{target} is not an absolute URL; this is a proxy, send absolute URLs or CONNECT")
    })?;
    if url.scheme() != "http" {
        return Err(format!(
            "scheme {} is not proxied; use CONNECT",
            url.scheme()
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("{target} names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut path = url.path().to_string();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut forward = format!("{method} {path} {version}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim();
        let hop = name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("keep-alive")
            || name.len() > 6 && name[..6].eq_ignore_ascii_case("proxy-");
        if !hop {
            forward.push_str(line);
            forward.push_str("\r\n");
        }
    }
    forward.push_str("Connection: close\r\n\r\n");
    Ok(Request {
        tunnel: false,
        host,
        port,
        forward_head: forward.into_bytes(),
    })
}

fn split_host_port(target: &str, default: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("CONNECT target {target:?} is not host:port");
    let (host, port) = match target.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => {
            (host, port.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (target, default.ok_or_else(bad)?),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

async fn reply(client: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        502 => "Bad Gateway",
        _ => "Gateway Timeout",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_absolute_requests_are_parsed() {
        let tunnel = parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n").expect("ok");
        assert!(tunnel.tunnel);
        assert_eq!((tunnel.host.as_str(), tunnel.port), ("example.com", 443));
        let six = parse(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").expect("ok");
        assert_eq!((six.host.as_str(), six.port), ("::1", 8443));
        let get = parse(
            b"GET http://localhost:8080/a?b=1 HTTP/1.1\r\nHost: localhost:8080\r\n\
              Proxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n",
        )
        .expect("ok");
        assert!(!get.tunnel);
        assert_eq!((get.host.as_str(), get.port), ("localhost", 8080));
        let forwarded = String::from_utf8(get.forward_head).expect("utf8");
        assert_eq!(
            forwarded,
            "GET /a?b=1 HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        assert!(
            parse(b"GET /relative HTTP/1.1\r\n\r\n")
                .expect_err("relative")
                .contains("absolute URL")
        );
        assert!(parse(b"CONNECT nohost HTTP/1.1\r\n\r\n").is_err());
        assert!(parse(b"garbage\r\n\r\n").is_err());
        assert!(
            parse(b"GET ftp://x/ HTTP/1.1\r\n\r\n")
                .expect_err("ftp")
                .contains("CONNECT")
        );
    }
}
