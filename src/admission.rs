//! Admission control: one view of the upstream per model, shared by every request of the
//! process (the proxy path, and anything else that sends attempts, such as flex batches).
//!
//! Requests do not retry on their own judgement alone. Before each attempt the retry loop
//! asks [`Model::admit`]; after it, the attempt's [`Permit`] reports the answer. The model
//! keeps:
//! - the upstream's rate limit (`rate`): after a rate-limit 429 every request waits for the
//!   reset once; background work (flex attempts, retries, escalations of background
//!   classes) leaves `headroom` of the limit to urgent first attempts, which never queue
//!   behind background ones;
//! - flex capacity (`flex`): a learned concurrency limit, local throttling and closing
//!   with one probe per backoff step;
//! - a deadline-ordered queue: a flex request that cannot go waits, ordered by its latest
//!   safe start (the moment it must move to standard to still meet its deadline), and is
//!   moved to standard then; background standard attempts wait in their own queue, in
//!   deadline order, so they are released one by one rather than all at once;
//! - the retry budget (`budget`).
//!
//! Everything is a plain state machine behind one short-held lock (never across an
//! await). An uncontended attempt costs a hash lookup done once per request, a lock and a
//! few comparisons, with no allocation; waiting costs a queue entry.

mod budget;
mod flex;
mod queue;
mod rate;

use std::collections::HashMap;
use std::time::Duration;

use http::HeaderMap;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::tier::Tier;
pub use budget::BudgetSettings;
pub use flex::FlexSettings;
use flex::{Flex, FlexGate, FlexResult};
use queue::{Queue, Ticket};
use rate::{Gate, Rate};
pub use rate::{MAX_HINT, hint_seconds, parse_go_duration};

/// Weight of the newest sample in the standard-latency average.
const LATENCY_WEIGHT: f64 = 0.2;

/// The controller's settings (`[admission]`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Fraction of each rate limit kept free for urgent first attempts.
    pub headroom: f64,
    pub flex: FlexSettings,
    pub budget: BudgetSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            headroom: 0.2,
            flex: FlexSettings {
                min_limit: 1,
                max_limit: 512,
                initial_limit: 32,
                backoff_ratio: 0.5,
                cut_interval: Duration::from_secs(1),
                throttle_k: 2.0,
                throttle_window: Duration::from_secs(120),
                close_after: 5,
                probe_base: Duration::from_secs(1),
                probe_max: Duration::from_secs(30),
            },
            budget: BudgetSettings { ratio: 0.2, floor_per_sec: 10.0, window: Duration::from_secs(10) },
        }
    }
}

/// Why an attempt waited (label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// The model is blocked until a rate-limit reset.
    RateLimit,
    /// Background work keeps the headroom free, or urgent requests are waiting.
    Headroom,
    /// Flex is at its learned concurrency limit, or earlier waiters go first.
    FlexLimit,
    /// Flex is closed; only probes go.
    FlexClosed,
    /// Refused locally by adaptive throttling.
    FlexThrottled,
}

impl WaitReason {
    pub const ALL: [Self; 5] =
        [Self::RateLimit, Self::Headroom, Self::FlexLimit, Self::FlexClosed, Self::FlexThrottled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::Headroom => "headroom",
            Self::FlexLimit => "flex_limit",
            Self::FlexClosed => "flex_closed",
            Self::FlexThrottled => "flex_throttled",
        }
    }
}

/// One attempt asking to go.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub tier: Option<Tier>,
    /// A first attempt of a class that does not run on flex: never paced, never queued
    /// behind background work.
    pub urgent: bool,
    /// The request's first attempt (counted by the retry budget).
    pub first: bool,
    /// Flex may be given up for standard (escalation allowed).
    pub may_escalate: bool,
    /// When flex attempts are cut so that standard still meets the deadline.
    pub escalate_at: Instant,
    pub deadline: Instant,
}

/// What the controller decided.
#[derive(Debug)]
pub enum Admit<'a> {
    Go(Permit<'a>),
    /// Move this flex request to standard now (latest safe start reached, or shutdown).
    Escalate,
    /// The deadline (or the shutdown drain) passed while waiting.
    Expired,
}

#[derive(Debug)]
pub struct Admitted<'a> {
    pub admit: Admit<'a>,
    pub waited: Duration,
    /// Why it first had to wait, if it did.
    pub why: Option<WaitReason>,
}

