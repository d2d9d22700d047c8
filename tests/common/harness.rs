//! Shared harness for the real-socket tests: the simulator and the gateway on
//! `127.0.0.1:0`, each stopped when its handle drops.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::collections::HashMap;
use std::net::SocketAddr;

use flexgate::config::Config;
use flexgate::metrics::Metrics;
use flexgate::server::Server;
use flexgate::sim::{Sim, SimConfig};
use flexgate::state::AppState;
use serde_json::Value;
use tokio::sync::oneshot;

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Ask the server to shut down and wait until it has drained.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A simulator and the gateway in front of it, however they are wired (over sockets or
/// in memory): what a test reads back from the two. The stacks that wire them
/// dereference to it.
#[derive(Clone)]
pub struct SimGateway {
    pub sim: Sim,
    pub state: AppState,
}

impl SimGateway {
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// The scripted step the simulator applied to each request it received, in order.
    pub fn faults_seen(&self) -> Vec<Option<String>> {
        self.sim.received().into_iter().map(|r| r.fault).collect()
    }

    /// The `service_tier` each received request carried.
    pub fn tiers_sent(&self) -> Vec<Option<String>> {
        self.sim.received().into_iter().map(|r| r.service_tier).collect()
    }
}

pub async fn spawn_sim(config: SimConfig) -> (Sim, Running) {
    let sim = Sim::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let served = sim.clone();
    let task = tokio::spawn(async move {
        let _ = flexgate::sim::serve(listener, served, async move {
            let _ = rx.await;
        })
        .await;
    });
    (sim, Running { addr, stop: Some(tx), task: Some(task) })
}

/// A gateway configured by `toml` (merged under an `[upstream]` pointing at `upstream`).
pub async fn spawn_gateway_with(
    upstream: SocketAddr,
    toml: &str,
    env: &HashMap<String, String>,
) -> (AppState, Running) {
    let text = format!("{toml}\n");
    let mut config = Config::from_toml(&text, env).unwrap_or_else(|e| panic!("{e}"));
    config.upstream.base_url = format!("http://{upstream}/v1").parse().unwrap();
    spawn_gateway_config(config).await
}

/// A gateway with exactly `config`, listening on `127.0.0.1:0`.
pub async fn spawn_gateway_config(mut config: Config) -> (AppState, Running) {
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let state = server.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .run(async move {
                let _ = rx.await;
            })
            .await;
    });
    (state, Running { addr, stop: Some(tx), task: Some(task) })
}

pub async fn spawn_gateway(upstream: SocketAddr) -> (AppState, Running) {
    spawn_gateway_with(upstream, "", &HashMap::new()).await
}

/// The simulator and a default gateway in front of it.
pub async fn stack(sim: SimConfig) -> (Sim, Running, AppState, Running) {
    let (sim, sim_run) = spawn_sim(sim).await;
    let (state, gw) = spawn_gateway(sim_run.addr).await;
    (sim, sim_run, state, gw)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The values of a metric's samples in Prometheus text, matching every given label.
fn samples<'a>(text: &'a str, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = &'a str> + 'a {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(move |l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(move |l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next())
}

/// Where a test reads metrics: the gateway's registry itself (`Metrics::value`, exact)
/// or a Prometheus text exposition, as `/metrics` or a child process serves it.
pub trait Samples {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64;
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64;
}

impl Samples for Metrics {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        Metrics::value(self, name, labels)
    }

    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        Metrics::count(self, name, labels)
    }
}

impl Samples for str {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        samples(self, name, labels).filter_map(|v| v.parse::<f64>().ok()).sum()
    }

    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        samples(self, name, labels).filter_map(|v| v.parse::<u64>().ok()).sum()
    }
}

impl Samples for String {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.as_str().value(name, labels)
    }

    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.as_str().count(name, labels)
    }
}

impl<T: Samples + ?Sized> Samples for &T {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        (**self).value(name, labels)
    }

    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        (**self).count(name, labels)
    }
}

/// A metric's value summed over the matching series.
pub fn metric(source: &(impl Samples + ?Sized), name: &str, labels: &[(&str, &str)]) -> f64 {
    source.value(name, labels)
}

/// The sum of an integer-valued metric's series (counters, gauges of counts).
pub fn count(source: &(impl Samples + ?Sized), name: &str, labels: &[(&str, &str)]) -> u64 {
    source.count(name, labels)
}

/// A response header as text ("" when absent).
pub fn h(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The OpenAI error envelope of a response flexgate produced, with its status.
pub async fn envelope(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("an OpenAI-shaped JSON error body");
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| m.len() > 10), "{v}");
    assert!(e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some(), "{v}");
    (status, v)
}

pub fn chat_body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello to the gateway"}]})
}
