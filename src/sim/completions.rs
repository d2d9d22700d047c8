//! Legacy `POST /v1/completions` answers: `text_completion` objects, streamed as
//! data-only SSE (one chunk per visible word, a `finish_reason` chunk, with
//! `include_usage` a `choices: []` usage chunk, then `[DONE]`). No `service_tier`: the
//! legacy endpoint has no tiers.

use bytes::Bytes;
use serde_json::{Value, json};

use super::Sim;
use super::body::{Payload, data_frame, done_frame};
use super::chat::FINGERPRINT;
use super::errors::ApiError;
use super::pipeline::Gen;
use super::text;
use super::usage::{self, SimUsage};

/// Prompt tokens: one item per prompt string (token arrays count as their JSON text).
pub(crate) fn prompt_tokens(json: &Value) -> Result<u64, ApiError> {
    let chars = |v: &Value| match v {
        Value::String(s) => s.chars().count(),
        other => other.to_string().chars().count(),
    };
    match json.get("prompt") {
        None | Some(Value::Null) => Err(ApiError::missing_param("prompt")),
        Some(Value::Array(prompts)) if prompts.is_empty() => {
            Err(ApiError::invalid_param("prompt", "Invalid 'prompt': expected a non-empty string or array."))
        }
        Some(Value::Array(prompts)) if prompts.iter().all(Value::is_string) => {
            Ok(usage::prompt_tokens(prompts.iter().map(chars)))
        }
        Some(prompt) => Ok(usage::prompt_tokens([chars(prompt)])),
    }
}

pub(crate) fn render(sim: &Sim, generation: &Gen) -> Payload {
    let id = sim.inner.ids.object_id("cmpl-", 29);
    let created = text::unix_now();
    if generation.stream {
        return stream(&id, created, generation);
    }
    let body = json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": generation.model,
        "choices": [{
            "text": text::sentence(generation.seed, generation.usage.visible_tokens()),
            "index": 0,
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": generation.usage.chat_wire(),
        "system_fingerprint": FINGERPRINT
    });
    Payload::Json(Bytes::from(body.to_string()))
}

#[derive(Clone, Copy)]
enum Chunk {
    Word(u64),
    Finish,
    Usage,
    Done,
}

fn stream(id: &str, created: u64, generation: &Gen) -> Payload {
    let head = format!(
        r#"{{"id":"{id}","object":"text_completion","created":{created},"model":{model},"system_fingerprint":"{FINGERPRINT}","choices":"#,
        model = Value::String(generation.model.clone()),
    );
    let tail = if generation.include_usage { r#","usage":null}"# } else { "}" };
    let seed = generation.seed;
    let usage: SimUsage = generation.usage;
    let frame = move |chunk: Chunk| {
        let choice = |text: &str, finish: &str| {
            format!(r#"[{{"text":{text},"index":0,"logprobs":null,"finish_reason":{finish}}}]"#)
        };
        let json = match chunk {
            Chunk::Word(i) => {
                let word = Value::String(text::delta(seed, i));
                format!("{head}{}{tail}", choice(&word.to_string(), "null"))
            }
            Chunk::Finish => format!("{head}{}{tail}", choice(r#""""#, r#""stop""#)),
            Chunk::Usage => {
                let usage = serde_json::to_string(&usage.chat_wire()).unwrap_or_default();
                format!(r#"{head}[],"usage":{usage}}}"#)
            }
            Chunk::Done => return done_frame(),
        };
        data_frame(&json)
    };
    let words = generation.usage.visible_tokens();
    let chunks = (0..words)
        .map(Chunk::Word)
        .chain(std::iter::once(Chunk::Finish))
        .chain(generation.include_usage.then_some(Chunk::Usage))
        .chain(std::iter::once(Chunk::Done));
    Payload::Sse { frames: Box::new(chunks.map(frame)), prefix: usize::try_from(words.min(2)).unwrap_or(0) }
}
