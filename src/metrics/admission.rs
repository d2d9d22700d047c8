//! The admission controller's metrics: what it decided and the state it decided from.
//!
//! Decisions are counted where they are made (rare: only waits, sheds and bad headers);
//! the state gauges are read from the controllers at scrape time, so the per-attempt
//! path touches no metric it would not touch without admission control.

use std::time::Duration;

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::admission::{Admission, WaitReason};

/// Admission waits: none, a rate-limit reset (seconds), a flex outage (minutes).
const QUEUED_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0];

pub struct AdmissionMetrics {
    /// model — the learned flex concurrency limit
    flex_limit: IntGaugeVec,
    /// model — requests waiting for admission
    queue_depth: IntGaugeVec,
    /// model — smallest free fraction of the upstream's rate limits (requests, tokens)
    headroom: GaugeVec,
    /// reason — time attempts waited for admission
    queued: HistogramVec,
    /// model, reason — attempts that had to wait
    throttled: IntCounterVec,
    /// model, reason (`deadline`, `retry_budget`) — requests admission gave up on
    shed: IntCounterVec,
    /// model — `x-ratelimit-*` header groups that made no sense
    bad_headers: IntCounterVec,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> prometheus::Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl AdmissionMetrics {
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let opts = Opts::new;
        Ok(Self {
            flex_limit: register(
                r,
                IntGaugeVec::new(opts("flexgate_admission_flex_limit", "Learned flex concurrency limit."), &["model"])?,
            )?,
            queue_depth: register(
                r,
                IntGaugeVec::new(
                    opts("flexgate_admission_queue_depth", "Requests waiting for admission."),
                    &["model"],
                )?,
            )?,
            headroom: register(
                r,
                GaugeVec::new(
                    opts("flexgate_admission_ratelimit_headroom", "Free fraction of the tightest upstream rate limit."),
                    &["model"],
                )?,
            )?,
            queued: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new("flexgate_admission_queued_seconds", "Time attempts waited for admission.")
                        .buckets(QUEUED_BUCKETS.to_vec()),
                    &["reason"],
                )?,
            )?,
            throttled: register(
                r,
                IntCounterVec::new(
                    opts("flexgate_admission_throttled_total", "Attempts held back by admission, by first reason."),
                    &["model", "reason"],
                )?,
            )?,
            shed: register(
                r,
                IntCounterVec::new(
                    opts("flexgate_admission_shed_total", "Requests admission gave up on (deadline, retry budget)."),
                    &["model", "reason"],
                )?,
            )?,
            bad_headers: register(
                r,
                IntCounterVec::new(
                    opts("flexgate_admission_bad_ratelimit_headers_total", "Unusable x-ratelimit-* header groups."),
                    &["model"],
                )?,
            )?,
        })
    }

    /// An attempt waited `waited` for admission, first because of `why`.
    pub fn wait(&self, model: &str, why: WaitReason, waited: Duration) {
        self.throttled.with_label_values(&[model, why.as_str()]).inc();
        self.queued.with_label_values(&[why.as_str()]).observe(waited.as_secs_f64());
    }

    pub fn shed(&self, model: &str, reason: &'static str) {
        self.shed.with_label_values(&[model, reason]).inc();
    }

    pub fn bad_headers(&self, model: &str, groups: u32) {
        self.bad_headers.with_label_values(&[model]).inc_by(u64::from(groups));
    }

    /// Copy every controller's state into the gauges (at scrape time).
    pub fn export(&self, admission: &Admission) {
        for model in admission.all() {
            let snap = model.snapshot();
            let name = model.name();
            self.flex_limit.with_label_values(&[name]).set(i64::from(snap.flex_limit));
            self.queue_depth.with_label_values(&[name]).set(i64::try_from(snap.queued).unwrap_or(i64::MAX));
            if let Some(h) = snap.headroom {
                self.headroom.with_label_values(&[name]).set(h);
            }
        }
    }
}
