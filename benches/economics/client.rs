//! The client both paths use: it behaves as the official OpenAI SDKs do by default.
//!
//! - `max_retries = 2`: up to three attempts per request;
//! - retried: connection errors and timeouts, 408, 409, 429 and 5xx, unless the answer says
//!   `x-should-retry: false` (and always when it says `true`);
//! - the wait: `retry-after-ms`, else `retry-after` in seconds, when it is above zero and at
//!   most 60 s; otherwise 0.5 s doubling per retry up to 8 s, times a jitter in (0.75, 1].
//!
//! The SDK's own timeout (10 minutes) never ends a request here: a request still running
//! 30 s after its deadline has missed it anyway and is cut, so a run stays bounded.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

const MAX_RETRIES: u32 = 2;
const INITIAL_DELAY: f64 = 0.5;
const MAX_DELAY: f64 = 8.0;
/// How long a request may run past its deadline before the client gives up on it.
const PAST_DEADLINE: Duration = Duration::from_secs(30);

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: String,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
    pub deadline: Duration,
}

/// What the client saw of one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub urgent: bool,
    pub served: Served,
    pub late: bool,
    /// `usage` of a successful answer: (prompt, completion) tokens.
    pub usage: Option<(u64, u64)>,
}

/// How a request ended: not served, or served on the tier its answer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Not,
    Flex,
    Standard,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.served != Served::Not
    }
}

pub async fn send(http: &reqwest::Client, request: &Request, urgent: bool) -> Outcome {
    let started = Instant::now();
    let cut = started + request.deadline + PAST_DEADLINE;
    let mut outcome = Outcome { urgent, served: Served::Not, late: false, usage: None };
    for retry in 0..=MAX_RETRIES {
        let mut builder = http.post(&request.url).bearer_auth("sk-economics").json(&request.body);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let answer = tokio::time::timeout_at(cut, builder.send()).await;
        let wait = match answer {
            Err(_) => break,
            Ok(Err(_)) => None,
            Ok(Ok(response)) if response.status().is_success() => {
                let body = tokio::time::timeout_at(cut, response.json::<Value>()).await;
                if let Ok(Ok(body)) = body {
                    let flex = body["service_tier"].as_str() == Some("flex");
                    outcome.served = if flex { Served::Flex } else { Served::Standard };
                    let tokens = |k: &str| body["usage"][k].as_u64().unwrap_or(0);
                    outcome.usage = Some((tokens("prompt_tokens"), tokens("completion_tokens")));
                    break;
                }
                None
            }
            Ok(Ok(response)) => {
                if !should_retry(&response) {
                    break;
                }
                hinted(response.headers())
            }
        };
        if retry == MAX_RETRIES {
            break;
        }
        let wait = wait.unwrap_or_else(|| backoff(retry));
        if Instant::now() + wait >= cut {
            break;
        }
        tokio::time::sleep(wait).await;
    }
    outcome.late = started.elapsed() > request.deadline;
    outcome
}

fn should_retry(response: &reqwest::Response) -> bool {
    match response.headers().get("x-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => return true,
        Some("false") => return false,
        _ => {}
    }
    let status = response.status().as_u16();
    matches!(status, 408 | 409 | 429) || status >= 500
}

/// The wait an answer asks for, when the SDK would honour it.
fn hinted(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let seconds = number("retry-after-ms").map(|ms| ms / 1000.0).or_else(|| number("retry-after"))?;
    (seconds > 0.0 && seconds <= 60.0).then(|| Duration::from_secs_f64(seconds))
}

/// The SDK's own backoff before retry number `retry + 1`.
fn backoff(retry: u32) -> Duration {
    let base = (INITIAL_DELAY * 2_f64.powi(i32::try_from(retry).unwrap_or(30))).min(MAX_DELAY);
    let jitter = 1.0 - 0.25 * rand::random::<f64>();
    Duration::from_secs_f64(base * jitter)
}
