//! Prometheus metrics: one struct of typed handles on a private registry.
//!
//! Labels come from closed sets only: `class` from config, `model` from the price table
//! (anything else is `other`), `tier` ∈ {flex, standard, priority, none}, and the
//! bounded enums below. A raw path, model string or message never becomes a label.

mod admission;
mod batch;
mod budgets;
mod prime;
#[cfg(any(test, feature = "test-util"))]
mod probe;
mod series;
mod shared;

use parking_lot::RwLock;
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error::ErrorKind;
pub use prime::{ESCALATION_REASONS, RETRY_REASONS};
pub use series::{RatelimitKind, Series, SeriesKey, TokenKind};

/// Whole-request latency: flex calls legitimately take minutes, so the buckets reach 900 s.
const REQUEST_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0];
/// Time to first byte: a few milliseconds on standard up to the flex queueing minutes.
const TTFB_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];
/// flexgate's own work per request is measured in microseconds.
const OVERHEAD_BUCKETS: &[f64] =
    &[0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05];

impl From<ErrorKind> for Outcome {
    /// The outcome of a request flexgate answered with its own error of this kind.
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Client => Self::ClientError,
            ErrorKind::Upstream => Self::UpstreamError,
            ErrorKind::Deadline => Self::DeadlineExceeded,
            ErrorKind::Internal => Self::GatewayError,
        }
    }
}

/// Result of one upstream attempt (label `result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Success,
    FlexCapacity,
    RateLimit,
    Billing,
    ServerError,
    ConnectError,
    Timeout,
    ClientError,
}

impl AttemptResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::FlexCapacity => "flex_capacity",
            Self::RateLimit => "rate_limit",
            Self::Billing => "billing",
            Self::ServerError => "server_error",
            Self::ConnectError => "connect_error",
            Self::Timeout => "timeout",
            Self::ClientError => "client_error",
        }
    }
}

/// How a request ended (label `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    UpstreamError,
    GatewayError,
    ClientError,
    DeadlineExceeded,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::UpstreamError => "upstream_error",
            Self::GatewayError => "gateway_error",
            Self::ClientError => "client_error",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Every metric. The vectors are private: the rest of the crate writes through the typed
