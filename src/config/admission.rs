//! `[admission]`: the raw section as written and its validation into the controller's
//! settings. Every key has a default that needs no tuning; every problem is reported.

use std::time::Duration;

use serde::Deserialize;

use crate::admission::{BudgetSettings, FlexSettings, Settings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmission {
    /// Fraction of each upstream rate limit kept free for urgent first attempts.
    pub headroom: f64,
    pub flex_min_limit: i64,
    pub flex_max_limit: i64,
    pub flex_initial_limit: i64,
    /// The flex limit is multiplied by this on capacity 429s.
    pub flex_backoff_ratio: f64,
    /// At most one cut per this interval (one burst of refusals is one signal).
    pub flex_cut_interval: String,
    /// Capacity 429s in a row that close flex for the model.
    pub flex_close_after: i64,
    pub flex_probe_base: String,
    pub flex_probe_max: String,
    /// Adaptive throttling: refuse locally beyond `K` attempts per accepted one.
    pub throttle_k: f64,
    pub throttle_window: String,
    /// Retries may add this fraction of first attempts...
    pub retry_budget_ratio: f64,
    /// ...plus this many per second.
    pub retry_budget_floor: f64,
    pub retry_budget_window: String,
}

impl Default for RawAdmission {
    fn default() -> Self {
        let s = Settings::default();
        let text = |d: Duration| humantime::format_duration(d).to_string();
        Self {
            headroom: s.headroom,
            flex_min_limit: s.flex.min_limit.into(),
            flex_max_limit: s.flex.max_limit.into(),
            flex_initial_limit: s.flex.initial_limit.into(),
            flex_backoff_ratio: s.flex.backoff_ratio,
            flex_cut_interval: text(s.flex.cut_interval),
            flex_close_after: s.flex.close_after.into(),
            flex_probe_base: text(s.flex.probe_base),
            flex_probe_max: text(s.flex.probe_max),
            throttle_k: s.flex.throttle_k,
            throttle_window: text(s.flex.throttle_window),
            retry_budget_ratio: s.budget.ratio,
            retry_budget_floor: s.budget.floor_per_sec,
            retry_budget_window: text(s.budget.window),
        }
    }
}

/// Validate `[admission]`; `add(key, message)` records a problem, `duration(key, text)`
/// parses a positive duration (recording its own problem).
pub fn validate(
    raw: &RawAdmission,
    add: &mut dyn FnMut(&str, String),
    duration: &mut dyn FnMut(&str, &str) -> Duration,
) -> Settings {
    let mut fraction = |key: &str, v: f64, lo: f64, hi: f64, what: &str| {
        if !(v.is_finite() && v >= lo && v <= hi) {
            add(key, format!("`{v}` must be {what}"));
        }
        v
    };
    let headroom = fraction("admission.headroom", raw.headroom, 0.0, 0.9, "from 0 to 0.9");
    let backoff_ratio = fraction("admission.flex_backoff_ratio", raw.flex_backoff_ratio, 0.1, 0.95, "from 0.1 to 0.95");
    let throttle_k = fraction("admission.throttle_k", raw.throttle_k, 1.0, 100.0, "from 1 to 100");
    let ratio = fraction("admission.retry_budget_ratio", raw.retry_budget_ratio, 0.0, 10.0, "from 0 to 10");
    let floor = fraction("admission.retry_budget_floor", raw.retry_budget_floor, 0.0, 1000.0, "from 0 to 1000");
    let mut count = |key: &str, v: i64, lo: u32| match u32::try_from(v) {
        Ok(n) if n >= lo && n <= 100_000 => n,
        _ => {
            add(key, format!("`{v}` must be a whole number from {lo} to 100000"));
            lo
        }
    };
    let min_limit = count("admission.flex_min_limit", raw.flex_min_limit, 1);
    let max_limit = count("admission.flex_max_limit", raw.flex_max_limit, 1);
    let initial_limit = count("admission.flex_initial_limit", raw.flex_initial_limit, 1);
    let close_after = count("admission.flex_close_after", raw.flex_close_after, 1);
    if min_limit > max_limit {
        add("admission.flex_min_limit", format!("({min_limit}) exceeds `admission.flex_max_limit` ({max_limit})"));
    }
    let probe_base = duration("admission.flex_probe_base", &raw.flex_probe_base);
    let probe_max = duration("admission.flex_probe_max", &raw.flex_probe_max);
    if probe_base > probe_max {
        add(
            "admission.flex_probe_base",
            format!("({}) exceeds `admission.flex_probe_max` ({})", raw.flex_probe_base, raw.flex_probe_max),
        );
    }
    Settings {
        headroom,
        flex: FlexSettings {
            min_limit,
            max_limit,
            initial_limit,
            backoff_ratio,
            cut_interval: duration("admission.flex_cut_interval", &raw.flex_cut_interval),
            throttle_k,
            throttle_window: duration("admission.throttle_window", &raw.throttle_window),
            close_after,
            probe_base,
            probe_max,
        },
        budget: BudgetSettings {
            ratio,
            floor_per_sec: floor,
            window: duration("admission.retry_budget_window", &raw.retry_budget_window),
        },
    }
}
