//! Per-chunk latency of streamed answers. A small upstream (in this process) streams
//! OpenAI-shaped `chat.completion.chunk` events, each carrying its send time (wall clock,
//! nanoseconds) in its `content`; the client records, for every chunk, receive time minus
//! send time. Run once directly and once through flexgate, the difference is the latency
//! flexgate adds to each chunk. The wall clock is shared by every process on the machine.
//!
//! Each stream's chunks come at its own phase of the interval (drawn at random per
//! stream), as independent real streams do. A request whose body asks for `lockstep` is
//! paced by tokio's interval instead, as every invocation before P was: tokio's 1 ms
//! timer wheel fires all the streams' chunks together, the worst case of 32 chunks
//! arriving in the same microsecond.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use futures_util::StreamExt;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

fn now_ns() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

struct Shape {
    chunks: u32,
    interval: Duration,
    pacer: Pacer,
}

/// Wakes each chunk at its due time. tokio's timers fire on a 1 ms wheel, which gathers
/// every chunk due within the same millisecond into one burst and so would make
/// independent streams look like lockstep ones; this thread sleeps to the kernel's
/// high-resolution timers instead.
#[derive(Clone)]
struct Pacer(mpsc::Sender<(Instant, oneshot::Sender<()>)>);

impl Pacer {
    fn start() -> Self {
        let (tx, rx) = mpsc::channel::<(Instant, oneshot::Sender<()>)>();
        std::thread::spawn(move || {
            let mut waiting: Vec<(Instant, oneshot::Sender<()>)> = Vec::new();
            loop {
                let now = Instant::now();
                let mut i = 0;
                while i < waiting.len() {
                    if waiting[i].0 <= now {
                        let _ = waiting.swap_remove(i).1.send(());
                    } else {
                        i += 1;
                    }
                }
                let got = match waiting.iter().map(|w| w.0).min() {
                    Some(next) => rx.recv_timeout(next.saturating_duration_since(Instant::now())),
                    None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(entry) => waiting.push(entry),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        Self(tx)
    }

    async fn until(&self, due: Instant) {
        let (tx, rx) = oneshot::channel();
        if self.0.send((due, tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

const HEAD: &str = r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"gpt-5-mini","service_tier":"flex","system_fingerprint":"fp_bench","choices":["#;

fn frame(i: u32, shape: &Shape, usage: bool) -> Bytes {
    let null_usage = if usage { r#","usage":null"# } else { "" };
    let text = if i == 0 {
        format!(
            r#"{HEAD}{{"index":0,"delta":{{"role":"assistant","content":""}},"finish_reason":null}}]{null_usage}}}"#
        )
    } else if i <= shape.chunks {
        let stamp = now_ns();
        format!(r#"{HEAD}{{"index":0,"delta":{{"content":"@{stamp} "}},"finish_reason":null}}]{null_usage}}}"#)
    } else if i == shape.chunks + 1 {
        format!(r#"{HEAD}{{"index":0,"delta":{{}},"finish_reason":"stop"}}]{null_usage}}}"#)
    } else if i == shape.chunks + 2 && usage {
        let n = shape.chunks;
        format!(r#"{HEAD}],"usage":{{"prompt_tokens":40,"completion_tokens":{n},"total_tokens":{}}}}}"#, n + 40)
    } else {
        return Bytes::from_static(b"data: [DONE]\n\n");
    };
    Bytes::from(format!("{text}\n\n"))
}

/// When a stream's next content chunk is sent.
enum Clock {
    /// At `due`, woken by the pacer; then an interval after that wake-up.
    Paced { pacer: Pacer, due: Instant, interval: Duration },
    /// On tokio's interval (1 ms resolution: every stream's tick in the same slot).
    Lockstep(tokio::time::Interval),
}

impl Clock {
    async fn tick(&mut self) {
        match self {
            Self::Paced { pacer, due, interval } => {
                pacer.until(*due).await;
                // The next chunk an interval after this one was woken (never before it
                // was due), so a stream that fell behind does not burst its backlog.
                *due = (*due + *interval).max(Instant::now() + *interval);
            }
            Self::Lockstep(ticker) => {
                ticker.tick().await;
            }
        }
    }
}

async fn chat(State(shape): State<Arc<Shape>>, body: Bytes) -> Response {
    let usage = memchr::memmem::find(&body, br#""include_usage":true"#).is_some();
    let last = shape.chunks + 3;
    let interval = shape.interval.max(Duration::from_micros(1));
    let clock = if memchr::memmem::find(&body, b"lockstep").is_some() {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Clock::Lockstep(ticker)
    } else {
        let due = Instant::now() + interval.mul_f64(rand::rng().random::<f64>());
        Clock::Paced { pacer: shape.pacer.clone(), due, interval }
    };
    let frames = futures_util::stream::unfold((0_u32, clock), move |(i, mut clock)| {
        let shape = shape.clone();
        async move {
            if i > last {
                return None;
            }
            if i > 0 && i <= shape.chunks && !shape.interval.is_zero() {
                clock.tick().await;
            }
            let skip = i == shape.chunks + 2 && !usage;
            let out = if skip { Bytes::new() } else { frame(i, &shape, usage) };
            Some((Ok::<_, Infallible>(out), (i + 1, clock)))
        }
    })
    .filter(|f| std::future::ready(f.as_ref().map_or(true, |b| !b.is_empty())));
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("x-ratelimit-remaining-requests", "9999")
        .body(Body::from_stream(frames))
        .unwrap_or_default()
}

/// Start the stamping upstream on a free loopback port; returns its address.
pub async fn upstream(chunks: u32, interval: Duration) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(Arc::new(Shape {
        chunks,
        interval,
        pacer: Pacer::start(),
    }));
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// What a streaming run measured.
#[derive(Debug, Clone, Default)]
pub struct StreamRun {
    pub streams: u64,
    pub chunks: u64,
    pub errors: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Per-chunk latency percentiles, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// Timestamps found in a byte stream, robust to markers split across reads.
#[derive(Default)]
struct Stamps {
    tail: Vec<u8>,
}

impl Stamps {
    fn feed(&mut self, bytes: &[u8], now: u64, out: &mut Vec<u32>) -> u64 {
        self.tail.extend_from_slice(bytes);
        let mut found = 0;
        let mut at = 0;
        while let Some(pos) = memchr::memchr(b'@', &self.tail[at..]) {
            let digits = &self.tail[at + pos + 1..];
            let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            if len == digits.len() {
                break; // the marker continues in the next read
            }
            let stamp = std::str::from_utf8(&digits[..len]).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(now);
            out.push(u32::try_from(now.saturating_sub(stamp) / 1_000).unwrap_or(u32::MAX));
            found += 1;
            at += pos + 1 + len;
        }
        let keep = memchr::memrchr(b'@', &self.tail[at..]).map_or(self.tail.len(), |p| at + p);
        self.tail.drain(..keep);
        found
    }
}

/// `conns` loops of streamed requests to `url` for `duration`; per-chunk latency.
/// A stream that does not deliver all `chunks` stamps counts as an error.
pub async fn measure(url: &str, body: &str, shape: &crate::Args, duration: Duration) -> Result<StreamRun> {
    let (conns, expect) = (shape.conns, u64::from(shape.chunks));
    let client = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(conns).build()?;
    let start = Instant::now();
    let end = start + duration;
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, body, errors) = (client.clone(), url.to_owned(), body.to_owned(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut streams, mut chunks, mut bytes) = (Vec::new(), 0_u64, 0_u64, 0_u64);
            while Instant::now() < end {
                let sent = client
                    .post(&url)
                    .header("authorization", "Bearer x")
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let Ok(response) = sent.and_then(reqwest::Response::error_for_status) else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let mut stamps = Stamps::default();
                let mut stream = response.bytes_stream();
                let mut seen = 0;
                while let Some(Ok(piece)) = stream.next().await {
                    bytes += piece.len() as u64;
                    seen += stamps.feed(&piece, now_ns(), &mut lat);
                }
                if seen != expect {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                chunks += seen;
                streams += 1;
            }
            (lat, streams, chunks, bytes)
        }));
    }
    let mut run = StreamRun::default();
    let mut all = Vec::new();
    for task in tasks {
        let (lat, streams, chunks, bytes) = task.await.context("stream task")?;
        all.extend(lat);
        run.streams += streams;
        run.chunks += chunks;
        run.bytes += bytes;
    }
    run.seconds = start.elapsed().as_secs_f64();
    run.errors = errors.load(Ordering::Relaxed);
    all.sort_unstable();
    let pct = |p: f64| crate::report::percentile(&all, p);
    (run.p50_us, run.p99_us, run.p999_us) = (pct(0.50), pct(0.99), pct(0.999));
    Ok(run)
}
