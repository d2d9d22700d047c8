//! The retry loop with one admission controller shared by many requests, on paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{Attempter, GiveUp, Labels, Schedule, run};
use crate::admission::{Model, Settings};
use crate::metrics::Metrics;
use crate::routing::Plan;
use crate::tier::Tier;
use crate::upstream::classify::{Reason, Verdict};

const SCHEDULE: Schedule = Schedule {
    base_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(30),
    attempt_timeout: Duration::from_secs(900),
};

/// An upstream whose flex refuses everything until `flex_back`, and whose standard answers
/// `standard` (success unless told otherwise); every attempt takes 100 ms.
#[derive(Clone)]
struct Upstream {
    flex_back: Instant,
    standard: Verdict,
    flex_attempts: Arc<AtomicU32>,
    standard_attempts: Arc<AtomicU32>,
}

impl Upstream {
    fn new(flex_back: Instant) -> Self {
        Self { flex_back, standard: Verdict::Success, flex_attempts: Arc::default(), standard_attempts: Arc::default() }
    }
}

impl Attempter for Upstream {
    type Output = ();

    async fn attempt(&mut self, tier: Option<Tier>, cutoff: Instant) -> (Verdict, ()) {
        let sent = Instant::now();
        tokio::time::sleep_until((sent + Duration::from_millis(100)).min(cutoff)).await;
        if tier == Some(Tier::Flex) {
            self.flex_attempts.fetch_add(1, Ordering::Relaxed);
            if sent < self.flex_back {
                return (Verdict::Retry { reason: Reason::FlexCapacity, hint: None }, ());
            }
            return (Verdict::Success, ());
        }
        self.standard_attempts.fetch_add(1, Ordering::Relaxed);
        (self.standard, ())
    }

    fn unsent(&mut self, _why: &'static str) {}
}

fn plan(tier: Tier, deadline: u64, reserve: u64, max_attempts: u32, escalate: bool) -> Plan {
    Plan {
        class: 0,
        tier: Some(tier),
        tier_override: None,
        escalate,
        escalate_reserve: Duration::from_secs(reserve),
        deadline: Duration::from_secs(deadline),
        max_attempts,
        flex_ineligible: false,
    }
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

#[tokio::test(start_paused = true)]
async fn a_flex_outage_shorter_than_the_deadline_is_waited_out_on_flex() {
    let gate = leak(Model::new("gpt-5", Settings::default()));
    let metrics = leak(Metrics::new(&["background"]).unwrap());
    let start = Instant::now();
    let upstream = Upstream::new(start + Duration::from_secs(90));
    let plan = leak(plan(Tier::Flex, 600, 120, 8, true));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let mut upstream = upstream.clone();
            tokio::spawn(async move {
                let labels = Labels { class: "background", model: "gpt-5" };
                run(plan, Instant::now(), SCHEDULE, metrics, labels, gate, &mut upstream).await
            })
        })
        .collect();
    for task in tasks {
        let f = task.await.unwrap();
        assert_eq!((f.tier, f.verdict, f.escalated), (Some(Tier::Flex), Verdict::Success, false), "{f:?}");
        assert!(f.attempts <= 3, "waiting is not paid for in attempts: {f:?}");
    }
    // Each request's first refusal, then probes only: about one per backoff step.
    let flex = upstream.flex_attempts.load(Ordering::Relaxed);
    assert!(flex <= 20 + 10 + 20, "{flex} flex attempts");
    assert_eq!(upstream.standard_attempts.load(Ordering::Relaxed), 0);
    // Served once flex came back, well before the deadline.
    assert!(Instant::now() - start < Duration::from_secs(200));
}

#[tokio::test(start_paused = true)]
async fn past_the_retry_budget_a_request_fails_fast_or_escalates() {
    let mut settings = Settings::default();
    settings.budget.ratio = 0.0;
    settings.budget.floor_per_sec = 0.0;
    let gate = Model::new("gpt-5", settings);
    let metrics = Metrics::new(&["background"]).unwrap();
    let labels = Labels { class: "background", model: "gpt-5" };
    let mut upstream = Upstream::new(Instant::now());
    upstream.standard = Verdict::Retry { reason: Reason::ServerError, hint: None };
    let f =
        run(&plan(Tier::Standard, 600, 0, 5, false), Instant::now(), SCHEDULE, &metrics, labels, &gate, &mut upstream)
            .await;
    assert_eq!((f.attempts, f.gave_up), (1, Some(GiveUp::RetryBudget)));
    // A flex request that may escalate moves to standard instead of retrying flex.
    let mut flaky = Upstream::new(Instant::now() + Duration::from_secs(3600));
    let failing = Verdict::Retry { reason: Reason::ServerError, hint: None };
    flaky.standard = Verdict::Success;
    let mut script = FlexFails { inner: flaky, verdict: failing };
    let f =
        run(&plan(Tier::Flex, 600, 60, 5, true), Instant::now(), SCHEDULE, &metrics, labels, &gate, &mut script).await;
    assert_eq!((f.attempts, f.escalated, f.tier, f.verdict), (2, true, Some(Tier::Standard), Verdict::Success));
    assert_eq!(metrics.escalation("background", "gpt-5", "retry_budget").get(), 1);
}

/// Flex answers `verdict`; standard as `inner`.
struct FlexFails {
    inner: Upstream,
    verdict: Verdict,
}

impl Attempter for FlexFails {
    type Output = ();

    async fn attempt(&mut self, tier: Option<Tier>, cutoff: Instant) -> (Verdict, ()) {
        if tier == Some(Tier::Flex) {
            return (self.verdict, ());
        }
        self.inner.attempt(tier, cutoff).await
    }

    fn unsent(&mut self, _why: &'static str) {}
}

#[tokio::test(start_paused = true)]
async fn urgent_requests_are_not_held_by_a_closed_flex() {
    let gate = leak(Model::new("gpt-5", Settings::default()));
    let metrics = leak(Metrics::new(&["background", "interactive"]).unwrap());
    let start = Instant::now();
    let upstream = Upstream::new(start + Duration::from_secs(3600));
    let background = leak(plan(Tier::Flex, 600, 120, 8, true));
    for _ in 0..10 {
        let mut upstream = upstream.clone();
        tokio::spawn(async move {
            let labels = Labels { class: "background", model: "gpt-5" };
            run(background, Instant::now(), SCHEDULE, metrics, labels, gate, &mut upstream).await
        });
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(gate.snapshot().flex_closed);
    let mut upstream = upstream.clone();
    let labels = Labels { class: "interactive", model: "gpt-5" };
    let began = Instant::now();
    let f = run(&plan(Tier::Standard, 60, 0, 3, false), began, SCHEDULE, metrics, labels, gate, &mut upstream).await;
    assert_eq!((f.verdict, f.attempts, f.queued), (Verdict::Success, 1, Duration::ZERO));
    assert_eq!(Instant::now() - began, Duration::from_millis(100));
}
