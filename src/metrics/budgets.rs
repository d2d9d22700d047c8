//! Budget metrics per client: the limit, the spend and what is left of the current
//! period, the soft limit, refused requests, and streams charged at an estimate. The
//! gauges are read from the accounts at scrape time, so the request path touches only
//! the counters, and only when it refuses or estimates. `client` comes from the
//! configured budgets, a closed set.

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

use crate::budgets::{Budgets, NANOS_PER_USD, now_secs};

/// How a stream charged at an estimate ended: the client went away, the upstream cut it
/// (or failed it mid-stream), or it completed without reporting usage.
pub const ENDS: [&str; 3] = ["abandoned", "cut", "no_usage"];

pub struct BudgetMetrics {
    /// client
    limit: GaugeVec,
    /// client
    soft_limit: GaugeVec,
    /// client — settled spend in the current period
    spend: GaugeVec,
    /// client — held by requests in flight
    reserved: GaugeVec,
    /// client — limit minus spend and reservations, never below zero
    remaining: GaugeVec,
    /// client
    refused: IntCounterVec,
    /// client, end (`abandoned`, `cut`, `no_usage`) — streams charged at an estimate
    estimated: IntCounterVec,
    /// client — USD charged at estimates
    estimated_usd: prometheus::CounterVec,
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<GaugeVec> {
    let g = GaugeVec::new(Opts::new(name, help), &["client"])?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

#[expect(clippy::cast_precision_loss, reason = "gauges in USD: a nano-dollar is far below a float's step here")]
fn dollars(nanos: u64) -> f64 {
    nanos as f64 / NANOS_PER_USD as f64
}

impl BudgetMetrics {
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let refused = IntCounterVec::new(
            Opts::new("flexgate_budget_refused_total", "Requests refused because the client's budget was used up."),
            &["client"],
        )?;
        r.register(Box::new(refused.clone()))?;
        let estimated = IntCounterVec::new(
            Opts::new(
                "flexgate_budget_estimated_total",
                "Streams that ended without usage, charged to the client's budget at an estimate.",
            ),
            &["client", "end"],
        )?;
        r.register(Box::new(estimated.clone()))?;
        let estimated_usd = prometheus::CounterVec::new(
            Opts::new("flexgate_budget_estimated_usd_total", "USD charged to the client's budget at estimates."),
            &["client"],
        )?;
        r.register(Box::new(estimated_usd.clone()))?;
        Ok(Self {
            limit: gauge(r, "flexgate_budget_limit_usd", "The client's budget per period, in USD.")?,
            soft_limit: gauge(r, "flexgate_budget_soft_limit_usd", "The client's soft limit, in USD (0: none).")?,
            spend: gauge(r, "flexgate_budget_spend_usd", "Spend settled in the client's current period, in USD.")?,
            reserved: gauge(r, "flexgate_budget_reserved_usd", "USD held by the client's requests in flight.")?,
            remaining: gauge(r, "flexgate_budget_remaining_usd", "USD left in the client's current period.")?,
            refused,
            estimated,
            estimated_usd,
        })
    }

    /// Create every budgeted client's series, with its current values.
    pub fn prime(&self, budgets: &Budgets) {
        for b in budgets.iter() {
            let client = b.limits().client.as_str();
            self.refused.with_label_values(&[client]);
            for end in ENDS {
                self.estimated.with_label_values(&[client, end]);
            }
            self.estimated_usd.with_label_values(&[client]);
        }
        self.export(budgets);
    }

    /// A request of `client` was refused.
    pub fn refused(&self, client: &str) {
        self.refused.with_label_values(&[client]).inc();
    }

    /// A stream of `client` that ended (`end`, one of [`ENDS`]) without usage was
    /// charged `nanos` at an estimate.
    pub fn estimated(&self, client: &str, end: &str, nanos: u64) {
        self.estimated.with_label_values(&[client, end]).inc();
        self.estimated_usd.with_label_values(&[client]).inc_by(dollars(nanos));
    }

    /// Copy every account into the gauges (at scrape time).
    pub fn export(&self, budgets: &Budgets) {
        let now = now_secs();
        for b in budgets.iter() {
            let client = [b.limits().client.as_str()];
            let balance = b.balance(now);
            self.limit.with_label_values(&client).set(dollars(balance.limit));
            self.soft_limit.with_label_values(&client).set(dollars(balance.soft.unwrap_or(0)));
            self.spend.with_label_values(&client).set(dollars(balance.spent));
            self.reserved.with_label_values(&client).set(dollars(balance.reserved));
            self.remaining.with_label_values(&client).set(dollars(balance.remaining()));
        }
    }
}
