//! Sends a workload with bounded concurrency and reads every answer into an
//! [`Observed`]. It is an ordinary client: it learns the class, served tier, attempts
//! and escalation only from what a response says (`service_tier` in the body,
//! `x-flexgate-*` headers when the target is flexgate), so it works against any
//! OpenAI-compatible base URL.
//!
//! Two changes are made to requests, both so the run can be priced and routed: a
//! streamed chat or completions request asks for `stream_options.include_usage` (as
//! flexgate itself does upstream), and a background request sent without a flex base
//! URL carries `service_tier: "flex"` unless its body names a tier.

use std::time::Duration;

use futures_util::StreamExt;
use http::Method;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::progress::Progress;
use super::{Item, Lane};
use crate::endpoint::Endpoint;
use crate::tier::Tier;
use crate::usage::{self, Usage};

mod read;

/// OpenAI's advice for flex clients: a 15-minute timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);

/// Where and how to send a workload.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL of the interactive lane as an SDK takes it: `http://host:8080/v1`.
    pub base_url: String,
    /// Base URL of the background lane (`http://host:8080/flex/v1`). `None`: background
    /// requests go to `base_url` with `service_tier: "flex"` in the body.
    pub flex_base_url: Option<String>,
    pub api_key: Option<String>,
    /// Lane of items that name none (OpenAI Batch lines never do).
    pub default_lane: Lane,
    /// Honour `HTTP(S)_PROXY` from the environment (off for the loopback demo).
    pub env_proxy: bool,
}

/// What happened to one request, as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    pub lane: Lane,
    /// `x-flexgate-class` when the target sends it, else the lane's name.
    pub class: String,
    pub endpoint: Endpoint,
    pub stream: bool,
    /// Until the last byte of the answer (or the error).
    pub latency: Duration,
    /// The tier the response reports (`service_tier`, else `x-flexgate-tier`).
    pub tier: Option<Tier>,
    /// `x-flexgate-attempts`, when the target sends it.
    pub attempts: Option<u32>,
    pub escalated: bool,
    /// The model the response reports, else the one requested.
    pub model: Option<String>,
    pub usage: Option<Usage>,
    /// `None` for success; else a short label such as `429 insufficient_quota`.
    pub error: Option<String>,
}

impl Observed {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// A prepared request: where it goes and what it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub url: String,
    pub lane: Lane,
    pub endpoint: Endpoint,
    pub body: Map<String, Value>,
}

/// Resolve an item's lane, URL and final body against `target`.
pub fn prepare(item: &Item, target: &Target) -> Prepared {
    let lane = item.lane.unwrap_or(target.default_lane);
    let endpoint = Endpoint::of(&Method::POST, &item.path);
    let base = match (lane, &target.flex_base_url) {
        (Lane::Background, Some(flex)) => flex.as_str(),
        _ => target.base_url.as_str(),
    };
    let url = format!("{}{}", base.trim_end_matches('/'), item.path);
    let mut body = item.body.clone();
    let tier_routed = matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Responses);
    if lane == Lane::Background && target.flex_base_url.is_none() && tier_routed {
        body.entry("service_tier").or_insert_with(|| Value::from("flex"));
    }
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if stream && matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions) {
        let options = body.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(options) = options {
            options.insert("include_usage".into(), Value::Bool(true));
        }
    }
    Prepared { url, lane, endpoint, body }
}

/// The HTTP client a run uses.
pub fn client(target: &Target) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).connect_timeout(Duration::from_secs(10));
    let builder = if target.env_proxy { builder } else { builder.no_proxy() };
    builder.build()
}

/// Send every item, at most `concurrency` at a time, in file order of starting.
/// Outcomes come back in completion order.
pub async fn run(
    http: &reqwest::Client,
    target: &Target,
    items: Vec<Item>,
    concurrency: usize,
    progress: &Progress,
) -> Vec<Observed> {
    let sends = items.into_iter().map(|item| async move {
        let outcome = send(http, target, &item).await;
        progress.record(&outcome);
        outcome
    });
    futures_util::stream::iter(sends).buffer_unordered(concurrency.max(1)).collect().await
}

/// Send one item and read its answer to the end.
pub async fn send(http: &reqwest::Client, target: &Target, item: &Item) -> Observed {
    let prepared = prepare(item, target);
    let mut outcome = Observed {
        id: item.id.clone(),
        lane: prepared.lane,
        class: prepared.lane.as_str().to_owned(),
        endpoint: prepared.endpoint,
        stream: item.stream(),
        latency: Duration::ZERO,
        tier: None,
        attempts: None,
        escalated: false,
        model: item.model().map(str::to_owned),
        usage: None,
        error: None,
    };
    let started = Instant::now();
    let body = Value::Object(prepared.body).to_string();
    let mut request = http
        .post(&prepared.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .headers(item.headers.iter().cloned().collect())
        .body(body);
    if let Some(key) = &target.api_key {
        request = request.bearer_auth(key);
    }
    match request.send().await {
        Ok(response) => read::answer(response, &mut outcome).await,
        Err(e) => outcome.error = Some(read::transport_label(&e).to_owned()),
    }
    outcome.latency = started.elapsed();
    outcome
}

/// Fill what a successful body reports: usage, tier, model.
fn apply_report(outcome: &mut Observed, report: usage::BodyReport) {
    outcome.usage = report.usage;
    if let Some(tier) = report.service_tier.as_deref().and_then(Tier::from_reported) {
        outcome.tier = Some(tier);
    }
    if report.model.is_some() {
        outcome.model = report.model;
    }
}

#[cfg(test)]
mod tests;
