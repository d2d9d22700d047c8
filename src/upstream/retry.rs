//! The one retry loop in the crate: attempts, backoff sleeps and flex → standard escalation,
//! all bounded by the request's deadline.
//!
//! Schedule for a flex request that may escalate (deadline `D`, reserve `R`):
//! - each flex attempt is abandoned at `D - R`;
//! - after a retryable failure, flex is tried again only while `now + wait + R <= D`
//!   and an attempt is still left for standard; otherwise the request moves to
//!   standard at once (a rate-limit hint is still honoured, since limits are shared);
//! - the standard attempt, and every attempt of a non-escalating plan, runs until `D`.
//!
//! A wait that would end past the deadline is never started: the loop gives up instead.
//! `max_attempts` caps attempts across both tiers (attempts actually sent). Billing 429s
//! and other final answers end the loop at once.
//!
//! Every attempt first asks the model's admission controller (shared by all requests):
//! it may wait (a rate-limit reset, the headroom kept for urgent requests, flex closed or
//! at its learned limit), move a flex request to standard at its latest safe start, or
//! give up at the deadline; each answer is reported back to it. Retries other than flex
//! capacity ones (which flex control paces) are drawn from the model's retry budget: past
//! it, a flex request escalates and any other fails fast, telling its client when a retry
//! is likely to fit again (`retry-after`) and not to retry on its own (`x-should-retry:
//! false`).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use http::HeaderMap;

use super::backoff::delay;
use super::classify::{Reason, Verdict};
use crate::admission::{Model, WaitReason};
use crate::metrics::Metrics;
use crate::routing::Plan;
use crate::tier::{self, Tier};
use admit::{Asking, Next, Queued};

/// One way of making an attempt; the gateway's is HTTP, tests script theirs.
pub trait Attempter {
    type Output;
    /// Make one attempt on `tier`, giving up at `cutoff`.
    fn attempt(&mut self, tier: Option<Tier>, cutoff: Instant) -> impl Future<Output = (Verdict, Self::Output)> + Send;
    /// The answer's headers, for the admission controller (`x-ratelimit-*`).
    fn headers(_output: &Self::Output) -> Option<&HeaderMap> {
        None
    }
    /// The output when no attempt could be sent (`why` is safe to show a client).
    fn unsent(&mut self, why: &'static str) -> Self::Output;
}

/// Backoff settings and the per-attempt ceiling.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub attempt_timeout: Duration,
}

/// Why the loop stopped without an answer worth passing on as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The deadline left no room for another attempt.
    Deadline,
    /// Flex answered "no capacity" and the plan, which may not escalate, ran out of time or
    /// attempts on flex (whatever its last attempt saw: a 429 or a cut at the deadline).
    FlexUnavailable,
    /// `max_attempts` were spent.
    Attempts,
    /// The model's retry budget is spent and the class may not escalate.
    RetryBudget,
}

#[derive(Debug)]
pub struct Finished<O> {
    pub output: O,
    pub verdict: Verdict,
    pub attempts: u32,
    pub escalated: bool,
    /// The tier of the last attempt.
    pub tier: Option<Tier>,
    pub gave_up: Option<GiveUp>,
    /// Time spent waiting on the upstream (attempts, backoff and admission), for the
    /// overhead metric.
    pub upstream_time: Duration,
    /// Time spent waiting for admission, and why it first had to.
    pub queued: Duration,
    pub queued_why: Option<WaitReason>,
    /// Past the retry budget: how long until a retry is likely to fit again (the
    /// client's `retry-after`).
    pub retry_after: Option<Duration>,
}

impl<O> Finished<O> {
    /// No attempt could be admitted in time: `progress` is (attempts, escalated, tier).
    fn unsent(
        output: O,
        progress: (u32, bool, Option<Tier>),
        why: GiveUp,
        upstream_time: Duration,
        queued: Queued,
    ) -> Self {
        Self {
            output,
            verdict: Verdict::Retry { reason: Reason::Timeout, hint: None },
            attempts: progress.0,
            escalated: progress.1,
            tier: progress.2,
            gave_up: Some(why),
            upstream_time,
            queued: queued.total(),
            queued_why: queued.why,
            retry_after: None,
        }
    }
}

/// Labels the loop's metrics carry.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub class: &'a str,
    pub model: &'a str,
}

