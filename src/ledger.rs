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

use crate::budgets::{self, Reservation};
use crate::config::ClassId;
use crate::endpoint::Endpoint;
use crate::metrics::{Outcome, Series, SeriesKey, TokenKind};
use crate::pricing::Day;
use crate::request_id::X_REQUEST_ID;
use crate::state::AppState;
use crate::tier::{self, Tier};
use crate::upstream::retry::Finished;
use crate::usage::Usage;

/// What the upstream's answer reported, for pricing.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub usage: Option<Usage>,
    pub service_tier: Option<String>,
    pub model: Option<String>,
    /// For an SSE stream, the bytes of content it carried (`StreamUsage::streamed`):
    /// what a budget is charged for the output of a stream that ended without usage.
    pub streamed: Option<u64>,
}

/// Facts about the request the log line and labels need, known when it is routed.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub method: http::Method,
    /// The lane the request came in on (`None`: `/v1`), logged as its prefix.
    pub lane: Option<ClassId>,
    /// The request's `x-request-id` (always text; empty when there was none).
    pub request_id: http::HeaderValue,
    pub endpoint: Endpoint,
    pub class: ClassId,
    pub requested_model: Option<String>,
    /// Whether the endpoint reports usage (a success without it is counted as missing).
    pub metered: bool,
}

