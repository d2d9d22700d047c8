//! Flex capacity as learned from flex's answers: a concurrency limit (AIMD), client-side
//! throttling of new attempts (Google SRE adaptive throttling), and closing after a run of
//! capacity 429s with one probe per backoff step.
//!
//! Flex capacity cannot be observed, only its refusals (a capacity 429 is free and says
//! nothing about latency), so control is loss-driven:
//! - a capacity 429 cuts the limit by `backoff_ratio`, at most once per `cut_interval`
//!   (the answers of one burst all report the same congestion), when refusals are at
//!   least [`CUT_SHARE`] of the last [`RECENT`] answers: flex refuses a share of requests
//!   whatever one client sends, and cutting on each of a steady 10% collapsed the limit to
//!   a handful and queued requests that flex would have taken;
//! - an accepted attempt while the limit was in use raises it: by one while below the
//!   level of the last cut (slow start, so waiters are released at the rate flex accepts
//!   them after reopening), else by `1/limit`, about one per window of accepted attempts;
//! - new attempts are refused locally with probability
//!   `max(0, (requests - K·accepts) / (requests + 1))` over a sliding history, where
//!   requests are attempts flex answered (accepted or refused): an attempt still in flight
//!   (flex ones last minutes) is not yet a refusal;
//! - after `close_after` capacity 429s in a row flex is closed: one probe per backoff
//!   step (or the upstream's `retry-after`, if longer), and a success reopens it.

use std::time::Duration;

use tokio::time::Instant;

/// Answers remembered to judge whether a refusal is congestion or the usual trickle.
const RECENT: u32 = 20;
/// The share of refusals among the recent answers from which a refusal cuts the limit.
const CUT_SHARE: f64 = 0.3;

/// Buckets of the throttling history.
const BUCKETS: usize = 12;
const BUCKETS_U32: u32 = 12;

#[derive(Debug, Clone, Copy)]
pub struct FlexSettings {
    pub min_limit: u32,
    pub max_limit: u32,
    pub initial_limit: u32,
    pub backoff_ratio: f64,
    pub cut_interval: Duration,
    pub throttle_k: f64,
    pub throttle_window: Duration,
    pub close_after: u32,
    pub probe_base: Duration,
    pub probe_max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Closed {
    next_probe: Instant,
    /// The upstream's `retry-after`, which no probe comes before.
    not_before: Instant,
    step: u32,
    probing: bool,
}

/// What flex allows one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlexGate {
    Go {
        probe: bool,
    },
    /// Closed, or at the limit: wait for a release or until this moment.
    WaitUntil(Option<Instant>),
    /// Refused locally by adaptive throttling; look again at this moment.
    Throttled(Instant),
}

/// A change of flex's state worth telling the other replicas (`super::peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlexChange {
    /// Closed (or still closed after a refused probe) until the next probe.
    Closed { next_probe: Instant, step: u32 },
    /// A probe was accepted.
    Opened,
    /// The limit was cut for congestion.
    Cut,
}

/// How one flex attempt ended, as flex control sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlexResult {
    Accepted,
    Capacity {
        hint: Option<Duration>,
    },
    /// Neither (timeout, server error, cancel): no capacity signal.
    Other,
}

#[derive(Debug)]
pub struct Flex {
    s: FlexSettings,
    limit: f64,
    /// The limit at the last cut: slow start below it.
    threshold: f64,
    in_flight: u32,
    last_cut: Option<Instant>,
    consecutive: u32,
    /// The last [`RECENT`] answers, one bit each (1: a capacity refusal), newest lowest.
    recent: u32,
    /// How many answers `recent` holds (up to [`RECENT`]).
    seen: u32,
    closed: Option<Closed>,
    /// (requests, accepts) per bucket; `epoch` is the index of the current bucket.
    history: [(u32, u32); BUCKETS],
    epoch: u64,
    origin: Instant,
}

impl Flex {
    pub fn new(s: FlexSettings, now: Instant) -> Self {
        let limit = f64::from(s.initial_limit.clamp(s.min_limit, s.max_limit));
        Self {
            s,
            limit,
            threshold: f64::from(s.max_limit),
            in_flight: 0,
            last_cut: None,
            consecutive: 0,
            recent: 0,
            seen: 0,
            closed: None,
            history: [(0, 0); BUCKETS],
            epoch: 0,
            origin: now,
        }
    }

