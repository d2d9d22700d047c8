//! Classifies one upstream answer: success, retryable (with why and any wait hint), or
//! final. Classification is kept apart from the schedule in `retry.rs`.
//!
//! | answer | verdict |
//! |---|---|
//! | 2xx | success |
//! | 429 `insufficient_quota`, `credit_balance_exhausted`, `*_limit_exceeded` (not `rate_limit_exceeded`) | final: billing, never retried or escalated |
//! | 429 `rate_limit_exceeded`, `slow_down`, or any other 429 off flex | retry: rate limit, honour the hints |
//! | any other 429 on a flex attempt | retry: flex capacity |
//! | 408, 500, 502, 503, 504 | retry: server error |
//! | connection error / attempt timeout before the answer | retry |
//! | other 4xx/5xx | final: passed through |

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::backoff::retry_hint;
use crate::metrics::AttemptResult;
use crate::tier::Tier;

/// Why an attempt is worth repeating (label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    FlexCapacity,
    RateLimit,
    ServerError,
    ConnectError,
    Timeout,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlexCapacity => "flex_capacity",
            Self::RateLimit => "rate_limit",
            Self::ServerError => "server_error",
            Self::ConnectError => "connect_error",
            Self::Timeout => "timeout",
        }
    }

    pub fn result(self) -> AttemptResult {
        match self {
            Self::FlexCapacity => AttemptResult::FlexCapacity,
            Self::RateLimit => AttemptResult::RateLimit,
            Self::ServerError => AttemptResult::ServerError,
            Self::ConnectError => AttemptResult::ConnectError,
            Self::Timeout => AttemptResult::Timeout,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Worth another attempt; `hint` is the wait the upstream asked for.
    Retry {
        reason: Reason,
        hint: Option<Duration>,
    },
    /// Passed to the client as it is.
    Final {
        result: AttemptResult,
    },
}

impl Verdict {
    pub fn result(self) -> AttemptResult {
        match self {
            Self::Success => AttemptResult::Success,
            Self::Retry { reason, .. } => reason.result(),
            Self::Final { result } => result,
        }
    }

    pub fn is_billing(self) -> bool {
        matches!(self, Self::Final { result: AttemptResult::Billing })
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    error: Option<ErrorBody<'a>>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    code: Option<std::borrow::Cow<'a, str>>,
}

/// `error.type` and `error.code` of an OpenAI error body, when it has them.
pub fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<Envelope<'_>>(body) {
        Ok(Envelope { error: Some(e) }) => {
            (e.kind.map(std::borrow::Cow::into_owned), e.code.map(std::borrow::Cow::into_owned))
        }
        _ => (None, None),
    }
}

fn is_billing(kind: Option<&str>, code: Option<&str>) -> bool {
    let code_billing = code.is_some_and(|c| {
        c == "insufficient_quota"
            || c == "credit_balance_exhausted"
            || (c.ends_with("_limit_exceeded") && c != "rate_limit_exceeded")
    });
    code_billing || kind == Some("insufficient_quota")
}

fn is_rate_limit(kind: Option<&str>, code: Option<&str>) -> bool {
    matches!(code, Some("rate_limit_exceeded" | "slow_down"))
        || matches!(kind, Some("rate_limit_error" | "tokens" | "requests"))
}

/// Classify an answer with a status (the body is only read for non-2xx statuses).
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], tier: Option<Tier>) -> Verdict {
    if status.is_success() {
        return Verdict::Success;
    }
    let hint = retry_hint(headers);
    match status.as_u16() {
        429 => {
            let (kind, code) = error_fields(body);
            let (kind, code) = (kind.as_deref(), code.as_deref());
            if is_billing(kind, code) {
                Verdict::Final { result: AttemptResult::Billing }
            } else if tier == Some(Tier::Flex) && !is_rate_limit(kind, code) {
                Verdict::Retry { reason: Reason::FlexCapacity, hint }
            } else {
                Verdict::Retry { reason: Reason::RateLimit, hint }
            }
        }
        408 | 500 | 502 | 503 | 504 => Verdict::Retry { reason: Reason::ServerError, hint },
        400..=499 => Verdict::Final { result: AttemptResult::ClientError },
        _ => Verdict::Final { result: AttemptResult::ServerError },
    }
}

