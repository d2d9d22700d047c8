//! The forwarding handler for `/v1/*` and the lane prefixes: read the body, route it,
//! run the retry loop, and hand the answer to `respond`.

pub mod headers;
pub mod path;
mod respond;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt;
use http::HeaderValue;
use http_body_util::{BodyExt, Limited};
use tokio::time::Instant;
use tower::Service;

use crate::auth;
use crate::body::BodyInfo;
use crate::budgets::estimate;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::ledger::{Ledger, RequestFacts};
use crate::request_id::X_REQUEST_ID;
use crate::routing::{self, Plan, RouteInput};
use crate::state::AppState;
use crate::tier::Tier;
use crate::upstream::attempt::HttpAttempt;
use crate::upstream::retry::{self, Labels, Schedule};

/// The forwarding handler as a tower service: the router's fallback for proxied paths.
///
/// Not an axum handler function: those nest three futures (axum's extractor wrapper, the
/// handler, `forward`), and rustc keeps every async function's arguments in its future
/// for the whole call, so a held request carried three dead copies of its request head
/// (about 250 bytes each) for as long as it waited.
#[derive(Clone)]
pub struct Proxy {
    state: AppState,
}

impl Proxy {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl Service<Request> for Proxy {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The request goes in boxed, so the future holds a pointer to it rather than the
        // request itself; `forward` unpacks and frees the box at once. `map`, not an async
        // block awaiting it, which would hold the captured future and the awaited one.
        let forwarded = forward(self.state.clone(), Box::new(request));
        Box::pin(forwarded.map(|result| Ok(result.unwrap_or_else(IntoResponse::into_response))))
    }
}

/// Read the whole body, refusing one over `limit` bytes or one that goes silent for
/// longer than `silence` (a client that sends its headers and then stalls would
/// otherwise hold this task and its connection until the client gives up).
async fn read_body(body: Body, limit: usize, silence: Duration) -> Result<Bytes, GatewayError> {
    let mut body = Limited::new(body, limit);
    let mut chunks: Vec<Bytes> = Vec::new();
    loop {
        let frame = tokio::time::timeout(silence, body.frame())
            .await
            .map_err(|_| GatewayError::BodyTimeout { silence: humantime::format_duration(silence).to_string() })?;
        match frame {
            None => break,
            Some(Ok(frame)) => chunks.extend(frame.into_data().ok().filter(|data| !data.is_empty())),
            Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(GatewayError::BodyTooLarge { limit });
            }
            Some(Err(e)) => {
                return Err(GatewayError::InvalidParam {
                    param: "body",
                    message: format!("The request body could not be read: {e}"),
                });
            }
        }
    }
    // One chunk, the usual case, is handed on without a copy.
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => chunks.concat().into(),
    })
}

/// What the receiving phase hands to the waiting phase: only what a request needs while
/// it waits upstream, possibly for minutes.
struct Received<'a> {
    plan: Plan,
    ledger: Ledger,
    attempt: HttpAttempt<'a>,
    labels: Labels<'a>,
    endpoint: Endpoint,
    strip_usage_chunk: bool,
}

async fn forward(state: AppState, request: Box<Request>) -> Result<Response, GatewayError> {
    let start = Instant::now();
    // Two phases, so that a held request's future keeps only the second one's state:
    // rustc keeps a local's storage in an async function's future until the end of its
    // scope, even once it was moved out or dropped, and the receiving phase's locals (the
    // request head, the body being read, routing inputs) are otherwise dead weight for as
    // long as the request waits.
    let Received { plan, mut ledger, mut attempt, labels, endpoint, strip_usage_chunk } =
        receive(&state, request, start).await?;
    let config = &state.config;
    let schedule = Schedule {
        base_delay: config.retry.base_delay,
        max_delay: config.retry.max_delay,
        attempt_timeout: config.upstream.timeout,
    };
    let gate = state.admission.model(labels.model);
    let finished = retry::run(&plan, start, schedule, &state.metrics, labels, gate, &mut attempt).await;
    drop(attempt);

    ledger.record_attempts(&finished);
    let upstream_time = finished.upstream_time;
    let retry_after = finished.retry_after;
    let settled = finished.settle(plan.deadline);
    let context = respond::Context { state: &state, endpoint, strip_usage_chunk, start, retry_after };
    Ok(respond::respond(&context, settled, ledger, upstream_time))
}

