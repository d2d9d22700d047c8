//! Renders the settled result of the retry loop as the client's response: success
//! (buffered or streamed), a passed-through upstream error, or flexgate's own error. What
//! the result means is decided in `upstream::settle`; here it is only rendered.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;

use super::headers;
use crate::endpoint::Endpoint;
use crate::error::{GatewayError, X_BUDGET_REMAINING, X_SHOULD_RETRY};
use crate::ledger::{Ledger, Report};
use crate::metrics::{Outcome, RatelimitKind};
use crate::request_id::{Logged, X_REQUEST_ID};
use crate::routing::X_CLASS;
use crate::state::AppState;
use crate::stream::{self, StreamOptions};
use crate::tier::{self, Tier};
use crate::upstream::attempt::{AnswerBody, UpstreamResponse};
use crate::upstream::backoff::retry_hint;
use crate::upstream::settle::Settled;
use crate::usage;

pub struct Context<'a> {
    pub state: &'a AppState,
    pub endpoint: Endpoint,
    pub strip_usage_chunk: bool,
    pub start: Instant,
    /// Set when the model's retry budget ended the request: the client learns when a
    /// retry is likely to fit again (an error answer also says `x-should-retry: false`).
    pub retry_after: Option<Duration>,
}

// Names parsed once, not on every insert.
const X_TIER: HeaderName = HeaderName::from_static("x-flexgate-tier");
const X_ATTEMPTS: HeaderName = HeaderName::from_static("x-flexgate-attempts");
const X_ESCALATED: HeaderName = HeaderName::from_static("x-flexgate-escalated");
const X_COST: HeaderName = HeaderName::from_static("x-flexgate-cost-usd");

/// Attempt counts as static text: `HeaderValue::from(u32)` allocates.
const COUNTS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The `x-flexgate-*` headers every proxied answer carries; `cost` is the answer's when
/// it is priced already (for what is left of a budget).
fn flexgate_headers(h: &mut HeaderMap, ledger: &Ledger, tier: Option<Tier>, cost: Option<rust_decimal::Decimal>) {
    if let Some(v) = ledger.class_header() {
        h.insert(X_CLASS, v.clone());
    }
    h.insert(X_TIER, HeaderValue::from_static(tier::label(tier)));
    let attempts = usize::try_from(ledger.attempts()).ok().and_then(|n| COUNTS.get(n));
    h.insert(
        X_ATTEMPTS,
        attempts.map_or_else(|| HeaderValue::from(ledger.attempts()), |n| HeaderValue::from_static(n)),
    );
    h.insert(X_ESCALATED, HeaderValue::from_static(if ledger.escalated() { "true" } else { "false" }));
    if h.get(X_REQUEST_ID).is_none() {
        h.insert(X_REQUEST_ID, ledger.request_id().clone());
    }
    budget_header(h, ledger, cost);
}

/// What is left of a budgeted client's limit: after this request's cost when the answer
/// is priced already, else with its reservation still held.
fn budget_header(h: &mut HeaderMap, ledger: &Ledger, cost: Option<rust_decimal::Decimal>) {
    if let Some(left) = ledger.budget_remaining(cost)
        && let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(crate::budgets::usd(left)))
    {
        h.insert(X_BUDGET_REMAINING, v);
    }
}

fn overhead(ctx: &Context<'_>, upstream_time: Duration) -> Duration {
    ctx.start.elapsed().saturating_sub(upstream_time)
}

