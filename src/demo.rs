//! `flexgate demo`: the simulator and the gateway in one process, with copy-paste examples.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::config::{Config, LogConfig, LogFormat};
use crate::server::{Server, shutdown_signal};
use crate::sim::{self, Sim, SimConfig};

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
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    logging::init_demo();
    let sim_listener = tokio::net::TcpListener::bind(args.sim_listen).await?;
    let sim_addr = sim_listener.local_addr()?;
    let sim_config = SimConfig { flex_429_rate: args.flex_429_rate, ..SimConfig::default() };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sim_stop = stop_rx.clone();
    let sim_task = tokio::spawn(sim::serve(sim_listener, Sim::new(sim_config), async move {
        let _ = sim_stop.wait_for(|v| *v).await;
    }));

    let mut config = Config::for_upstream(&format!("http://{sim_addr}/v1")).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.server.listen = args.listen;
    let server = Server::bind(config).await?;
    let addr = server.local_addr()?;
    print_banner(addr, sim_addr);
    server.run(shutdown_signal()).await?;
    let _ = stop_tx.send(true);
    let _ = sim_task.await;
    Ok(ExitCode::SUCCESS)
}

#[expect(clippy::print_stdout, reason = "the demo talks to the person who started it")]
fn print_banner(addr: SocketAddr, sim: SocketAddr) {
    println!(
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

Then read spend and savings:

  curl -s http://{addr}/metrics | grep -E 'flexgate_(cost|savings)_usd_total'
"#
    );
}

mod logging {
    use super::{LogConfig, LogFormat};

    pub fn init_demo() {
        crate::logging::init(&LogConfig { format: LogFormat::Pretty, level: "info".into() });
    }
}