/// The client's budget: refused when the request's estimated cost does not fit under
/// its limit, sent to flex only past a soft limit with `on_soft = "flex_only"`; what it
/// holds is settled by the ledger. The estimate reads the body's size and the fields
/// routing already took from it, at the price of the tier the request is routed to.
fn admit_budget(
    state: &AppState,
    plan: &mut Plan,
    input: &RouteInput<'_>,
    endpoint: Endpoint,
    body: (usize, Option<&BodyInfo>),
) -> Result<Option<crate::budgets::BudgetAdmission>, GatewayError> {
    let estimate = || {
        let (len, info) = body;
        let Some(info) = info else {
            // An unmetered endpoint: nothing to price, `reserve_usd` is held.
            return crate::budgets::Estimate::default();
        };
        let tier = plan.tier.or_else(|| input.client_tier.and_then(Tier::from_client)).unwrap_or(Tier::Standard);
        let cap = (info.max_output > 0).then_some(u64::from(info.max_output));
        let choices = u64::from(info.choices);
        estimate::request(&state.config.pricing, input.model, tier, endpoint, len, cap, choices)
    };
    let budget = state.budgets.admit(input.client, estimate).inspect_err(|_| {
        state.metrics.budgets.refused(input.client.unwrap_or_default());
    })?;
    if budget.as_ref().is_some_and(|b| b.flex_only) {
        routing::flex_only(plan, &state.config, input);
    }
    Ok(budget)
}

