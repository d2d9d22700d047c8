//! The `budgets` mode: what a client's budget and shared state through Redis add to a
//! proxied request. Two gateways with managed auth run side by side on one simulator:
//! one with no budget and no Redis, one whose client has a budget (never reached in the
//! run) shared through a `redis-server` this mode starts. The same `oha` load goes to
//! each in turn, ABBA in one run and BAAB in the next, so a drift of the shared host
//! falls on both alike; the hyper forwarder is the floor, measured in the same runs.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::bare::Kind;
use crate::procs::{GatewaySpec, Proc};
use crate::redis;
use crate::report::{Table, median};
use crate::{Ctx, chat_body, measured, oha};

/// The one client of both gateways, and its gateway key (sent by `oha` as the bearer).
const CLIENT: &str = "bench";
const KEY: &str = "fg-flexload-bench";
/// The budget: $1,000 a month, so a slice leased from Redis is $10 (1 %), about 140,000
/// of this benchmark's requests ($0.00007 each): slices run low and are topped up
/// during the flat-out phases, and the limit is 14 million requests away. Each request
/// holds $0.001 while in flight (32 at once hold $0.032, far inside half a slice).
const BUDGET: &str = "usd = \"1000\"\nperiod = \"month\"\nreserve_usd = \"0.001\"\n";
const REMAINING: &str = "x-flexgate-budget-remaining-usd";

/// The two configurations, in the order their rows are labelled.
const NAMES: [&str; 2] = ["no budget", "budget+redis"];

/// What one configuration measured over the phases of one run.
#[derive(Default)]
struct Sum {
    cpu_us: f64,
    ok: u64,
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    errors: u64,
}

impl Sum {
    fn add(&mut self, load: &oha::Load, cpu_per: f64) {
        self.cpu_us += cpu_per * count(load.ok);
        self.ok += load.ok;
        self.rps.push(load.rps);
        self.p50.push(load.p50_ms);
        self.p99.push(load.p99_ms);
        self.errors += load.errors;
    }

    fn cpu_per(&self) -> f64 {
        self.cpu_us / count(self.ok.max(1))
    }
}

fn count(n: u64) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Table>> {
    let body = ctx.body_file("chat-budgets.json", &chat_body(false, 16))?;
    let sim = Proc::sim(&ctx.bin, &ctx.dir, "sim-budgets", "0ms").await?;
    let floor = Proc::bare(&ctx.dir, "bare-hyper-budgets", &sim.addr, Kind::Hyper, None).await?;
    let redis = redis::Server::start(&ctx.dir).await?;
    let plain = gateway(ctx, "gw-no-budget", &sim.addr, "").await?;
    let shared = format!("[budgets.{CLIENT}]\n{BUDGET}\n[shared]\nredis_url = \"{}\"\n", redis.url());
    let budgeted = gateway(ctx, "gw-budget-redis", &sim.addr, &shared).await?;
    let urls = [&plain, &budgeted].map(|gw| format!("http://{}/flex/v1/chat/completions", gw.addr));
    let floor_url = format!("http://{}/flex/v1/chat/completions", floor.addr);

    // The budget path must really be taken: the budgeted gateway's answers say what is
    // left, the other's do not.
    let text = std::fs::read_to_string(&body)?;
    ensure!(remaining(&urls[0], &text).await?.is_none(), "the gateway without a budget sent {REMAINING}");
    let left =
        remaining(&urls[1], &text).await?.with_context(|| format!("the budgeted gateway sent no {REMAINING}"))?;

    let (mut flat, mut rated) = (
        Table::new("budgets", "managed auth, no budget vs a budget shared through Redis, flat out"),
        Table::new("budgets-rated", ""),
    );
    let procs = [&plain, &budgeted];
    // Every request the budgeted gateway answered, the header check's included.
    let mut charged = 1;
    for run in 0..ctx.args.runs {
        let order = if run % 2 == 0 { [0, 1, 1, 0] } else { [1, 0, 0, 1] };
        for (table, rate) in [(&mut flat, None), (&mut rated, Some(ctx.args.rate))] {
            let phase = |url| oha::Phase { bearer: KEY, ..ctx.phase(url, &body, rate) };
            // The floor passes any bearer through; the simulator takes any.
            let (hyper, hyper_cpu) = measured(ctx, &floor, &ctx.phase(&floor_url, &body, rate)).await?;
            let mut sums = [Sum::default(), Sum::default()];
            let (mut commands, mut redis_cpu) = (0, Duration::ZERO);
            for i in order {
                let (c0, r0) = (redis.commands().await?, crate::procs::cpu_time(redis.pid)?);
                let (load, cpu) = measured(ctx, procs[i], &phase(urls[i].as_str())).await?;
                if i == 1 {
                    commands += redis.commands().await?.saturating_sub(c0);
                    redis_cpu += crate::procs::cpu_time(redis.pid)?.saturating_sub(r0);
                }
                sums[i].add(&load, cpu);
            }
            let [a, b] = &sums;
            charged += b.ok;
            for (name, s) in NAMES.iter().zip(&sums) {
                table.add(&format!("{name} req/s"), 0, median(&s.rps));
                table.add(&format!("{name} p50 (ms)"), 3, median(&s.p50));
                table.add(&format!("{name} p99 (ms)"), 3, median(&s.p99));
                table.add(&format!("{name} CPU/req (us)"), 1, s.cpu_per());
            }
            table.add("floor hyper req/s", 0, hyper.rps);
            table.add("floor hyper p50 (ms)", 3, hyper.p50_ms);
            table.add("floor hyper p99 (ms)", 3, hyper.p99_ms);
            table.add("floor hyper CPU/req (us)", 1, hyper_cpu);
            table.add("budget+redis / no budget CPU (x)", 3, b.cpu_per() / a.cpu_per());
            table.add("p50 budget+redis - no budget (ms)", 3, median(&b.p50) - median(&a.p50));
            table.add("p99 budget+redis - no budget (ms)", 3, median(&b.p99) - median(&a.p99));
            table.add("redis calls per 1,000 req", 2, 1000.0 * count(commands) / count(b.ok.max(1)));
            table.add("redis-server CPU/req (us)", 2, redis_cpu.as_secs_f64() * 1e6 / count(b.ok.max(1)));
            table.add("errors", 0, count(a.errors + b.errors + hyper.errors));
        }
    }
    let spent = shared_count(&redis).await?;
    flat.add("budget left before the load (USD)", 2, left);
    flat.add("spend in Redis after the run (USD)", 4, spent);
    // Each answer's cost, as Redis counts it: every request charged once.
    flat.add("spend in Redis per budgeted request (uUSD)", 2, spent * 1e6 / count(charged));
    for p in [plain, budgeted, floor, sim] {
        p.stop().await;
    }
    redis.stop().await;
    rated.title = format!("the same at {} req/s offered (latency, medians of each phase pair)", ctx.args.rate);
    Ok(vec![flat, rated])
}

