//! Scripted faults: the `x-sim-fault: STEP[,STEP...]` request header.
//!
//! The sim counts attempts per (`x-request-id` as received, header value); attempt k
//! (0-based) uses step k and the last step repeats. Without an `x-request-id` all such
//! requests share the empty id, so a plain client sees the script advance per request.
//! Every attempt advances the counter, whether or not its step applies.
//!
//! Steps: `ok`; `500`; `502`; `503` (`server_is_overloaded`, `retry-after: 1`); `400`;
//! `429-capacity` (flex capacity body, no `retry-after`); `429-rate` (`rate_limit_exceeded`,
//! `retry-after-ms: 200`, `retry-after: 1`, `x-ratelimit-reset-requests: 200ms`; `429-rate:2s` for
//! another wait);
//! `429-slow-down` (`slow_down`); `429-quota` (`insufficient_quota`); `429-credit`
//! (`credit_balance_exhausted`); `429-spend` (`project_spend_limit_exceeded`); `hang`
//! (never send headers; only a shutting-down `serve` ends it, with a 503); `cut` (stream:
//! a few chunks, then the connection breaks without the terminal event; non-stream:
//! `content-length` and half the body, then it breaks); `stall` (the same prefix, then
//! nothing while the connection stays open); `reset` (the connection is closed before any
//! byte of the answer, headers included, is sent); `malformed` (200 `application/json`
//! that is not JSON); `slow:DURATION` (extra latency first).
//! A `flex:` prefix (`flex:429-capacity`) applies the step only when the request would be
//! served on flex; otherwise that attempt behaves normally. Error steps answer at once,
//! before quota, rate-limit and latency. An unparsable script is a 400.

use std::collections::HashMap;
use std::time::Duration;

use http::HeaderMap;
use parking_lot::Mutex;

use super::Sim;
use super::errors::ApiError;
use super::log::Outcome;
use super::record::Ctx;

/// Header carrying the script.
pub const FAULT_HEADER: &str = "x-sim-fault";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Fault {
    Ok,
    Status(u16),
    Capacity,
    /// A rate-limit 429 whose hints say to wait this long.
    Rate(Duration),
    SlowDown,
    Quota,
    Credit,
    Spend,
    Hang,
    Cut,
    Stall,
    Reset,
    Malformed,
    Slow(Duration),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    fault: Fault,
    flex_only: bool,
    text: String,
}

/// How the body of a successful answer is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Normal,
    Cut,
    Stall,
    Reset,
    Malformed,
}

fn parse_step(raw: &str) -> Result<Step, ApiError> {
    let text = raw.trim();
    let (flex_only, rest) = match text.strip_prefix("flex:") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let fault = match rest {
        "ok" => Fault::Ok,
        "500" => Fault::Status(500),
        "502" => Fault::Status(502),
        "503" => Fault::Status(503),
        "400" => Fault::Status(400),
        "429-capacity" => Fault::Capacity,
        "429-rate" => Fault::Rate(Duration::from_millis(200)),
        "429-slow-down" => Fault::SlowDown,
        "429-quota" => Fault::Quota,
        "429-credit" => Fault::Credit,
        "429-spend" => Fault::Spend,
        "hang" => Fault::Hang,
        "cut" => Fault::Cut,
        "stall" => Fault::Stall,
        "reset" => Fault::Reset,
        "malformed" => Fault::Malformed,
        other => {
            let timed = |prefix: &str| other.strip_prefix(prefix).and_then(|d| humantime::parse_duration(d).ok());
            match (timed("slow:"), timed("429-rate:")) {
                (Some(d), _) => Fault::Slow(d),
                (_, Some(d)) => Fault::Rate(d),
                _ => return Err(ApiError::bad_request(format!("Invalid `{FAULT_HEADER}` step `{text}`."))),
            }
        }
    };
    Ok(Step { fault, flex_only, text: text.to_owned() })
}

fn parse_script(script: &str) -> Result<Vec<Step>, ApiError> {
    script.split(',').map(parse_step).collect()
}

/// Attempt counters per (request id, script).
#[derive(Default)]
pub(crate) struct FaultScripts {
    counters: Mutex<HashMap<(String, String), usize>>,
}

