//! `flexload`: the gateway benchmark behind `benches/run.sh`. It starts the simulator and
//! flexgate on loopback, drives them with `oha` and its own clients, reads flexgate's CPU
//! time, RSS and open files from `/proc`, and prints per-run figures with their medians.
//!
//! Modes: `nonstream` (chat completions direct vs through flexgate, flat out and at a
//! fixed rate), `stream` (a few hundred chunks per answer: bytes/s, and per-chunk added
//! latency against a time-stamping upstream), `held` (thousands of requests the simulator
//! holds open: flexgate's RSS and file descriptors while they are in flight), `budgets`
//! (managed auth without a budget against a budget shared through Redis: CPU per request
//! and latency of each, in the same runs).

#![expect(clippy::print_stdout, reason = "the benchmark tables are the driver's output")]

mod bare;
mod bare_hyper;
mod budgets;
mod held;
mod oha;
mod procs;
mod redis;
mod relay;
mod report;
mod sse;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use procs::{GatewaySpec, Proc};
use report::Table;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Nonstream,
    Stream,
    Held,
    Budgets,
}

#[derive(Debug, Parser)]
#[command(about = "flexgate benchmark: direct-to-simulator vs through flexgate")]
struct Args {
    /// The flexgate release binary.
    #[arg(long, required_unless_present = "bare_forwarder")]
    flexgate: Option<PathBuf>,
    /// Internal: run a bare forwarder in front of this upstream address.
    #[arg(long, hide = true)]
    bare_forwarder: Option<String>,
    /// Internal: the stack of `--bare-forwarder`.
    #[arg(long, hide = true, value_enum, default_value = "axum-reqwest")]
    bare_kind: bare::Kind,
    /// Internal: exact read-buffer size of the hyper forwarder's upstream connections.
    #[arg(long, hide = true)]
    bare_read_buf: Option<usize>,
    /// The `oha` binary.
    #[arg(long, default_value = "oha")]
    oha: PathBuf,
    /// Modes to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "nonstream,stream,held,budgets")]
    modes: Vec<Mode>,
    /// Repetitions of each mode; tables show every run and the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Length of each load phase.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrent connections of the load phases.
    #[arg(long, default_value_t = 32)]
    conns: usize,
    /// Offered rate (requests/s) of the fixed-rate latency phase.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Content chunks per streamed answer.
    #[arg(long, default_value_t = 300)]
    chunks: u32,
    /// Gap between chunks of the time-stamping upstream (per-chunk latency phase); the
    /// simulator's default, several times faster than real token streams.
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    chunk_interval: Duration,
    /// Requests held open at once.
    #[arg(long, default_value_t = 10_000)]
    held: u64,
    /// New held connections per second while ramping up.
    #[arg(long, default_value_t = 4_000)]
    held_rate: u64,
    /// How long the simulator holds each request.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// Held mode: what to measure, comma-separated; each run goes through them in turn.
    #[arg(long, value_delimiter = ',', default_value = "flexgate")]
    held_targets: Vec<Target>,
    /// Held mode: measure the bare axum + reqwest forwarder instead of flexgate (the same
    /// as `--held-targets axum-reqwest`).
    #[arg(long)]
    held_bare: bool,
    /// Read-buffer size (bytes) of the hyper forwarder's upstream connections for the
    /// `hyper-small-buf` held target; hyper's default is adaptive, from 8 KiB up.
    #[arg(long, default_value_t = 4096)]
    small_read_buf: usize,
    /// Write every table as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What the held mode measures: flexgate or one of the bare forwarders (the floors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Flexgate,
    AxumReqwest,
    AxumHyper,
    Hyper,
    /// The hyper forwarder with `--small-read-buf` as its upstream read buffer.
    HyperSmallBuf,
}

