//! The one error type for failures flexgate itself answers, rendered as OpenAI's envelope.
//!
//! Upstream 4xx/5xx answers that are passed through are *not* errors: they travel as
//! responses. `GatewayError` covers what flexgate decides on its own: bad client input,
//! an unreachable or silent upstream, an exhausted retry plan, and internal faults.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::json;

/// Tells OpenAI's SDKs whether to retry; flexgate sets it on its own errors and on the
/// upstream errors it passes through after retrying them itself.
pub const X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// What is left of a budgeted client's limit, on every answer to it (`crate::budgets`).
pub const X_BUDGET_REMAINING: HeaderName = HeaderName::from_static("x-flexgate-budget-remaining-usd");

/// Who caused a failure; becomes the request's `outcome` label (`metrics::Outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Client,
    Upstream,
    Deadline,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    // --- caused by the client ---
    #[error("We could not parse the JSON body of your request: {0}")]
    InvalidJson(String),
    #[error("{message}")]
    InvalidParam { param: &'static str, message: String },
    #[error("The request body is larger than this gateway accepts ({limit} bytes, `server.max_body`).")]
    BodyTooLarge { limit: usize },
    #[error("The request body stalled: nothing arrived for {silence} (`server.body_timeout`) before it was complete.")]
    BodyTimeout { silence: String },
    #[error("Unknown class `{name}` in `x-flexgate-class`. Valid classes: {valid}.")]
    UnknownClass { name: String, valid: String },
    #[error("Invalid `{header}` header `{value}`: use a duration such as `30s` or `10m`.")]
    BadDeadline { header: &'static str, value: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error(
        "Unknown request URL: {method} {path}. flexgate serves OpenAI paths under /v1/ and the configured lane prefixes."
    )]
    NotFound { method: String, path: String },
    /// A file or batch id this caller has no object for (unknown, deleted, or another
    /// client's). `what` is `File` or `batch`, as OpenAI's messages spell them.
    #[error("{}", if *what == "File" { format!("No such File object: {id}") } else { format!("No {what} found with id '{id}'.") })]
    NoSuchObject { what: &'static str, id: String },
    // --- caused by the upstream ---
    #[error("The upstream API could not be reached: {0}")]
    UpstreamUnreachable(String),
    #[error("The upstream API did not answer within {0}.")]
    UpstreamTimeout(String),
    #[error("The upstream API sent a response flexgate could not read: {0}")]
    UpstreamProtocol(String),
    // --- the request's budget ran out ---
    #[error(
        "Flex capacity was unavailable until the request's deadline ({deadline}) and this class does not escalate to the standard tier."
    )]
    FlexUnavailable { deadline: String },
    #[error("The request's deadline ({deadline}) passed before the upstream answered.")]
    DeadlineExceeded { deadline: String },
    // --- the client's spending limit ---
    /// The message names the client, its spend, its limit and the reset time
    /// (`crate::budgets`); `retry_after` is the seconds until that reset.
    #[error("{message}")]
    /// `remaining`: nano-dollars left of the limit (a request can be refused with some
    /// left, when its estimate does not fit).
    BudgetExceeded { message: String, retry_after: u64, remaining: u64 },
    // --- flexgate's own fault ---
    #[error("flexgate hit an internal error while handling this request. It has been logged; please retry.")]
    Internal(String),
}

impl GatewayError {
    /// Exhaustive on purpose: a new variant must choose its status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) | Self::InvalidParam { .. } | Self::UnknownClass { .. } | Self::BadDeadline { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound { .. } | Self::NoSuchObject { .. } => StatusCode::NOT_FOUND,
            Self::UpstreamUnreachable(_) | Self::UpstreamProtocol(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) | Self::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::FlexUnavailable { .. } | Self::BudgetExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidJson(_)
            | Self::InvalidParam { .. }
            | Self::BodyTooLarge { .. }
            | Self::BodyTimeout { .. }
            | Self::UnknownClass { .. }
            | Self::BadDeadline { .. }
            | Self::Unauthorized(_)
            | Self::NotFound { .. }
            | Self::NoSuchObject { .. }
            | Self::BudgetExceeded { .. } => ErrorKind::Client,
            Self::UpstreamUnreachable(_) | Self::UpstreamTimeout(_) | Self::UpstreamProtocol(_) => ErrorKind::Upstream,
            Self::FlexUnavailable { .. } | Self::DeadlineExceeded { .. } => ErrorKind::Deadline,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    /// OpenAI's `error.type` and `error.code` for this error.
    fn type_and_code(&self) -> (&'static str, &'static str) {
        match self {
            Self::InvalidJson(_) => ("invalid_request_error", "invalid_json"),
            Self::InvalidParam { .. } => ("invalid_request_error", "invalid_value"),
            Self::BodyTooLarge { .. } => ("invalid_request_error", "request_too_large"),
            Self::BodyTimeout { .. } => ("invalid_request_error", "request_timeout"),
            Self::UnknownClass { .. } => ("invalid_request_error", "unknown_class"),
            Self::BadDeadline { .. } => ("invalid_request_error", "invalid_deadline"),
            Self::Unauthorized(_) => ("invalid_request_error", "invalid_api_key"),
            Self::NotFound { .. } => ("invalid_request_error", "unknown_url"),
            Self::NoSuchObject { what, .. } => {
                ("invalid_request_error", if *what == "File" { "file_not_found" } else { "batch_not_found" })
            }
            Self::UpstreamUnreachable(_) => ("server_error", "upstream_unreachable"),
            Self::UpstreamTimeout(_) => ("timeout", "upstream_timeout"),
            Self::UpstreamProtocol(_) => ("server_error", "upstream_protocol_error"),
            Self::FlexUnavailable { .. } => ("flex_capacity_unavailable", "flex_capacity_unavailable"),
            Self::DeadlineExceeded { .. } => ("timeout", "deadline_exceeded"),
            Self::BudgetExceeded { .. } => ("insufficient_quota", "flexgate_budget_exceeded"),
            Self::Internal(_) => ("server_error", "internal_error"),
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            Self::InvalidParam { param, .. } => Some(param),
            Self::UnknownClass { .. } => Some("x-flexgate-class"),
            Self::BadDeadline { header, .. } => Some(header),
            Self::NoSuchObject { .. } => Some("id"),
            _ => None,
        }
    }

