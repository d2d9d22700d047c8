//! Metrics of the state shared across replicas (`[shared]`): whether Redis answers, and
//! the admission notes sent to and heard from the other replicas. `backend` is `redis`,
//! `direction` sent or received, `kind` one of the four kinds of note.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::admission::Change;
use crate::shared::notes::Direction;

pub struct SharedMetrics {
    /// backend — 1 while the shared state answers; only with `[shared]`
    up: IntGaugeVec,
    /// direction, kind
    notes: IntCounterVec,
}

impl SharedMetrics {
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let up = IntGaugeVec::new(
            Opts::new(
                "flexgate_shared_state_up",
                "1 while the state shared across replicas (budgets, admission) answers, 0 while flexgate serves on local state.",
            ),
            &["backend"],
        )?;
        r.register(Box::new(up.clone()))?;
        let notes = IntCounterVec::new(
            Opts::new(
                "flexgate_shared_admission_notes_total",
                "Admission changes (rate-limit waits, flex closed, opened or cut) told to or heard from the other replicas.",
            ),
            &["direction", "kind"],
        )?;
        r.register(Box::new(notes.clone()))?;
        Ok(Self { up, notes })
    }

    /// Create every series (with `[shared]` only: without it they would say nothing).
    pub fn prime(&self, up: bool) {
        self.up.with_label_values(&["redis"]).set(i64::from(up));
        for direction in ["sent", "received"] {
            for kind in Change::KINDS {
                self.notes.with_label_values(&[direction, kind]);
            }
        }
    }

    /// Whether Redis answers (at scrape time).
    pub fn export(&self, up: bool) {
        self.up.with_label_values(&["redis"]).set(i64::from(up));
    }

    pub fn note(&self, direction: Direction, change: Change) {
        let direction = match direction {
            Direction::Sent => "sent",
            Direction::Received => "received",
        };
        self.notes.with_label_values(&[direction, change.kind()]).inc();
    }
}