/// Authenticate, read the body and route: everything up to the first attempt.
async fn receive(state: &AppState, request: Box<Request>, start: Instant) -> Result<Received<'_>, GatewayError> {
    // Moved out in a block of its own: a box moved out of is freed only when its binding
    // goes out of scope, which for `request` would be the end of this phase.
    let request = {
        let boxed = request;
        *boxed
    };
    let (mut parts, body) = request.into_parts();
    let config = &state.config;
    // A batch line (`crate::batch`) was authenticated when its batch was created.
    let in_process = parts.extensions.remove::<auth::InProcess>().map(|line| (line.deadline, line.client));
    let client = match &in_process {
        Some((_, client)) => auth::known_client(&config.auth, client.as_deref()),
        None => auth::client(&config.auth, &parts.headers)?,
    };
    let target = path::target(config, &parts.method, parts.uri.path())?;
    let uri = state.upstream.uri(target.rest, parts.uri.query()).map_err(|_| GatewayError::InvalidParam {
        param: "path",
        message: "The request target cannot be forwarded to the upstream.".into(),
    })?;
    let limit = config.server.max_body;
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let body = read_body(body, limit, config.server.body_timeout).await?;
    let endpoint = Endpoint::of(&parts.method, target.rest);
    let metered = endpoint != Endpoint::Other;
    let tier_routed = matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Responses);
    let mut info = if metered { Some(BodyInfo::parse(&body)?) } else { None };
    let model = info.as_ref().and_then(|i| i.model.as_deref());
    let input = RouteInput {
        headers: &parts.headers,
        lane: target.lane,
        client,
        model,
        client_tier: info.as_ref().and_then(|i| i.service_tier.as_deref()),
        tier_routed,
    };
    let mut plan = routing::plan(config, &input)?;
    let budget = admit_budget(state, &mut plan, &input, endpoint, (body.len(), info.as_ref()))?;
    if let Some((deadline, _)) = in_process {
        plan.deadline = deadline;
        plan.escalate_reserve = config.class(plan.class).escalate_reserve.min(deadline / 2);
    }
    // Labels borrow the configuration, which outlives the request: no copies.
    let class_name = config.class(plan.class).name.as_str();
    let model_label = model.and_then(|m| config.pricing.resolve(m)).unwrap_or("other");
    if plan.flex_ineligible {
        state.metrics.flex_ineligible(model_label).inc();
    }
    // The id as a header value (a reference count, not a copy); only text ids are used.
    let request_id = parts
        .headers
        .get(X_REQUEST_ID)
        .filter(|v| v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(""));
    let facts = RequestFacts {
        method: parts.method.clone(),
        lane: target.lane,
        request_id: request_id.clone(),
        endpoint,
        class: plan.class,
        // Routing is done with the body's model; the ledger keeps it without a copy.
        requested_model: info.as_mut().and_then(|i| i.model.take()),
        metered,
    };
    let mut ledger = Ledger::open(state.clone(), facts, start);
    if let Some(budget) = budget {
        ledger.hold_budget(budget.reservation, budget.input_tokens);
    }
    let strip_usage_chunk = info.as_ref().is_some_and(|i| i.stream && !i.include_usage);
    let (body, info) = match info {
        // Only a flex request may wait for minutes; others keep the original for the
        // attempt to rewrite (the same work, done there).
        Some(info) if plan.tier == Some(Tier::Flex) => {
            let force_usage = info.forces_usage(endpoint);
            let (body, info) = first_body(body, info, plan.tier_override, force_usage);
            (body, Some(info))
        }
        other => (body, other),
    };

    let managed = state.upstream.is_managed();
    // The client's header map becomes the upstream's, filtered in place.
    let mut headers = headers::upstream_request(std::mem::take(&mut parts.headers), managed, metered);
    headers.insert(X_REQUEST_ID, request_id);
    let attempt = HttpAttempt::new(
        &state.upstream,
        parts.method.clone(),
        uri,
        headers,
        body,
        info,
        (plan.tier, plan.tier_override),
        endpoint,
        metered,
    );
    let labels = Labels { class: class_name, model: model_label };
    Ok(Received { plan, ledger, attempt, labels, endpoint, strip_usage_chunk })
}

/// The body as the first attempt sends it (`service_tier` and `stream_options` set), with
/// the routing info of that body. A held request then keeps one body, not two: the
/// attempt finds nothing left to change for its first tier and sends this very buffer,
/// and the client's original (about 2 KiB, for minutes when held) is freed here. An
/// escalation rewrites the tier of this body, which gives the same JSON as rewriting the
/// original. The new body's spans come from the edits, not from scanning it again.
fn first_body(body: Bytes, info: BodyInfo, tier: Option<&str>, force_usage: bool) -> (Bytes, BodyInfo) {
    // Only the spans are read from here on (by later rewrites); the texts routing used
    // were read from the original.
    info.rewritten_with_info(&body, tier, force_usage).unwrap_or((body, info))
}

#[cfg(test)]
mod tests {
    /// A held request keeps this future for as long as it waits, minutes on flex: 10,000
    /// held requests pay each byte 10,000 times. It holds the upstream exchange inline
    /// (flexgate pools its own connections); the receiving phase and the reading of the
    /// answer are kept out of it. How the size came down is in docs/benchmarks.md.
    #[test]
    fn the_future_of_a_held_request_stays_small() {
        let env = std::collections::HashMap::from([("OPENAI_API_KEY".to_owned(), "sk-up".to_owned())]);
        let text = "[upstream]\nbase_url = \"http://127.0.0.1:9/v1\"\n";
        let state = crate::state::AppState::new(crate::config::Config::from_toml(text, &env).unwrap()).unwrap();
        let future = super::forward(state, Box::new(axum::extract::Request::new(axum::body::Body::empty())));
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1_900, "forward's future is {size} bytes");
    }
}
