//! Helpers shared by the fault tests: a gateway with short timeouts in front of the
//! simulator, over sockets or in memory on paused time, and requests with headers.

use std::collections::HashMap;
use std::ops::Deref;

use flexgate::sim::SimConfig;
use serde_json::Value;

use crate::common::{Running, SimGateway, client, spawn_gateway_with, spawn_sim};
pub use crate::common::{envelope, h};
use crate::memory::{Memory, memory_stack};

/// Fast backoff and a short idle timeout between streamed chunks, so faults resolve in
/// well under a second; the attempt timeout stays long enough that a busy machine never
/// turns another fault into a timeout and changes the counts a test expects.
pub const FAST: &str = "[retry]\nbase_delay = \"10ms\"\nmax_delay = \"50ms\"\n\
                        [upstream]\ntimeout = \"5s\"\nconnect_timeout = \"1s\"\nidle_timeout = \"400ms\"\n";

/// [`FAST`] with a 400 ms attempt timeout, for upstreams that never answer.
pub const HANG: &str = "[retry]\nbase_delay = \"10ms\"\nmax_delay = \"50ms\"\n\
                        [upstream]\ntimeout = \"400ms\"\nconnect_timeout = \"200ms\"\nidle_timeout = \"400ms\"\n";

/// Only fast backoff: the shipped attempt timeouts (15 minutes) stay in force.
pub const FAST_RETRY_ONLY: &str = "[retry]\nbase_delay = \"10ms\"\nmax_delay = \"50ms\"\n";

/// The simulator and a gateway over sockets; read back through the [`SimGateway`] it
/// dereferences to.
pub struct Stack {
    pair: SimGateway,
    pub gw: Running,
    _sim_run: Running,
}

impl Deref for Stack {
    type Target = SimGateway;

    fn deref(&self) -> &SimGateway {
        &self.pair
    }
}

pub async fn stack_with(sim: SimConfig, toml: &str) -> Stack {
    let (sim, sim_run) = spawn_sim(sim).await;
    let (state, gw) = spawn_gateway_with(sim_run.addr, toml, &HashMap::new()).await;
    Stack { pair: SimGateway { sim, state }, gw, _sim_run: sim_run }
}

/// The simulator without latency and a gateway configured with [`FAST`].
pub async fn fast() -> Stack {
    stack_with(SimConfig::zero_latency(), FAST).await
}

/// The simulator without latency and a gateway configured with `toml`, in memory: for
/// tests on paused time.
pub fn in_memory(toml: &str) -> Memory {
    memory_stack(SimConfig::zero_latency(), toml)
}

impl Stack {
    pub async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        post(&client(), &self.gw, path, body, headers).await
    }
}

pub async fn post(
    client: &reqwest::Client,
    gw: &Running,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client.post(gw.url(path)).bearer_auth("sk-test").json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

pub fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some((*v).to_owned())).collect()
}

/// The last SSE event of a stream, which for a broken stream must be flexgate's error
/// event in the endpoint's dialect, so SDKs raise instead of ending quietly.
pub fn assert_ends_with_error_event(text: &str, responses_api: bool) -> Value {
    assert!(
        !text.contains("[DONE]") && !text.contains("response.completed"),
        "a broken stream looked complete: {text}"
    );
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let data = if responses_api {
        last.strip_prefix("event: error\ndata: ").unwrap_or_else(|| panic!("no `event: error` at the end: {text}"))
    } else {
        last.strip_prefix("data: ").unwrap_or_else(|| panic!("no data line at the end: {text}"))
    };
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["error"]["code"], "upstream_stream_error", "{v}");
    assert_eq!(v["error"]["type"], "server_error", "{v}");
    v
}