/// One decision of the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Go { probe: bool },
    Wait { until: Option<Instant>, why: WaitReason },
    Escalate,
    Expired,
}

#[derive(Debug)]
struct State {
    rate: Rate,
    flex: Flex,
    budget: budget::Budget,
    flex_queue: Queue,
    background_queue: Queue,
    urgent_waiting: u32,
    /// Average standard latency, for the latest safe start.
    standard_latency: Duration,
    drain_until: Option<Instant>,
    bad_headers: u64,
}

/// The controller of one model (flex and standard share its rate limit).
pub struct Model {
    name: Box<str>,
    settings: Settings,
    state: Mutex<State>,
    notify: Notify,
    /// Random numbers in [0, 1) for throttling; tests fix them.
    coin: fn() -> f64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A snapshot of one model for the metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub flex_limit: u32,
    pub flex_in_flight: u32,
    pub flex_closed: bool,
    pub queued: usize,
    pub headroom: Option<f64>,
    pub bad_headers: u64,
}

impl Model {
    pub fn new(name: &str, settings: Settings) -> Self {
        Self::with_coin(name, settings, rand::random::<f64>)
    }

    fn with_coin(name: &str, settings: Settings, coin: fn() -> f64) -> Self {
        let now = Instant::now();
        Self {
            name: name.into(),
            settings,
            state: Mutex::new(State {
                rate: Rate::default(),
                flex: Flex::new(settings.flex, now),
                budget: budget::Budget::new(settings.budget, now),
                flex_queue: Queue::default(),
                background_queue: Queue::default(),
                urgent_waiting: 0,
                standard_latency: Duration::ZERO,
                drain_until: None,
                bad_headers: 0,
            }),
            notify: Notify::new(),
            coin,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Wait until the attempt may go, must move to standard, or ran out of time. Dropping
    /// the future (the client went away) leaves the queue at once.
    pub async fn admit(&self, ask: Ask) -> Admitted<'_> {
        let began = Instant::now();
        // Fast path: nothing to wait for, no queue entry, no waker, no allocation.
        match self.decide(&ask, None, began) {
            Step::Wait { why, .. } => {
                // Boxed: every held request's future would otherwise carry the waiting
                // state (a timer and a waker slot) for all of its life.
                Box::pin(self.wait(ask, why, began)).await
            }
            step => Admitted { admit: self.finish(step, &ask, None, began), waited: Duration::ZERO, why: None },
        }
    }

    async fn wait(&self, ask: Ask, why: WaitReason, began: Instant) -> Admitted<'_> {
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

    /// The moment the asker stops waiting in any case: its latest safe start on flex, else
    /// its deadline (or the shutdown drain's end).
    fn bound(&self, ask: &Ask) -> Instant {
        let state = self.state.lock();
        let deadline = state.drain_until.map_or(ask.deadline, |d| d.min(ask.deadline));
        if ask.tier == Some(Tier::Flex) && ask.may_escalate {
            latest_safe_start(ask, state.standard_latency).min(deadline)
        } else {
            deadline
        }
    }

    fn decide(&self, ask: &Ask, ticket: Option<Ticket>, now: Instant) -> Step {
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
    fn finish(&self, step: Step, ask: &Ask, waiting: Option<&mut Waiting<'_>>, now: Instant) -> Admit<'_> {
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
                Admit::Go(Permit { model: self, tier: ask.tier, probe, done: false })
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

    /// Take one retry from the budget; `Err` says how long until one is likely free.
    pub fn try_retry(&self, now: Instant) -> Result<(), Duration> {
        self.state.lock().budget.try_retry(now)
    }

    /// Stop waiting for flex: flex waiters that may escalate move to standard now, every
    /// other waiter gives up at `until`.
    pub fn drain(&self, until: Instant) {
        self.state.lock().drain_until = Some(until);
        self.notify.notify_waiters();
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state.lock();
        Snapshot {
            flex_limit: state.flex.limit(),
            flex_in_flight: state.flex.in_flight(),
            flex_closed: state.flex.is_closed(),
            queued: state.flex_queue.len() + state.background_queue.len() + state.urgent_waiting as usize,
            headroom: state.rate.headroom(Instant::now()),
            bad_headers: state.bad_headers,
        }
    }

    fn waiters(state: &State) -> bool {
        state.urgent_waiting > 0 || !state.flex_queue.is_empty() || !state.background_queue.is_empty()
    }
}

fn latest_safe_start(ask: &Ask, standard_latency: Duration) -> Instant {
    ask.escalate_at.checked_sub(standard_latency).unwrap_or(ask.escalate_at)
}

/// A waiter's place: a queue entry (background) or the urgent count; removed on drop.
struct Waiting<'a> {
    model: &'a Model,
    ticket: Option<Ticket>,
    flex: bool,
    urgent: bool,
}

impl<'a> Waiting<'a> {
    fn enter(model: &'a Model, ask: &Ask, now: Instant) -> Self {
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
    fn leave(&mut self, state: &mut State) -> bool {
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

/// One admitted attempt; report its answer with [`Permit::report`]. Dropped unreported
/// (the request went away mid-attempt), it frees its flex slot.
#[derive(Debug)]
pub struct Permit<'a> {
    model: &'a Model,
    tier: Option<Tier>,
    probe: bool,
    done: bool,
}

/// What a report found worth counting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    pub bad_headers: u32,
}

/// What an attempt's answer means to admission (the retry loop's verdict, translated in
/// `crate::upstream::retry`): the controller needs no more than this.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answered {
    Success,
    /// A rate-limit 429, with the wait the upstream asked for.
    RateLimited {
        hint: Option<Duration>,
    },
    /// A flex capacity 429, with the wait the upstream asked for.
    FlexCapacity {
        hint: Option<Duration>,
    },
    /// Anything else: a server error, a timeout, a refusal of the request itself.
    Other,
}

impl Permit<'_> {
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The attempt's answer: its verdict, its headers when it had any, and how long it took.
    pub fn report(mut self, verdict: Answered, headers: Option<&HeaderMap>, took: Duration) -> Reported {
        self.done = true;
        let now = Instant::now();
        let mut state = self.model.state.lock();
        let mut reported = Reported::default();
        if let Some(h) = headers {
            reported.bad_headers = state.rate.observe(h, now).bad;
            state.bad_headers += u64::from(reported.bad_headers);
        }
        if let Answered::RateLimited { hint } = verdict {
            state.rate.rate_limited(hint, now);
        }
        if self.tier == Some(Tier::Flex) {
            let result = match verdict {
                Answered::Success => FlexResult::Accepted,
                Answered::FlexCapacity { hint } => FlexResult::Capacity { hint },
                _ => FlexResult::Other,
            };
            state.flex.answered(self.probe, result, now);
        } else if verdict == Answered::Success && self.tier == Some(Tier::Standard) {
            let sample = took.as_secs_f64();
            let average = state.standard_latency.as_secs_f64();
            let next =
                if state.standard_latency.is_zero() { sample } else { average + LATENCY_WEIGHT * (sample - average) };
            state.standard_latency = Duration::from_secs_f64(next.clamp(0.0, 3600.0));
        }
        let wake = Model::waiters(&state);
        drop(state);
        if wake {
            self.model.notify.notify_waiters();
        }
        reported
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.done || self.tier != Some(Tier::Flex) {
            return;
        }
        let mut state = self.model.state.lock();
        state.flex.abandoned(self.probe, Instant::now());
        let wake = Model::waiters(&state);
        drop(state);
        if wake {
            self.model.notify.notify_waiters();
        }
    }
}

/// Every model's controller: the price table's models, and `other` for the rest (the same
/// bounded set the metrics use), so lookups never allocate or lock.
#[derive(Debug)]
pub struct Admission {
    models: HashMap<Box<str>, Model>,
    other: Model,
}

impl Admission {
    pub fn new<'m>(settings: Settings, models: impl IntoIterator<Item = &'m str>) -> Self {
        let models = models.into_iter().map(|m| (Box::from(m), Model::new(m, settings))).collect();
        Self { models, other: Model::new("other", settings) }
    }

    /// The controller for a model label (a price-table name, else `other`).
    pub fn model(&self, label: &str) -> &Model {
        self.models.get(label).unwrap_or(&self.other)
    }

    pub fn all(&self) -> impl Iterator<Item = &Model> {
        self.models.values().chain(std::iter::once(&self.other))
    }

    /// Shutdown: see [`Model::drain`].
    pub fn drain(&self, until: Instant) {
        for model in self.all() {
            model.drain(until);
        }
    }
}

#[cfg(test)]
mod tests;
