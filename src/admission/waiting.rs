//! Waiting for admission: a waiter's place in the model's queues (taken on entry, given
//! back on drop, so a request whose client went away leaves at once) and the loop that
//! looks again whenever the model changes or the decision's own moment comes.

use tokio::time::Instant;

use super::decide::{Step, latest_safe_start};
use super::queue::Ticket;
use super::{Admitted, Ask, Model, State, WaitReason};
use crate::tier::Tier;

// === impl Model ===

impl Model {
    pub(super) async fn wait(&self, ask: Ask, why: WaitReason, began: Instant) -> Admitted<'_> {
        let mut waiting = Waiting::enter(self, &ask, began);
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let step = self.decide(&ask, waiting.ticket, now);
            let Step::Wait { until, .. } = step else {
                let admit = self.finish(step, &ask, Some(&mut waiting), now);
                return Admitted { admit, waited: now - began, why: Some(why) };
            };
            let bound = self.bound(&ask);
            let wake = until.map_or(bound, |u| u.min(bound));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

/// A waiter's place: a queue entry (background) or the urgent count; removed on drop.
pub(super) struct Waiting<'a> {
    model: &'a Model,
    ticket: Option<Ticket>,
    flex: bool,
    urgent: bool,
}

impl<'a> Waiting<'a> {
    pub(super) fn enter(model: &'a Model, ask: &Ask, now: Instant) -> Self {
        let mut state = model.state.lock();
        let flex = ask.tier == Some(Tier::Flex);
        let ticket = if ask.urgent {
            state.urgent_waiting += 1;
            None
        } else {
            let key = if flex { latest_safe_start(ask, state.standard_latency) } else { ask.deadline };
            let queue = if flex { &mut state.flex_queue } else { &mut state.background_queue };
            Some(queue.push(key.max(now)))
        };
        Self { model, ticket, flex, urgent: ask.urgent }
    }

    /// Leave the queue (once); whether there was a place to leave.
    pub(super) fn leave(&mut self, state: &mut State) -> bool {
        if self.urgent {
            self.urgent = false;
            state.urgent_waiting = state.urgent_waiting.saturating_sub(1);
            return true;
        }
        let Some(ticket) = self.ticket.take() else {
            return false;
        };
        let queue = if self.flex { &mut state.flex_queue } else { &mut state.background_queue };
        queue.remove(ticket);
        true
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let left = self.leave(&mut self.model.state.lock());
        if left {
            self.model.notify.notify_waiters();
        }
    }
}
