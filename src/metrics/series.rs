//! Cached handles of the labelled series one request touches when it is settled.
//!
//! `with_label_values` hashes every label string and takes the vector's lock each time;
//! a request settled about ten series that way. Here the handles of one (endpoint,
//! class, model, tier) combination are resolved on first use and kept, so a request does
//! one short map lookup by model and then only atomic updates. A handle is created only
//! when it is first used, exactly when `with_label_values` would have created the series,
//! so `/metrics` shows the same series with the same values as before.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use prometheus::{Counter, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use super::{AttemptResult, Metrics, Outcome};
use crate::config::ClassId;
use crate::endpoint::Endpoint;
use crate::tier::{self, Tier};

/// The `kind` label of `flexgate_tokens_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Input,
    CachedInput,
    Output,
    Reasoning,
    /// Input written to the prompt cache (models that bill cache writes).
    CacheWrite,
}

impl TokenKind {
    pub const ALL: [TokenKind; 5] = [Self::Input, Self::CachedInput, Self::Output, Self::Reasoning, Self::CacheWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::CachedInput => "cached_input",
            Self::Output => "output",
            Self::Reasoning => "reasoning",
            Self::CacheWrite => "cache_write",
        }
    }
}

/// The `kind` label of `flexgate_upstream_ratelimit_remaining`: which of the upstream's
/// `x-ratelimit-remaining-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatelimitKind {
    Requests,
    Tokens,
}

impl RatelimitKind {
    pub const ALL: [RatelimitKind; 2] = [Self::Requests, Self::Tokens];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
        }
    }
}

pub(super) const OUTCOMES: [Outcome; 6] = [
    Outcome::Success,
    Outcome::UpstreamError,
    Outcome::GatewayError,
    Outcome::ClientError,
    Outcome::DeadlineExceeded,
    Outcome::Cancelled,
];
const ENDPOINTS: usize = 6;
/// The four tiers and "none".
const TIER_SLOTS: usize = 5;

/// Which series: the labels a settled request carries.
#[derive(Debug, Clone, Copy)]
pub struct SeriesKey<'a> {
    pub endpoint: Endpoint,
    pub class: ClassId,
    pub class_name: &'a str,
    /// The bounded model label (a price-table name or `other`).
    pub model: &'a str,
    /// The tier that served the request, `None` when unknown.
    pub tier: Option<Tier>,
}

/// Every combination seen for one model label, indexed by endpoint, class and tier.
pub(super) struct ModelSeries {
    slots: Box<[OnceLock<Arc<Handles>>]>,
}

impl ModelSeries {
    fn new(classes: usize) -> Self {
        Self { slots: (0..ENDPOINTS * classes * TIER_SLOTS).map(|_| OnceLock::new()).collect() }
    }
}

/// The label values and lazily created handles of one combination.
struct Handles {
    endpoint: &'static str,
    class: Box<str>,
    model: Box<str>,
    tier: Option<Tier>,
    requests: [OnceLock<IntCounter>; OUTCOMES.len()],
    request_duration: OnceLock<Histogram>,
    time_to_first_byte: OnceLock<Histogram>,
    tokens: [OnceLock<IntCounter>; TokenKind::ALL.len()],
    cost_usd: OnceLock<Counter>,
    savings_usd: OnceLock<Counter>,
    cost_unknown: OnceLock<IntCounter>,
}

/// The handles of one request's labels (see [`Metrics::series`]).
pub struct Series<'a> {
    metrics: &'a Metrics,
    handles: Arc<Handles>,
}

fn endpoint_index(endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::ChatCompletions => 0,
        Endpoint::Responses => 1,
        Endpoint::Completions => 2,
        Endpoint::Embeddings => 3,
        Endpoint::Other => 4,
        Endpoint::Realtime => 5,
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    OUTCOMES.iter().position(|&o| o == outcome).unwrap_or(0)
}

impl Handles {
    fn new(key: &SeriesKey<'_>) -> Self {
        Self {
            endpoint: key.endpoint.as_str(),
            class: key.class_name.into(),
            model: key.model.into(),
            tier: key.tier,
            requests: Default::default(),
            request_duration: OnceLock::new(),
            time_to_first_byte: OnceLock::new(),
            tokens: Default::default(),
            cost_usd: OnceLock::new(),
            savings_usd: OnceLock::new(),
            cost_unknown: OnceLock::new(),
        }
    }

