//! One run of one scenario on one path: a fresh simulator (so its flex trace starts with
//! the workload), flexgate in front of it or not, the workload sent on schedule, and the
//! figures read from the simulator's own request log and from what the clients saw.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use flexgate::Config;
use flexgate::pricing::PriceTable;
use flexgate::server::Server;
use flexgate::sim::{self, Sim};
use flexgate::tier::Tier;
use flexgate::usage::Usage;
use futures_util::future::join_all;
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{self, Outcome, Request, Served};
use crate::report::Figures;
use crate::scenario::Scenario;

const MODEL: &str = "gpt-5-mini";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Through flexgate: urgent on `/v1`, background on `/flex/v1`, each with its deadline
    /// in `x-flexgate-deadline`.
    Flexgate,
    /// Straight to the upstream: background with `service_tier: "flex"`, urgent without.
    Direct,
    /// Through `n` flexgate replicas, requests taking turns, each learning alone.
    Replicas(usize),
    /// The same, the replicas sharing their admission view through the Redis at this
    /// port (`--replicas`).
    SharedReplicas(usize, u16),
}

/// Run `scenario` once on `path`.
pub async fn run(scenario: &Scenario, path: Path, seed: u64) -> Result<Figures> {
    let (stop, stopped) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_addr = listener.local_addr()?;
    let sim = Sim::new(scenario.sim.clone());
    let mut sim_stop = stopped.clone();
    let sim_task = tokio::spawn(sim::serve(listener, sim.clone(), async move {
        let _ = sim_stop.wait_for(|s| *s).await;
    }));
    let bases = match path {
        Path::Direct => vec![format!("http://{sim_addr}/v1")],
        Path::Flexgate => vec![format!("http://{}", gateway(sim_addr, None, stopped).await?)],
        Path::Replicas(n) | Path::SharedReplicas(n, _) => {
            let redis = match path {
                Path::SharedReplicas(_, port) => Some(format!("redis://127.0.0.1:{port}/0")),
                _ => None,
            };
            let mut bases = Vec::new();
            for _ in 0..n {
                bases.push(format!("http://{}", gateway(sim_addr, redis.as_deref(), stopped.clone()).await?));
            }
            bases
        }
    };
    let http = reqwest::Client::builder().no_proxy().build()?;
    let began = Instant::now();
    let sends = scenario.arrivals(seed).into_iter().enumerate().map(|(i, (at, urgent))| {
        let request = request(scenario, path, &bases[i % bases.len()], urgent);
        let http = &http;
        async move {
            tokio::time::sleep_until(began + at).await;
            client::send(http, &request, urgent).await
        }
    });
    let outcomes = join_all(sends).await;
    let took = began.elapsed();
    let figures = figures(&sim, &outcomes, took);
    let _ = stop.send(true);
    let _ = sim_task.await;
    Ok(figures)
}

/// flexgate with its shipped defaults in front of the simulator, on this runtime (with
/// a store folder of its own: a replica is known by it), sharing state through `redis`.
async fn gateway(sim: SocketAddr, redis: Option<&str>, mut stopped: watch::Receiver<bool>) -> Result<SocketAddr> {
    let store = tempfile::tempdir()?;
    let shared = redis.map(|url| format!("[shared]\nredis_url = \"{url}\"\n")).unwrap_or_default();
    let text = format!(
        "[upstream]\nbase_url = \"http://{sim}/v1\"\nproxy = \"none\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [store]\ndir = \"{}\"\n[log]\nformat = \"pretty\"\nlevel = \"warn\"\n{shared}",
        store.path().display()
    );
    let config = Config::from_toml(&text, &HashMap::<String, String>::new()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = Server::bind(config).await.context("starting flexgate")?;
    let addr = server.local_addr()?;
    tokio::spawn(async move {
        let _ = server.run(async move { drop(stopped.wait_for(|s| *s).await) }).await;
        drop(store); // the folder goes with the gateway
    });
    Ok(addr)
}

fn request(scenario: &Scenario, path: Path, base: &str, urgent: bool) -> Request {
    let deadline = if urgent { scenario.urgent_deadline } else { scenario.background_deadline };
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Summarise this support conversation and list follow-up actions."}],
        "max_completion_tokens": 200,
    });
    let (url, headers) = match path {
        Path::Direct => {
            if !urgent {
                body["service_tier"] = json!("flex");
            }
            (format!("{base}/chat/completions"), Vec::new())
        }
        Path::Flexgate | Path::Replicas(_) | Path::SharedReplicas(..) => {
            let lane = if urgent { "/v1" } else { "/flex/v1" };
            let header = ("x-flexgate-deadline", format!("{}s", deadline.as_secs()));
            (format!("{base}{lane}/chat/completions"), vec![header])
        }
    };
    Request { url, body, headers, deadline }
}

/// The figures of one run: attempts from the simulator's log, outcomes from the clients.
fn figures(sim: &Sim, outcomes: &[Outcome], took: Duration) -> Figures {
    let log = sim.received();
    let attempts = log.iter().filter(|r| r.path.ends_with("/chat/completions")).count();
    let flex_attempts = log.iter().filter(|r| r.service_tier.as_deref() == Some("flex")).count();
    let flex_ok = log.iter().filter(|r| r.status == 200 && r.served_tier.as_deref() == Some("flex")).count();
    let background: Vec<&Outcome> = outcomes.iter().filter(|o| !o.urgent).collect();
    let count =
        |f: &dyn Fn(&Outcome) -> bool, urgent: bool| outcomes.iter().filter(|o| o.urgent == urgent && f(o)).count();
    let on_flex = background.iter().filter(|o| o.served == Served::Flex).count();
    Figures {
        requests: outcomes.len(),
        attempts,
        flex_attempts,
        flex_ok,
        errors_urgent: count(&|o| !o.ok(), true),
        errors_background: count(&|o| !o.ok(), false),
        late_urgent: count(&|o| o.late, true),
        late_background: count(&|o| o.late, false),
        background: background.len(),
        background_on_flex: on_flex,
        saving: saving(outcomes, background.len(), on_flex),
        seconds: took.as_secs_f64(),
    }
}

/// Saving on background spend against all of it on standard: every request is the same,
/// so its price on each tier is that of one answer's usage; a failed request would have
/// to be sent again on standard and counts at the standard price.
fn saving(outcomes: &[Outcome], background: usize, on_flex: usize) -> f64 {
    let Some((input, output)) = outcomes.iter().find_map(|o| o.usage) else {
        return 0.0;
    };
    let usage = Usage { input, output, ..Usage::default() };
    let table = PriceTable::embedded();
    let price = |tier| table.cost(MODEL, tier, &usage).and_then(|c| c.to_f64()).unwrap_or(0.0);
    let (standard, flex) = (price(Tier::Standard), price(Tier::Flex));
    if background == 0 || standard <= 0.0 {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "request counts are small")]
    let (all, served) = (background as f64, on_flex as f64);
    1.0 - (served * flex + (all - served) * standard) / (all * standard)
}