    /// The concurrency limit (whole attempts).
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "the limit stays within [min_limit, max_limit], both u32"
    )]
    pub fn limit(&self) -> u32 {
        self.limit as u32
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Whether a flex attempt may go now. `unit` draws a random number in [0, 1) for the
    /// throttling decision (only when throttling is active); `head` says the asker is first in line among flex waiters (a probe
    /// is only ever handed to one asker at a time).
    pub fn gate(&mut self, now: Instant, unit: impl FnOnce() -> f64, head: bool) -> FlexGate {
        if let Some(closed) = self.closed {
            if closed.probing {
                return FlexGate::WaitUntil(None);
            }
            if now < closed.next_probe {
                return FlexGate::WaitUntil(Some(closed.next_probe));
            }
            // The probe is due: the first in line takes it, and its leaving the queue wakes
            // the others. Looking again "now" instead would spin until it has.
            return if head { FlexGate::Go { probe: true } } else { FlexGate::WaitUntil(None) };
        }
        if self.in_flight >= self.limit() {
            return FlexGate::WaitUntil(None);
        }
        let p = self.reject_probability(now);
        if p > 0.0 && unit() < p {
            return FlexGate::Throttled(now + self.s.probe_base);
        }
        FlexGate::Go { probe: false }
    }

    /// An attempt admitted by [`Self::gate`] is being sent.
    pub fn sent(&mut self, probe: bool, now: Instant) {
        self.in_flight += 1;
        self.roll(now);
        if let (true, Some(closed)) = (probe, &mut self.closed) {
            closed.probing = true;
        }
    }

    /// The answer to an attempt counted by [`Self::sent`]; what changed that the other
    /// replicas should hear of.
    pub fn answered(&mut self, probe: bool, result: FlexResult, now: Instant) -> Option<FlexChange> {
        let reached = self.in_flight >= self.limit();
        self.in_flight = self.in_flight.saturating_sub(1);
        match result {
            FlexResult::Accepted => {
                let reopened = self.closed.is_some();
                if reopened {
                    self.reopen();
                } else {
                    self.consecutive = 0;
                }
                self.remember(false);
                let bucket = self.bucket(now);
                bucket.0 += 1;
                bucket.1 += 1;
                if !reopened && reached {
                    let step = if self.limit < self.threshold { 1.0 } else { 1.0 / self.limit };
                    self.limit = (self.limit + step).min(f64::from(self.s.max_limit));
                }
                reopened.then_some(FlexChange::Opened)
            }
            FlexResult::Capacity { hint } => {
                self.bucket(now).0 += 1;
                self.consecutive += 1;
                let congested = self.remember(true) >= CUT_SHARE;
                let cut = congested && self.cut(now);
                let hint = hint.unwrap_or_default();
                match &mut self.closed {
                    Some(closed) if probe => {
                        closed.step += 1;
                        closed.probing = false;
                        closed.next_probe = now + step_wait(&self.s, closed.step).max(hint);
                        closed.not_before = now + hint;
                        Some(FlexChange::Closed { next_probe: closed.next_probe, step: closed.step })
                    }
                    None if self.consecutive >= self.s.close_after => {
                        let next_probe = now + step_wait(&self.s, 0).max(hint);
                        self.closed = Some(Closed { next_probe, not_before: now + hint, step: 0, probing: false });
                        Some(FlexChange::Closed { next_probe, step: 0 })
                    }
                    _ => cut.then_some(FlexChange::Cut),
                }
            }
            FlexResult::Other => {
                self.probe_lost(probe, now);
                None
            }
        }
    }

    /// Cut the limit for congestion, at most once per `cut_interval`; whether it did.
    fn cut(&mut self, now: Instant) -> bool {
        if self.last_cut.is_some_and(|at| now < at + self.s.cut_interval) {
            return false;
        }
        self.last_cut = Some(now);
        self.limit = (self.limit * self.s.backoff_ratio).max(f64::from(self.s.min_limit));
        self.threshold = self.limit;
        true
    }

    /// Open again after a probe was accepted (here or by another replica). The refusals
    /// that closed flex say nothing about it now: the limit, not the throttle, paces the
    /// release of the waiters, and it starts small and grows as fast as flex accepts (slow
    /// start up to the initial limit).
    fn reopen(&mut self) {
        self.closed = None;
        self.consecutive = 0;
        self.history = [(0, 0); BUCKETS];
        (self.recent, self.seen) = (0, 0);
        self.limit = f64::from(self.s.min_limit);
        self.threshold = f64::from(self.s.initial_limit);
    }

    /// Another replica closed flex (or had its probe refused) with its next probe at
    /// `next_probe`, after `step` refused probes. This replica holds off one base step
    /// longer, so that the replica that closed it probes first and its answer reaches
    /// here before this one's own probe would go; the steps double together.
    pub fn heard_closed(&mut self, next_probe: Instant, step: u32, now: Instant) {
        let ours = next_probe + self.s.probe_base;
        if ours <= now {
            return;
        }
        if let Some(closed) = &mut self.closed {
            closed.step = closed.step.max(step);
            if !closed.probing {
                closed.next_probe = closed.next_probe.max(ours);
                closed.not_before = closed.not_before.max(ours);
            }
        } else {
            self.consecutive = self.consecutive.max(self.s.close_after);
            self.closed = Some(Closed { next_probe: ours, not_before: ours, step, probing: false });
        }
    }

    /// Another replica's probe was accepted: flex is open again here too.
    pub fn heard_opened(&mut self) {
        if self.closed.is_some() {
            self.reopen();
        }
    }

    /// Another replica cut its limit for congestion: flex's capacity is the upstream's,
    /// so this replica cuts too (within the same once-per-interval bound).
    pub fn heard_cut(&mut self, now: Instant) {
        if self.closed.is_none() {
            self.cut(now);
        }
    }

    /// While closed, bring the next probe forward to halfway between now and `before` (the
    /// first waiter's latest safe start), never before the upstream's `retry-after`: a
    /// doubling hold-off of 8 or 16 s outlived the slack of deadlines of tens of seconds,
    /// and the waiters moved to standard just before the probe that would have found flex.
    /// A waiter with less than two base steps left is not worth a probe of its own: once
    /// the first waiters start moving to standard, each next one would pull another probe
    /// a step away, and closed flex would be probed every step instead of backing off.
    pub fn probe_by(&mut self, before: Instant, now: Instant) {
        let base = self.s.probe_base;
        let slack = before.saturating_duration_since(now);
        if slack < base * 2 {
            return;
        }
        if let Some(closed) = self.closed.as_mut().filter(|c| !c.probing && c.next_probe > now) {
            closed.next_probe = closed.next_probe.min((now + slack / 2).max(closed.not_before));
        }
    }

    /// Record one answer among the recent ones; the share of refusals among them.
    fn remember(&mut self, refused: bool) -> f64 {
        self.recent = (self.recent << 1) | u32::from(refused);
        self.seen = (self.seen + 1).min(RECENT);
        let window = self.recent & ((1 << RECENT) - 1);
        f64::from(window.count_ones()) / f64::from(self.seen)
    }

    /// A probe that ended without a verdict (dropped, timed out): another may go at the
    /// same step.
    pub fn probe_lost(&mut self, probe: bool, now: Instant) {
        if let (true, Some(closed)) = (probe, &mut self.closed)
            && closed.probing
        {
            closed.probing = false;
            closed.next_probe = closed.next_probe.max(now);
        }
    }

    /// An attempt counted by [`Self::sent`] whose answer never came (its request went away).
    pub fn abandoned(&mut self, probe: bool, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.probe_lost(probe, now);
    }

    /// Local rejection probability over the history: `(requests - K·accepts)/(requests+1)`.
    pub fn reject_probability(&mut self, now: Instant) -> f64 {
        self.roll(now);
        let (requests, accepts) =
            self.history.iter().fold((0.0, 0.0), |(r, a), (br, ba)| (r + f64::from(*br), a + f64::from(*ba)));
        ((requests - self.s.throttle_k * accepts) / (requests + 1.0)).max(0.0)
    }

    fn bucket_len(&self) -> Duration {
        (self.s.throttle_window / BUCKETS_U32).max(Duration::from_millis(1))
    }

    /// Clear buckets that fell out of the window since the last look.
    fn roll(&mut self, now: Instant) {
        let ticks = now.saturating_duration_since(self.origin).as_nanos() / self.bucket_len().as_nanos();
        let epoch = u64::try_from(ticks).unwrap_or(u64::MAX);
        let stale = epoch.saturating_sub(self.epoch).min(u64::from(BUCKETS_U32));
        for i in 1..=stale {
            self.history[slot(self.epoch + i)] = (0, 0);
        }
        self.epoch = self.epoch.max(epoch);
    }

    fn bucket(&mut self, now: Instant) -> &mut (u32, u32) {
        self.roll(now);
        &mut self.history[slot(self.epoch)]
    }
}

/// The wait before probe number `step + 1`: doubling from `probe_base` up to `probe_max`.
fn step_wait(s: &FlexSettings, step: u32) -> Duration {
    let factor = 2_u32.saturating_pow(step.min(20));
    s.probe_base.saturating_mul(factor).min(s.probe_max)
}

/// The history bucket of an epoch.
fn slot(epoch: u64) -> usize {
    usize::try_from(epoch % u64::from(BUCKETS_U32)).unwrap_or(0)
}
