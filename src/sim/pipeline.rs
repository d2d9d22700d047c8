//! The one request pipeline of the generation endpoints (chat, responses, legacy
//! completions, embeddings). Order, which decides what a gateway sees first:
//!
//! 1. body is JSON (400), `model` given (400), model known for the endpoint (404),
//!    endpoint-specific input checks (400), `service_tier` valid for the model (400);
//! 2. the scripted fault step (error steps answer here, `slow:` sleeps here);
//! 3. `quota_exhausted` → 429 `insufficient_quota`;
//! 4. the request limit, counting every tier → 429 `rate_limit_exceeded`; then flex:
//!    outage window, trace or `flex_429_rate` draw → 429 capacity (counted, as at OpenAI);
//! 5. tier latency, then the answer (streamed or not), shaped by the fault step.
//!
//! Every answer carries the `x-ratelimit-*` headers.

use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;
use tokio::time::Instant;

use super::answer::{self, Answer, Spec};
use super::body::{self, Payload};
use super::catalog::{self, Kind};
use super::errors::ApiError;
use super::log::Outcome;
use super::ratelimit::{self, RateSnapshot};
use super::record::Ctx;
use super::usage::{self, SimUsage};
use super::{Sim, chat, completions, embeddings, responses};

/// Largest output limit accepted (`max_tokens` and friends).
pub const MAX_OUTPUT_TOKENS: u64 = 128_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Responses,
    Completions,
    Embeddings,
}

/// A validated generation request, ready to render.
pub(crate) struct Gen {
    pub model: String,
    pub served_tier: Option<&'static str>,
    pub usage: SimUsage,
    /// The answer's choices (chat and Responses; empty for the other endpoints).
    pub answer: Answer,
    pub stream: bool,
    pub include_usage: bool,
    /// Seeds the generated words; derived from the input only, so a streamed and a
    /// non-streamed answer to the same input carry the same text.
    pub seed: u64,
    pub json: Value,
}

impl Endpoint {
    fn kinds(self) -> &'static [Kind] {
        match self {
            Self::Chat | Self::Responses => &[Kind::Chat],
            Self::Completions => &[Kind::Chat, Kind::Instruct],
            Self::Embeddings => &[Kind::Embedding],
        }
    }

    fn prompt_tokens(self, json: &Value) -> Result<u64, ApiError> {
        match self {
            Self::Chat => chat::prompt_tokens(json),
            Self::Responses => responses::prompt_tokens(json),
            Self::Completions => completions::prompt_tokens(json),
            Self::Embeddings => embeddings::prompt_tokens(json),
        }
    }

    /// The answer (its usage included), or the 400 of an invalid parameter.
    fn answer(self, sim: &Sim, model: &str, json: &Value) -> Result<Answer, ApiError> {
        let prompt = self.prompt_tokens(json)?;
        let limit_fields: &[&'static str] = match self {
            Self::Chat => &["max_completion_tokens", "max_tokens"],
            Self::Responses => &["max_output_tokens"],
            Self::Completions => &["max_tokens"],
            Self::Embeddings => return Ok(answer::plain(usage::embeddings_usage(prompt))),
        };
        let limit = output_limit(json, limit_fields)?;
        let base = usage::usage_for(model, prompt, limit);
        let spec = match self {
            Self::Chat => Spec::chat(json)?,
            Self::Responses => Spec::responses(json)?,
            Self::Completions | Self::Embeddings => return Ok(answer::plain(base)),
        };
        Ok(answer::plan(base, limit, prompt, &spec, &sim.inner.ids))
    }

    fn render(self, sim: &Sim, generation: &Gen) -> Payload {
        match self {
            Self::Chat => chat::render(sim, generation),
            Self::Responses => responses::render(sim, generation),
            Self::Completions => completions::render(sim, generation),
            Self::Embeddings => embeddings::render(generation),
        }
    }
}

fn output_limit(json: &Value, fields: &[&'static str]) -> Result<Option<u64>, ApiError> {
    for &field in fields {
        match json.get(field) {
            None | Some(Value::Null) => {}
            Some(value) => {
                return value.as_u64().filter(|n| (1..=MAX_OUTPUT_TOKENS).contains(n)).map(Some).ok_or_else(|| {
                    ApiError::invalid_param(
                        field,
                        format!(
                            "Invalid '{field}': expected an integer between 1 and \
                                 {MAX_OUTPUT_TOKENS}, but got {value}."
                        ),
                    )
                });
            }
        }
    }
    Ok(None)
}

/// Characters of text in a message `content`: a string, or the `text` of its parts.
pub(crate) fn content_chars(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(text)) => text.chars().count(),
        Some(Value::Array(parts)) => parts.iter().map(|part| content_chars(part.get("text"))).sum(),
        _ => 0,
    }
}

