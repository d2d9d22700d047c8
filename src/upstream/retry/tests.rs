//! The retry schedule on paused time, against scripted upstream answers.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::{Attempter, Finished, GiveUp, Labels, Schedule, run};
use crate::admission::{Model, Settings};
use crate::metrics::{AttemptResult, Metrics};
use crate::routing::Plan;
use crate::tier::Tier;
use crate::upstream::classify::{Reason, Verdict};

/// One scripted upstream answer: how long it takes and what it is.
#[derive(Debug, Clone, Copy)]
struct Step {
    takes: Duration,
    verdict: Verdict,
}

#[derive(Default)]
struct Script {
    steps: VecDeque<Step>,
    seen: Vec<(Option<Tier>, Instant)>,
    returned: Vec<Verdict>,
    /// Answer every standard attempt with success (flex keeps following the script).
    standard_ok: bool,
}

impl Attempter for Script {
    type Output = ();
    async fn attempt(&mut self, tier: Option<Tier>, cutoff: Instant) -> (Verdict, ()) {
        self.seen.push((tier, Instant::now()));
        let mut step = self.steps.pop_front().unwrap_or(Step { takes: Duration::ZERO, verdict: Verdict::Success });
        if self.standard_ok && tier == Some(Tier::Standard) {
            step = ok(100);
        }
        let answer_at = Instant::now() + step.takes;
        if answer_at > cutoff {
            tokio::time::sleep_until(cutoff).await;
            self.returned.push(Verdict::Retry { reason: Reason::Timeout, hint: None });
            return (Verdict::Retry { reason: Reason::Timeout, hint: None }, ());
        }
        tokio::time::sleep_until(answer_at).await;
        self.returned.push(step.verdict);
        (step.verdict, ())
    }

