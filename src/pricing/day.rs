//! Calendar days in UTC, the unit of a price's `effective_from`: parsing `YYYY-MM-DD`
//! against the calendar, and today's day from the system clock. A day is a plain count
//! since 1970-01-01, so choosing the price in force is one integer comparison per entry.

use std::time::{SystemTime, UNIX_EPOCH};

const SECONDS_PER_DAY: u64 = 86_400;

/// A UTC calendar day, counted from 1970-01-01 (day 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i32);

impl Day {
    /// Before every date a file can name: the start of a price entry without
    /// `effective_from`.
    pub const EARLIEST: Day = Day(i32::MIN);

    /// Today in UTC, by the system clock (read once per request; the clock is the
    /// host's, as the upstream's bill is by its own).
    pub fn today() -> Day {
        Day::at(SystemTime::now())
    }

    /// The UTC day a moment falls on.
    pub fn at(moment: SystemTime) -> Day {
        let days = |secs: u64| i32::try_from(secs / SECONDS_PER_DAY).unwrap_or(i32::MAX);
        match moment.duration_since(UNIX_EPOCH) {
            Ok(since) => Day(days(since.as_secs())),
            // A clock before 1970: the day before day 0 is -1, hence the ceiling.
            Err(before) => Day(-days(before.duration().as_secs().div_ceil(SECONDS_PER_DAY) * SECONDS_PER_DAY)),
        }
    }

    /// `YYYY-MM-DD`, checked against the calendar (no `2026-02-30`).
    pub fn parse(text: &str) -> Option<Day> {
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
        if !shape_ok {
            return None;
        }
        let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
        Day::from_ymd(num(0..4)?, num(5..7)?, num(8..10)?)
    }

    /// A date of the proleptic Gregorian calendar, `None` if there is no such day.
    pub fn from_ymd(year: i64, month: i64, day: i64) -> Option<Day> {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        if !(1..=days_in_month).contains(&day) {
            return None;
        }
        // Days from 1970-01-01 by counting 400-year eras from 0000-03-01, so that the
        // leap day is the last day of its year and needs no special case.
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let year_of_era = y - era * 400;
        let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        i32::try_from(era * 146_097 + day_of_era - 719_468).ok().map(Day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn days_count_from_the_epoch() {
        assert_eq!(Day::parse("1970-01-01"), Some(Day(0)));
        assert_eq!(Day::parse("1970-01-02"), Some(Day(1)));
        assert_eq!(Day::parse("1969-12-31"), Some(Day(-1)));
        assert_eq!(Day::parse("2000-03-01"), Some(Day(11_017)));
        assert_eq!(Day::parse("2026-11-22"), Some(Day(20_779)));
        assert_eq!(Day::parse("2024-02-29").map(|d| d.0 + 1), Day::parse("2024-03-01").map(|d| d.0));
        for bad in ["2026-02-29", "2100-02-29", "2026-13-01", "2026-00-10", "2026-04-31", "2026-1-01", "20261101", ""] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
        assert!(Day::parse("2000-02-29").is_some());
        assert!(Day::EARLIEST < Day::parse("0000-01-01").unwrap());
    }

    #[test]
    fn a_moment_falls_on_its_utc_day() {
        let at = |secs: u64| Day::at(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), Day(0));
        assert_eq!(at(86_399), Day(0));
        assert_eq!(at(86_400), Day(1));
        // 2026-11-21T23:59:59Z and a second later.
        assert_eq!(at(1_795_305_599), Day::parse("2026-11-21").unwrap());
        assert_eq!(at(1_795_305_600), Day::parse("2026-11-22").unwrap());
        assert_eq!(Day::at(UNIX_EPOCH - Duration::from_secs(1)), Day(-1));
        assert_eq!(Day::at(UNIX_EPOCH - Duration::from_secs(86_400)), Day(-1));
        assert_eq!(Day::at(UNIX_EPOCH - Duration::from_secs(86_401)), Day(-2));
    }
}
