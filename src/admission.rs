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
//! With `[shared] redis_url`, the changes a model learns from the upstream (a rate-limit
//! wait, flex closing, reopening or cut) are told to the other replicas, and theirs are
//! taken here (`peers`), without the request path ever waiting for it.
//!
//! Everything is a plain state machine behind one short-held lock (never across an
//! await): the decision is `decide`, waiting for it `waiting`, an admitted attempt and its
//! report `permit`. An uncontended attempt costs a hash lookup done once per request, a lock and a
//! few comparisons, with no allocation; waiting costs a queue entry.

mod budget;
mod decide;
mod flex;
mod peers;
mod permit;
mod queue;
mod rate;
mod waiting;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::tier::Tier;
pub use budget::BudgetSettings;
use decide::Step;
use flex::Flex;
pub use flex::FlexSettings;
pub use peers::{Change, Note, Outbox};
pub use permit::{Answered, Permit, Reported};
use queue::Queue;
use rate::Rate;
pub use rate::{MAX_HINT, hint_seconds, parse_go_duration};

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
                backoff_ratio: 0.8,
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
    /// The end of the last rate-limit wait told to (or heard from) the other replicas.
    told_rate: Option<Instant>,
}

/// The controller of one model (flex and standard share its rate limit).
pub struct Model {
    name: Arc<str>,
    settings: Settings,
    state: Mutex<State>,
    notify: Notify,
    /// Where changes go for the other replicas (`[shared]`), if anywhere.
    outbox: Option<Outbox>,
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
                told_rate: None,
            }),
            notify: Notify::new(),
            outbox: None,
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
}

/// Every model's controller: the price table's models, and `other` for the rest (the same
/// bounded set the metrics use), so lookups never allocate or lock.
#[derive(Debug)]
pub struct Admission {
    models: HashMap<Box<str>, Model>,
    other: Model,
}

impl Admission {
    /// Controllers for `models` and `other`; their changes go to `outbox` when replicas
    /// share state.
    pub fn new<'m>(settings: Settings, models: impl IntoIterator<Item = &'m str>, outbox: Option<&Outbox>) -> Self {
        let model = |m: &str| Model { outbox: outbox.cloned(), ..Model::new(m, settings) };
        let models = models.into_iter().map(|m| (Box::from(m), model(m))).collect();
        Self { models, other: model("other") }
    }

    /// The controller for a model label (a price-table name, else `other`).
    pub fn model(&self, label: &str) -> &Model {
        self.models.get(label).unwrap_or(&self.other)
    }

    /// The controller of exactly this label (another replica's note may name a model this
    /// one's price table lacks: it is not `other`'s news).
    pub fn find(&self, label: &str) -> Option<&Model> {
        if label == "other" { Some(&self.other) } else { self.models.get(label) }
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
