//! Wait hints from upstream headers and the backoff schedule (exponential, full jitter).
//!
//! Hints, first found wins: `retry-after-ms`, `retry-after` (seconds, fractional allowed,
//! or an HTTP date), then the smallest `x-ratelimit-reset-*` whose `remaining` is 0
//! (Go-style durations such as `6m0s`, `1.5s`, `120ms`).

use std::time::{Duration, SystemTime};

use http::HeaderMap;

pub use crate::admission::parse_go_duration;
use crate::admission::{MAX_HINT, hint_seconds as seconds};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// Parse `retry-after`: delta-seconds (fractions tolerated) or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_HINT))
}

/// The wait the upstream asked for, if it said.
pub fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return seconds(ms / 1000.0);
    }
    if let Some(d) = header(headers, "retry-after").and_then(|v| parse_retry_after(v, SystemTime::now())) {
        return Some(d);
    }
    ["requests", "tokens"]
        .iter()
        .filter(|kind| header(headers, &format!("x-ratelimit-remaining-{kind}")).is_some_and(|r| r == "0"))
        .filter_map(|kind| parse_go_duration(header(headers, &format!("x-ratelimit-reset-{kind}"))?))
        .min()
}

/// The wait before attempt `retry + 1`: the hint when the upstream gave one, else full
/// jitter over `base * 2^retry`, capped at `max`. `unit` is a random number in [0, 1).
pub fn delay(retry: u32, base: Duration, max: Duration, hint: Option<Duration>, unit: f64) -> Duration {
    if let Some(hint) = hint {
        return hint;
    }
    let ceiling = base.saturating_mul(2_u32.saturating_pow(retry.min(30))).min(max);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "s", "5", "5x", "-1s", "1..2s", "ms5"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5", now), Some(Duration::from_millis(500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn hint_precedence() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
        h.insert("x-ratelimit-reset-requests", "6m0s".parse().unwrap());
        h.insert("x-ratelimit-remaining-tokens", "10".parse().unwrap());
        h.insert("x-ratelimit-reset-tokens", "1s".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(360)));
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_millis(150)));
        assert_eq!(retry_hint(&HeaderMap::new()), None);
    }

    #[test]
    fn full_jitter_bounds() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        assert_eq!(delay(0, base, max, None, 0.999_999).as_millis(), 499);
        assert_eq!(delay(3, base, max, None, 0.5), Duration::from_secs(2));
        assert_eq!(delay(40, base, max, None, 1.0), max);
        assert_eq!(delay(2, base, max, Some(Duration::from_secs(7)), 0.1), Duration::from_secs(7));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_go_duration(&s);
            let _ = parse_retry_after(&s, SystemTime::now());
        }

        #[test]
        fn delay_is_within_bounds(retry in 0u32..100, unit in 0.0f64..1.0) {
            let base = Duration::from_millis(100);
            let max = Duration::from_secs(10);
            let d = delay(retry, base, max, None, unit);
            prop_assert!(d <= max);
            prop_assert!(d <= base.saturating_mul(2_u32.saturating_pow(retry.min(30))));
        }
    }
}