/// A ~2 KB chat request, the size the rewrite target quotes.
fn chat_body(stream: bool, max_tokens: u32) -> String {
    let prose = "Please summarise the following support ticket in three bullet points and flag anything urgent. ";
    let ticket = prose.repeat(18);
    format!(
        r#"{{"model":"gpt-5-mini","messages":[{{"role":"system","content":"You are a concise support assistant."}},{{"role":"user","content":"{ticket}"}}],"max_completion_tokens":{max_tokens},"stream":{stream},"user":"bench"}}"#
    )
}

struct Ctx {
    args: Args,
    /// The flexgate binary under test.
    bin: PathBuf,
    dir: PathBuf,
}

impl Ctx {
    fn body_file(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn phase<'a>(&self, url: &'a str, body: &'a Path, rate: Option<u32>) -> oha::Phase<'a> {
        oha::Phase { url, body, bearer: "x", conns: self.args.conns, duration: self.args.duration, rate }
    }

    async fn gateway(&self, name: &str, upstream: &str, log_level: &str) -> Result<Proc> {
        let gw = Proc::gateway(&self.bin, &self.dir, name, &GatewaySpec { upstream, log_level, extra: "", env: &[] })
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(gw)
    }
}

/// Run a load phase and charge the CPU `proc` spent during it to its answered requests.
async fn measured(ctx: &Ctx, proc: &Proc, phase: &oha::Phase<'_>) -> Result<(oha::Load, f64)> {
    let before = proc.cpu()?;
    let load = oha::run(&ctx.args.oha, phase).await?;
    let cpu = proc.cpu()?.saturating_sub(before);
    if load.ok == 0 {
        bail!("no request succeeded against {} ({} errors)", phase.url, load.errors);
    }
    let per = cpu.as_secs_f64() * 1e6 / f64::from(u32::try_from(load.ok).unwrap_or(u32::MAX));
    Ok((load, per))
}

fn mib(kib: u64) -> f64 {
    f64::from(u32::try_from(kib).unwrap_or(u32::MAX)) / 1024.0
}

async fn nonstream(ctx: &Ctx) -> Result<Vec<Table>> {
    let body = ctx.body_file("chat.json", &chat_body(false, 16))?;
    let sim = Proc::sim(&ctx.bin, &ctx.dir, "sim", "0ms").await?;
    let bare = Proc::bare(&ctx.dir, "bare", &sim.addr, bare::Kind::AxumReqwest, None).await?;
    let bare_mixed = Proc::bare(&ctx.dir, "bare-axum-hyper", &sim.addr, bare::Kind::AxumHyper, None).await?;
    let bare_hyper = Proc::bare(&ctx.dir, "bare-hyper", &sim.addr, bare::Kind::Hyper, None).await?;
    let relay = Proc::bare(&ctx.dir, "tcp-relay", &sim.addr, bare::Kind::TcpRelay, None).await?;
    let info = ctx.gateway("gw-info", &sim.addr, "info").await?;
    // Startup lines (the listening address) stay; the per-request line goes.
    let warn = ctx.gateway("gw-warn", &sim.addr, "warn,flexgate::cli=info").await?;
    let direct_url = format!("http://{}/v1/chat/completions", sim.addr);
    let info_url = format!("http://{}/flex/v1/chat/completions", info.addr);
    let warn_url = format!("http://{}/flex/v1/chat/completions", warn.addr);
    let bare_url = format!("http://{}/flex/v1/chat/completions", bare.addr);
    let mixed_url = format!("http://{}/flex/v1/chat/completions", bare_mixed.addr);
    let hyper_url = format!("http://{}/flex/v1/chat/completions", bare_hyper.addr);
    // A byte relay cannot strip the lane prefix: it is sent the simulator's own path.
    let relay_url = format!("http://{}/v1/chat/completions", relay.addr);
    // The floors, measured one after the other, starting with a different one each run.
    let floors = [
        ("floor axum+reqwest", &bare, bare_url.as_str()),
        ("floor axum+hyper client", &bare_mixed, mixed_url.as_str()),
        ("floor hyper", &bare_hyper, hyper_url.as_str()),
        ("floor tcp relay", &relay, relay_url.as_str()),
    ];
    let order = |run: usize| (0..floors.len()).map(move |i| (run + i) % floors.len());
    let (mut flat, mut rated) = (Table::new("nonstream", "non-streaming chat, flat out"), Table::new("rated", ""));
    flat.add("flexgate idle RSS (MiB)", 1, mib(info.rss_kib()?));
    for run in 0..ctx.args.runs {
        let (direct, sim_cpu) = measured(ctx, &sim, &ctx.phase(&direct_url, &body, None)).await?;
        let (via, cpu) = measured(ctx, &info, &ctx.phase(&info_url, &body, None)).await?;
        let (quiet, quiet_cpu) = measured(ctx, &warn, &ctx.phase(&warn_url, &body, None)).await?;
        flat.add("direct req/s", 0, direct.rps);
        flat.add("direct p50 (ms)", 3, direct.p50_ms);
        flat.add("direct p99 (ms)", 3, direct.p99_ms);
        flat.add("sim CPU/req direct (us)", 1, sim_cpu);
        flat.add("flexgate req/s (log info)", 0, via.rps);
        flat.add("flexgate p50 (ms)", 3, via.p50_ms);
        flat.add("flexgate p99 (ms)", 3, via.p99_ms);
        flat.add("throughput vs direct (%)", 1, 100.0 * via.rps / direct.rps);
        flat.add("flexgate CPU/req (us, log info)", 1, cpu);
        flat.add("flexgate req/s (log warn)", 0, quiet.rps);
        flat.add("flexgate CPU/req (us, log warn)", 1, quiet_cpu);
        let mut errors = direct.errors + via.errors + quiet.errors;
        let mut cpus = [0.0; 4];
        for i in order(run) {
            let (name, proc, url) = floors[i];
            let (floor, floor_cpu) = measured(ctx, proc, &ctx.phase(url, &body, None)).await?;
            flat.add(&format!("{name} req/s"), 0, floor.rps);
            flat.add(&format!("{name} CPU/req (us)"), 1, floor_cpu);
            cpus[i] = floor_cpu;
            errors += floor.errors;
        }
        flat.add("floor axum+hyper client / axum+reqwest CPU (%)", 1, 100.0 * cpus[1] / cpus[0]);
        flat.add("floor hyper / axum+reqwest CPU (%)", 1, 100.0 * cpus[2] / cpus[0]);
        flat.add("errors", 0, f64::from(u32::try_from(errors).unwrap_or(0)));
        let rate = Some(ctx.args.rate);
        let (direct, _) = measured(ctx, &sim, &ctx.phase(&direct_url, &body, rate)).await?;
        let (via, cpu) = measured(ctx, &info, &ctx.phase(&info_url, &body, rate)).await?;
        rated.add("direct p50 (ms)", 3, direct.p50_ms);
        rated.add("direct p99 (ms)", 3, direct.p99_ms);
        rated.add("flexgate p50 (ms)", 3, via.p50_ms);
        rated.add("flexgate p99 (ms)", 3, via.p99_ms);
        rated.add("added p50 (ms)", 3, via.p50_ms - direct.p50_ms);
        rated.add("added p99 (ms)", 3, via.p99_ms - direct.p99_ms);
        rated.add("flexgate CPU/req (us, log info)", 1, cpu);
        let mut errors = direct.errors + via.errors;
        for i in order(run) {
            let (name, proc, url) = floors[i];
            let (floor, floor_cpu) = measured(ctx, proc, &ctx.phase(url, &body, rate)).await?;
            rated.add(&format!("{name} added p50 (ms)"), 3, floor.p50_ms - direct.p50_ms);
            rated.add(&format!("{name} added p99 (ms)"), 3, floor.p99_ms - direct.p99_ms);
            rated.add(&format!("{name} CPU/req (us)"), 1, floor_cpu);
            errors += floor.errors;
        }
        rated.add("errors", 0, f64::from(u32::try_from(errors).unwrap_or(0)));
    }
    flat.add("flexgate RSS after load (MiB)", 1, mib(info.rss_kib()?));
    for p in [info, warn, bare, bare_mixed, bare_hyper, relay, sim] {
        p.stop().await;
    }
    rated.title = format!("non-streaming chat, {} req/s offered", ctx.args.rate);
    Ok(vec![flat, rated])
}

async fn stream(ctx: &Ctx) -> Result<Vec<Table>> {
    let a = &ctx.args;
    // gpt-5-mini reasons over half its output tokens; the rest are streamed one word per chunk.
    let body_text = chat_body(true, a.chunks * 2);
    let body = ctx.body_file("chat-stream.json", &body_text)?;
    let sim = Proc::sim(&ctx.bin, &ctx.dir, "sim-stream", "0ms").await?;
    let gw = ctx.gateway("gw-stream", &sim.addr, "info").await?;
    let stamper = sse::upstream(a.chunks, a.chunk_interval).await?;
    let gw_stamped = ctx.gateway("gw-stamped", &stamper, "info").await?;
    let relay = Proc::bare(&ctx.dir, "tcp-relay-stamped", &stamper, bare::Kind::TcpRelay, None).await?;
    let direct_url = format!("http://{}/v1/chat/completions", sim.addr);
    let via_url = format!("http://{}/flex/v1/chat/completions", gw.addr);
    let frames = f64::from(a.chunks + 4);
    // The stamping upstream paces a stream in lockstep when its body says so.
    let lockstep = body_text.replace(r#""user":"bench""#, r#""user":"bench-lockstep""#);
    anyhow::ensure!(lockstep != body_text, "the streamed body has no \"user\":\"bench\" to mark lockstep");
    let mut t = Table::new("stream", &format!("streaming chat, {} chunks per answer", a.chunks));
    for _ in 0..a.runs {
        let (direct, _) = measured(ctx, &sim, &ctx.phase(&direct_url, &body, None)).await?;
        let (via, cpu) = measured(ctx, &gw, &ctx.phase(&via_url, &body, None)).await?;
        t.add("direct streams/s", 0, direct.rps);
        t.add("direct MB/s", 1, direct.bytes_per_sec / 1e6);
        t.add("flexgate streams/s", 0, via.rps);
        t.add("flexgate MB/s", 1, via.bytes_per_sec / 1e6);
        t.add("flexgate chunks/s", 0, via.rps * frames);
        t.add("flexgate CPU/stream (us)", 1, cpu);
        t.add("flexgate CPU/chunk (us)", 2, cpu / frames);
        let stamper_url = format!("http://{stamper}/v1/chat/completions");
        let via_url = format!("http://{}/flex/v1/chat/completions", gw_stamped.addr);
        let relay_url = format!("http://{}/v1/chat/completions", relay.addr);
        let mut errors = 0;
        // Independent streams (each at its own phase of the interval, as real ones are)
        // are the target's measure; lockstep (every stream's chunk due at the same instant)
        // is the worst case, where each chunk also waits for the burst ahead of it.
        for (label, body) in [("", body_text.clone()), (", lockstep", lockstep.clone())] {
            let direct = sse::measure(&stamper_url, &body, a, a.duration).await?;
            let before = gw_stamped.cpu()?;
            let via = sse::measure(&via_url, &body, a, a.duration).await?;
            let cpu = gw_stamped.cpu()?.saturating_sub(before).as_secs_f64() * 1e6;
            let before = relay.cpu()?;
            let floor = sse::measure(&relay_url, &body, a, a.duration).await?;
            let relay_cpu = relay.cpu()?.saturating_sub(before).as_secs_f64() * 1e6;
            let relayed = f64::from(u32::try_from(floor.chunks.max(1)).unwrap_or(u32::MAX));
            let chunks = f64::from(u32::try_from(via.chunks.max(1)).unwrap_or(u32::MAX));
            t.add(&format!("paced chunk latency direct p50 (us{label})"), 0, direct.p50_us);
            t.add(&format!("paced chunk latency direct p99 (us{label})"), 0, direct.p99_us);
            t.add(&format!("paced chunk latency flexgate p50 (us{label})"), 0, via.p50_us);
            t.add(&format!("paced chunk latency flexgate p99 (us{label})"), 0, via.p99_us);
            t.add(&format!("added per chunk p50 (us{label})"), 0, via.p50_us - direct.p50_us);
            t.add(&format!("added per chunk p99 (us{label})"), 0, via.p99_us - direct.p99_us);
            t.add(&format!("paced chunks measured{label}"), 0, chunks);
            t.add(&format!("flexgate CPU/paced chunk (us{label})"), 2, cpu / chunks);
            t.add(&format!("floor tcp relay added per chunk p50 (us{label})"), 0, floor.p50_us - direct.p50_us);
            t.add(&format!("floor tcp relay added per chunk p99 (us{label})"), 0, floor.p99_us - direct.p99_us);
            t.add(&format!("floor tcp relay CPU/paced chunk (us{label})"), 2, relay_cpu / relayed);
            errors += direct.errors + via.errors + floor.errors;
        }
        t.add("errors", 0, f64::from(u32::try_from(errors).unwrap_or(0)));
    }
    for p in [gw, gw_stamped, relay, sim] {
        p.stop().await;
    }
    Ok(vec![t])
}

async fn held(ctx: &Ctx) -> Result<Vec<Table>> {
    let a = &ctx.args;
    let limit = procs::nofile_limit().unwrap_or(0);
    // flexgate needs two sockets per request over HTTP/1.1, one over shared HTTP/2.
    let h2 = limit < a.held * 2 + 1024;
    if limit < a.held + 1024 {
        bail!("the open-file limit is {limit}; raise it (ulimit -n 65536) for {} held requests", a.held);
    }
    let client = if h2 {
        format!("clients on {} shared HTTP/2 connections (open-file limit {limit})", held::H2_CONNS)
    } else {
        "one client HTTP/1.1 connection each".to_owned()
    };
    let hold = format!("{}ms", a.hold.as_millis());
    let body = chat_body(false, 16);
    let mut t = Table::new(
        "held",
        &format!("{} held requests, {client}; the simulator holds each {}", a.held, humantime::format_duration(a.hold)),
    );
    let targets = if a.held_bare { vec![Target::AxumReqwest] } else { a.held_targets.clone() };
    for run in 0..a.runs {
        for &target in &targets {
            let sim = Proc::sim(&ctx.bin, &ctx.dir, &format!("sim-held-{run}-{target:?}"), &hold).await?;
            let (gw, name) = match target {
                Target::Flexgate => {
                    (ctx.gateway(&format!("gw-held-{run}"), &sim.addr, "info").await?, "flexgate".to_owned())
                }
                Target::AxumReqwest => (
                    Proc::bare(&ctx.dir, "bare-held", &sim.addr, bare::Kind::AxumReqwest, None).await?,
                    "axum+reqwest".to_owned(),
                ),
                Target::AxumHyper => {
                    let gw = Proc::bare(&ctx.dir, "axum-hyper-held", &sim.addr, bare::Kind::AxumHyper, None).await?;
                    (gw, "axum+hyper client".to_owned())
                }
                Target::Hyper => {
                    (Proc::bare(&ctx.dir, "hyper-held", &sim.addr, bare::Kind::Hyper, None).await?, "hyper".to_owned())
                }
                Target::HyperSmallBuf => {
                    let size = Some(a.small_read_buf);
                    let gw = Proc::bare(&ctx.dir, "hyper-small-held", &sim.addr, bare::Kind::Hyper, size).await?;
                    (gw, format!("hyper {} B buf", a.small_read_buf))
                }
            };
            held_run(&mut t, &name, &gw, &body, a, h2).await?;
            gw.stop().await;
            sim.stop().await;
        }
    }
    Ok(vec![t])
}

/// One held run against `gw`, its rows labelled with `name`.
async fn held_run(t: &mut Table, name: &str, gw: &Proc, body: &str, a: &Args, h2: bool) -> Result<()> {
    let idle = gw.rss_kib()?;
    t.add(&format!("{name} idle RSS (MiB)"), 1, mib(idle));
    t.add(&format!("{name} idle fds"), 0, f64::from(u32::try_from(gw.fds()?).unwrap_or(0)));
    let before = gw.cpu()?;
    let r = held::run(gw, body, a.held, a.held_rate, a.hold, h2).await?;
    let cpu = gw.cpu()?.saturating_sub(before).as_secs_f64() * 1e6;
    t.add(&format!("{name} RSS while held (MiB)"), 1, mib(r.rss_kib_held));
    t.add(&format!("{name} peak RSS (MiB)"), 1, mib(r.rss_kib_peak));
    t.add(&format!("{name} fds while held"), 0, f64::from(u32::try_from(r.fds_held).unwrap_or(0)));
    t.add(&format!("{name} peak fds"), 0, f64::from(u32::try_from(r.fds_peak).unwrap_or(0)));
    t.add(&format!("{name} RSS after (MiB)"), 1, mib(r.rss_kib_after));
    let grown = f64::from(u32::try_from(r.rss_kib_held.saturating_sub(idle)).unwrap_or(u32::MAX));
    t.add(&format!("{name} KiB per held request"), 1, grown / f64::from(u32::try_from(a.held.max(1)).unwrap_or(1)));
    t.add(&format!("{name} answered 200"), 0, f64::from(u32::try_from(r.ok).unwrap_or(0)));
    t.add(&format!("{name} errors"), 0, f64::from(u32::try_from(r.errors).unwrap_or(0)));
    let per = cpu / f64::from(u32::try_from(r.requests.max(1)).unwrap_or(1));
    t.add(&format!("{name} CPU/held request (us)"), 1, per);
    t.add(&format!("{name} run time (s)"), 1, r.total_secs);
    Ok(())
}

/// The issue's targets, checked against the medians of the tables that were run.
fn targets(tables: &[Table]) -> String {
    let checks: [(&str, &str, &str, f64, bool); 13] = [
        ("nonstream", "flexgate CPU/req (us, log info)", "CPU per request (us)", 30.0, true),
        ("nonstream", "throughput vs direct (%)", "throughput vs direct (%)", 25.0, false),
        ("nonstream", "flexgate idle RSS (MiB)", "idle RSS (MiB)", 20.0, true),
        ("rated", "added p50 (ms)", "added p50 at a fixed rate (ms)", 0.1, true),
        ("rated", "added p99 (ms)", "added p99 at a fixed rate (ms)", 1.0, true),
        ("stream", "added per chunk p99 (us)", "added per-chunk p99, independent streams (us)", 200.0, true),
        ("stream", "errors", "streaming errors", 0.0, true),
        ("held", "flexgate RSS while held (MiB)", "RSS with the requests held (MiB)", 250.0, true),
        ("held", "flexgate errors", "held-request errors", 0.0, true),
        ("budgets", "budget+redis / no budget CPU (x)", "CPU/req, budget+Redis / no budget", 1.1, true),
        ("budgets-rated", "p99 budget+redis - no budget (ms)", "added p99 of budget+Redis (ms)", 0.2, true),
        ("budgets", "errors", "budgets errors, flat out", 0.0, true),
        ("budgets-rated", "errors", "budgets errors, fixed rate", 0.0, true),
    ];
    let mut out = String::from("\n== targets (medians) ==\n");
    for (key, row, what, bound, at_most) in checks {
        let Some(value) = tables.iter().filter(|t| t.key == key).find_map(|t| t.median(row)) else {
            continue;
        };
        let met = if at_most { value <= bound } else { value >= bound };
        let sign = if at_most { "<=" } else { ">=" };
        let verdict = if met { "met" } else { "MISSED" };
        let _ = writeln!(out, "{what:<36} {value:>10.3}  target {sign} {bound:<6} {verdict}");
    }
    if let Some(note) = budgets::p99_noise(tables) {
        out.push_str(&note);
    }
    // The host's speed moves every absolute figure (the same binary's CPU per request
    // has ranged 23-40 us between sessions); a ratio to a floor measured in the same run
    // shows whether a change of verdict is the code or the machine.
    let floors: [(&str, &str, &str, &str); 8] = [
        ("nonstream", "flexgate CPU/req (us, log info)", "floor hyper CPU/req (us)", "CPU per request / hyper alone's"),
        (
            "nonstream",
            "flexgate CPU/req (us, log info)",
            "floor tcp relay CPU/req (us)",
            "CPU per request / TCP relay's",
        ),
        ("rated", "added p50 (ms)", "floor hyper added p50 (ms)", "added p50 / hyper alone's"),
        ("rated", "added p50 (ms)", "floor tcp relay added p50 (ms)", "added p50 / TCP relay's"),
        (
            "stream",
            "added per chunk p99 (us)",
            "floor tcp relay added per chunk p99 (us)",
            "added per-chunk p99 / TCP relay's",
        ),
        (
            "held",
            "flexgate RSS while held (MiB)",
            "axum+hyper client RSS while held (MiB)",
            "held RSS / axum + hyper client's",
        ),
        ("budgets", "no budget CPU/req (us)", "floor hyper CPU/req (us)", "CPU/req no budget / hyper alone's"),
        ("budgets", "budget+redis CPU/req (us)", "floor hyper CPU/req (us)", "CPU/req budget+Redis / hyper's"),
    ];
    let mut header = false;
    for (key, row, floor, what) in floors {
        let Some(ratio) = tables.iter().filter(|t| t.key == key).find_map(|t| t.median_ratio(row, floor)) else {
            continue;
        };
        if !std::mem::replace(&mut header, true) {
            out.push_str("\n== against the floors in the same run (medians of per-run ratios) ==\n");
        }
        let _ = writeln!(out, "{what:<36} {ratio:>10.2}x");
    }
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(upstream) = &args.bare_forwarder {
        return match args.bare_kind {
            bare::Kind::AxumReqwest => bare::serve(upstream, false).await,
            bare::Kind::AxumHyper => bare::serve(upstream, true).await,
            bare::Kind::Hyper => bare_hyper::serve(upstream, args.bare_read_buf).await,
            bare::Kind::TcpRelay => relay::serve(upstream),
        };
    }
    let dir = procs::scratch_dir()?;
    let bin = args.flexgate.clone().context("--flexgate is required")?;
    let ctx = Ctx { args, bin, dir };
    let mut tables = Vec::new();
    for mode in ctx.args.modes.clone() {
        let result = match mode {
            Mode::Nonstream => nonstream(&ctx).await,
            Mode::Stream => stream(&ctx).await,
            Mode::Held => held(&ctx).await,
            Mode::Budgets => budgets::run(&ctx).await,
        };
        for table in result.with_context(|| format!("mode {mode:?}"))? {
            print!("{}", table.render());
            tables.push(table);
        }
    }
    print!("{}", targets(&tables));
    if let Some(path) = &ctx.args.json {
        let json = serde_json::Value::Array(tables.iter().map(Table::to_json).collect());
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    let _ = std::fs::remove_dir_all(&ctx.dir);
    Ok(())
}
