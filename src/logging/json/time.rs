//! The stock timer's RFC 3339 timestamps (`2026-11-27T23:07:33.003261Z`), with
//! `core::fmt` once a second instead of once a line: humantime's `Display` for every line
//! cost ~550 instructions.

use std::time::Duration;

/// 10000-01-01T00:00:00Z in seconds since the epoch: `Clock` writes the times before it.
pub(super) const YEAR_10000: u64 = 253_402_300_800;

/// Writes timestamps, keeping the text of the last second (`2026-11-27T23:07:33.`): lines
/// come many to a second, and only the microseconds change between them.
pub(super) struct Clock {
    second: u64,
    text: String,
}

impl Clock {
    pub(super) const fn new() -> Self {
        // No time before `YEAR_10000` has this second, so the first one fills `text`.
        Self { second: u64::MAX, text: String::new() }
    }

    /// Appends the time `since_epoch` (before `YEAR_10000`), microseconds truncated.
    pub(super) fn push(&mut self, line: &mut String, since_epoch: Duration) {
        let second = since_epoch.as_secs();
        if second != self.second {
            self.text.clear();
            push_second(&mut self.text, second);
            self.second = second;
        }
        line.push_str(&self.text);
        let mut micros = itoa::Buffer::new();
        let micros = micros.format(since_epoch.subsec_micros());
        line.push_str(&"000000"[micros.len()..]);
        line.push_str(micros);
        line.push('Z');
    }
}

/// Appends `second` as `2026-11-27T23:07:33.`, humantime's text up to its fraction.
fn push_second(text: &mut String, second: u64) {
    // Once a second at most, so `core::fmt` costs nothing here that matters.
    let stamp = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(second)).to_string();
    // `2026-11-27T23:07:33Z`: the seconds' text without its `Z`, then the point.
    text.push_str(stamp.trim_end_matches('Z'));
    text.push('.');
}
