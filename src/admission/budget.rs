//! The retry budget of one model: retries may add at most `ratio` of the first attempts
//! seen over the last `window`, plus `floor` per second so a quiet model can still retry.
//!
//! Two fixed windows, the previous one weighted by how much of it still overlaps the
//! sliding window: O(1) per attempt and no history to keep.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct BudgetSettings {
    pub ratio: f64,
    pub floor_per_sec: f64,
    pub window: Duration,
}

#[derive(Debug)]
pub struct Budget {
    s: BudgetSettings,
    start: Instant,
    /// (first attempts, retries) in the current and the previous window.
    current: (f64, f64),
    previous: (f64, f64),
}

impl Budget {
    pub fn new(s: BudgetSettings, now: Instant) -> Self {
        Self { s, start: now, current: (0.0, 0.0), previous: (0.0, 0.0) }
    }

    fn roll(&mut self, now: Instant) {
        let window = self.s.window.max(Duration::from_millis(1));
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < window {
            return;
        }
        if elapsed < window * 2 {
            self.previous = self.current;
            self.start += window;
        } else {
            self.previous = (0.0, 0.0);
            self.start = now;
        }
        self.current = (0.0, 0.0);
    }

    /// (first attempts, retries) over the sliding window.
    fn counts(&mut self, now: Instant) -> (f64, f64) {
        self.roll(now);
        let window = self.s.window.max(Duration::from_millis(1)).as_secs_f64();
        let into = now.saturating_duration_since(self.start).as_secs_f64() / window;
        let weight = (1.0 - into).clamp(0.0, 1.0);
        (self.current.0 + self.previous.0 * weight, self.current.1 + self.previous.1 * weight)
    }

    pub fn first_attempt(&mut self, now: Instant) {
        self.roll(now);
        self.current.0 += 1.0;
    }

    /// Take one retry from the budget, or say how long until one is likely free.
    pub fn try_retry(&mut self, now: Instant) -> Result<(), Duration> {
        let (firsts, retries) = self.counts(now);
        let allowed = self.s.ratio * firsts + self.s.floor_per_sec * self.s.window.as_secs_f64();
        if retries + 1.0 <= allowed {
            self.current.1 += 1.0;
            return Ok(());
        }
        // The window slides past the current retries within its length at most.
        let per_sec = (self.s.floor_per_sec + self.s.ratio * firsts / self.s.window.as_secs_f64().max(1e-3)).max(1e-3);
        Err(Duration::from_secs_f64((1.0 / per_sec).clamp(0.001, self.s.window.as_secs_f64().max(0.001))))
    }
}
