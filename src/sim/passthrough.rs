//! Handlers of the endpoints a gateway only forwards (models, files, audio speech). They
//! share the scripted-fault gate with the generation endpoints but have no tiers, no
//! latency and no rate limit; only `audio/speech` is billable (`quota_exhausted`).

use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::body::{self, Payload};
use super::errors::ApiError;
use super::faults;
use super::log::Outcome;
use super::record::Ctx;
use super::text::{fnv1a, splitmix64};
use super::{Sim, catalog};

/// Runs `op` behind the fault gate and shapes its payload.
async fn simple(
    sim: &Sim,
    ctx: &Ctx,
    headers: &HeaderMap,
    billable: bool,
    op: impl FnOnce() -> Result<Payload, ApiError>,
) -> Response {
    let mut out = Outcome::default();
    let result = async {
        let shape = faults::gate(sim, ctx, headers, None, false, &mut out).await?;
        if billable && sim.inner.config.quota_exhausted {
            return Err(ApiError::insufficient_quota());
        }
        let payload = op()?;
        Ok::<_, ApiError>(body::respond(sim, payload, shape))
    }
    .await;
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(out);
    response
}

fn json_payload(value: &Value) -> Payload {
    Payload::Json(Bytes::from(value.to_string()))
}

pub(crate) async fn list_models(
    State(sim): State<Sim>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
) -> Response {
    simple(&sim, &ctx, &headers, false, || Ok(json_payload(&catalog::list_json()))).await
}

pub(crate) async fn retrieve_model(
    State(sim): State<Sim>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    simple(&sim, &ctx, &headers, false, || catalog::retrieve_json(&id).map(|v| json_payload(&v))).await
}

pub(crate) async fn upload_file(
    State(sim): State<Sim>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let files = &sim.inner.files;
    let ids = &sim.inner.ids;
    simple(&sim, &ctx, &headers, false, || files.upload(ids, &headers, &body).map(|v| json_payload(&v))).await
}

pub(crate) async fn list_files(State(sim): State<Sim>, Extension(ctx): Extension<Ctx>, headers: HeaderMap) -> Response {
    simple(&sim, &ctx, &headers, false, || Ok(json_payload(&sim.inner.files.list()))).await
}

pub(crate) async fn retrieve_file(
    State(sim): State<Sim>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    simple(&sim, &ctx, &headers, false, || sim.inner.files.retrieve(&id).map(|v| json_payload(&v))).await
}

pub(crate) async fn file_content(
    State(sim): State<Sim>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    simple(&sim, &ctx, &headers, false, || {
        let bytes = sim.inner.files.content(&id)?;
        Ok(Payload::Binary { content_type: "application/octet-stream", bytes })
    })
    .await
}

pub(crate) async fn delete_file(
    State(sim): State<Sim>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    simple(&sim, &ctx, &headers, false, || sim.inner.files.delete(&id).map(|v| json_payload(&v))).await
}

pub(crate) async fn speech(
    State(sim): State<Sim>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    simple(&sim, &ctx, &headers, true, || speech_audio(&body)).await
}

/// Deterministic fake audio: an ID3 tag then `64 × input chars` pseudo-random bytes.
fn speech_audio(body: &Bytes) -> Result<Payload, ApiError> {
    let json: Value = serde_json::from_slice(body).map_err(|_| ApiError::invalid_json())?;
    let text = |field: &'static str| json.get(field).and_then(Value::as_str);
    let model = text("model").ok_or_else(ApiError::missing_model)?;
    catalog::require(model, &[catalog::Kind::Speech])?;
    let input = text("input").filter(|s| !s.is_empty()).ok_or_else(|| ApiError::missing_param("input"))?;
    text("voice").ok_or_else(|| ApiError::missing_param("voice"))?;
    let content_type = match text("response_format").unwrap_or("mp3") {
        "mp3" => "audio/mpeg",
        "opus" => "audio/opus",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        other => {
            return Err(ApiError::invalid_param("response_format", format!("Invalid 'response_format': '{other}'.")));
        }
    };
    let mut bytes = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
    let mut state = fnv1a(input.as_bytes());
    for _ in 0..input.chars().count() * 8 {
        state = splitmix64(state);
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    Ok(Payload::Binary { content_type, bytes: Bytes::from(bytes) })
}