    /// Usage is priced at the reported tier, standard when none was reported.
    fn usage_tier(&self) -> &'static str {
        self.tier.unwrap_or(Tier::Standard).as_str()
    }
}

// === impl Metrics ===

impl Metrics {
    /// The cached handles for `key`'s labels.
    pub fn series(&self, key: &SeriesKey<'_>) -> Series<'_> {
        let model = self.series.read().get(key.model).cloned();
        let model = model.unwrap_or_else(|| {
            let mut all = self.series.write();
            Arc::clone(all.entry(key.model.into()).or_insert_with(|| Arc::new(ModelSeries::new(self.classes))))
        });
        let tier = key.tier.map_or(0, |t| t.index() + 1);
        let slot = (endpoint_index(key.endpoint) * self.classes + key.class) * TIER_SLOTS + tier;
        let cached = model.slots.get(slot).filter(|_| key.class < self.classes);
        let handles = match cached {
            Some(cell) => Arc::clone(cell.get_or_init(|| Arc::new(Handles::new(key)))),
            // A class id beyond the configured classes: correct, just not cached.
            None => Arc::new(Handles::new(key)),
        };
        Series { metrics: self, handles }
    }
}

/// The map behind [`Metrics::series`]: one entry per model label seen.
pub(super) type SeriesMap = HashMap<Box<str>, Arc<ModelSeries>>;

// === impl Series ===

impl Series<'_> {
    fn handles(&self) -> &Handles {
        &self.handles
    }

    /// `flexgate_requests_total{endpoint, class, model, tier, outcome}`
    pub fn requests(&self, outcome: Outcome) -> &IntCounter {
        let h = self.handles();
        h.requests[outcome_index(outcome)].get_or_init(|| {
            self.metrics.requests.with_label_values(&[
                h.endpoint,
                &h.class,
                &h.model,
                tier::label(h.tier),
                outcome.as_str(),
            ])
        })
    }

    /// `flexgate_request_duration_seconds{endpoint, class, tier}`
    pub fn request_duration(&self) -> &Histogram {
        let h = self.handles();
        h.request_duration.get_or_init(|| {
            self.metrics.request_duration.with_label_values(&[h.endpoint, &h.class, tier::label(h.tier)])
        })
    }

    /// `flexgate_time_to_first_byte_seconds{class, tier}`
    pub fn time_to_first_byte(&self) -> &Histogram {
        let h = self.handles();
        h.time_to_first_byte
            .get_or_init(|| self.metrics.time_to_first_byte.with_label_values(&[&h.class, tier::label(h.tier)]))
    }

    /// `flexgate_tokens_total{model, tier, kind}`, tier as priced.
    pub fn tokens(&self, kind: TokenKind) -> &IntCounter {
        let h = self.handles();
        h.tokens[kind as usize]
            .get_or_init(|| self.metrics.tokens.with_label_values(&[&h.model, h.usage_tier(), kind.as_str()]))
    }

    /// `flexgate_cost_usd_total{class, model, tier}`, tier as priced.
    pub fn cost_usd(&self) -> &Counter {
        let h = self.handles();
        h.cost_usd.get_or_init(|| self.metrics.cost_usd.with_label_values(&[&h.class, &h.model, h.usage_tier()]))
    }

    /// `flexgate_savings_usd_total{class, model}`
    pub fn savings_usd(&self) -> &Counter {
        let h = self.handles();
        h.savings_usd.get_or_init(|| self.metrics.savings_usd.with_label_values(&[&h.class, &h.model]))
    }

    /// `flexgate_cost_unknown_total{model}`
    pub fn cost_unknown(&self) -> &IntCounter {
        let h = self.handles();
        h.cost_unknown.get_or_init(|| self.metrics.cost_unknown.with_label_values(&[&h.model]))
    }
}

/// Handles whose labels are a class, an endpoint or a tier and result: small closed sets,
/// resolved when first used (the per-class ones at start-up, where `prime` creates them).
pub(super) struct Fixed {
    inflight: Vec<IntGauge>,
    deadline_exceeded: Vec<IntCounter>,
    overhead: [OnceLock<Histogram>; ENDPOINTS],
    usage_missing: [OnceLock<IntCounter>; ENDPOINTS],
    upstream_attempts: [[OnceLock<IntCounter>; ATTEMPT_RESULTS.len()]; TIER_SLOTS],
    ratelimit_remaining: [OnceLock<IntGauge>; RatelimitKind::ALL.len()],
}

