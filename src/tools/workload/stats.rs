//! Aggregates a run's outcomes: requests by class and served tier, client-visible
//! errors, what flexgate absorbed (extra attempts, escalations), latency percentiles per
//! class, and cost. Pure functions of the outcomes and a price table.
//!
//! Cost is computed from the usage each response reported, at the rates of the tier it
//! reports (a response without a tier, such as embeddings, is priced as standard), with
//! the same [`PriceTable`] the gateway uses; "all on standard" prices the same usage at
//! standard rates. Failed requests cost nothing (flex 429s are free; a request cut
//! mid-stream reports no usage). Successful requests whose model is not in the table, or
//! that reported no usage, are counted as unpriced, never guessed.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;

use super::{Lane, Observed};
use crate::pricing::PriceTable;
use crate::tier::Tier;

/// Requests, tiers, errors and latencies of one class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassStats {
    pub requests: usize,
    /// Successful requests by the tier that served them (`None`: not reported).
    pub served: BTreeMap<Option<TierKey>, usize>,
    pub errors: usize,
    /// Every request of the class, errors included, sorted ascending.
    pub latencies: Vec<Duration>,
}

/// A tier as a sortable map key (standard, flex, priority, batch).
pub type TierKey = u8;

pub fn tier_key(tier: Tier) -> TierKey {
    match tier {
        Tier::Standard => 0,
        Tier::Flex => 1,
        Tier::Priority => 2,
        Tier::Batch => 3,
    }
}

/// Everything the report shows, computed once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub requests: usize,
    /// Classes in report order: interactive, background, then others by name.
    pub classes: Vec<(String, ClassStats)>,
    /// Client-visible errors by label (`429 insufficient_quota`, `stream ended early`).
    pub errors: BTreeMap<String, usize>,
    /// Σ (`x-flexgate-attempts` − 1): upstream attempts the clients never saw.
    pub extra_attempts: u64,
    pub escalations: usize,
    /// Whether any response carried `x-flexgate-attempts` (the target is flexgate).
    pub saw_flexgate: bool,
    pub cost: Decimal,
    pub standard_cost: Decimal,
    pub priced: usize,
    pub unpriced: usize,
}

impl Summary {
    pub fn savings(&self) -> Decimal {
        self.standard_cost - self.cost
    }

    /// Savings as a percentage of the all-standard cost, one decimal; `None` if zero.
    pub fn savings_percent(&self) -> Option<Decimal> {
        if self.standard_cost.is_zero() {
            return None;
        }
        Some((self.savings() * Decimal::ONE_HUNDRED / self.standard_cost).round_dp(1))
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }
}

/// Summarise `outcomes` with `prices`.
pub fn summarize(outcomes: &[Observed], prices: &PriceTable) -> Summary {
    let mut summary = Summary { requests: outcomes.len(), ..Summary::default() };
    let mut classes: BTreeMap<String, ClassStats> = BTreeMap::new();
    for o in outcomes {
        let class = classes.entry(o.class.clone()).or_default();
        class.requests += 1;
        class.latencies.push(o.latency);
        if let Some(attempts) = o.attempts {
            summary.saw_flexgate = true;
            summary.extra_attempts += u64::from(attempts.saturating_sub(1));
        }
        summary.escalations += usize::from(o.escalated);
        if let Some(label) = &o.error {
            class.errors += 1;
            *summary.errors.entry(label.clone()).or_default() += 1;
            continue;
        }
        *class.served.entry(o.tier.map(tier_key)).or_default() += 1;
        match price(o, prices) {
            Some((cost, standard)) => {
                summary.cost += cost;
                summary.standard_cost += standard;
                summary.priced += 1;
            }
            None => summary.unpriced += 1,
        }
    }
    for stats in classes.values_mut() {
        stats.latencies.sort_unstable();
    }
    let mut ordered: Vec<(String, ClassStats)> = classes.into_iter().collect();
    ordered.sort_by_key(|(name, _)| (class_rank(name), name.clone()));
    summary.classes = ordered;
    summary
}

fn class_rank(name: &str) -> u8 {
    match name {
        n if n == Lane::Interactive.as_str() => 0,
        n if n == Lane::Background.as_str() => 1,
        _ => 2,
    }
}

/// (cost, cost on standard) of a successful outcome, if it can be priced.
fn price(o: &Observed, prices: &PriceTable) -> Option<(Decimal, Decimal)> {
    let (model, usage) = (o.model.as_deref()?, o.usage.as_ref()?);
    let tier = o.tier.unwrap_or(Tier::Standard);
    Some((prices.cost(model, tier, usage)?, prices.cost(model, Tier::Standard, usage)?))
}

/// Nearest-rank percentile (`p` in 1..=100) of an ascending slice.
pub fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p.clamp(1, 100) * n).div_ceil(100).clamp(1, n);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests;
