//! Waiters in order: by a key instant (latest safe start on flex, deadline otherwise), then
//! by arrival. Only waiting requests have an entry, so an uncontended model allocates nothing.

use std::collections::BTreeSet;

use tokio::time::Instant;

/// A waiter's place in a [`Queue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket {
    key: Instant,
    seq: u64,
}

#[derive(Debug, Default)]
pub struct Queue {
    waiting: BTreeSet<Ticket>,
    seq: u64,
}

impl Queue {
    pub fn push(&mut self, key: Instant) -> Ticket {
        self.seq += 1;
        let ticket = Ticket { key, seq: self.seq };
        self.waiting.insert(ticket);
        ticket
    }

    pub fn remove(&mut self, ticket: Ticket) {
        self.waiting.remove(&ticket);
    }

    /// Whether `ticket` is first in line; an asker without a ticket only if none waits.
    pub fn is_first(&self, ticket: Option<Ticket>) -> bool {
        match ticket {
            Some(t) => self.waiting.first() == Some(&t),
            None => self.waiting.is_empty(),
        }
    }

    /// Whether `ticket` has waited longest; without one, only if none waits. A scan, made
    /// only once per probe step.
    pub fn is_oldest(&self, ticket: Option<Ticket>) -> bool {
        match ticket {
            Some(t) => self.waiting.iter().map(|w| w.seq).min() == Some(t.seq),
            None => self.waiting.is_empty(),
        }
    }

    /// The earliest key in line: the first flex waiter's latest safe start.
    pub fn first_key(&self) -> Option<Instant> {
        self.waiting.first().map(|t| t.key)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}
