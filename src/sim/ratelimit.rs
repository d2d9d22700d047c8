//! The simulated organisation's rate limits and the `x-ratelimit-*` headers.
//!
//! Requests: with `rpm_limit` a fixed 60 s window (1 s with `rps_limit`) that opens at the
//! first request after the previous window ended. As at OpenAI, every attempt of every
//! tier counts, refused flex attempts included (a request refused by the limit itself does
//! not, so "Used" equals the limit). Without a limit the
//! headers report a nominal 30 000 RPM that never depletes, so a gateway reading them is
//! never told to slow down. Tokens are never enforced: the headers report a nominal
//! 30 M TPM minus this request's estimate (prompt + output budget), as `OpenAI` does per
//! request. Reset values are Go-style durations (`2ms`, `1.5s`, `6m0s`).

use std::time::Duration;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use parking_lot::Mutex;
use tokio::time::Instant;

pub(crate) const NOMINAL_RPM: u32 = 30_000;
pub(crate) const NOMINAL_TPM: u64 = 30_000_000;
const WINDOW: Duration = Duration::from_secs(60);

/// Request-limit state reported with one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateSnapshot {
    pub limit: u32,
    pub remaining: u32,
    /// Time until the limit is fully replenished.
    pub reset: Duration,
}

impl RateSnapshot {
    /// What an unlimited org reports: one request used, replenished in 60 s / limit.
    fn nominal() -> Self {
        Self { limit: NOMINAL_RPM, remaining: NOMINAL_RPM - 1, reset: WINDOW / NOMINAL_RPM }
    }

    pub fn write_request_headers(&self, headers: &mut HeaderMap) {
        if *self == Self::nominal() {
            // The common unlimited case: no formatting per answer.
            for (name, value) in [
                ("x-ratelimit-limit-requests", "30000"),
                ("x-ratelimit-remaining-requests", "29999"),
                ("x-ratelimit-reset-requests", "2ms"),
            ] {
                headers.entry(HeaderName::from_static(name)).or_insert(HeaderValue::from_static(value));
            }
            return;
        }
        put(headers, "x-ratelimit-limit-requests", &self.limit.to_string());
        put(headers, "x-ratelimit-remaining-requests", &self.remaining.to_string());
        put(headers, "x-ratelimit-reset-requests", &go_duration(self.reset));
    }
}

/// Writes the three token headers for a request estimated at `tokens`.
pub(crate) fn write_token_headers(headers: &mut HeaderMap, tokens: u64) {
    let tokens = tokens.min(NOMINAL_TPM);
    let reset_nanos = u128::from(tokens) * WINDOW.as_nanos() / u128::from(NOMINAL_TPM);
    let reset = Duration::from_nanos(u64::try_from(reset_nanos).unwrap_or(u64::MAX));
    put(headers, "x-ratelimit-limit-tokens", &NOMINAL_TPM.to_string());
    put(headers, "x-ratelimit-remaining-tokens", &(NOMINAL_TPM - tokens).to_string());
    put(headers, "x-ratelimit-reset-tokens", &go_duration(reset));
}

/// Inserts a header unless an earlier step (e.g. a scripted 429) already set it.
fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.entry(HeaderName::from_static(name)).or_insert(value);
    }
}

/// Go `time.Duration` formatting, rounded up to whole milliseconds.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let rest = ms % 60_000;
    let whole = rest / 1000;
    let frac = format!("{:03}", rest % 1000);
    let frac = frac.trim_end_matches('0');
    let secs = if frac.is_empty() { format!("{whole}s") } else { format!("{whole}.{frac}s") };
    match (hours, minutes) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// Fixed-window request limiter shared by every tier.
pub(crate) struct RateLimiter {
    rpm: Option<u32>,
    length: Duration,
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    start: Option<Instant>,
    used: u32,
}

impl RateLimiter {
    pub fn new(rpm: Option<u32>) -> Self {
        Self { rpm, length: WINDOW, window: Mutex::new(Window::default()) }
    }

