//! What one replica's controller tells the others about a model, and how it takes what
//! they tell it (carried by `crate::shared` through Redis).
//!
//! Replicas behind one upstream key share its rate limit and, with everyone else, flex's
//! capacity: a rate-limit wait, flex closing or reopening, and a congestion cut learned by
//! one replica hold for all of them, so the others need not each pay the 429s that taught
//! it. Only changes learned from the upstream are told: what a replica heard is never
//! told again, so a note cannot echo between replicas. Telling never waits: a full
//! outbox drops the note (the others learn it the slow way, from their own answers).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Model;
use super::flex::FlexChange;

/// One change of a model's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A rate-limit 429: every request of the model waits until then.
    RateLimited { until: Instant },
    /// Flex is closed until its next probe, after `step` refused probes.
    FlexClosed { next_probe: Instant, step: u32 },
    /// A probe was accepted: flex is open.
    FlexOpened,
    /// Flex's concurrency limit was cut for congestion.
    FlexCut,
}

impl Change {
    /// The `kind` label of the notes metric, and the word on the wire.
    pub fn kind(self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limit",
            Self::FlexClosed { .. } => "flex_closed",
            Self::FlexOpened => "flex_opened",
            Self::FlexCut => "flex_cut",
        }
    }

    pub const KINDS: [&'static str; 4] = ["rate_limit", "flex_closed", "flex_opened", "flex_cut"];
}

impl From<FlexChange> for Change {
    fn from(c: FlexChange) -> Self {
        match c {
            FlexChange::Closed { next_probe, step } => Self::FlexClosed { next_probe, step },
            FlexChange::Opened => Self::FlexOpened,
            FlexChange::Cut => Self::FlexCut,
        }
    }
}

/// A change of one model, on its way to the other replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub model: Arc<str>,
    pub change: Change,
}

/// Where a controller's notes go (`crate::shared` drains it).
pub type Outbox = mpsc::Sender<Note>;

/// Rate-limit notes closer together than this are one wait (a burst of 429s answered
/// together): only a wait that ends this much later than the last one told is told.
const RATE_NOTE_STEP: std::time::Duration = std::time::Duration::from_millis(100);

// === impl Model ===

impl Model {
    /// Tell the other replicas, if any, without waiting.
    pub(super) fn tell(&self, change: Change) {
        if let Some(outbox) = &self.outbox {
            // Full or closed: the others learn it from their own answers.
            let _ = outbox.try_send(Note { model: Arc::clone(&self.name), change });
        }
    }

    /// Whether a rate-limit block until `until` is worth a note (see [`RATE_NOTE_STEP`]);
    /// remembers it if so. Called under the state lock.
    pub(super) fn rate_news(told: &mut Option<Instant>, until: Instant) -> bool {
        let news = told.is_none_or(|t| until >= t + RATE_NOTE_STEP);
        if news {
            *told = Some(until);
        }
        news
    }

    /// Another replica's change: take it as if this replica had learned it, and let the
    /// waiters look again.
    pub fn heard(&self, change: Change, now: Instant) {
        let mut state = self.state.lock();
        match change {
            Change::RateLimited { until } => {
                if until > now {
                    let until = state.rate.block_until(until, now);
                    // Not news to tell again: it came from the others.
                    state.told_rate = Some(state.told_rate.map_or(until, |t| t.max(until)));
                }
            }
            Change::FlexClosed { next_probe, step } => state.flex.heard_closed(next_probe, step, now),
            Change::FlexOpened => state.flex.heard_opened(),
            Change::FlexCut => state.flex.heard_cut(now),
        }
        drop(state);
        self.notify.notify_waiters();
    }
}