    /// Whether the client may usefully retry. Exhausted plans and client faults say no,
    /// so SDKs do not multiply retries flexgate already spent. A stalled body is the
    /// exception: nothing reached the upstream, and a stall is usually the network's.
    pub fn should_retry(&self) -> bool {
        matches!(self, Self::Internal(_) | Self::BodyTimeout { .. })
    }

    /// The OpenAI envelope as JSON.
    pub fn body(&self) -> serde_json::Value {
        let (kind, code) = self.type_and_code();
        json!({"error": {"message": self.to_string(), "type": kind, "param": self.param(), "code": code}})
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        let retry = if self.should_retry() { "true" } else { "false" };
        response.headers_mut().insert(X_SHOULD_RETRY, HeaderValue::from_static(retry));
        if let Self::BudgetExceeded { retry_after, remaining, .. } = &self {
            // Until the period resets; `x-should-retry: false` keeps the SDKs from waiting it out.
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(*retry_after));
            let left = HeaderValue::from_str(&crate::budgets::usd(*remaining)).unwrap_or(HeaderValue::from_static("0"));
            response.headers_mut().insert(X_BUDGET_REMAINING, left);
        }
        // The identify layer (`app::identify`) reads this to label a refusal no ledger
        // settled, and logs it once.
        response.extensions_mut().insert(self.kind());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_renders_the_openai_envelope() {
        let errors = [
            GatewayError::InvalidJson("x".into()),
            GatewayError::InvalidParam { param: "model", message: "m".into() },
            GatewayError::BodyTooLarge { limit: 1 },
            GatewayError::BodyTimeout { silence: "30s".into() },
            GatewayError::UnknownClass { name: "n".into(), valid: "a, b".into() },
            GatewayError::BadDeadline { header: "x-flexgate-deadline", value: "soon".into() },
            GatewayError::Unauthorized("no key"),
            GatewayError::NotFound { method: "GET".into(), path: "/x".into() },
            GatewayError::NoSuchObject { what: "File", id: "file-x".into() },
            GatewayError::NoSuchObject { what: "batch", id: "batch_x".into() },
            GatewayError::UpstreamUnreachable("refused".into()),
            GatewayError::UpstreamTimeout("10s".into()),
            GatewayError::UpstreamProtocol("bad".into()),
            GatewayError::FlexUnavailable { deadline: "20s".into() },
            GatewayError::DeadlineExceeded { deadline: "20s".into() },
            GatewayError::Internal("boom".into()),
            budget_exceeded(),
        ];
        for e in errors {
            let body = e.body();
            let err = &body["error"];
            assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{e:?}");
            assert!(err["type"].is_string() && err["code"].is_string(), "{e:?}");
            assert!(err.get("param").is_some(), "{e:?}");
            assert!(e.status().is_client_error() || e.status().is_server_error());
        }
    }

    fn budget_exceeded() -> GatewayError {
        GatewayError::BudgetExceeded {
            message: "Client `team-a` has used its budget.".into(),
            retry_after: 29_400,
            remaining: 0,
        }
    }

    /// OpenAI's own quota refusal: 429 `insufficient_quota`, which the SDKs must not retry.
    #[test]
    fn a_budget_refusal_reads_as_openais_quota_error() {
        let e = budget_exceeded();
        let body = e.body();
        assert_eq!(body["error"]["type"], "insufficient_quota");
        assert_eq!(body["error"]["code"], "flexgate_budget_exceeded");
        let response = e.into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[X_SHOULD_RETRY], "false");
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "29400");
        assert_eq!(response.headers()[X_BUDGET_REMAINING], "0");
    }

    #[test]
    fn statuses() {
        assert_eq!(GatewayError::BodyTooLarge { limit: 1 }.status(), 413);
        assert_eq!(GatewayError::BodyTimeout { silence: String::new() }.status(), 408);
        assert_eq!(GatewayError::UpstreamUnreachable(String::new()).status(), 502);
        assert_eq!(GatewayError::UpstreamTimeout(String::new()).status(), 504);
        assert_eq!(GatewayError::FlexUnavailable { deadline: String::new() }.status(), 429);
        assert_eq!(GatewayError::Unauthorized("x").status(), 401);
        let missing = GatewayError::NoSuchObject { what: "File", id: "file-abc".into() };
        assert_eq!(
            (missing.status(), missing.to_string().as_str()),
            (StatusCode::NOT_FOUND, "No such File object: file-abc")
        );
        let missing = GatewayError::NoSuchObject { what: "batch", id: "batch_1".into() };
        assert_eq!(missing.to_string(), "No batch found with id 'batch_1'.");
    }
}
