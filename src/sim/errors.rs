//! OpenAI-shaped error answers of the simulator: the `{"error":{message,type,param,code}}`
//! envelope, its status and extra headers. Every error body the sim sends is built here,
//! so type/code pairs stay consistent with the catalogue in the facts file.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::ratelimit::{self, RateSnapshot};

/// One `OpenAI` error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
    /// Extra headers (`retry-after`, `x-ratelimit-*`); a `Vec` keeps `Result`s small.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind, param: None, code: None, headers: Vec::new() }
    }

    pub fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), value));
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn invalid_json() -> Self {
        Self::bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, \
             but what was sent was not valid JSON.)",
        )
    }

    pub fn missing_model() -> Self {
        Self::bad_request("you must provide a model parameter")
    }

    pub fn missing_param(param: &'static str) -> Self {
        Self::bad_request(format!("Missing required parameter: '{param}'."))
            .param(param)
            .code("missing_required_parameter")
    }

    pub fn invalid_param(param: &'static str, message: impl Into<String>) -> Self {
        Self::bad_request(message).param(param).code("invalid_value")
    }

    pub fn missing_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You didn't provide an API key. You need to provide your API key in an \
             Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
        .code("invalid_api_key")
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .param("model")
        .code("model_not_found")
    }

    pub fn unknown_url(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "Unknown request URL: {method} {path}. Please check the URL for typos, \
                 or see the docs at https://platform.openai.com/docs/api-reference/."
            ),
        )
        .code("unknown_url")
    }

    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "The request body is too large.")
    }

    /// Flex capacity exhausted. Deliberately without `retry-after`: the docs promise none.
    pub fn flex_capacity() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "service_unavailable_error",
            "Resource unavailable: flex processing capacity is temporarily exhausted. \
             Please retry later or use the default service tier.",
        )
        .code("resource_unavailable")
    }

    /// Over the configured RPM limit; `snap` is the limiter state that refused it.
    pub fn rate_limited(model: &str, snap: &RateSnapshot) -> Self {
        let wait = ratelimit::go_duration(snap.reset);
        let millis = snap.reset.as_millis().max(1);
        let seconds = millis.div_ceil(1000);
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            format!(
                "Rate limit reached for {model} in organization org-sim on requests per min \
                 (RPM): Limit {limit}, Used {limit}, Requested 1. Please try again in {wait}.",
                limit = snap.limit
            ),
        )
        .code("rate_limit_exceeded")
        .header("retry-after-ms", &millis.to_string())
        .header("retry-after", &seconds.to_string());
        let mut limits = HeaderMap::new();
        snap.write_request_headers(&mut limits);
        err.headers.extend(limits.into_iter().filter_map(|(name, value)| Some((name?, value))));
        err
    }

    /// The scripted `429-rate` answer, asking the client to wait `reset`.
    pub fn scripted_rate_limit(model: &str, reset: Duration) -> Self {
        let snap = RateSnapshot { limit: ratelimit::NOMINAL_RPM, remaining: 0, reset };
        Self::rate_limited(model, &snap)
    }

    pub fn slow_down() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Please reduce your rate of requests: your traffic is ramping up too quickly.",
        )
        .code("slow_down")
    }

    pub fn insufficient_quota() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details. \
             For more information on this error, read the docs: \
             https://platform.openai.com/docs/guides/error-codes/api-errors.",
        )
        .code("insufficient_quota")
    }

    pub fn credit_exhausted() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "Your credit balance is too low to access the API. Please go to Plans & Billing \
             to purchase credits.",
        )
        .code("credit_balance_exhausted")
    }

    pub fn spend_limit() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "You have exceeded your project's spend limit. Raise it in the project settings.",
        )
        .code("project_spend_limit_exceeded")
    }

    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server had an error while processing your request. Sorry about that!",
        )
    }

    pub fn bad_gateway() -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "server_error", "Bad gateway.")
    }

    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable_error",
            "The server is overloaded or not ready yet.",
        )
        .code("server_is_overloaded")
        .header("retry-after", "1")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}
