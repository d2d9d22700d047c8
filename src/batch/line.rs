//! One batch line as a request flexgate sends to itself: through the proxy, so it takes
//! the same routing, admission, retry loop, escalation and accounting (metrics, cost,
//! log line) as a client's request, as the batch class, with the batch's window end as
//! its deadline. Its answer becomes the line's result in OpenAI's output format.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http::{HeaderValue, Method};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use tower::ServiceExt as _;

use super::objects::line_id;
use crate::auth::InProcess;
use crate::endpoint::Endpoint;
use crate::proxy::Proxy;
use crate::request_id::X_REQUEST_ID;
use crate::routing::X_CLASS;
use crate::state::AppState;
use crate::tier::Tier;
use crate::usage::Usage;

/// The largest answer kept for one line.
const MAX_ANSWER: usize = 64 << 20;

/// What a line needs to run: who it runs as and until when.
#[derive(Clone)]
pub struct Setup {
    pub state: AppState,
    pub endpoint: String,
    /// The managed-mode client the batch belongs to.
    pub client: Option<String>,
    /// The passthrough key, in memory only.
    pub authorization: Option<HeaderValue>,
    pub window_end: tokio::time::Instant,
}

/// A line's result: which file it goes to, its JSON line, and what it used.
#[derive(Debug)]
pub struct LineResult {
    pub ok: bool,
    pub result: String,
    pub usage: Usage,
    pub cost: Decimal,
    /// Against the same usage on standard, for the batch metrics.
    pub savings: Decimal,
}

#[derive(Deserialize)]
struct Input<'a> {
    custom_id: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// A line that never got an answer (`batch_expired`, `batch_cancelled`), for the error file.
pub fn unrun(custom_id: &str, code: &str, message: &str) -> String {
    serde_json::json!({
        "id": line_id(), "custom_id": custom_id, "response": null, "error": {"code": code, "message": message},
    })
    .to_string()
}

/// Send the line (its raw JSON) and turn the answer into its result.
pub async fn run(setup: &Setup, text: &[u8]) -> LineResult {
    let Ok(input) = serde_json::from_slice::<Input<'_>>(text) else {
        // Validation parsed it; a file changed on disk since is the only way here.
        let result = unrun("", "invalid_json_line", "This line is not parseable as valid JSON.");
        return LineResult { ok: false, result, usage: Usage::default(), cost: Decimal::ZERO, savings: Decimal::ZERO };
    };
    let id = line_id();
    let remaining = setup.window_end.saturating_duration_since(tokio::time::Instant::now());
    let mut request = Request::new(Body::from(Bytes::copy_from_slice(input.body.get().as_bytes())));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = setup.endpoint.parse().unwrap_or_default();
    let state = &setup.state;
    let headers = request.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(X_REQUEST_ID, v);
    }
    if let Some(class) = state.config.class(state.config.batch.class).header.clone() {
        headers.insert(X_CLASS, class);
    }
    if let Some(authorization) = &setup.authorization {
        headers.insert(http::header::AUTHORIZATION, authorization.clone());
    }
    let deadline = remaining.max(Duration::from_secs(1));
    request.extensions_mut().insert(InProcess { client: setup.client.clone(), deadline });
    let Ok(response) = Proxy::new(state.clone()).oneshot(request).await;
    let status = response.status();
    let request_id =
        response.headers().get(X_REQUEST_ID).and_then(|v| v.to_str().ok()).map_or_else(|| id.clone(), str::to_owned);
    let cost = response
        .headers()
        .get("x-flexgate-cost-usd")
        .and_then(|v| v.to_str().ok()?.parse::<Decimal>().ok())
        .unwrap_or_default();
    let collected = http_body_util::BodyExt::collect(http_body_util::Limited::new(response.into_body(), MAX_ANSWER));
    let body = match collected.await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::from_static(br#"{"error":{"message":"The answer could not be read.","type":"server_error"}}"#),
    };
    let report = if status.is_success() {
        crate::usage::from_body(Endpoint::of(&Method::POST, setup.endpoint.trim_start_matches("/v1")), &body)
    } else {
        crate::usage::BodyReport::default()
    };
    let usage = report.usage.unwrap_or_default();
    let prices = &state.config.pricing;
    let savings = report
        .model
        .as_deref()
        .and_then(|m| prices.resolve(m))
        .zip(report.service_tier.as_deref().and_then(Tier::from_reported))
        .and_then(|(model, tier)| prices.savings(model, tier, &usage))
        .unwrap_or_default();
    let body_json: Box<RawValue> = serde_json::from_slice(&body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&body).into_owned();
        RawValue::from_string(serde_json::Value::String(text).to_string()).unwrap_or_default()
    });
    let result = serde_json::json!({
        "id": id, "custom_id": input.custom_id,
        "response": {"status_code": status.as_u16(), "request_id": request_id, "body": body_json},
        "error": null,
    })
    .to_string();
    LineResult { ok: status.is_success(), result, usage, cost, savings }
}