macro_rules! handler {
    ($name:ident, $endpoint:expr) => {
        pub(crate) async fn $name(
            State(sim): State<Sim>,
            Extension(ctx): Extension<Ctx>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            generate(&sim, &ctx, &headers, &body, $endpoint).await
        }
    };
}

handler!(chat_handler, Endpoint::Chat);
handler!(responses_handler, Endpoint::Responses);
handler!(completions_handler, Endpoint::Completions);
handler!(embeddings_handler, Endpoint::Embeddings);

/// State of one attempt while it runs through the pipeline.
struct Run<'a> {
    sim: &'a Sim,
    ctx: &'a Ctx,
    headers: &'a HeaderMap,
    endpoint: Endpoint,
    out: Outcome,
    rate: Option<RateSnapshot>,
    tokens: u64,
}

async fn generate(sim: &Sim, ctx: &Ctx, headers: &HeaderMap, body: &Bytes, endpoint: Endpoint) -> Response {
    let mut run = Run { sim, ctx, headers, endpoint, out: Outcome::default(), rate: None, tokens: 0 };
    let mut response = match run.attempt(body).await {
        Ok(response) => response,
        Err(error) => {
            run.out.served_tier = None;
            error.into_response()
        }
    };
    let snap = run.rate.unwrap_or_else(|| sim.inner.limiter.peek(Instant::now()));
    snap.write_request_headers(response.headers_mut());
    ratelimit::write_token_headers(response.headers_mut(), run.tokens);
    response.extensions_mut().insert(run.out);
    response
}

impl Run<'_> {
    async fn attempt(&mut self, body: &Bytes) -> Result<Response, ApiError> {
        let json: Value = serde_json::from_slice(body).map_err(|_| ApiError::invalid_json())?;
        if !json.is_object() {
            return Err(ApiError::invalid_json());
        }
        self.observe(&json);
        let model =
            json.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()).ok_or_else(ApiError::missing_model)?;
        let info = catalog::require(model, self.endpoint.kinds())?;
        let answer = self.endpoint.answer(self.sim, model, &json)?;
        let usage = answer.usage;
        self.tokens = usage.total_tokens;
        let tier = match self.endpoint {
            Endpoint::Chat | Endpoint::Responses => Some(catalog::resolve_tier(json.get("service_tier"), info)?),
            Endpoint::Completions | Endpoint::Embeddings => None,
        };
        let flex = tier == Some("flex");
        let sim = self.sim;
        let shape = super::faults::gate(sim, self.ctx, self.headers, Some(model), flex, &mut self.out).await?;
        if shape == super::faults::Shape::Reset {
            // Like the error steps, a reset happens at once, before limits and latency.
            return Ok(body::reset());
        }
        if sim.inner.config.quota_exhausted {
            return Err(ApiError::insufficient_quota());
        }
        let now = Instant::now();
        let admitted = sim.inner.limiter.admit(now);
        let snap = admitted.unwrap_or_else(|snap| snap);
        self.rate = Some(snap);
        if admitted.is_err() {
            return Err(ApiError::rate_limited(model, &snap));
        }
        if flex && sim.flex_unavailable(now) {
            return Err(ApiError::flex_capacity());
        }
        let latency = sim.inner.config.latency_for(tier);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let generation = Gen {
            model: model.to_owned(),
            served_tier: tier,
            usage,
            answer,
            stream: self.out.stream,
            include_usage: self.out.include_usage == Some(true),
            seed: usage.prompt_tokens,
            json,
        };
        let payload = self.endpoint.render(sim, &generation);
        self.out.served_tier = tier.map(str::to_owned);
        Ok(body::respond(sim, payload, shape))
    }

    /// Records what the request asked for, before anything can fail.
    fn observe(&mut self, json: &Value) {
        let out = &mut self.out;
        out.model = json.get("model").and_then(Value::as_str).map(str::to_owned);
        out.service_tier = json
            .get("service_tier")
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        out.stream = self.endpoint != Endpoint::Embeddings && json.get("stream").and_then(Value::as_bool) == Some(true);
        out.include_usage = json.pointer("/stream_options/include_usage").and_then(Value::as_bool);
    }
}
