//! Held requests: send many requests the simulator holds for its whole flex latency, and
//! watch the gateway's memory and open files while they are all in flight.
//!
//! With a high enough open-file limit every request gets its own HTTP/1.1 connection
//! (raw TCP keeps the load tool light), so flexgate holds two sockets per request. Where
//! the limit is too low for that (this sandbox caps it at 20,000, and flexgate would need
//! 20,000 sockets plus its own files), the requests share [`H2_CONNS`] HTTP/2 connections
//! to flexgate instead; flexgate still opens one upstream HTTP/1.1 connection per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::procs::Proc;

#[derive(Debug, Clone, Default)]
pub struct HeldRun {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Gateway RSS and open files once every request was in flight.
    pub rss_kib_held: u64,
    pub fds_held: usize,
    pub rss_kib_peak: u64,
    pub fds_peak: usize,
    /// Gateway RSS after every request was answered.
    pub rss_kib_after: u64,
    pub ramp_secs: f64,
    pub total_secs: f64,
}

/// HTTP/2 connections the requests share when they cannot each have their own.
pub const H2_CONNS: usize = 100;

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
}

async fn one(
    addr: &str,
    request: &[u8],
    counters: &Counters,
    limit: Duration,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> bool {
    let attempt = async {
        let connected = TcpStream::connect(addr).await;
        drop(permit);
        let mut tcp = connected.ok()?;
        tcp.write_all(request).await.ok()?;
        counters.sent.fetch_add(1, Ordering::Relaxed);
        let mut answer = Vec::with_capacity(2048);
        tcp.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(limit, attempt).await.ok().flatten().unwrap_or(false)
}

/// One request over a shared HTTP/2 connection.
async fn one_h2(client: &reqwest::Client, url: &str, body: &str, counters: &Counters, limit: Duration) -> bool {
    let attempt = async {
        let sent = client
            .post(url)
            .header("authorization", "Bearer x")
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send();
        counters.sent.fetch_add(1, Ordering::Relaxed);
        let response = sent.await.ok()?;
        let ok = response.status() == reqwest::StatusCode::OK;
        Some(response.bytes().await.is_ok() && ok)
    };
    tokio::time::timeout(limit, attempt).await.ok().flatten().unwrap_or(false)
}

/// Hold `n` requests through `gateway` (ramped at `per_sec`), each held by the upstream
/// for `hold`; sample the gateway until every one has finished. `h2`: share
/// [`H2_CONNS`] HTTP/2 connections instead of one HTTP/1.1 connection per request.
pub async fn run(gateway: &Proc, body: &str, n: u64, per_sec: u64, hold: Duration, h2: bool) -> Result<HeldRun> {
    let request = Arc::new(
        format!(
            "POST /flex/v1/chat/completions HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            gateway.addr,
            body.len()
        )
        .into_bytes(),
    );
    let counters = Arc::new(Counters::default());
    let connecting = Arc::new(Semaphore::new(256));
    let start = Instant::now();
    let limit = hold + Duration::from_secs(60);
    let mut tasks = tokio::task::JoinSet::new();
    let gap = Duration::from_secs(1) / u32::try_from(per_sec.max(1)).unwrap_or(u32::MAX);
    let mut pace = tokio::time::interval(gap);
    let clients = (0..H2_CONNS)
        .map(|_| reqwest::Client::builder().http2_prior_knowledge().tcp_nodelay(true).build())
        .collect::<Result<Vec<_>, _>>()?;
    let url = Arc::new(format!("http://{}/flex/v1/chat/completions", gateway.addr));
    let body = Arc::new(body.to_owned());
    for i in 0..n {
        pace.tick().await;
        let counters = counters.clone();
        if h2 {
            let client = clients[usize::try_from(i).unwrap_or(0) % H2_CONNS].clone();
            let (url, body) = (url.clone(), body.clone());
            tasks.spawn(async move {
                let ok = one_h2(&client, &url, &body, &counters, limit).await;
                let counter = if ok { &counters.ok } else { &counters.errors };
                counter.fetch_add(1, Ordering::Relaxed);
            });
            continue;
        }
        let permit = connecting.clone().acquire_owned().await?;
        let (addr, request) = (gateway.addr.clone(), request.clone());
        tasks.spawn(async move {
            let ok = one(&addr, &request, &counters, limit, permit).await;
            let counter = if ok { &counters.ok } else { &counters.errors };
            counter.fetch_add(1, Ordering::Relaxed);
        });
    }
    let mut run = HeldRun { requests: n, ..HeldRun::default() };
    run.ramp_secs = start.elapsed().as_secs_f64();
    // Let the last connections reach the upstream, then read the plateau.
    while counters.sent.load(Ordering::Relaxed) + counters.errors.load(Ordering::Relaxed) < n && start.elapsed() < limit
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.rss_kib_held = gateway.rss_kib()?;
    run.fds_held = gateway.fds()?;
    (run.rss_kib_peak, run.fds_peak) = (run.rss_kib_held, run.fds_held);
    let mut finished = false;
    while !finished {
        tokio::select! {
            next = tasks.join_next() => finished = next.is_none(),
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                run.rss_kib_peak = run.rss_kib_peak.max(gateway.rss_kib().unwrap_or(0));
                run.fds_peak = run.fds_peak.max(gateway.fds().unwrap_or(0));
            }
        }
    }
    run.total_secs = start.elapsed().as_secs_f64();
    run.ok = counters.ok.load(Ordering::Relaxed);
    run.errors = counters.errors.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.rss_kib_after = gateway.rss_kib()?;
    Ok(run)
}
