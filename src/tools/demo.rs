//! `flexgate demo`: the simulator and the gateway in one process, with copy-paste examples;
//! with `--workload N`, a mixed workload through them and its report
//! (`mix`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Config, LogConfig, LogFormat};
use crate::server::{Server, shutdown_signal};
use crate::sim::{self, FlexOutage, Sim, SimConfig};
use mix::DemoWorkload;

/// The simulator's flex outages during `--workload`: flex is down for 1 s of every 10 s.
const WORKLOAD_OUTAGE: FlexOutage = FlexOutage { down: Duration::from_secs(1), period: Duration::from_secs(10) };

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Gateway address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Simulator address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub sim_listen: SocketAddr,
    /// Share of flex requests the simulator answers with a capacity 429.
    #[arg(long, default_value_t = 0.3)]
    pub flex_429_rate: f64,
    /// Flex outage windows `DOWN/PERIOD` in the simulator (flex answers only 429 for the
    /// first DOWN of every PERIOD). Default: none, or `1s/10s` with `--workload`, so its
    /// report shows escalations; `0s/1s` turns them off.
    #[arg(long, value_name = "DOWN/PERIOD")]
    pub flex_outage: Option<FlexOutage>,
    /// Send a mixed workload of N requests (N defaults to 200), print its report and exit.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "200")]
    pub workload: Option<usize>,
    /// Requests in flight at once during `--workload`.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Seed of the generated workload and of the simulator's random 429s.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also write the generated workload to this JSONL file (for `flexgate replay`).
    #[arg(long, value_name = "FILE", requires = "workload")]
    pub save_workload: Option<PathBuf>,
    /// Keep the simulator and the gateway running after the workload's report.
    #[arg(long, requires = "workload")]
    pub serve: bool,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // A workload run prints a report; per-request log lines would bury it.
    let _log = logging::init_demo(if args.workload.is_some() { "warn" } else { "info" });
    let sim_listener = tokio::net::TcpListener::bind(args.sim_listen).await?;
    let sim_addr = sim_listener.local_addr()?;
    let flex_outage = args.flex_outage.or(args.workload.map(|_| WORKLOAD_OUTAGE));
    let sim_config =
        SimConfig { flex_429_rate: args.flex_429_rate, flex_outage, seed: args.seed, ..SimConfig::default() };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sim_stop = stop_rx.clone();
    let sim_task = tokio::spawn(sim::serve(sim_listener, Sim::new(sim_config), async move {
        let _ = sim_stop.wait_for(|v| *v).await;
    }));

    let mut config = Config::for_upstream(&format!("http://{sim_addr}/v1")).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.server.listen = args.listen;
    // The demo's Files and Batches API keeps its store, and a ready batch file, in a
    // folder of its own under the system's temporary directory.
    let scratch = std::env::temp_dir().join(format!("flexgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    std::fs::write(scratch.join("batch.example.jsonl"), BATCH_EXAMPLE)?;
    config.store.dir = scratch.join("store");
    let server = Server::bind(config).await?;
    let addr = server.local_addr()?;
    match args.workload {
        None => {
            print_banner(addr, sim_addr, &scratch);
            server.run(shutdown_signal()).await?;
        }
        Some(requests) => {
            let workload = DemoWorkload {
                requests,
                concurrency: usize::from(args.concurrency),
                seed: args.seed,
                save: args.save_workload.clone(),
                flex_429_rate: args.flex_429_rate,
                flex_outage,
            };
            run_workload(server, &workload, args.serve, (addr, sim_addr), &scratch).await?;
        }
    }
    let _ = stop_tx.send(true);
    let _ = sim_task.await;
    Ok(ExitCode::SUCCESS)
}

/// Serve while the workload runs; then stop, or keep serving until Ctrl-C (`--serve`).
async fn run_workload(
    server: Server,
    workload: &DemoWorkload,
    keep_serving: bool,
    (addr, sim_addr): (SocketAddr, SocketAddr),
    scratch: &std::path::Path,
) -> anyhow::Result<()> {
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            _ = done_rx.wait_for(|done| *done) => {}
        }
    };
    let work = async {
        let result = mix::run(workload, addr, sim_addr).await;
        if keep_serving && result.is_ok() {
            print_banner(addr, sim_addr, scratch);
        } else {
            let _ = done_tx.send(true);
        }
        result
    };
    let (gateway, workload_result) = tokio::join!(server.run(shutdown), work);
    workload_result?;
    gateway?;
    Ok(())
}

/// A ready Batch API input file for `flexgate batch run` (`config/batch.example.jsonl`).
const BATCH_EXAMPLE: &str = include_str!("../../config/batch.example.jsonl");

fn print_banner(addr: SocketAddr, sim: SocketAddr, scratch: &std::path::Path) {
    let example = scratch.join("batch.example.jsonl");
    let example = example.display();
    crate::output::line(format_args!(
        r#"
flexgate demo is running (Ctrl-C to stop)

  gateway, urgent lane:      http://{addr}/v1
  gateway, background lane:  http://{addr}/flex/v1   (flex tier, escalates to standard)
  metrics:                   http://{addr}/metrics
  simulated OpenAI upstream: http://{sim}/v1      (30% of flex requests answer 429)

Try it with curl:

  curl -s http://{addr}/flex/v1/chat/completions \
    -H 'Authorization: Bearer sk-demo' -H 'Content-Type: application/json' \
    -d '{{"model":"gpt-5-mini","messages":[{{"role":"user","content":"Hello"}}]}}' -i

Or with the official Python SDK (pip install openai):

  from openai import OpenAI
  client = OpenAI(base_url="http://{addr}/flex/v1", api_key="sk-demo", timeout=900)
  r = client.chat.completions.create(model="gpt-5-mini", messages=[{{"role": "user", "content": "Hello"}}])
  print(r.choices[0].message.content, r.service_tier)

Or run a whole Batch API file through flex, results in seconds (the same calls as
OpenAI's Batch API work against http://{addr}/flex/v1 with any SDK):

  flexgate batch run {example} -o out.jsonl \
    --base-url http://{addr}/flex/v1 --api-key sk-demo --completion-window 10m --poll 200ms

Then read spend and savings:

  curl -s http://{addr}/metrics | grep -E 'flexgate_(cost|savings)_usd_total'
"#
    ));
}

mod mix;

mod logging {
    use super::{LogConfig, LogFormat};

    pub fn init_demo(level: &str) -> crate::logging::LogGuard {
        crate::logging::init(&LogConfig { format: LogFormat::Pretty, level: level.into() })
    }
}