/// The request's account. Its fields are written only through the `record_*` methods,
/// each once on the way to the client's answer, and read only when it is settled.
pub struct Ledger {
    state: AppState,
    facts: RequestFacts,
    start: Instant,
    first_byte: Option<Instant>,
    /// Narrow (as is `input_tokens`): a held request's future keeps the ledger, and
    /// these two fit beside its flags.
    attempts: u16,
    escalated: bool,
    /// The tier of the last attempt, used when the answer reports none.
    attempt_tier: Option<Tier>,
    /// The status the client was answered with.
    status: u16,
    /// The upstream's own `x-request-id`, logged for support requests.
    upstream_request_id: Option<http::HeaderValue>,
    /// Time spent in flexgate's own code, excluding upstream waits.
    overhead: Option<Duration>,
    /// Time spent waiting for admission, and why it first had to (logged).
    queued: Duration,
    /// Apart from `queued`: in a tuple the one byte would take eight.
    queued_why: Option<crate::admission::WaitReason>,
    /// What the request holds against its client's budget (none when unbudgeted),
    /// settled at the priced cost with the rest of the account.
    budget: Reservation,
    /// The request's input tokens as estimated from its body, for its budget: what a
    /// stream that ends without its usage is charged for its input (a body of 12 GB
    /// would be needed to overflow it).
    input_tokens: u32,
    /// The UTC day the request arrived: it is priced at the prices in force that day,
    /// even when its answer ends after midnight.
    served_on: Day,
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
        state.metrics.class_inflight(facts.class, class).inc();
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
            queued: Duration::ZERO,
            queued_why: None,
            budget: Reservation::default(),
            input_tokens: 0,
            served_on: Day::today(),
            settled: false,
        }
    }

    pub fn class_name(&self) -> &str {
        &self.state.config.class(self.facts.class).name
    }

    /// The class name as a header value, built when the configuration was loaded.
    pub fn class_header(&self) -> Option<&http::HeaderValue> {
        self.state.config.class(self.facts.class).header.as_ref()
    }

    pub fn request_id(&self) -> &http::HeaderValue {
        &self.facts.request_id
    }

    /// The bounded `model` label: the price table's name, else `other`.
    fn model_label(&self, reported: Option<&str>) -> &str {
        let pricing = &self.state.config.pricing;
        reported
            .and_then(|m| pricing.resolve(m))
            .or_else(|| self.facts.requested_model.as_deref().and_then(|m| pricing.resolve(m)))
            .unwrap_or("other")
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
            (Some(usage), Some(model)) => {
                pricing.cost_on(model, tier.unwrap_or(Tier::Standard), &usage, self.served_on)
            }
            _ => None,
        };
        Priced { tier, cost }
    }

    /// Whether the request is charged to a client's budget.
    pub fn is_budgeted(&self) -> bool {
        self.budget.is_budgeted()
    }

    /// The request's hold on its client's budget, settled with the ledger, and its input
    /// tokens as estimated from its body.
    pub fn hold_budget(&mut self, reservation: Reservation, input_tokens: u64) {
        self.budget = reservation;
        self.input_tokens = u32::try_from(input_tokens).unwrap_or(u32::MAX);
    }

    /// What is left of the client's budget, in nano-dollars, counting this request at
    /// `cost` when it is known and at its reservation until then; `None` when unbudgeted.
    pub fn budget_remaining(&self, cost: Option<Decimal>) -> Option<u64> {
        let balance = self.budget.balance()?;
        let held = self.budget.held();
        Some(match cost.and_then(budgets::nanos) {
            Some(cost) => {
                let others = balance.spent.saturating_add(balance.reserved.saturating_sub(held));
                balance.limit.saturating_sub(others.saturating_add(cost))
            }
            None => balance.remaining(),
        })
    }

    /// What the retry loop did: attempts, escalation and the last attempt's tier.
    pub fn record_attempts<O>(&mut self, finished: &Finished<O>) {
        self.attempts = u16::try_from(finished.attempts).unwrap_or(u16::MAX);
        self.escalated = finished.escalated;
        self.attempt_tier = finished.tier;
        self.queued = finished.queued;
        self.queued_why = finished.queued_why;
    }

    /// The upstream's answer being passed on: its status and its own request id.
    pub fn record_answer(&mut self, status: http::StatusCode, headers: &http::HeaderMap) {
        self.status = status.as_u16();
        self.upstream_request_id = headers.get(X_REQUEST_ID).cloned();
    }

    /// A WebSocket handshake, or a turn of its session: one attempt, the upstream's answer
    /// to the upgrade (`crate::websocket`).
    pub fn record_handshake(&mut self, status: http::StatusCode, headers: &http::HeaderMap) {
        self.attempts = 1;
        self.record_answer(status, headers);
    }

    /// flexgate answers with its own error of this status.
    pub fn record_own_answer(&mut self, status: http::StatusCode) {
        self.status = status.as_u16();
    }

    /// Time spent in flexgate's own code, once the answer is ready to go.
    pub fn record_overhead(&mut self, overhead: Duration) {
        self.overhead = Some(overhead);
    }

    pub fn attempts(&self) -> u32 {
        u32::from(self.attempts)
    }

    pub fn escalated(&self) -> bool {
        self.escalated
    }

    /// The tier of the last attempt.
    pub fn attempt_tier(&self) -> Option<Tier> {
        self.attempt_tier
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
        let this = &*self;
        let m = &this.state.metrics;
        let endpoint = this.facts.endpoint;
        let class = this.class_name();
        let model = this.model_label(report.model.as_deref());
        let tier = this.served_tier(report);
        let tier_label = tier::label(tier);
        let elapsed = this.start.elapsed();
        let key = SeriesKey { endpoint, class: this.facts.class, class_name: class, model, tier };
        let series = m.series(&key);
        m.class_inflight(this.facts.class, class).dec();
        series.requests(outcome).inc();
        series.request_duration().observe(elapsed.as_secs_f64());
        if let Some(first) = this.first_byte {
            series.time_to_first_byte().observe((first - this.start).as_secs_f64());
        }
        if let Some(overhead) = this.overhead {
            m.endpoint_overhead(endpoint).observe(overhead.as_secs_f64());
        }
        if outcome == Outcome::DeadlineExceeded {
            m.class_deadline_exceeded(this.facts.class, class).inc();
        }
        let cost = this.record_usage(report, &series, tier);
        tracing::info!(
            request_id = this.facts.request_id.to_str().unwrap_or_default(),
            upstream_request_id = this.upstream_request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
            method = this.facts.method.as_str(),
            route = this.facts.lane.and_then(|l| this.state.config.class(l).path_prefix.as_deref()).unwrap_or("/v1"),
            class = class,
            model = model,
            tier = tier_label,
            status = this.status,
            outcome = outcome.as_str(),
            attempts = this.attempts,
            escalated = this.escalated,
            queued_ms = u64::try_from(this.queued.as_millis()).unwrap_or(u64::MAX),
            queued_reason = this.queued_why.map_or("", crate::admission::WaitReason::as_str),
            duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "request"
        );
        // The client's budget is charged what the metrics were: the served tier's price of
        // the reported usage, and nothing for an answer without usage (a flex 429, an
        // error), except a stream, which was generated and billed up to where it ended:
        // that is charged an estimate. Unbudgeted requests (most) skip the conversion.
        if self.budget.is_budgeted() {
            let charge = match cost.and_then(budgets::nanos) {
                Some(cost) => cost,
                None if report.usage.is_none() => self.estimate_stream(outcome, report, tier).unwrap_or(0),
                None => 0,
            };
            std::mem::take(&mut self.budget).settle(charge);
        }
    }

    /// What a stream that ended without its usage is charged: the input estimated from
    /// the request's body and the output from the content it streamed, at the served
    /// tier's price. `None` for an answer that was not a stream, or an unpriced model.
    /// Counted per client and end; the cost metrics count reported usage only.
    fn estimate_stream(&self, outcome: Outcome, report: &Report, tier: Option<Tier>) -> Option<u64> {
        let streamed = report.streamed?;
        let model = report.model.as_deref().or(self.facts.requested_model.as_deref())?;
        let input = u64::from(self.input_tokens);
        let output = budgets::estimate::tokens_in(streamed);
        let tier = tier.unwrap_or(Tier::Standard);
        let charge = budgets::estimate::cost(&self.state.config.pricing, model, tier, self.served_on, input, output)?;
        let end = match outcome {
            Outcome::Cancelled => "abandoned",
            Outcome::Success => "no_usage",
            _ => "cut",
        };
        self.state.metrics.budgets.estimated(self.budget.client().unwrap_or_default(), end, charge);
        Some(charge)
    }

    /// Count the tokens and the cost of the report; the cost, when it could be priced.
    fn record_usage(&self, report: &Report, series: &Series<'_>, tier: Option<Tier>) -> Option<Decimal> {
        let Some(usage) = report.usage else {
            if self.facts.metered && (200..300).contains(&self.status) {
                self.state.metrics.endpoint_usage_missing(self.facts.endpoint).inc();
            }
            return None;
        };
        let tier = tier.unwrap_or(Tier::Standard);
        let kinds = [
            (TokenKind::Input, usage.input),
            (TokenKind::CachedInput, usage.cached_input),
            (TokenKind::CacheWrite, usage.cache_write),
            (TokenKind::Output, usage.output),
            (TokenKind::Reasoning, usage.reasoning),
        ];
        for (kind, n) in kinds {
            if n > 0 {
                series.tokens(kind).inc_by(n);
            }
        }
        let pricing = &self.state.config.pricing;
        let priced_model = report.model.as_deref().or(self.facts.requested_model.as_deref()).unwrap_or_default();
        let cost = pricing.cost_on(priced_model, tier, &usage, self.served_on);
        match cost {
            Some(cost) => {
                series.cost_usd().inc_by(cost.to_f64().unwrap_or(0.0));
                // Counters only go up: priority's negative "savings" are not recorded.
                if let Some(saved) =
                    pricing.savings_on(priced_model, tier, &usage, self.served_on).filter(Decimal::is_sign_positive)
                {
                    series.savings_usd().inc_by(saved.to_f64().unwrap_or(0.0));
                }
            }
            None => series.cost_unknown().inc(),
        }
        cost
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Dropped unsettled: the client went away (or a panic unwound) first.
        self.record(Outcome::Cancelled, &Report::default());
    }
}

#[cfg(test)]
mod tests;