    fn unsent(&mut self, _why: &'static str) {}
}

fn flex_plan(deadline: u64, reserve: u64, max_attempts: u32, escalate: bool) -> Plan {
    Plan {
        class: 0,
        tier: Some(Tier::Flex),
        tier_override: Some("flex"),
        escalate,
        escalate_reserve: Duration::from_secs(reserve),
        deadline: Duration::from_secs(deadline),
        max_attempts,
        flex_ineligible: false,
    }
}

const SCHEDULE: Schedule = Schedule {
    base_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(30),
    attempt_timeout: Duration::from_secs(900),
};

fn capacity() -> Step {
    Step { takes: Duration::from_millis(100), verdict: Verdict::Retry { reason: Reason::FlexCapacity, hint: None } }
}

fn ok(ms: u64) -> Step {
    Step { takes: Duration::from_millis(ms), verdict: Verdict::Success }
}

async fn drive(plan: &Plan, steps: Vec<Step>) -> (Finished<()>, Script, Duration, Metrics) {
    drive_with(plan, Script { steps: steps.into(), ..Script::default() }).await
}

async fn drive_with(plan: &Plan, mut script: Script) -> (Finished<()>, Script, Duration, Metrics) {
    let metrics = Metrics::new(&["background"]).unwrap();
    // A controller of its own per request: these tests are about one request's schedule.
    let gate = Model::new("gpt-5", Settings::default());
    let start = Instant::now();
    let labels = Labels { class: "background", model: "gpt-5" };
    let finished = run(plan, start, SCHEDULE, &metrics, labels, &gate, &mut script).await;
    let took = start.elapsed();
    (finished, script, took, metrics)
}

#[tokio::test(start_paused = true)]
async fn flex_success_first_try() {
    let (f, s, _, _) = drive(&flex_plan(60, 20, 5, true), vec![ok(300)]).await;
    assert_eq!((f.attempts, f.escalated, f.tier, f.gave_up), (1, false, Some(Tier::Flex), None));
    assert_eq!(s.seen.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn capacity_429s_are_retried_then_succeed_on_flex() {
    let (f, s, _, m) = drive(&flex_plan(600, 60, 8, true), vec![capacity(), capacity(), ok(100)]).await;
    assert_eq!((f.attempts, f.escalated, f.tier), (3, false, Some(Tier::Flex)));
    assert!(s.seen.iter().all(|(t, _)| *t == Some(Tier::Flex)));
    assert_eq!(m.retry(Some(Tier::Flex), "flex_capacity").get(), 2);
}

#[tokio::test(start_paused = true)]
async fn persistent_capacity_escalates_before_the_deadline() {
    let plan = flex_plan(20, 5, 100, true);
    let script = Script { steps: vec![capacity(); 1000].into(), standard_ok: true, ..Script::default() };
    let (f, s, took, m) = drive_with(&plan, script).await;
    assert!(f.escalated, "{f:?}");
    assert_eq!((f.tier, f.verdict), (Some(Tier::Standard), Verdict::Success));
    let (first_standard, at) = *s.seen.iter().find(|(t, _)| *t == Some(Tier::Standard)).unwrap();
    assert_eq!(first_standard, Some(Tier::Standard));
    assert!(at.duration_since(s.seen[0].1) <= Duration::from_secs(15), "escalated after the reserve began");
    assert!(took <= Duration::from_secs(20));
    let by = |reason| m.escalation("background", "gpt-5", reason).get();
    assert_eq!(by("flex_capacity") + by("deadline"), 1);
}

#[tokio::test(start_paused = true)]
async fn slow_flex_is_abandoned_at_deadline_minus_reserve() {
    let plan = flex_plan(30, 10, 5, true);
    let (f, s, took, m) = drive(&plan, vec![ok(25_000), ok(1_000)]).await;
    assert_eq!((f.attempts, f.escalated, f.tier, f.verdict), (2, true, Some(Tier::Standard), Verdict::Success));
    assert_eq!(s.seen[1].1.duration_since(s.seen[0].1), Duration::from_secs(20));
    assert_eq!(took, Duration::from_secs(21));
    assert_eq!(m.escalation("background", "gpt-5", "deadline").get(), 1);
    assert_eq!(m.upstream_attempt(Some(Tier::Flex), AttemptResult::Timeout).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn billing_is_never_retried_or_escalated() {
    let billing = Step { takes: Duration::from_millis(50), verdict: Verdict::Final { result: AttemptResult::Billing } };
    let (f, s, _, _) = drive(&flex_plan(600, 60, 8, true), vec![billing]).await;
    assert_eq!((f.attempts, f.escalated, s.seen.len()), (1, false, 1));
    assert!(f.verdict.is_billing());
}

#[tokio::test(start_paused = true)]
async fn never_escalate_gives_up_with_flex_unavailable() {
    let (f, s, took, _) = drive(&flex_plan(10, 2, 100, false), vec![capacity(); 1000]).await;
    assert_eq!(f.gave_up, Some(GiveUp::FlexUnavailable));
    assert!(!f.escalated && s.seen.iter().all(|(t, _)| *t == Some(Tier::Flex)));
    assert!(took <= Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn never_escalate_cut_by_the_deadline_after_capacity_is_still_flex_unavailable() {
    // The last attempt ends in a timeout at the deadline, not a 429: the request still failed
    // for want of flex capacity, and must say so (this was once a random 504 instead).
    let (f, s, took, _) = drive(&flex_plan(10, 2, 100, false), vec![capacity(), ok(60_000)]).await;
    assert_eq!((f.gave_up, s.seen.len()), (Some(GiveUp::FlexUnavailable), 2));
    assert_eq!(s.returned[1], Verdict::Retry { reason: Reason::Timeout, hint: None });
    assert_eq!(took, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn never_escalate_without_capacity_answers_is_a_plain_deadline() {
    let (f, _, _, _) = drive(&flex_plan(10, 2, 100, false), vec![ok(60_000)]).await;
    assert_eq!(f.gave_up, Some(GiveUp::Deadline));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_hints_are_honoured() {
    let rl = Step {
        takes: Duration::ZERO,
        verdict: Verdict::Retry { reason: Reason::RateLimit, hint: Some(Duration::from_secs(7)) },
    };
    let mut plan = flex_plan(600, 60, 3, false);
    plan.tier = Some(Tier::Standard);
    let (f, s, _, _) = drive(&plan, vec![rl, ok(0)]).await;
    assert_eq!(f.attempts, 2);
    assert_eq!(s.seen[1].1.duration_since(s.seen[0].1), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn a_hint_past_the_deadline_is_not_waited_for() {
    let rl = Step {
        takes: Duration::ZERO,
        verdict: Verdict::Retry { reason: Reason::RateLimit, hint: Some(Duration::from_secs(120)) },
    };
    let mut plan = flex_plan(60, 10, 3, false);
    plan.tier = Some(Tier::Standard);
    let (f, _, took, _) = drive(&plan, vec![rl]).await;
    assert_eq!((f.attempts, f.gave_up), (1, Some(GiveUp::Deadline)));
    assert_eq!(took, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_caps_standard_retries() {
    let err =
        Step { takes: Duration::from_millis(10), verdict: Verdict::Retry { reason: Reason::ServerError, hint: None } };
    let mut plan = flex_plan(600, 60, 3, false);
    plan.tier = Some(Tier::Standard);
    let (f, s, _, _) = drive(&plan, vec![err; 10]).await;
    assert_eq!((f.attempts, s.seen.len(), f.gave_up), (3, 3, Some(GiveUp::Attempts)));
}

fn arb_step() -> impl Strategy<Value = Step> {
    let verdict = prop_oneof![
        Just(Verdict::Success),
        Just(Verdict::Final { result: AttemptResult::Billing }),
        Just(Verdict::Final { result: AttemptResult::ClientError }),
        Just(Verdict::Retry { reason: Reason::FlexCapacity, hint: None }),
        Just(Verdict::Retry { reason: Reason::ServerError, hint: None }),
        Just(Verdict::Retry { reason: Reason::ConnectError, hint: None }),
        (0u64..200_000)
            .prop_map(|ms| Verdict::Retry { reason: Reason::RateLimit, hint: Some(Duration::from_millis(ms)) }),
    ];
    (0u64..400_000, verdict).prop_map(|(ms, verdict)| Step { takes: Duration::from_millis(ms), verdict })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// For any scripted answers: the request ends by its deadline, makes at most
    /// `max_attempts` attempts, and never retries a billing 429.
    #[test]
    fn ends_by_deadline_within_attempts(
        steps in prop::collection::vec(arb_step(), 1..20),
        deadline in 1u64..1200,
        reserve in 0u64..600,
        max_attempts in 2u32..12,
        escalate in any::<bool>(),
        flex in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let mut plan = flex_plan(deadline, reserve.min(deadline / 2), max_attempts, escalate && flex);
        if !flex { plan.tier = Some(Tier::Standard); }
        let (f, s, took, _) = runtime.block_on(drive(&plan, steps.clone()));
        prop_assert!(took <= plan.deadline, "took {took:?} > {:?}", plan.deadline);
        prop_assert!(f.attempts <= max_attempts);
        prop_assert_eq!(s.seen.len(), f.attempts as usize);
        // An answer followed by another attempt was never a billing 429.
        for (i, v) in s.returned.iter().enumerate().take(s.returned.len().saturating_sub(1)) {
            prop_assert!(!v.is_billing(), "billing retried at {}", i);
        }
    }
}
