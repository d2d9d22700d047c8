//! Renders a [`Summary`] as the plain-text report `flexgate demo --workload` and
//! `flexgate replay` print: requests by class and served tier, what the gateway
//! absorbed, client-visible errors, latency percentiles by class, and cost.

use std::fmt::{self, Write};
use std::time::Duration;

use rust_decimal::Decimal;

use super::counters::Counters;
use super::stats::{ClassStats, Summary, TierKey, percentile, tier_key};
use crate::tier::Tier;

/// The run around the numbers.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Where requests went, e.g. `http://127.0.0.1:8080/v1 (background: …/flex/v1)`.
    pub target: String,
    pub concurrency: usize,
    pub wall: Duration,
    /// flexgate's counter differences over the run, when its `/metrics` was readable.
    pub gateway: Option<Counters>,
    pub prices_as_of: String,
}

/// The whole report, ending with a newline.
pub fn render(summary: &Summary, info: &RunInfo) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, summary, info);
    out
}

fn write_report(out: &mut String, s: &Summary, info: &RunInfo) -> fmt::Result {
    let secs = info.wall.as_secs_f64();
    let rate = if secs > 0.0 { format!(", {:.1} req/s", count_f64(s.requests) / secs) } else { String::new() };
    writeln!(out, "flexgate workload report")?;
    writeln!(out, "  target       {}", info.target)?;
    writeln!(
        out,
        "  requests     {} in {} at concurrency {}{rate}",
        s.requests,
        duration(info.wall),
        info.concurrency
    )?;
    write_tiers(out, s)?;
    write_absorbed(out, s, info.gateway)?;
    writeln!(out, "\nClient-visible errors              {:>6}", s.error_count())?;
    for (label, n) in &s.errors {
        writeln!(out, "  {label:<32} {n:>6}")?;
    }
    writeln!(out, "\nLatency by class (send to last byte, errors included)")?;
    writeln!(out, "  {:<14} {:>9} {:>9} {:>9} {:>9}", "class", "p50", "p95", "p99", "max")?;
    for (name, c) in &s.classes {
        let p = |q| percentile(&c.latencies, q).map_or_else(|| "-".to_owned(), duration);
        writeln!(out, "  {name:<14} {:>9} {:>9} {:>9} {:>9}", p(50), p(95), p(99), p(100))?;
    }
    writeln!(out, "\nCost (reported usage x embedded prices as of {})", info.prices_as_of)?;
    writeln!(out, "  this run                   {:>14}", usd(s.cost))?;
    writeln!(out, "  all on standard            {:>14}", usd(s.standard_cost))?;
    let pct = s.savings_percent().map(|p| format!(" ({p}%)")).unwrap_or_default();
    writeln!(out, "  savings                    {:>14}{pct}", usd(s.savings()))?;
    if s.unpriced > 0 {
        writeln!(out, "  unpriced requests          {:>14} (model not in the price table, or no usage)", s.unpriced)?;
    }
    Ok(())
}

/// What flexgate did that the clients never saw: from its headers (attempts,
/// escalation) and, when readable, its `/metrics` (which failures were flex 429s).
fn write_absorbed(out: &mut String, s: &Summary, gateway: Option<Counters>) -> fmt::Result {
    writeln!(out, "\nAbsorbed by the gateway (the clients never saw these)")?;
    if !s.saw_flexgate {
        return writeln!(out, "  n/a: the target sent no x-flexgate-* headers");
    }
    writeln!(out, "  failed upstream attempts retried {:>6}", s.extra_attempts)?;
    match gateway {
        Some(g) => writeln!(out, "    of which flex 429s             {:>6}", g.flex_429)?,
        None => writeln!(out, "    of which flex 429s             not measured (no flexgate /metrics)")?,
    }
    writeln!(out, "  escalations flex -> standard     {:>6}", s.escalations)
}

/// The class × served-tier table; standard and flex always, other tiers when seen.
fn write_tiers(out: &mut String, s: &Summary) -> fmt::Result {
    let mut columns: Vec<(Option<TierKey>, &str)> =
        vec![(Some(tier_key(Tier::Standard)), "standard"), (Some(tier_key(Tier::Flex)), "flex")];
    for (key, name) in
        [(Some(tier_key(Tier::Priority)), "priority"), (Some(tier_key(Tier::Batch)), "batch"), (None, "none")]
    {
        if s.classes.iter().any(|(_, c)| c.served.contains_key(&key)) {
            columns.push((key, name));
        }
    }
    writeln!(out, "\nRequests by class and served tier")?;
    write!(out, "  {:<14} {:>9}", "class", "requests")?;
    for (_, name) in &columns {
        write!(out, " {name:>9}")?;
    }
    writeln!(out, " {:>9}", "errors")?;
    let mut total = ClassStats::default();
    for (name, c) in &s.classes {
        write_row(out, name, c, &columns)?;
        total.requests += c.requests;
        total.errors += c.errors;
        for (key, n) in &c.served {
            *total.served.entry(*key).or_default() += n;
        }
    }
    if s.classes.len() > 1 {
        write_row(out, "total", &total, &columns)?;
    }
    Ok(())
}

fn write_row(out: &mut String, name: &str, c: &ClassStats, columns: &[(Option<TierKey>, &str)]) -> fmt::Result {
    write!(out, "  {name:<14} {:>9}", c.requests)?;
    for (key, _) in columns {
        write!(out, " {:>9}", c.served.get(key).copied().unwrap_or(0))?;
    }
    writeln!(out, " {:>9}", c.errors)
}

/// `61ms` below a second, `1.62s` from there.
pub fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{}ms", d.as_millis()) } else { format!("{:.2}s", d.as_secs_f64()) }
}

/// `$0.071234`: six decimals, enough for single requests of small models.
pub fn usd(amount: Decimal) -> String {
    format!("${:.6}", amount.round_dp(6))
}

#[expect(clippy::cast_precision_loss, reason = "a request count shown as a rate")]
fn count_f64(n: usize) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests;
