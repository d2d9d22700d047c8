//! `economics`: the economics benchmark behind `benches/economics/run.sh`. It replays one
//! mixed workload (about 70 % background with a deadline of tens of seconds, 30 % urgent
//! with a few seconds) through flexgate and through a client that behaves like the official
//! SDKs going straight to the upstream, against the simulator, and prints per scenario:
//! upstream attempts per request, wasted flex attempts per flex success, client-visible
//! errors and deadline misses (urgent and background), and the saving on background spend.
//!
//! Each path gets its own simulator with the same settings and seed, so both see the same
//! weather and neither's attempts use the other's rate limit. The simulators, flexgate
//! and the clients run in this process on loopback; every scenario of one run goes at
//! once (the load is a few requests per second each), runs go one after the other.
//!
//! With `--replicas N` the comparison is another: the same workload through N flexgate
//! replicas taking turns, sharing their admission view through a `redis-server` the driver
//! starts (and stops) itself, against N replicas that each learn alone.

#![expect(clippy::print_stdout, reason = "the tables are the benchmark's output")]

mod client;
mod redis;
mod report;
mod scenario;
mod stack;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use futures_util::future::join_all;

use report::Figures;
use scenario::{Name, Scenario};
use stack::Path;

#[derive(Debug, Parser)]
#[command(about = "flexgate economics benchmark: flexgate against an SDK-like direct client, per scenario")]
struct Args {
    /// Scenarios to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mild,storm,storm-limit,outage")]
    scenarios: Vec<Name>,
    /// Runs of each scenario; the tables show every run and the median.
    #[arg(long, default_value_t = 3)]
    runs: u64,
    /// Seed of the first run (run N uses seed + N - 1) for the workload and the simulator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write every run's figures as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Compare N replicas sharing Redis with N replicas alone instead (N >= 2; needs
    /// `redis-server`, which tests/redis/install.sh installs).
    #[arg(long)]
    replicas: Option<usize>,
}

#[derive(Debug, serde::Serialize)]
struct ScenarioRuns {
    scenario: String,
    flexgate: Vec<Figures>,
    direct: Vec<Figures>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let redis = match args.replicas {
        Some(n) if n >= 2 => Some(redis::Redis::start()?),
        Some(_) => anyhow::bail!("--replicas needs at least 2"),
        None => None,
    };
    let paths = match (args.replicas, &redis) {
        (Some(n), Some(r)) => [Path::SharedReplicas(n, r.port), Path::Replicas(n)],
        _ => [Path::Flexgate, Path::Direct],
    };
    let labels = if redis.is_some() { ["shared Redis", "each alone"] } else { ["flexgate", "direct SDK"] };
    let mut results: Vec<ScenarioRuns> = args
        .scenarios
        .iter()
        .map(|name| ScenarioRuns {
            scenario: Scenario::new(*name, args.seed).title,
            flexgate: Vec::new(),
            direct: Vec::new(),
        })
        .collect();
    for run in 0..args.runs {
        let seed = args.seed + run;
        println!("run {} of {} (seed {seed})", run + 1, args.runs);
        let jobs = args.scenarios.iter().flat_map(|name| {
            let scenario = Scenario::new(*name, seed);
            paths.map(move |path| {
                let scenario = scenario.clone();
                async move { stack::run(&scenario, path, seed).await }
            })
        });
        let figures = join_all(jobs).await;
        for (i, pair) in figures.chunks(2).enumerate() {
            let [flexgate, direct] = pair else { continue };
            results[i].flexgate.push(flexgate.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?.clone());
            results[i].direct.push(direct.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?.clone());
        }
    }
    let mut missed = 0;
    for (name, runs) in args.scenarios.iter().zip(&results) {
        print!("{}", report::table(&runs.scenario, [(labels[0], &runs.flexgate), (labels[1], &runs.direct)]));
        if redis.is_some() {
            continue; // the targets are flexgate's against the direct client
        }
        for (target, met) in report::verdicts(*name, &runs.flexgate, &runs.direct) {
            println!("  target: {target}: {}", if met { "met" } else { "MISSED" });
            missed += usize::from(!met);
        }
    }
    println!("\n{missed} target(s) missed");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
    }
    Ok(())
}