/// Run attempts until success, a final answer, or the plan's budget is spent.
pub async fn run<A: Attempter>(
    plan: &Plan,
    start: Instant,
    schedule: Schedule,
    metrics: &Metrics,
    labels: Labels<'_>,
    gate: &Model,
    attempter: &mut A,
) -> Finished<A::Output> {
    let deadline = start + plan.deadline;
    let escalate_at = deadline.checked_sub(plan.escalate_reserve).unwrap_or(start).max(start);
    let mut tier = plan.tier;
    let mut attempts = 0_u32;
    let mut escalated = false;
    let mut upstream_time = Duration::ZERO;
    // Whether flex answered "no capacity" at least once: a non-escalating flex request that
    // then runs out of time or attempts failed for want of flex, whatever its last attempt saw.
    let mut saw_capacity = false;
    let mut queued = Queued::default();
    loop {
        let flexing = tier == Some(Tier::Flex) && plan.escalate;
        // In a block: a local's storage stays in the future until its scope ends, and this
        // one must not stay for the attempt.
        let next = async {
            let asking = Asking { plan, tier, attempts, escalate_at, deadline, saw_capacity };
            admit::next(gate, &asking, metrics, labels, &mut queued, &mut upstream_time).await
        };
        let permit = match next.await {
            Next::Go(permit) => permit,
            Next::Escalate => {
                escalated = true;
                tier = Some(Tier::Standard);
                continue;
            }
            Next::GiveUp(why) => {
                let output = attempter.unsent("no upstream attempt could be admitted before the deadline");
                return Finished::unsent(output, (attempts, escalated, tier), why, upstream_time, queued);
            }
        };
        attempts += 1;
        let began = Instant::now();
        let cutoff = if flexing { escalate_at } else { deadline }.min(began + schedule.attempt_timeout);
        // The answer lives in a block that ends before the backoff sleep: rustc keeps a
        // local's storage in the future until its scope ends, and this future is part of
        // every held request's.
        let wait = {
            let (verdict, output) = attempter.attempt(tier, cutoff).await;
            let now = Instant::now();
            let reported = permit.report(verdict.answered(), A::headers(&output), now - began);
            if reported.bad_headers > 0 {
                metrics.admission.bad_headers(labels.model, reported.bad_headers);
            }
            upstream_time += now - began;
            metrics.upstream_attempt(tier, verdict.result()).inc();
            let finish = |gave_up, upstream_time| Finished {
                output,
                verdict,
                attempts,
                escalated,
                tier,
                gave_up,
                upstream_time,
                queued: queued.total(),
                queued_why: queued.why,
                retry_after: None,
            };
            let Verdict::Retry { reason, hint } = verdict else {
                return finish(None, upstream_time);
            };
            saw_capacity |= tier == Some(Tier::Flex) && reason == Reason::FlexCapacity;
            let starved = |why| if saw_capacity && tier == Some(Tier::Flex) { GiveUp::FlexUnavailable } else { why };
            let unit: f64 = rand::random();
            let wait = delay(attempts - 1, schedule.base_delay, schedule.max_delay, hint, unit);
            if flexing && !flex_may_retry(now + wait, escalate_at, attempts, plan.max_attempts) {
                // Move to standard now; a rate-limit hint still applies, limits are shared.
                let pause = if reason == Reason::RateLimit { hint.unwrap_or_default() } else { Duration::ZERO };
                if now + pause >= deadline {
                    return finish(Some(GiveUp::Deadline), upstream_time);
                }
                metrics.escalation(labels.class, labels.model, escalation_reason(reason, now, escalate_at)).inc();
                tracing::debug!(attempt = attempts, reason = reason.as_str(), "escalating flex to standard");
                escalated = true;
                tier = Some(Tier::Standard);
                pause
            } else {
                if !flexing && attempts >= plan.max_attempts {
                    return finish(Some(starved(GiveUp::Attempts)), upstream_time);
                } else if !flexing && now + wait >= deadline {
                    return finish(Some(starved(GiveUp::Deadline)), upstream_time);
                }
                if let Some(retry_after) = admit::over_budget(gate, reason, now, metrics, labels) {
                    if !flexing {
                        let retry_after = Some(retry_after);
                        return Finished { retry_after, ..finish(Some(GiveUp::RetryBudget), upstream_time) };
                    }
                    metrics.escalation(labels.class, labels.model, "retry_budget").inc();
                    escalated = true;
                    tier = Some(Tier::Standard);
                    continue;
                }
                metrics.retry(tier, reason.as_str()).inc();
                tracing::debug!(
                    attempt = attempts,
                    tier = tier::label(tier),
                    reason = reason.as_str(),
                    delay_ms = wait.as_millis(),
                    "retrying"
                );
                wait
            }
        };
        sleep(wait, &mut upstream_time).await;
    }
}

/// Whether flex gets another attempt: the retry would begin before the escalation point,
/// and after it an attempt would still be left for standard.
fn flex_may_retry(resume: Instant, escalate_at: Instant, attempts: u32, max_attempts: u32) -> bool {
    resume < escalate_at && attempts + 1 < max_attempts
}

/// An escalation forced by the clock is labelled `deadline`, otherwise by the failure.
fn escalation_reason(reason: Reason, now: Instant, escalate_at: Instant) -> &'static str {
    if now >= escalate_at { "deadline" } else { reason.as_str() }
}

async fn sleep(wait: Duration, upstream_time: &mut Duration) {
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
        *upstream_time += wait;
    }
}

mod admit;
#[cfg(test)]
mod shared_tests;

#[cfg(test)]
mod tests;
