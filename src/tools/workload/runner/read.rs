//! Reads one answer into its [`Observed`]: flexgate's headers, then the body (whole JSON
//! or an SSE stream parsed event by event). A stream counts as failed when it carries
//! an error event or ends without its terminal event, the same rule the SDKs apply.

use http::HeaderMap;
use serde_json::Value;

use super::{Observed, apply_report};
use crate::sse::SseParser;
use crate::tier::Tier;
use crate::usage::{self, BodyReport, EventVerdict, StreamUsage};

/// Read headers and body of `response` into `outcome`.
pub async fn answer(response: reqwest::Response, outcome: &mut Observed) {
    read_headers(response.headers(), outcome);
    let status = response.status();
    let sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        outcome.error = Some(error_label(status.as_u16(), &body));
    } else if sse {
        read_stream(response, outcome).await;
    } else {
        match response.bytes().await {
            Ok(body) => apply_report(outcome, usage::from_body(outcome.endpoint, &body)),
            Err(e) => outcome.error = Some(format!("body {}", transport_label(&e))),
        }
    }
}

fn read_headers(headers: &HeaderMap, outcome: &mut Observed) {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(class) = text("x-flexgate-class").filter(|c| !c.is_empty()) {
        class.clone_into(&mut outcome.class);
    }
    outcome.tier = text("x-flexgate-tier").and_then(Tier::from_reported);
    outcome.attempts = text("x-flexgate-attempts").and_then(|a| a.parse().ok());
    outcome.escalated = text("x-flexgate-escalated") == Some("true");
}

async fn read_stream(mut response: reqwest::Response, outcome: &mut Observed) {
    let mut parser = SseParser::default();
    let mut observer = StreamUsage::new(outcome.endpoint);
    let mut failed = None;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                failed = Some(format!("stream {}", transport_label(&e)));
                break;
            }
        };
        for event in parser.feed(&chunk) {
            if failed.is_none() && observer.observe(&event) == EventVerdict::Error {
                failed = Some(format!("stream error {}", stream_error_code(&event.data)));
            }
        }
        if failed.is_some() {
            break;
        }
    }
    if failed.is_none() {
        if let Some(event) = parser.finish() {
            observer.observe(&event);
        }
        if !observer.saw_terminal() {
            failed = Some("stream ended early".to_owned());
        }
    }
    apply_report(
        outcome,
        BodyReport {
            usage: observer.usage(),
            service_tier: observer.service_tier().map(str::to_owned),
            model: observer.model().map(str::to_owned),
        },
    );
    outcome.error = failed;
}

/// `STATUS CODE`: the error body's `code`, else its `type`, else the status alone.
pub fn error_label(status: u16, body: &[u8]) -> String {
    let error = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("error").cloned());
    let field = |key: &str| error.as_ref()?.get(key)?.as_str().map(str::to_owned);
    match field("code").or_else(|| field("type")) {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    }
}

/// The `code` of an in-stream error event (`{"error": {"code"}}` or a Responses
/// `error` event's own `code`).
fn stream_error_code(data: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return "unreadable".to_owned();
    };
    let code = value.pointer("/error/code").or_else(|| value.get("code")).and_then(Value::as_str);
    code.unwrap_or("unknown").to_owned()
}

/// A short, URL-free description of a transport failure.
pub fn transport_label(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "connection broke"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_labels_prefer_code_then_type() {
        let quota = br#"{"error": {"message": "m", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}"#;
        assert_eq!(error_label(429, quota), "429 insufficient_quota");
        let server = br#"{"error": {"message": "m", "type": "server_error", "param": null, "code": null}}"#;
        assert_eq!(error_label(500, server), "500 server_error");
        assert_eq!(error_label(502, b"<html>bad gateway</html>"), "502");
    }

    #[test]
    fn stream_error_codes() {
        assert_eq!(stream_error_code(r#"{"error": {"code": "upstream_stream_error"}}"#), "upstream_stream_error");
        assert_eq!(stream_error_code(r#"{"type": "error", "code": "server_is_overloaded"}"#), "server_is_overloaded");
        assert_eq!(stream_error_code("{"), "unreadable");
    }
}
