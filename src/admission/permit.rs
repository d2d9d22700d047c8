//! One admitted attempt and its report: the answer's `x-ratelimit-*` headers, a rate-limit
//! or capacity 429, or a success (whose time feeds the standard-latency estimate) update
//! the model, and the waiters look again. An attempt dropped unreported frees its slot.

use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use super::flex::FlexResult;
use super::{Change, Model};
use crate::tier::Tier;

/// Weight of the newest sample in the standard-latency average.
const LATENCY_WEIGHT: f64 = 0.2;

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

impl<'a> Permit<'a> {
    /// An attempt the model's decision let go (counted already).
    pub(super) fn new(model: &'a Model, tier: Option<Tier>, probe: bool) -> Self {
        Self { model, tier, probe, done: false }
    }
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
        // What the other replicas should hear of: at most a rate-limit wait and a flex change.
        let mut news = [None, None];
        if let Answered::RateLimited { hint } = verdict
            && let Some(until) = state.rate.rate_limited(hint, now)
            && Model::rate_news(&mut state.told_rate, until)
        {
            news[0] = Some(Change::RateLimited { until });
        }
        if self.tier == Some(Tier::Flex) {
            let result = match verdict {
                Answered::Success => FlexResult::Accepted,
                Answered::FlexCapacity { hint } => FlexResult::Capacity { hint },
                _ => FlexResult::Other,
            };
            news[1] = state.flex.answered(self.probe, result, now).map(Change::from);
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
        for change in news.into_iter().flatten() {
            self.model.tell(change);
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
