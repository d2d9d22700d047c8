//! The batches' metrics (`crate::batch`): how many run, how they ended, their lines, and
//! what the lines cost and saved. Written per line and per batch, never on the request
//! path of a client's own request.

use prometheus::{Counter, IntCounterVec, IntGauge, Opts, Registry};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;

/// The `status` label values of `flexgate_batches_total`: OpenAI's final statuses.
pub const BATCH_ENDS: [&str; 4] = ["completed", "failed", "expired", "cancelled"];
/// The `result` label values of `flexgate_batch_lines_total`: the output or the error file.
pub const LINE_RESULTS: [&str; 2] = ["completed", "failed"];

pub struct BatchMetrics {
    /// Batch runners working in this process now.
    running: IntGauge,
    /// status — batches that reached a final status
    ended: IntCounterVec,
    /// result — lines written to the output (`completed`) or the error file (`failed`)
    lines: IntCounterVec,
    /// USD the lines cost, priced at the tier each answer reports
    cost: Counter,
    /// USD the lines saved against the standard tier
    savings: Counter,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> prometheus::Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl BatchMetrics {
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            running: register(r, IntGauge::new("flexgate_batches_running", "Batches running in this process.")?)?,
            ended: register(
                r,
                IntCounterVec::new(Opts::new("flexgate_batches_total", "Batches that ended, by status."), &["status"])?,
            )?,
            lines: register(
                r,
                IntCounterVec::new(
                    Opts::new("flexgate_batch_lines_total", "Batch lines finished, by the file they went to."),
                    &["result"],
                )?,
            )?,
            cost: register(r, Counter::new("flexgate_batch_cost_usd_total", "Cost of batch lines in USD.")?)?,
            savings: register(
                r,
                Counter::new("flexgate_batch_savings_usd_total", "USD batch lines saved against the standard tier.")?,
            )?,
        };
        for status in BATCH_ENDS {
            m.ended.with_label_values(&[status]);
        }
        for result in LINE_RESULTS {
            m.lines.with_label_values(&[result]);
        }
        Ok(m)
    }

    pub fn started(&self) {
        self.running.inc();
    }

    pub fn stopped(&self) {
        self.running.dec();
    }

    /// A batch reached `status`; other values are not counted (the label set is closed).
    pub fn ended(&self, status: &str) {
        if BATCH_ENDS.contains(&status) {
            self.ended.with_label_values(&[status]).inc();
        }
    }

    /// One line finished, with its cost and savings.
    pub fn line(&self, ok: bool, cost: Decimal, savings: Decimal) {
        self.lines.with_label_values(&[LINE_RESULTS[usize::from(!ok)]]).inc();
        self.cost.inc_by(cost.to_f64().unwrap_or(0.0).max(0.0));
        self.savings.inc_by(savings.to_f64().unwrap_or(0.0).max(0.0));
    }
}