impl FaultScripts {
    /// The 0-based attempt number of this request, counting it.
    fn next_attempt(&self, request_id: &str, script: &str) -> usize {
        let mut counters = self.counters.lock();
        let counter = counters.entry((request_id.to_owned(), script.to_owned())).or_insert(0);
        *counter += 1;
        *counter - 1
    }

    pub fn reset(&self) {
        self.counters.lock().clear();
    }
}

/// Applies this attempt's scripted step. Error steps come back as `Err`, `hang` waits
/// for shutdown (its log entry is completed first), `slow:` sleeps, and the rest say how the
/// body is to be shaped. `flex` tells whether the request would be served on flex.
pub(crate) async fn gate(
    sim: &Sim,
    ctx: &Ctx,
    headers: &HeaderMap,
    model: Option<&str>,
    flex: bool,
    out: &mut Outcome,
) -> Result<Shape, ApiError> {
    let Some(script) = headers.get(FAULT_HEADER) else {
        return Ok(Shape::Normal);
    };
    let script = script.to_str().map_err(|_| ApiError::bad_request(format!("`{FAULT_HEADER}` must be ASCII.")))?;
    let steps = parse_script(script)?;
    let attempt = sim.inner.faults.next_attempt(ctx.received_id.as_deref().unwrap_or(""), script);
    let Some(step) = steps.get(attempt).or_else(|| steps.last()) else {
        return Ok(Shape::Normal);
    };
    if step.flex_only && !flex {
        return Ok(Shape::Normal);
    }
    out.fault = Some(step.text.clone());
    match step.fault {
        Fault::Ok => Ok(Shape::Normal),
        Fault::Status(500) => Err(ApiError::server_error()),
        Fault::Status(502) => Err(ApiError::bad_gateway()),
        Fault::Status(503) => Err(ApiError::overloaded()),
        Fault::Status(_) => Err(ApiError::bad_request(format!("Simulated bad request (`{FAULT_HEADER}: {script}`)."))),
        Fault::Capacity => Err(ApiError::flex_capacity()),
        Fault::Rate(wait) => Err(ApiError::scripted_rate_limit(model.unwrap_or("the model"), wait)),
        Fault::SlowDown => Err(ApiError::slow_down()),
        Fault::Quota => Err(ApiError::insufficient_quota()),
        Fault::Credit => Err(ApiError::credit_exhausted()),
        Fault::Spend => Err(ApiError::spend_limit()),
        Fault::Hang => {
            sim.inner.log.finish(ctx.seq, 0, Some(out.clone()));
            sim.stopped().await;
            Err(ApiError::new(http::StatusCode::SERVICE_UNAVAILABLE, "server_error", "The simulator is shutting down."))
        }
        Fault::Slow(extra) => {
            tokio::time::sleep(extra).await;
            Ok(Shape::Normal)
        }
        Fault::Cut => Ok(Shape::Cut),
        Fault::Stall => Ok(Shape::Stall),
        Fault::Reset => Ok(Shape::Reset),
        Fault::Malformed => Ok(Shape::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step() {
        let script = "ok,500,502,503,400,429-capacity,429-rate,429-slow-down,429-quota,\
                      429-credit,429-spend,hang,cut,stall,malformed,slow:2s,flex:429-capacity,reset";
        let steps = parse_script(script).unwrap();
        assert_eq!(steps.len(), 18);
        assert_eq!(steps[15].fault, Fault::Slow(Duration::from_secs(2)));
        assert!(steps[16].flex_only && steps[16].fault == Fault::Capacity);
        assert_eq!(steps[16].text, "flex:429-capacity");
        assert_eq!(steps[17].fault, Fault::Reset);
        assert!(parse_script("ok,boom").is_err());
        assert!(parse_script("slow:soon").is_err());
        assert!(parse_script("").is_err());
    }

    #[test]
    fn counters_are_per_request_id_and_script() {
        let scripts = FaultScripts::default();
        assert_eq!(scripts.next_attempt("a", "500,ok"), 0);
        assert_eq!(scripts.next_attempt("a", "500,ok"), 1);
        assert_eq!(scripts.next_attempt("b", "500,ok"), 0);
        assert_eq!(scripts.next_attempt("a", "503"), 0);
        scripts.reset();
        assert_eq!(scripts.next_attempt("a", "500,ok"), 0);
    }
}
