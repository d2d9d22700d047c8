//! Budget periods: the UTC calendar day, week (Monday to Monday) or month, or a fixed
//! duration counted from the Unix epoch, and the window of one containing a moment.
//!
//! Times are whole seconds since the Unix epoch, UTC. The calendar arithmetic is done
//! on day numbers (days since 1970-01-01), so no time-zone data is needed.

use std::time::Duration;

const DAY: u64 = 86_400;
/// The longest period a duration may give: ten years.
const MAX_SECS: u64 = 3_652 * DAY;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    /// ISO weeks: Monday 00:00 UTC to the next Monday.
    Week,
    Month,
    /// Windows of this length, aligned to the epoch (so every replica agrees on them).
    Every(Duration),
}

impl Period {
    /// Parse `day`, `week`, `month` or a duration such as `12h` (one second to ten years).
    pub fn parse(text: &str) -> Result<Period, String> {
        match text.trim() {
            "day" | "daily" => Ok(Period::Day),
            "week" | "weekly" => Ok(Period::Week),
            "month" | "monthly" => Ok(Period::Month),
            other => match humantime::parse_duration(other) {
                Ok(d) if (1..=MAX_SECS).contains(&d.as_secs()) => Ok(Period::Every(Duration::from_secs(d.as_secs()))),
                Ok(_) => Err(format!("`{other}` is not from one second to ten years")),
                Err(_) => Err(format!("`{other}` is not `day`, `week`, `month` or a duration such as `12h`")),
            },
        }
    }

    /// The window `[start, end)` holding `now`, in seconds since the epoch.
    pub fn window(self, now: u64) -> (u64, u64) {
        match self {
            Period::Day => {
                let start = now - now % DAY;
                (start, start + DAY)
            }
            Period::Week => {
                // Day 0 (1970-01-01) was a Thursday: Monday is three days later.
                let days = now / DAY;
                let monday = days - (days + 3) % 7;
                (monday * DAY, (monday + 7) * DAY)
            }
            Period::Month => {
                let (y, m, _) = civil_from_days(now / DAY);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (days_from_civil(y, m, 1) * DAY, days_from_civil(ny, nm, 1) * DAY)
            }
            Period::Every(length) => {
                let len = length.as_secs().max(1);
                let start = now - now % len;
                (start, start.saturating_add(len))
            }
        }
    }

    pub fn describe(self) -> String {
        match self {
            Period::Day => "day".into(),
            Period::Week => "week".into(),
            Period::Month => "month".into(),
            Period::Every(d) => humantime::format_duration(d).to_string(),
        }
    }
}

/// (year, month 1–12, day 1–31) of a day number, for days on or after 1970-01-01:
/// counted in 400-year eras of 146,097 days that start on 1 March, so the leap day is
/// the era year's last day.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The day number of a civil date on or after 1970-01-01 (the inverse of the above).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07T15:50:00Z, a Monday.
    const NOW: u64 = 1_796_658_600;

    #[test]
    fn calendar_windows_in_utc() {
        assert_eq!(days_from_civil(2026, 12, 7) * DAY, NOW - NOW % DAY);
        assert_eq!(civil_from_days(NOW / DAY), (2026, 12, 7));
        assert_eq!(Period::Day.window(NOW), (1_796_601_600, 1_796_688_000));
        // A Monday starts its own week.
        assert_eq!(Period::Week.window(NOW), (1_796_601_600, 1_796_601_600 + 7 * DAY));
        assert_eq!(Period::Week.window(NOW - DAY).1, 1_796_601_600);
        // December 2026 to January 2027.
        let (start, end) = Period::Month.window(NOW);
        assert_eq!(civil_from_days(start / DAY), (2026, 12, 1));
        assert_eq!(civil_from_days(end / DAY), (2027, 1, 1));
        // February of a leap year has 29 days.
        let feb = days_from_civil(2028, 2, 10) * DAY;
        let (s, e) = Period::Month.window(feb);
        assert_eq!((e - s) / DAY, 29);
        assert_eq!(Period::Every(Duration::from_secs(3600)).window(NOW), (1_796_655_600, 1_796_659_200));
    }

    #[test]
    fn round_trips_every_day_for_centuries() {
        for days in (0..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parses_names_and_durations() {
        assert_eq!(Period::parse("month"), Ok(Period::Month));
        assert_eq!(Period::parse(" day "), Ok(Period::Day));
        assert_eq!(Period::parse("12h"), Ok(Period::Every(Duration::from_secs(43_200))));
        assert!(Period::parse("fortnight").is_err());
        assert!(Period::parse("10ms").is_err());
        assert!(Period::parse("20000years").is_err());
    }
}
