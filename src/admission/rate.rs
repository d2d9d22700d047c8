//! A model's upstream rate limit as the upstream reports it: `x-ratelimit-{limit,remaining,
//! reset}-{requests,tokens}` on every answer, a local estimate between answers, and the one
//! shared wait after a rate-limit 429.
//!
//! Between answers the remaining budget refills linearly: the upstream says how long until
//! the window is whole again (`reset`), so `(limit - remaining) / reset` per second. Each
//! attempt sent takes one request from the estimate before its answer says so, so that a
//! burst of waiters woken together does not all see the same free slot.

use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

/// Limits above this are nonsense (no upstream grants a billion per window).
const MAX_LIMIT: f64 = 1e9;
/// Without a usable `reset`, the window is taken to be a minute (OpenAI's RPM/TPM).
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Longer resets are nonsense for per-minute limits.
const MAX_RESET: Duration = Duration::from_secs(3600);
/// A rate-limit 429 with no hint blocks for this long.
const DEFAULT_BLOCK: Duration = Duration::from_secs(1);
/// No estimate makes a waiter sleep longer than this before it looks again.
const MAX_RECHECK: Duration = Duration::from_secs(60);

/// One reported budget (requests or tokens).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    limit: f64,
    remaining: f64,
    /// Per second.
    refill: f64,
    at: Instant,
}

impl Bucket {
    fn free(&self, now: Instant) -> f64 {
        (self.remaining + self.refill * now.saturating_duration_since(self.at).as_secs_f64()).min(self.limit)
    }

    /// When at least `want` will be free (now if it already is).
    fn free_at(&self, want: f64, now: Instant) -> Instant {
        let deficit = want - self.free(now);
        if deficit <= 0.0 {
            return now;
        }
        let secs = if self.refill > 0.0 { deficit / self.refill } else { MAX_RECHECK.as_secs_f64() };
        now + Duration::from_secs_f64(secs.min(MAX_RECHECK.as_secs_f64()))
    }
}

/// What one answer's headers said, for the bad-header counter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RateReading {
    /// Header groups present but unusable (unparsable, negative, huge, inconsistent).
    pub bad: u32,
}

#[derive(Debug, Default)]
pub struct Rate {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    /// Every request to the model waits until then (after a rate-limit 429).
    blocked_until: Option<Instant>,
}

/// What the rate limit allows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    WaitUntil(Instant),
}

impl Rate {
    /// Read the headers of one answer; bad groups are ignored and counted.
    pub fn observe(&mut self, headers: &HeaderMap, now: Instant) -> RateReading {
        let mut observed = RateReading::default();
        for (kind, slot) in [("requests", &mut self.requests), ("tokens", &mut self.tokens)] {
            match read_bucket(headers, kind, now) {
                Reading::Missing => {}
                Reading::Bad => observed.bad += 1,
                Reading::Good(bucket) => *slot = Some(bucket),
            }
        }
        observed
    }

    /// A rate-limit 429: every request waits for the reset, once. A later 429 from an
    /// attempt sent before the block does not push the wait further than its own hint.
    ///
    /// Only a 429 that the reported request count explains (none left) holds the whole
    /// model. One it does not explain (a `slow_down`, a token limit, a single request's
    /// refusal, with plenty of requests left) is the refused request's own to wait out
    /// with its backoff: holding every request of the model on each such answer starved
    /// the model under a steady trickle of them (the soak: p50 1.2 s, requests lost).
    ///
    /// Returns the moment the model is now blocked until, when this answer blocked it.
    pub fn rate_limited(&mut self, hint: Option<Duration>, now: Instant) -> Option<Instant> {
        let explained = self.requests.as_ref().is_none_or(|b| b.free(now) < 1.0);
        if !explained {
            return None;
        }
        let until = now + hint.unwrap_or(DEFAULT_BLOCK).min(MAX_RECHECK);
        Some(self.block_until(until, now))
    }

    /// Block every request of the model until `until` (or longer, if it already is), with
    /// no request left in the estimate: a rate-limit 429 seen here or by another replica
    /// on the same upstream limit. Returns the moment the block now ends.
    pub fn block_until(&mut self, until: Instant, now: Instant) -> Instant {
        let until = until.min(now + MAX_RECHECK);
        let until = self.blocked_until.map_or(until, |b| b.max(until));
        self.blocked_until = Some(until);
        if let Some(b) = &mut self.requests {
            b.remaining = 0.0;
            b.at = now;
        }
        until
    }