pub(super) const ATTEMPT_RESULTS: [AttemptResult; 8] = [
    AttemptResult::Success,
    AttemptResult::FlexCapacity,
    AttemptResult::RateLimit,
    AttemptResult::Billing,
    AttemptResult::ServerError,
    AttemptResult::ConnectError,
    AttemptResult::Timeout,
    AttemptResult::ClientError,
];

impl Fixed {
    pub(super) fn new(inflight: &IntGaugeVec, deadline_exceeded: &IntCounterVec, classes: &[&str]) -> Self {
        Self {
            inflight: classes.iter().map(|c| inflight.with_label_values(&[c])).collect(),
            deadline_exceeded: classes.iter().map(|c| deadline_exceeded.with_label_values(&[c])).collect(),
            overhead: Default::default(),
            usage_missing: Default::default(),
            upstream_attempts: Default::default(),
            ratelimit_remaining: Default::default(),
        }
    }
}

impl Metrics {
    /// `flexgate_inflight_requests{class}` of class `class`, named `name`.
    pub fn class_inflight(&self, class: ClassId, name: &str) -> Cow<'_, IntGauge> {
        match self.fixed.inflight.get(class) {
            Some(gauge) => Cow::Borrowed(gauge),
            None => Cow::Owned(self.inflight.with_label_values(&[name])),
        }
    }

    /// `flexgate_deadline_exceeded_total{class}` of class `class`, named `name`.
    pub fn class_deadline_exceeded(&self, class: ClassId, name: &str) -> Cow<'_, IntCounter> {
        match self.fixed.deadline_exceeded.get(class) {
            Some(counter) => Cow::Borrowed(counter),
            None => Cow::Owned(self.deadline_exceeded.with_label_values(&[name])),
        }
    }

    /// `flexgate_overhead_seconds{endpoint}`
    pub fn endpoint_overhead(&self, endpoint: Endpoint) -> &Histogram {
        self.fixed.overhead[endpoint_index(endpoint)]
            .get_or_init(|| self.overhead.with_label_values(&[endpoint.as_str()]))
    }

    /// `flexgate_usage_missing_total{endpoint}`
    pub fn endpoint_usage_missing(&self, endpoint: Endpoint) -> &IntCounter {
        self.fixed.usage_missing[endpoint_index(endpoint)]
            .get_or_init(|| self.usage_missing.with_label_values(&[endpoint.as_str()]))
    }

    /// `flexgate_upstream_attempts_total{tier, result}`
    pub fn upstream_attempt(&self, tier: Option<Tier>, result: AttemptResult) -> &IntCounter {
        let r = ATTEMPT_RESULTS.iter().position(|&a| a == result).unwrap_or(0);
        self.fixed.upstream_attempts[tier.map_or(0, |t| t.index() + 1)][r]
            .get_or_init(|| self.upstream_attempts.with_label_values(&[tier::label(tier), result.as_str()]))
    }

    /// `flexgate_upstream_ratelimit_remaining{kind}`
    pub fn ratelimit_gauge(&self, kind: RatelimitKind) -> &IntGauge {
        self.fixed.ratelimit_remaining[kind as usize]
            .get_or_init(|| self.ratelimit_remaining.with_label_values(&[kind.as_str()]))
    }

    /// `flexgate_retries_total{tier, reason}`: a failed attempt retried on the same tier.
    pub fn retry(&self, tier: Option<Tier>, reason: &str) -> IntCounter {
        self.retries.with_label_values(&[tier::label(tier), reason])
    }

    /// `flexgate_escalations_total{class, model, reason}`: a flex request moved to standard.
    pub fn escalation(&self, class: &str, model: &str, reason: &str) -> IntCounter {
        self.escalations.with_label_values(&[class, model, reason])
    }

    /// `flexgate_flex_ineligible_total{model}`: flex wanted, the model not flex-capable.
    pub fn flex_ineligible(&self, model: &str) -> IntCounter {
        self.flex_ineligible.with_label_values(&[model])
    }

    /// `flexgate_requests_total` of a request refused before it was routed: its endpoint,
    /// class, model and tier are all unknown.
    pub fn rejected(&self, outcome: Outcome) -> IntCounter {
        self.requests.with_label_values(&["other", "none", "other", "none", outcome.as_str()])
    }
}

#[cfg(test)]
mod tests;