/// methods (`series`, `class_inflight`, `retry`, `escalation`, `rejected`, …), so each
/// series' labels are spelled in one place.
pub struct Metrics {
    registry: Registry,
    /// endpoint, class, model, tier, outcome
    requests: IntCounterVec,
    /// endpoint, class, tier
    request_duration: HistogramVec,
    /// endpoint — time spent inside flexgate, excluding upstream waits
    overhead: HistogramVec,
    /// tier, result
    upstream_attempts: IntCounterVec,
    /// class, tier
    time_to_first_byte: HistogramVec,
    /// tier, reason
    retries: IntCounterVec,
    /// class, model, reason
    escalations: IntCounterVec,
    /// class
    deadline_exceeded: IntCounterVec,
    /// model, tier, kind (input, cached_input, output, reasoning)
    tokens: IntCounterVec,
    /// class, model, tier
    cost_usd: CounterVec,
    /// class, model
    savings_usd: CounterVec,
    /// endpoint
    usage_missing: IntCounterVec,
    /// model — requests whose cost could not be computed (unknown model or unpriced tier)
    cost_unknown: IntCounterVec,
    /// model — requests for flex that went to standard because the model is not flex-capable
    flex_ineligible: IntCounterVec,
    /// class
    inflight: IntGaugeVec,
    /// kind (requests, tokens) — from the upstream's `x-ratelimit-remaining-*`
    ratelimit_remaining: IntGaugeVec,
    /// version
    build_info: IntGaugeVec,
    /// WebSocket sessions open now (`crate::websocket`).
    websocket_sessions: IntGauge,
    /// The admission controller's decisions and state.
    pub admission: admission::AdmissionMetrics,
    /// The batches' runners, ends, lines, cost and savings.
    pub batch: batch::BatchMetrics,
    /// Spend, limits and refusals per budgeted client.
    pub budgets: budgets::BudgetMetrics,
    /// Redis's health and the admission notes between replicas.
    pub shared: shared::SharedMetrics,
    /// Cached handles of the per-request series, by model label (see [`Metrics::series`]).
    series: RwLock<series::SeriesMap>,
    /// Cached handles of the per-class, per-endpoint and per-attempt series.
    fixed: series::Fixed,
    /// How many classes the configuration has (class ids are `0..classes`).
    classes: usize,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn money(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<CounterVec> {
    let c = CounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn sessions_gauge(r: &Registry) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new("flexgate_websocket_sessions", "WebSocket sessions open now.")?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Build every handle on a fresh private registry for these classes; [`Metrics::prime`]
    /// then creates the series the configuration knows, at zero.
    pub fn new(classes: &[&str]) -> prometheus::Result<Self> {
        let r = Registry::new();
        let inflight = gauge(&r, "flexgate_inflight_requests", "Requests in flight.", &["class"])?;
        let deadline_exceeded =
            counter(&r, "flexgate_deadline_exceeded_total", "Requests past their deadline.", &["class"])?;
        let fixed = series::Fixed::new(&inflight, &deadline_exceeded, classes);
        let m = Self {
            requests: counter(
                &r,
                "flexgate_requests_total",
                "Requests, by how they ended.",
                &["endpoint", "class", "model", "tier", "outcome"],
            )?,
            request_duration: histogram(
                &r,
                "flexgate_request_duration_seconds",
                "End-to-end request duration, including streaming.",
                &["endpoint", "class", "tier"],
                REQUEST_BUCKETS,
            )?,
            overhead: histogram(
                &r,
                "flexgate_overhead_seconds",
                "Time spent inside flexgate itself, excluding upstream waits and backoff.",
                &["endpoint"],
                OVERHEAD_BUCKETS,
            )?,
            upstream_attempts: counter(
                &r,
                "flexgate_upstream_attempts_total",
                "Upstream attempts.",
                &["tier", "result"],
            )?,
            time_to_first_byte: histogram(
                &r,
                "flexgate_time_to_first_byte_seconds",
                "Time from request arrival to the first response byte sent to the client.",
                &["class", "tier"],
                TTFB_BUCKETS,
            )?,
            retries: counter(&r, "flexgate_retries_total", "Retries after a failed attempt.", &["tier", "reason"])?,
            escalations: counter(
                &r,
                "flexgate_escalations_total",
                "Flex requests moved to standard.",
                &["class", "model", "reason"],
            )?,
            deadline_exceeded,
            tokens: counter(
                &r,
                "flexgate_tokens_total",
                "Tokens reported by the upstream, by kind (cached_input is part of input, reasoning part of output).",
                &["model", "tier", "kind"],
            )?,
            cost_usd: money(
                &r,
                "flexgate_cost_usd_total",
                "Cost in USD, priced at the tier the response reports.",
                &["class", "model", "tier"],
            )?,
            savings_usd: money(
                &r,
                "flexgate_savings_usd_total",
                "USD saved against the same usage on the standard tier.",
                &["class", "model"],
            )?,
            usage_missing: counter(&r, "flexgate_usage_missing_total", "Responses without usage.", &["endpoint"])?,
            cost_unknown: counter(
                &r,
                "flexgate_cost_unknown_total",
                "Responses with usage but no price (unknown model or unpriced tier).",
                &["model"],
            )?,
            flex_ineligible: counter(
                &r,
                "flexgate_flex_ineligible_total",
                "Flex-class requests sent to standard because the model is not flex-capable.",
                &["model"],
            )?,
            inflight,
            ratelimit_remaining: gauge(
                &r,
                "flexgate_upstream_ratelimit_remaining",
                "Upstream x-ratelimit-remaining-*.",
                &["kind"],
            )?,
            build_info: gauge(&r, "flexgate_build_info", "Build information.", &["version"])?,
            websocket_sessions: sessions_gauge(&r)?,
            admission: admission::AdmissionMetrics::new(&r)?,
            batch: batch::BatchMetrics::new(&r)?,
            budgets: budgets::BudgetMetrics::new(&r)?,
            shared: shared::SharedMetrics::new(&r)?,
            registry: r,
            series: RwLock::new(series::SeriesMap::new()),
            fixed,
            classes: classes.len(),
        };
        Ok(m)
    }

    /// The open WebSocket sessions gauge (`crate::websocket` counts them in and out).
    pub fn websocket_sessions(&self) -> &IntGauge {
        &self.websocket_sessions
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which `new` rules out.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_family_with_prefix() {
        let m = Metrics::new(&["interactive", "background"]).unwrap();
        m.prime(&["interactive", "background"], &crate::pricing::PriceTable::embedded());
        let text = m.render();
        assert!(text.contains("flexgate_build_info{version=\""));
        assert!(text.contains("flexgate_inflight_requests{class=\"background\"} 0"));
        assert!(text.contains("flexgate_deadline_exceeded_total{class=\"interactive\"} 0"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("flexgate_"), "{line}");
        }
    }
}
