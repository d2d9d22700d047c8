//! The gateway and the simulator in one process with no socket between them: requests
//! go straight into the gateway's service (`build_router`), and its upstream connections
//! are in-memory pipes to the simulator's router (`upstream::connect::memory`). Nothing
//! waits on the operating system, so these tests run on paused tokio time
//! (`#[tokio::test(start_paused = true)]`): a timeout fires exactly when the clock says,
//! and a test can assert how long a request took without racing a busy machine.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::collections::HashMap;
use std::convert::Infallible;
use std::ops::Deref;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use flexgate::app::build_router;
use flexgate::config::Config;
use flexgate::sim::{Sim, SimConfig};
use flexgate::state::AppState;
use flexgate::upstream::connect::memory;
use serde_json::Value;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use crate::common::SimGateway;

/// The simulator and a gateway in front of it, wired in memory; read back through the
/// [`SimGateway`] it dereferences to.
#[derive(Clone)]
pub struct Memory {
    pair: SimGateway,
    service: BoxCloneSyncService<Request, Response, Infallible>,
}

impl Deref for Memory {
    type Target = SimGateway;

    fn deref(&self) -> &SimGateway {
        &self.pair
    }
}

/// A gateway configured by `toml` in front of a simulator with `sim`'s settings.
pub fn memory_stack(sim: SimConfig, toml: &str) -> Memory {
    let sim = Sim::new(sim);
    let host = memory::register(sim.router());
    let mut config = Config::from_toml(&format!("{toml}\n"), &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
    config.upstream.base_url = format!("http://{host}/v1").parse().unwrap();
    let state = AppState::new(config).unwrap();
    let service = BoxCloneSyncService::new(build_router(state.clone(), true));
    Memory { pair: SimGateway { sim, state }, service }
}

impl Memory {
    /// Send `request` through the gateway's whole layer stack.
    pub async fn send(&self, request: Request) -> Response {
        let Ok(response) = self.service.clone().oneshot(request).await;
        response
    }

    /// POST `body` as JSON with the client key `sk-test` and `headers`; the answer as a
    /// `reqwest::Response`, so assertions read the same as over a socket.
    pub async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = http::Request::post(path)
            .header("authorization", "Bearer sk-test")
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.send(request.body(Body::from(body.to_string())).unwrap()).await;
        response.map(|body| reqwest::Body::wrap_stream(body.into_data_stream())).into()
    }
}
