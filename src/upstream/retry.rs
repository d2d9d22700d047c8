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
//! `max_attempts` caps attempts across both tiers. Billing 429s and other final answers
//! end the loop at once.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::backoff::delay;
use super::classify::{Reason, Verdict};
use crate::metrics::Metrics;
use crate::routing::Plan;
use crate::tier::{self, Tier};

/// One way of making an attempt; the gateway's is HTTP, tests script theirs.
pub trait Attempter {
    type Output;
    /// Make one attempt on `tier`, giving up at `cutoff`.
    fn attempt(&mut self, tier: Option<Tier>, cutoff: Instant) -> impl Future<Output = (Verdict, Self::Output)> + Send;
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
    /// Time spent waiting on the upstream (attempts and backoff), for the overhead metric.
    pub upstream_time: Duration,
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
    loop {
        attempts += 1;
        let flexing = tier == Some(Tier::Flex) && plan.escalate;
        let began = Instant::now();
        let cutoff = if flexing { escalate_at } else { deadline }.min(began + schedule.attempt_timeout);
        // The answer lives in a block that ends before the backoff sleep: rustc keeps a
        // local's storage in the future until its scope ends, and this future is part of
        // every held request's.
        let wait = {
            let (verdict, output) = attempter.attempt(tier, cutoff).await;
            let now = Instant::now();
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

#[cfg(test)]
mod tests;
