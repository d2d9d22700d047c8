//! Helpers shared by the sim tests: building requests, sending them in-process, and
//! taking SSE bodies apart.

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use flexgate::sim::{Sim, SimConfig};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub fn sim(config: SimConfig) -> (Sim, Router) {
    let sim = Sim::new(config);
    let router = sim.router();
    (sim, router)
}

/// A zero-latency sim.
pub fn fast() -> (Sim, Router) {
    sim(SimConfig::zero_latency())
}

pub fn post(path: &str, body: &Value) -> Request<Body> {
    post_with(path, body, &[])
}

pub fn post_with(path: &str, body: &Value, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder =
        Request::post(path).header("authorization", "Bearer sk-test").header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).header("authorization", "Bearer sk-test").body(Body::empty()).unwrap()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// `error.code` of an error body.
    pub fn code(&self) -> Value {
        self.json()["error"]["code"].clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }
}

/// Sends `request` and reads the whole answer.
pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body }
}

/// The `data:` payloads of a data-only SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "SSE body must end with a blank line");
    body.split_terminator("\n\n")
        .map(|frame| frame.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data frame: {frame:?}")).to_owned())
        .collect()
}

/// `(event, data)` pairs of a typed SSE body; asserts `event` equals `data.type`.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split_terminator("\n\n")
        .map(|frame| {
            let (event, data) = frame.split_once('\n').unwrap();
            let event = event.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], event.as_str());
            (event, data)
        })
        .collect()
}

pub fn chat_body(model: &str, text: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}