/// A gateway with managed auth (client `bench`) and a store of its own, plus `extra`.
async fn gateway(ctx: &Ctx, name: &str, upstream: &str, extra: &str) -> Result<Proc> {
    let store = ctx.dir.join(format!("store-{name}"));
    let text = format!(
        "[store]\ndir = \"{}\"\n\n[auth]\nmode = \"managed\"\n\n[[auth.keys]]\nclient = \"{CLIENT}\"\nenv = \"FLEXLOAD_KEY_BENCH\"\n\n{extra}",
        store.display()
    );
    let env = [("OPENAI_API_KEY", "sk-flexload"), ("FLEXLOAD_KEY_BENCH", KEY)];
    let spec = GatewaySpec { upstream, log_level: "info", extra: &text, env: &env };
    let gw = Proc::gateway(&ctx.bin, &ctx.dir, name, &spec).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(gw)
}

/// One request with the client's key: the remaining-budget header's value, if any.
async fn remaining(url: &str, body: &str) -> Result<Option<f64>> {
    let client = reqwest::Client::new();
    let r = client
        .post(url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    ensure!(r.status().is_success(), "{url} answered {}", r.status());
    let value = r.headers().get(REMAINING).map(|v| v.to_str().unwrap_or_default().parse::<f64>());
    value.transpose().with_context(|| format!("odd {REMAINING}"))
}

/// The client's spend as the shared hash in Redis counts it (the `s:REPLICA` fields),
/// once the gateway's background task has reported it; fails when there is no hash.
async fn shared_count(redis: &redis::Server) -> Result<f64> {
    let pattern = format!("flexgate:budget:{CLIENT}:*");
    for _ in 0..100 {
        let keys = redis.cli(&["KEYS", &pattern]).await?;
        let Some(key) = keys.lines().find(|k| !k.is_empty()) else {
            bail!("Redis holds no {pattern} hash after the run: the budget was not shared");
        };
        let fields = redis.hash(key).await?;
        let spent: u64 =
            fields.iter().filter(|(f, _)| f.starts_with("s:")).filter_map(|(_, v)| v.parse::<u64>().ok()).sum();
        if spent > 0 {
            // In micro-dollars first: nano-dollars overflow the u32 that f64::from takes.
            return Ok(count(spent / 1000) / 1e6);
        }
        // The spend is reported on the task's next call, at most half a second away.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the {pattern} hash in Redis shows no spend after the run")
}

/// A warning for the p99 verdict when the host's own stalls are larger than the target:
/// the floor's p99 moving between runs by more than 0.2 ms means a difference of that
/// size between the two configurations cannot be told from noise.
pub fn p99_noise(tables: &[Table]) -> Option<String> {
    let rated = tables.iter().find(|t| t.key == "budgets-rated")?;
    let floor = &rated.rows.iter().find(|r| r.label == "floor hyper p99 (ms)")?.values;
    let (lo, hi) = floor.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    (floor.len() > 1 && hi - lo > 0.2).then(|| {
        format!(
            "(the floor's p99 ranged {lo:.3}-{hi:.3} ms across runs: the host's stalls exceed the 0.2 ms \
             target, so the p99 verdict is noise; compare p50, CPU and Redis calls per request)\n"
        )
    })
}
