//! The cached handles against `with_label_values`: the same updates must render the same
//! `/metrics` text, series for series and value for value.

use super::{RatelimitKind, SeriesKey, TokenKind};
use crate::endpoint::Endpoint;
use crate::metrics::{AttemptResult, Metrics, Outcome};
use crate::tier::Tier;

const CLASSES: [&str; 2] = ["interactive", "background"];

/// One settled request's updates, as the ledger makes them.
struct Update {
    endpoint: Endpoint,
    class: usize,
    model: &'static str,
    tier: Option<Tier>,
    outcome: Outcome,
    tokens: [u64; 4],
    cost: Option<f64>,
    saved: Option<f64>,
}

fn updates() -> Vec<Update> {
    let u = |endpoint, class, model, tier, outcome, tokens, cost, saved| Update {
        endpoint,
        class,
        model,
        tier,
        outcome,
        tokens,
        cost,
        saved,
    };
    vec![
        u(
            Endpoint::ChatCompletions,
            1,
            "gpt-5-mini",
            Some(Tier::Flex),
            Outcome::Success,
            [100, 20, 50, 10],
            Some(0.5),
            Some(0.25),
        ),
        u(
            Endpoint::ChatCompletions,
            1,
            "gpt-5-mini",
            Some(Tier::Flex),
            Outcome::Success,
            [7, 0, 3, 0],
            Some(0.125),
            Some(0.0625),
        ),
        u(Endpoint::ChatCompletions, 1, "gpt-5-mini", None, Outcome::Cancelled, [0; 4], None, None),
        u(Endpoint::Responses, 0, "gpt-5", Some(Tier::Priority), Outcome::Success, [5, 0, 5, 5], Some(1.0), None),
        u(Endpoint::Embeddings, 0, "other", None, Outcome::Success, [9, 0, 0, 0], None, None),
        u(Endpoint::Other, 0, "other", None, Outcome::UpstreamError, [0; 4], None, None),
        u(Endpoint::ChatCompletions, 0, "gpt-5", Some(Tier::Standard), Outcome::DeadlineExceeded, [0; 4], None, None),
        // A class id the metrics were not built with still gets its own labels.
        u(Endpoint::Completions, 5, "gpt-5", Some(Tier::Batch), Outcome::ClientError, [1, 0, 1, 0], None, None),
    ]
}

fn class_name(class: usize) -> &'static str {
    CLASSES.get(class).copied().unwrap_or("extra")
}

/// The updates the way the ledger made them before the cache.
fn by_label_values(m: &Metrics) {
    for u in updates() {
        let (class, tier) = (class_name(u.class), crate::tier::label(u.tier));
        let usage_tier = u.tier.unwrap_or(Tier::Standard).as_str();
        m.inflight.with_label_values(&[class]).inc();
        m.inflight.with_label_values(&[class]).dec();
        m.requests.with_label_values(&[u.endpoint.as_str(), class, u.model, tier, u.outcome.as_str()]).inc();
        m.request_duration.with_label_values(&[u.endpoint.as_str(), class, tier]).observe(0.2);
        m.time_to_first_byte.with_label_values(&[class, tier]).observe(0.01);
        m.overhead.with_label_values(&[u.endpoint.as_str()]).observe(0.000_03);
        if u.outcome == Outcome::DeadlineExceeded {
            m.deadline_exceeded.with_label_values(&[class]).inc();
        }
        if u.tokens == [0; 4] {
            m.usage_missing.with_label_values(&[u.endpoint.as_str()]).inc();
        }
        for (kind, n) in TokenKind::ALL.iter().map(|k| k.as_str()).zip(u.tokens) {
            if n > 0 {
                m.tokens.with_label_values(&[u.model, usage_tier, kind]).inc_by(n);
            }
        }
        match u.cost {
            Some(cost) => m.cost_usd.with_label_values(&[class, u.model, usage_tier]).inc_by(cost),
            None if u.tokens != [0; 4] => m.cost_unknown.with_label_values(&[u.model]).inc(),
            None => {}
        }
        if let Some(saved) = u.saved {
            m.savings_usd.with_label_values(&[class, u.model]).inc_by(saved);
        }
        m.upstream_attempts.with_label_values(&[tier, AttemptResult::Success.as_str()]).inc();
        m.upstream_attempts.with_label_values(&[tier, AttemptResult::FlexCapacity.as_str()]).inc();
    }
    m.ratelimit_remaining.with_label_values(&["tokens"]).set(1234);
}

/// The same updates through the cached handles.
fn by_cached_handles(m: &Metrics) {
    for u in updates() {
        let class = class_name(u.class);
        let key = SeriesKey { endpoint: u.endpoint, class: u.class, class_name: class, model: u.model, tier: u.tier };
        let series = m.series(&key);
        m.class_inflight(u.class, class).inc();
        m.class_inflight(u.class, class).dec();
        series.requests(u.outcome).inc();
        series.request_duration().observe(0.2);
        series.time_to_first_byte().observe(0.01);
        m.endpoint_overhead(u.endpoint).observe(0.000_03);
        if u.outcome == Outcome::DeadlineExceeded {
            m.class_deadline_exceeded(u.class, class).inc();
        }
        if u.tokens == [0; 4] {
            m.endpoint_usage_missing(u.endpoint).inc();
        }
        for (kind, n) in TokenKind::ALL.into_iter().zip(u.tokens) {
            if n > 0 {
                series.tokens(kind).inc_by(n);
            }
        }
        match u.cost {
            Some(cost) => series.cost_usd().inc_by(cost),
            None if u.tokens != [0; 4] => series.cost_unknown().inc(),
            None => {}
        }
        if let Some(saved) = u.saved {
            series.savings_usd().inc_by(saved);
        }
        m.upstream_attempt(u.tier, AttemptResult::Success).inc();
        m.upstream_attempt(u.tier, AttemptResult::FlexCapacity).inc();
    }
    m.ratelimit_gauge(RatelimitKind::Tokens).set(1234);
}

#[test]
fn cached_handles_render_the_same_metrics_as_label_lookups() {
    let (old, new) = (Metrics::new(&CLASSES).unwrap(), Metrics::new(&CLASSES).unwrap());
    by_label_values(&old);
    by_cached_handles(&new);
    let text = new.render();
    assert_eq!(old.render(), text);
    assert!(text.contains(
        "flexgate_requests_total{class=\"background\",endpoint=\"chat_completions\",model=\"gpt-5-mini\",outcome=\"success\",tier=\"flex\"} 2"
    ));
    assert!(text.contains("flexgate_tokens_total{kind=\"input\",model=\"gpt-5-mini\",tier=\"flex\"} 107"));
    assert!(text.contains("flexgate_requests_total{class=\"extra\","), "{text}");
    // Twice through the same handles, twice through fresh lookups: still equal.
    by_label_values(&old);
    by_cached_handles(&new);
    assert_eq!(old.render(), new.render());
}

#[test]
fn looking_up_handles_creates_no_series() {
    let m = Metrics::new(&CLASSES).unwrap();
    let before = m.render();
    let key = SeriesKey {
        endpoint: Endpoint::ChatCompletions,
        class: 1,
        class_name: "background",
        model: "gpt-5-mini",
        tier: Some(Tier::Flex),
    };
    let _series = m.series(&key);
    assert_eq!(m.render(), before, "a series appears only once it is counted");
}