/// The client's response from parts already built: a `(status, headers, body)` tuple would
/// copy every header into a fresh map, on every request (see docs/benchmarks.md).
fn answer_with(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

pub fn respond(ctx: &Context<'_>, settled: Settled, ledger: Ledger, upstream_time: Duration) -> Response {
    match settled {
        Settled::Success(answer) => success(ctx, answer, ledger, upstream_time),
        Settled::PassThrough { answer, outcome, no_retry } => {
            upstream_error(ctx, answer, ledger, outcome, no_retry, upstream_time)
        }
        Settled::Own(error) => own_error(ctx, error, ledger, upstream_time),
    }
}

fn success(ctx: &Context<'_>, answer: UpstreamResponse, mut ledger: Ledger, upstream_time: Duration) -> Response {
    record_ratelimit(ctx.state, &answer.headers);
    ledger.record_answer(answer.status, &answer.headers);
    match answer.body {
        AnswerBody::Full(bytes) => {
            let report = if ctx.endpoint == Endpoint::Other {
                Report::default()
            } else {
                // Read by the attempt while it validated the answer, for buffered JSON.
                let r = answer.report.map_or_else(|| usage::from_body(ctx.endpoint, &bytes), |r| *r);
                Report { usage: r.usage, service_tier: r.service_tier, model: r.model, streamed: None }
            };
            let priced = ledger.price(&report);
            let mut h = headers::client_response(answer.headers, false);
            flexgate_headers(&mut h, &ledger, priced.tier, priced.cost);
            if let Some(cost) = priced.cost {
                // The formatted text becomes the header value without a second copy.
                if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(cost.normalize().to_string())) {
                    h.insert(X_COST, v);
                }
            }
            let response = answer_with(answer.status, h, Body::from(bytes));
            ledger.record_overhead(overhead(ctx, upstream_time));
            ledger.first_byte();
            ledger.settle(Outcome::Success, &report);
            // Not marked `Logged`: the identify layer looks only at answers that failed.
            response
        }
        AnswerBody::Stream { first, rest } => {
            // The tier the first event reports, as the peek read it.
            let reported = first.as_ref().and_then(|f| f.usage.service_tier()).and_then(Tier::from_reported);
            let tier = reported.or(ledger.attempt_tier());
            let mut h = headers::client_response(answer.headers, false);
            flexgate_headers(&mut h, &ledger, tier, None);
            let sse = h
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("text/event-stream"));
            let options = StreamOptions {
                sse: (sse && ctx.endpoint != Endpoint::Other).then_some(ctx.endpoint),
                strip_usage_chunk: ctx.strip_usage_chunk,
                idle_timeout: ctx.state.config.upstream.idle_timeout,
            };
            ledger.record_overhead(overhead(ctx, upstream_time));
            let body = stream::body(first, rest, options, ledger);
            answer_with(answer.status, h, body)
        }
    }
}

fn upstream_error(
    ctx: &Context<'_>,
    answer: UpstreamResponse,
    mut ledger: Ledger,
    outcome: Outcome,
    no_retry: bool,
    upstream_time: Duration,
) -> Response {
    ledger.record_answer(answer.status, &answer.headers);
    let mut h = headers::client_response(answer.headers, false);
    flexgate_headers(&mut h, &ledger, ledger.attempt_tier(), None);
    if no_retry {
        h.insert(X_SHOULD_RETRY, HeaderValue::from_static("false"));
    }
    retry_after(&mut h, ctx.retry_after);
    let body = match answer.body {
        AnswerBody::Full(bytes) => Body::from(bytes),
        AnswerBody::Stream { rest, .. } => Body::from_stream(rest),
    };
    let mut response = answer_with(answer.status, h, body);
    ledger.record_overhead(overhead(ctx, upstream_time));
    ledger.settle(outcome, &Report::default());
    response.extensions_mut().insert(Logged);
    response
}

fn own_error(ctx: &Context<'_>, error: GatewayError, mut ledger: Ledger, upstream_time: Duration) -> Response {
    let outcome = Outcome::from(error.kind());
    ledger.record_own_answer(error.status());
    let mut response = error.into_response();
    flexgate_headers(response.headers_mut(), &ledger, ledger.attempt_tier(), None);
    retry_after(response.headers_mut(), ctx.retry_after);
    ledger.record_overhead(overhead(ctx, upstream_time));
    ledger.settle(outcome, &Report::default());
    response.extensions_mut().insert(Logged);
    response
}

/// `retry-after` (whole seconds, at least one) and `retry-after-ms` for the wait flexgate
/// asks of its client; a longer wait the upstream asked for in its own answer is kept.
fn retry_after(h: &mut HeaderMap, wait: Option<Duration>) {
    let Some(wait) = wait else {
        return;
    };
    let wait = retry_hint(h).map_or(wait, |upstream| upstream.max(wait));
    let millis = wait.as_millis().max(1);
    h.insert(RETRY_AFTER_MS, HeaderValue::from(u64::try_from(millis).unwrap_or(u64::MAX)));
    h.insert(http::header::RETRY_AFTER, HeaderValue::from(u64::try_from(millis.div_ceil(1000)).unwrap_or(u64::MAX)));
}

const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

/// The upstream's `x-ratelimit-remaining-*` headers, by the gauge each sets.
const RATELIMIT_HEADERS: [(RatelimitKind, HeaderName); 2] = [
    (RatelimitKind::Requests, HeaderName::from_static("x-ratelimit-remaining-requests")),
    (RatelimitKind::Tokens, HeaderName::from_static("x-ratelimit-remaining-tokens")),
];

fn record_ratelimit(state: &AppState, headers: &HeaderMap) {
    for (kind, name) in &RATELIMIT_HEADERS {
        let value = headers.get(name).and_then(|v| v.to_str().ok()?.trim().parse::<i64>().ok());
        if let Some(v) = value {
            state.metrics.ratelimit_gauge(*kind).set(v);
        }
    }
}
