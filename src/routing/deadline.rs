//! The effective deadline: the smallest of the class deadline, `x-flexgate-deadline`, and
//! the client's announced timeout minus a safety margin.

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use crate::config::Config;
use crate::error::GatewayError;

/// The client's own timeout as the official SDKs announce it, in seconds. Names as
/// constants: a lookup by `&str` parses the name first, on every request.
const SDK_TIMEOUT_HEADERS: [HeaderName; 2] =
    [HeaderName::from_static("x-stainless-read-timeout"), HeaderName::from_static("x-stainless-timeout")];
const X_DEADLINE: HeaderName = HeaderName::from_static("x-flexgate-deadline");

pub fn effective_deadline(
    config: &Config,
    class_deadline: Duration,
    headers: &HeaderMap,
) -> Result<Duration, GatewayError> {
    let mut deadline = class_deadline;
    if let Some(value) = headers.get(X_DEADLINE) {
        let text = value.to_str().unwrap_or_default();
        let bad =
            || GatewayError::BadDeadline { header: "x-flexgate-deadline", value: text.chars().take(64).collect() };
        let requested = humantime::parse_duration(text.trim()).map_err(|_| bad())?;
        if requested.is_zero() {
            return Err(bad());
        }
        deadline = deadline.min(requested);
    }
    // An SDK header we cannot read is ignored rather than rejected: it is not ours.
    let announced = SDK_TIMEOUT_HEADERS
        .iter()
        .filter_map(|h| headers.get(h)?.to_str().ok()?.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
        .min();
    if let Some(timeout) = announced {
        let margin = config.retry.client_timeout_margin;
        // A timeout shorter than twice the margin keeps half of itself instead.
        let usable = if timeout > margin * 2 { timeout.saturating_sub(margin) } else { timeout / 2 };
        deadline = deadline.min(usable);
    }
    Ok(deadline)
}
