//! Liveness, readiness and the metrics endpoint; these routes need no gateway key.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use crate::state::AppState;

/// `/healthz`: the process is up and serving.
pub async fn live() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `/readyz`: configuration loaded and not draining. With `[shared]`, the detail says
/// whether Redis answers; a replica serving on local state is still ready.
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "draining"}))).into_response()
    } else if let Some(shared) = &state.shared {
        let shared = if shared.link.is_up() { "redis: up" } else { "redis: unreachable, serving on local state" };
        Json(json!({"status": "ready", "shared_state": shared})).into_response()
    } else {
        Json(json!({"status": "ready"})).into_response()
    }
}

/// `/metrics`: the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.admission.export(&state.admission);
    state.metrics.budgets.export(&state.budgets);
    if let Some(shared) = &state.shared {
        state.metrics.shared.export(shared.link.is_up());
    }
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}
