//! The ledger settles exactly once and records what it was given.

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::time::Instant;

use super::{Ledger, Report, RequestFacts};
use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::metrics::Outcome;
use crate::state::AppState;

fn state() -> AppState {
    AppState::new(Config::for_upstream("http://127.0.0.1:9/v1").unwrap()).unwrap()
}

fn open(state: &AppState) -> Ledger {
    let facts = RequestFacts {
        method: Method::POST,
        lane: None,
        request_id: HeaderValue::from_static("t"),
        endpoint: Endpoint::ChatCompletions,
        class: state.config.class_by_name("interactive").unwrap(),
        requested_model: Some("gpt-5".into()),
        metered: true,
    };
    Ledger::open(state.clone(), facts, Instant::now())
}

/// The value of every sample of `family` whose labels contain `needle`, summed.
fn sum(state: &AppState, family: &str, needle: &str) -> u64 {
    state
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_settled_request_is_counted_once_and_not_again_as_cancelled() {
    let state = state();
    let mut ledger = open(&state);
    assert_eq!(sum(&state, "flexgate_inflight_requests", "interactive"), 1);
    ledger.record_answer(StatusCode::OK, &HeaderMap::new());
    ledger.settle(Outcome::Success, &Report::default());
    assert_eq!(sum(&state, "flexgate_requests_total", "outcome=\"success\""), 1);
    assert_eq!(sum(&state, "flexgate_requests_total", "outcome=\"cancelled\""), 0);
    assert_eq!(sum(&state, "flexgate_inflight_requests", "interactive"), 0);
}

#[test]
fn a_ledger_dropped_unsettled_is_a_cancelled_request() {
    let state = state();
    drop(open(&state));
    assert_eq!(sum(&state, "flexgate_requests_total", "outcome=\"cancelled\""), 1);
    assert_eq!(sum(&state, "flexgate_requests_total", ""), 1);
    assert_eq!(sum(&state, "flexgate_inflight_requests", "interactive"), 0);
}

#[test]
fn usage_is_missing_only_from_a_passed_on_success() {
    let state = state();
    let mut ok = open(&state);
    ok.record_answer(StatusCode::OK, &HeaderMap::new());
    ok.settle(Outcome::Success, &Report::default());
    let mut refused = open(&state);
    refused.record_own_answer(StatusCode::BAD_GATEWAY);
    refused.settle(Outcome::UpstreamError, &Report::default());
    assert_eq!(sum(&state, "flexgate_usage_missing_total", "chat_completions"), 1);
}

#[test]
fn the_attempt_tier_prices_an_answer_that_reports_none() {
    let state = state();
    let mut ledger = open(&state);
    let finished = crate::upstream::retry::Finished {
        output: (),
        verdict: crate::upstream::classify::Verdict::Success,
        attempts: 2,
        escalated: true,
        tier: Some(crate::tier::Tier::Standard),
        gave_up: None,
        upstream_time: std::time::Duration::ZERO,
        queued: std::time::Duration::ZERO,
        queued_why: None,
        retry_after: None,
    };
    ledger.record_attempts(&finished);
    assert_eq!((ledger.attempts(), ledger.escalated()), (2, true));
    assert_eq!(ledger.price(&Report::default()).tier, Some(crate::tier::Tier::Standard));
    ledger.settle(Outcome::Success, &Report::default());
    assert_eq!(sum(&state, "flexgate_requests_total", "tier=\"standard\""), 1);
}
