//! The controller's state and its one decision: given where the model stands (rate limit,
//! flex capacity, the queues, the shutdown drain) and one attempt's ask, go, wait (until
//! when, and why), move to standard, or give up. Pure bookkeeping under the model's lock,
//! taken briefly and never held across an await.

use std::time::Duration;

use tokio::time::Instant;

use super::flex::FlexGate;
use super::queue::Ticket;
use super::rate::Gate;
use super::waiting::Waiting;
use super::{Admit, Ask, Model, Permit, State, WaitReason};
use crate::tier::Tier;

/// One decision of the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Go { probe: bool },
    Wait { until: Option<Instant>, why: WaitReason },
    Escalate,
    Expired,
}

// === impl Model ===

impl Model {
    /// The moment the asker stops waiting in any case: its latest safe start on flex, else
    /// its deadline (or the shutdown drain's end).
    pub(super) fn bound(&self, ask: &Ask) -> Instant {
        let state = self.state.lock();
        let deadline = state.drain_until.map_or(ask.deadline, |d| d.min(ask.deadline));
        if ask.tier == Some(Tier::Flex) && ask.may_escalate {
            latest_safe_start(ask, state.standard_latency).min(deadline)
        } else {
            deadline
        }
    }

    pub(super) fn decide(&self, ask: &Ask, ticket: Option<Ticket>, now: Instant) -> Step {
        let mut state = self.state.lock();
        let state = &mut *state;
        let flex = ask.tier == Some(Tier::Flex);
        let deadline = state.drain_until.map_or(ask.deadline, |d| d.min(ask.deadline));
        if flex
            && ask.may_escalate
            && (state.drain_until.is_some() || now >= latest_safe_start(ask, state.standard_latency))
        {
            return Step::Escalate;
        }
        if now >= deadline {
            return Step::Expired;
        }
        if !ask.urgent && state.urgent_waiting > 0 {
            return Step::Wait { until: None, why: WaitReason::Headroom };
        }
        let blocked = state.rate.is_blocked(now);
        if let Gate::WaitUntil(t) = state.rate.gate(ask.urgent, self.settings.headroom, now) {
            let why = if blocked { WaitReason::RateLimit } else { WaitReason::Headroom };
            return Step::Wait { until: Some(t), why };
        }
        if ask.urgent {
            return Step::Go { probe: false };
        }
        let queue = if flex { &state.flex_queue } else { &state.background_queue };
        if !flex {
            return if queue.is_first(ticket) {
                Step::Go { probe: false }
            } else {
                Step::Wait { until: None, why: WaitReason::Headroom }
            };
        }
        // A probe goes to the waiter that has waited longest; a refused prober queues again
        // behind the others, so probes rotate and no one request spends its attempts on
        // them. Everything else goes in deadline order.
        let closed = state.flex.is_closed();
        if let Some(first) = queue.first_key() {
            state.flex.probe_by(first, now);
        }
        let eligible = if closed { queue.is_oldest(ticket) } else { queue.is_first(ticket) };
        match state.flex.gate(now, self.coin, eligible) {
            FlexGate::Go { probe } if eligible => Step::Go { probe },
            FlexGate::Go { .. } => Step::Wait { until: None, why: WaitReason::FlexLimit },
            FlexGate::WaitUntil(until) => {
                Step::Wait { until, why: if closed { WaitReason::FlexClosed } else { WaitReason::FlexLimit } }
            }
            FlexGate::Throttled(until) => Step::Wait { until: Some(until), why: WaitReason::FlexThrottled },
        }
    }

    /// Turn a final step into the caller's answer: leave the queue and count an attempt
    /// that goes under one lock, so the next in line sees both.
    pub(super) fn finish(&self, step: Step, ask: &Ask, waiting: Option<&mut Waiting<'_>>, now: Instant) -> Admit<'_> {
        let mut state = self.state.lock();
        let left = waiting.is_some_and(|w| w.leave(&mut state));
        let admit = match step {
            Step::Go { probe } => {
                state.rate.take(now);
                let flex = ask.tier == Some(Tier::Flex);
                if flex {
                    state.flex.sent(probe, now);
                }
                if ask.first {
                    state.budget.first_attempt(now);
                }
                Admit::Go(Permit::new(self, ask.tier, probe))
            }
            Step::Escalate => Admit::Escalate,
            Step::Expired | Step::Wait { .. } => Admit::Expired,
        };
        drop(state);
        if left {
            // The next in line may be able to go now.
            self.notify.notify_waiters();
        }
        admit
    }

    pub(super) fn waiters(state: &State) -> bool {
        state.urgent_waiting > 0 || !state.flex_queue.is_empty() || !state.background_queue.is_empty()
    }
}

pub(super) fn latest_safe_start(ask: &Ask, standard_latency: Duration) -> Instant {
    ask.escalate_at.checked_sub(standard_latency).unwrap_or(ask.escalate_at)
}
