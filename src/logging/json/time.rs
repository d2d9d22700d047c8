//! The stock timer's RFC 3339 timestamps (`2026-11-27T23:07:33.003261Z`), without
//! `core::fmt`: humantime's `Display`, used before, cost ~550 instructions a line.

use std::time::Duration;

/// 10000-01-01T00:00:00Z in seconds since the epoch: `Clock` writes the times before it.
pub(super) const YEAR_10000: u64 = 253_402_300_800;

/// Writes timestamps, keeping the text of the last second (`2026-11-27T23:07:33.`): lines
/// come many to a second, and the date arithmetic costs ~300 instructions.
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

/// Appends `second` as `2026-11-27T23:07:33.`.
fn push_second(text: &mut String, second: u64) {
    let (days, of_day) = (second / 86_400, second % 86_400);
    // Howard Hinnant's `civil_from_days`: 400-year eras counted from 0000-03-01, so that
    // a leap day falls at the end of its year.
    let shifted = days + 719_468;
    let (era, day_of_era) = (shifted / 146_097, shifted % 146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let (year, month) = if month_from_march < 10 {
        (era * 400 + year_of_era, month_from_march + 3)
    } else {
        (era * 400 + year_of_era + 1, month_from_march - 9)
    };
    let mut digits = *b"0000-00-00T00:00:00.";
    put_digits(&mut digits[0..4], year);
    put_digits(&mut digits[5..7], month);
    put_digits(&mut digits[8..10], day);
    put_digits(&mut digits[11..13], of_day / 3_600);
    put_digits(&mut digits[14..16], of_day / 60 % 60);
    put_digits(&mut digits[17..19], of_day % 60);
    // All ASCII, so this never falls back.
    text.push_str(std::str::from_utf8(&digits).unwrap_or_default());
}

/// Writes the last `digits.len()` decimal digits of `value`, zero-padded.
fn put_digits(digits: &mut [u8], mut value: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + u8::try_from(value % 10).unwrap_or_default();
        value /= 10;
    }
}