    pub fn is_blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|b| now < b)
    }

    /// An attempt was sent: take one request from the estimate.
    pub fn take(&mut self, now: Instant) {
        if let Some(b) = &mut self.requests {
            b.remaining = b.free(now) - 1.0;
            b.at = now;
        }
    }

    /// Whether an attempt may go now. Urgent attempts need one free request; background
    /// ones must leave `headroom` (a fraction) of each limit free.
    pub fn gate(&mut self, urgent: bool, headroom: f64, now: Instant) -> Gate {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Gate::WaitUntil(until);
            }
            self.blocked_until = None;
        }
        let reserve = if urgent { 0.0 } else { headroom };
        let mut at = now;
        if let Some(b) = &self.requests {
            at = at.max(b.free_at(b.limit * reserve + 1.0, now));
        }
        if let Some(b) = &self.tokens {
            // Token use per request is unknown before the answer: only keep the headroom.
            at = at.max(b.free_at(b.limit * reserve, now));
        }
        if at > now { Gate::WaitUntil(at) } else { Gate::Open }
    }

    /// The smallest fraction of a limit left free now, for the headroom gauge.
    pub fn headroom(&self, now: Instant) -> Option<f64> {
        [self.requests, self.tokens].iter().flatten().map(|b| (b.free(now) / b.limit).clamp(0.0, 1.0)).reduce(f64::min)
    }
}

enum Reading {
    Missing,
    Bad,
    Good(Bucket),
}

fn read_bucket(headers: &HeaderMap, kind: &str, now: Instant) -> Reading {
    let get = |what: &str| {
        let mut name = [0_u8; 40];
        let text = format_name(&mut name, what, kind);
        headers.get(text).map(|v| v.to_str().map_or("\u{0}", str::trim))
    };
    let (limit, remaining, reset) = (get("limit"), get("remaining"), get("reset"));
    if limit.is_none() && remaining.is_none() {
        return Reading::Missing;
    }
    let number = |v: Option<&str>| v.and_then(|v| v.parse::<f64>().ok()).filter(|n| n.is_finite() && *n >= 0.0);
    let (Some(limit), Some(remaining)) = (number(limit), number(remaining)) else {
        return Reading::Bad;
    };
    if !(1.0..=MAX_LIMIT).contains(&limit) || remaining > limit {
        return Reading::Bad;
    }
    let window = match reset {
        None => None,
        Some(text) => match parse_go_duration(text) {
            Some(d) if d <= MAX_RESET => Some(d),
            _ => return Reading::Bad,
        },
    };
    // Refill to whole by `reset`, never slower than the whole limit per hour.
    let default_rate = limit / DEFAULT_WINDOW.as_secs_f64();
    let refill = match window {
        Some(d) if !d.is_zero() && remaining < limit => {
            ((limit - remaining) / d.as_secs_f64()).max(limit / MAX_RESET.as_secs_f64())
        }
        _ => default_rate,
    };
    Reading::Good(Bucket { limit, remaining, refill, at: now })
}

/// `x-ratelimit-{what}-{kind}` into a stack buffer: no allocation per answer.
fn format_name<'a>(buf: &'a mut [u8; 40], what: &str, kind: &str) -> &'a str {
    let parts = ["x-ratelimit-", what, "-", kind];
    let mut n = 0;
    for p in parts {
        buf[n..n + p.len()].copy_from_slice(p.as_bytes());
        n += p.len();
    }
    std::str::from_utf8(&buf[..n]).unwrap_or_default()
}

/// Upper bound on any wait the upstream asks for; a longer ask is "not within a deadline".
pub const MAX_HINT: Duration = Duration::from_secs(24 * 3600);

/// A wait in seconds, when finite and not negative, capped at [`MAX_HINT`].
pub fn hint_seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(MAX_HINT.as_secs_f64())))
}

/// Parse a Go `time.Duration` string such as `6m0s`, `1h2m3.5s`, `12ms`, `150us`.
pub fn parse_go_duration(value: &str) -> Option<Duration> {
    let mut rest = value.trim();
    if rest.is_empty() || rest.len() > 64 {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    hint_seconds(total)
}