impl Verdict {
    /// What the answer means to admission control, which needs only this much of it.
    pub fn answered(self) -> crate::admission::Answered {
        use crate::admission::Answered;
        match self {
            Verdict::Success => Answered::Success,
            Verdict::Retry { reason: Reason::RateLimit, hint } => Answered::RateLimited { hint },
            Verdict::Retry { reason: Reason::FlexCapacity, hint } => Answered::FlexCapacity { hint },
            _ => Answered::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, code: &str) -> Vec<u8> {
        format!(r#"{{"error":{{"message":"m","type":"{kind}","param":null,"code":"{code}"}}}}"#).into_bytes()
    }

    fn c(status: u16, b: &[u8], tier: Option<Tier>) -> Verdict {
        classify(StatusCode::from_u16(status).unwrap(), &HeaderMap::new(), b, tier)
    }

    #[test]
    fn reasons_are_the_labels_the_metrics_prime() {
        use crate::metrics::{ESCALATION_REASONS, RETRY_REASONS};
        let all = [Reason::FlexCapacity, Reason::RateLimit, Reason::ServerError, Reason::ConnectError, Reason::Timeout];
        for reason in all.map(Reason::as_str) {
            assert!(RETRY_REASONS.contains(&reason) && ESCALATION_REASONS.contains(&reason), "{reason}");
        }
        assert_eq!(RETRY_REASONS.len(), all.len());
    }

    #[test]
    fn the_429_table() {
        let flex = Some(Tier::Flex);
        let std = Some(Tier::Standard);
        let cap = Verdict::Retry { reason: Reason::FlexCapacity, hint: None };
        let rl = Verdict::Retry { reason: Reason::RateLimit, hint: None };
        let billing = Verdict::Final { result: AttemptResult::Billing };
        assert_eq!(c(429, &body("service_unavailable_error", "resource_unavailable"), flex), cap);
        assert_eq!(c(429, b"not json", flex), cap);
        assert_eq!(c(429, &body("requests", "rate_limit_exceeded"), flex), rl);
        assert_eq!(c(429, &body("rate_limit_error", "slow_down"), std), rl);
        assert_eq!(c(429, &body("service_unavailable_error", "resource_unavailable"), std), rl);
        for code in [
            "insufficient_quota",
            "credit_balance_exhausted",
            "organization_spend_limit_exceeded",
            "project_spend_limit_exceeded",
            "organization_usage_limit_exceeded",
        ] {
            assert_eq!(c(429, &body("insufficient_quota", code), flex), billing, "{code}");
            assert_eq!(c(429, &body("insufficient_quota", code), std), billing, "{code}");
        }
        assert_eq!(c(429, &body("insufficient_quota", "something_new"), flex), billing);
    }

    #[test]
    fn other_statuses() {
        for s in [408, 500, 502, 503, 504] {
            assert!(matches!(c(s, b"", None), Verdict::Retry { reason: Reason::ServerError, .. }), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert_eq!(c(s, b"", None), Verdict::Final { result: AttemptResult::ClientError }, "{s}");
        }
        assert_eq!(c(501, b"", None), Verdict::Final { result: AttemptResult::ServerError });
        assert_eq!(c(200, b"", None), Verdict::Success);
    }

    #[test]
    fn hints_come_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", "250".parse().unwrap());
        let v = classify(StatusCode::TOO_MANY_REQUESTS, &h, &body("requests", "rate_limit_exceeded"), None);
        assert_eq!(v, Verdict::Retry { reason: Reason::RateLimit, hint: Some(Duration::from_millis(250)) });
    }
}
