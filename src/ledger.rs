//! Accounting for one proxied request, done exactly once: metrics (requests, latency,
//! tokens, cost, savings, usage missing, in-flight) and the request's log line.
//!
//! A [`Ledger`] is created when routing has decided the class, travels with the response
//! (inside the streamed body for streams), and is settled by [`Ledger::settle`] — or by
//! `Drop` when the client goes away first, which records the request as `cancelled`.

use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tokio::time::Instant;

use crate::metrics::Outcome;
use crate::pricing::Tier;
use crate::state::AppState;
use crate::usage::{Endpoint, Usage};

/// What the upstream's answer reported, for pricing.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub usage: Option<Usage>,
    pub service_tier: Option<String>,
    pub model: Option<String>,
}

/// Facts about the request the log line and labels need.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub method: String,
    /// The lane the request came in on (`None`: `/v1`), logged as its prefix.
    pub lane: Option<usize>,
    pub request_id: String,
    pub endpoint: Endpoint,
    pub class: usize,
    pub requested_model: Option<String>,
    /// Whether the endpoint reports usage (a success without it is counted as missing).
    pub metered: bool,
}

pub struct Ledger {
    state: AppState,
    facts: RequestFacts,
    start: Instant,
    first_byte: Option<Instant>,
    pub attempts: u32,
    pub escalated: bool,
    /// The tier of the last attempt, used when the answer reports none.
    pub attempt_tier: Option<Tier>,
    pub status: u16,
    /// The upstream's own `x-request-id`, logged for support requests.
    pub upstream_request_id: Option<http::HeaderValue>,
    /// Time spent in flexgate's own code, excluding upstream waits.
    pub overhead: Option<Duration>,
    settled: bool,
}

/// The outcome of pricing a report, also used for the `x-flexgate-cost-usd` header.
#[derive(Debug, Clone, Copy)]
pub struct Priced {
    pub tier: Option<Tier>,
    pub cost: Option<Decimal>,
}

impl Ledger {
    pub fn open(state: AppState, facts: RequestFacts, start: Instant) -> Self {
        let class = state.config.class(facts.class).name.as_str();
        state.metrics.inflight.with_label_values(&[class]).inc();
        Self {
            state,
            facts,
            start,
            first_byte: None,
            attempts: 0,
            escalated: false,
            attempt_tier: None,
            status: 0,
            upstream_request_id: None,
            overhead: None,
            settled: false,
        }
    }

    pub fn class_name(&self) -> &str {
        &self.state.config.class(self.facts.class).name
    }

    pub fn request_id(&self) -> &str {
        &self.facts.request_id
    }

    /// The bounded `model` label: the price table's name, else `other`.
    fn model_label(&self, reported: Option<&str>) -> String {
        let pricing = &self.state.config.pricing;
        reported
            .and_then(|m| pricing.resolve(m))
            .or_else(|| self.facts.requested_model.as_deref().and_then(|m| pricing.resolve(m)))
            .unwrap_or("other")
            .to_owned()
    }

    /// The tier that served the request: the answer's word first, then the attempt's.
    fn served_tier(&self, report: &Report) -> Option<Tier> {
        report.service_tier.as_deref().and_then(Tier::from_reported).or(self.attempt_tier)
    }

    /// Price a report without recording it (for the cost header).
    pub fn price(&self, report: &Report) -> Priced {
        let tier = self.served_tier(report);
        let pricing = &self.state.config.pricing;
        let model = report.model.as_deref().or(self.facts.requested_model.as_deref());
        let cost = match (report.usage, model) {
            (Some(usage), Some(model)) => pricing.cost(model, tier.unwrap_or(Tier::Standard), &usage),
            _ => None,
        };
        Priced { tier, cost }
    }

    /// Mark the moment the first byte went to the client.
    pub fn first_byte(&mut self) {
        if self.first_byte.is_none() {
            self.first_byte = Some(Instant::now());
        }
    }

    /// Record everything about the finished request, once.
    pub fn settle(mut self, outcome: Outcome, report: &Report) {
        self.record(outcome, report);
    }

    fn record(&mut self, outcome: Outcome, report: &Report) {
        if self.settled {
            return;
        }
        self.settled = true;
        let m = &self.state.metrics;
        let endpoint = self.facts.endpoint.as_str();
        let class = self.class_name().to_owned();
        let model = self.model_label(report.model.as_deref());
        let tier = self.served_tier(report);
        let tier_label = tier.map_or("none", |t| t.as_str());
        let elapsed = self.start.elapsed();
        m.inflight.with_label_values(&[&class]).dec();
        m.requests.with_label_values(&[endpoint, &class, &model, tier_label, outcome.as_str()]).inc();
        m.request_duration.with_label_values(&[endpoint, &class, tier_label]).observe(elapsed.as_secs_f64());
        if let Some(first) = self.first_byte {
            m.time_to_first_byte.with_label_values(&[&class, tier_label]).observe((first - self.start).as_secs_f64());
        }
        if let Some(overhead) = self.overhead {
            m.overhead.with_label_values(&[endpoint]).observe(overhead.as_secs_f64());
        }
        if outcome == Outcome::DeadlineExceeded {
            m.deadline_exceeded.with_label_values(&[&class]).inc();
        }
        self.record_usage(report, &class, &model, tier);
        tracing::info!(
            request_id = %self.facts.request_id,
            upstream_request_id = self.upstream_request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
            method = %self.facts.method,
            route = self.facts.lane.and_then(|l| self.state.config.class(l).path_prefix.as_deref()).unwrap_or("/v1"),
            class = %class,
            model = %model,
            tier = tier_label,
            status = self.status,
            outcome = outcome.as_str(),
            attempts = self.attempts,
            escalated = self.escalated,
            duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "request"
        );
    }

    fn record_usage(&self, report: &Report, class: &str, model: &str, tier: Option<Tier>) {
        let m = &self.state.metrics;
        let Some(usage) = report.usage else {
            if self.facts.metered && (200..300).contains(&self.status) {
                m.usage_missing.with_label_values(&[self.facts.endpoint.as_str()]).inc();
            }
            return;
        };
        let tier = tier.unwrap_or(Tier::Standard);
        let tier_label = tier.as_str();
        for (kind, n) in [
            ("input", usage.input),
            ("cached_input", usage.cached_input),
            ("output", usage.output),
            ("reasoning", usage.reasoning),
        ] {
            if n > 0 {
                m.tokens.with_label_values(&[model, tier_label, kind]).inc_by(n);
            }
        }
        let pricing = &self.state.config.pricing;
        let priced_model = report.model.as_deref().or(self.facts.requested_model.as_deref()).unwrap_or_default();
        match pricing.cost(priced_model, tier, &usage) {
            Some(cost) => {
                m.cost_usd.with_label_values(&[class, model, tier_label]).inc_by(cost.to_f64().unwrap_or(0.0));
                // Counters only go up: priority's negative "savings" are not recorded.
                if let Some(saved) = pricing.savings(priced_model, tier, &usage).filter(Decimal::is_sign_positive) {
                    m.savings_usd.with_label_values(&[class, model]).inc_by(saved.to_f64().unwrap_or(0.0));
                }
            }
            None => m.cost_unknown.with_label_values(&[model]).inc(),
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Dropped unsettled: the client went away (or a panic unwound) first.
        self.record(Outcome::Cancelled, &Report::default());
    }
}