    /// `limit` requests per `length` (a minute for `--rpm-limit`, a second for `--rps-limit`).
    pub fn with_window(limit: Option<(u32, Duration)>) -> Self {
        match limit {
            Some((n, length)) => Self { rpm: Some(n), length, window: Mutex::new(Window::default()) },
            None => Self::new(None),
        }
    }

    /// Counts one request; `Err` carries the snapshot that refused it.
    pub fn admit(&self, now: Instant) -> Result<RateSnapshot, RateSnapshot> {
        self.observe(now, true)
    }

    /// The current state without counting a request (flex answers, errors).
    pub fn peek(&self, now: Instant) -> RateSnapshot {
        self.observe(now, false).unwrap_or_else(|snap| snap)
    }

    pub fn reset(&self) {
        *self.window.lock() = Window::default();
    }

    fn observe(&self, now: Instant, count: bool) -> Result<RateSnapshot, RateSnapshot> {
        let Some(limit) = self.rpm else {
            return Ok(RateSnapshot::nominal());
        };
        let mut window = self.window.lock();
        let start = match window.start {
            Some(start) if now.duration_since(start) < self.length => start,
            _ if !count => {
                return Ok(RateSnapshot { limit, remaining: limit, reset: Duration::ZERO });
            }
            _ => {
                *window = Window { start: Some(now), used: 0 };
                now
            }
        };
        let reset = self.length.saturating_sub(now.duration_since(start));
        if count && window.used >= limit {
            return Err(RateSnapshot { limit, remaining: 0, reset });
        }
        if count {
            window.used += 1;
        }
        Ok(RateSnapshot { limit, remaining: limit.saturating_sub(window.used), reset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_micros(100)), "1ms");
        assert_eq!(go_duration(Duration::from_millis(120)), "120ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1772)), "1.772s");
        assert_eq!(go_duration(Duration::from_millis(1200)), "1.2s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_millis(61_500)), "1m1.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_window() {
        let limiter = RateLimiter::new(Some(2));
        let t0 = Instant::now();
        assert_eq!(limiter.admit(t0).unwrap().remaining, 1);
        assert_eq!(limiter.admit(t0).unwrap().remaining, 0);
        let refused = limiter.admit(t0 + Duration::from_secs(20)).unwrap_err();
        assert_eq!(refused.reset, Duration::from_secs(40));
        assert_eq!(limiter.peek(t0).remaining, 0);
        let next = limiter.admit(t0 + Duration::from_secs(60)).unwrap();
        assert_eq!((next.remaining, next.reset), (1, WINDOW));
    }

    #[tokio::test(start_paused = true)]
    async fn per_second_window() {
        let limiter = RateLimiter::with_window(Some((1, Duration::from_secs(1))));
        let t0 = Instant::now();
        assert_eq!(limiter.admit(t0).unwrap().reset, Duration::from_secs(1));
        let refused = limiter.admit(t0 + Duration::from_millis(300)).unwrap_err();
        assert_eq!(go_duration(refused.reset), "700ms");
        assert!(limiter.admit(t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn unlimited_is_nominal() {
        let limiter = RateLimiter::new(None);
        let snap = limiter.admit(Instant::now()).unwrap();
        assert_eq!(snap.limit, NOMINAL_RPM);
        assert_eq!(go_duration(snap.reset), "2ms");
        let (mut fast, mut slow) = (HeaderMap::new(), HeaderMap::new());
        snap.write_request_headers(&mut fast);
        put(&mut slow, "x-ratelimit-limit-requests", &snap.limit.to_string());
        put(&mut slow, "x-ratelimit-remaining-requests", &snap.remaining.to_string());
        put(&mut slow, "x-ratelimit-reset-requests", &go_duration(snap.reset));
        assert_eq!(fast, slow, "the static nominal headers match the computed ones");
        let mut headers = HeaderMap::new();
        write_token_headers(&mut headers, 1000);
        assert_eq!(headers["x-ratelimit-remaining-tokens"], "29999000");
        assert_eq!(headers["x-ratelimit-reset-tokens"], "2ms");
    }
}
