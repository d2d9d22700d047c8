//! `POST /v1/chat/completions` answers: the `chat.completion` object and its
//! `chat.completion.chunk` stream (a role chunk, one chunk per visible word, a
//! `finish_reason` chunk, with `include_usage` a `choices: []` usage chunk, then
//! `[DONE]`). Every chunk carries the served `service_tier`; with `include_usage`
//! every other chunk has `"usage": null`.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use super::Sim;
use super::body::{Payload, data_frame, done_frame};
use super::errors::ApiError;
use super::pipeline::{Gen, content_chars};
use super::text;
use super::usage::{self, ChatUsageWire, SimUsage};

pub(crate) const FINGERPRINT: &str = "fp_flexgate_sim";

/// Prompt tokens of a chat request: one item per message.
pub(crate) fn prompt_tokens(json: &Value) -> Result<u64, ApiError> {
    let messages = match json.get("messages") {
        None | Some(Value::Null) => return Err(ApiError::missing_param("messages")),
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "messages",
                "Invalid 'messages': expected a non-empty array of messages.",
            ));
        }
    };
    Ok(usage::prompt_tokens(messages.iter().map(|m| content_chars(m.get("content")))))
}

pub(crate) fn render(sim: &Sim, generation: &Gen) -> Payload {
    let id = sim.inner.ids.object_id("chatcmpl-", 29);
    let created = text::unix_now();
    if generation.stream {
        stream(id, created, generation)
    } else {
        Payload::Json(completion(&id, created, generation))
    }
}

/// The `chat.completion` object, typed so the hot non-streaming path builds no map.
#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: ChatUsageWire,
    service_tier: Option<&'static str>,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
    refusal: Option<()>,
    annotations: [(); 0],
}

fn completion(id: &str, created: u64, generation: &Gen) -> Bytes {
    let content = text::sentence(generation.seed, generation.usage.visible_tokens());
    let body = Completion {
        id,
        object: "chat.completion",
        created,
        model: &generation.model,
        choices: [Choice {
            index: 0,
            message: Message { role: "assistant", content: &content, refusal: None, annotations: [] },
            logprobs: None,
            finish_reason: "stop",
        }],
        usage: generation.usage.chat_wire(),
        service_tier: generation.served_tier,
        system_fingerprint: FINGERPRINT,
    };
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

#[derive(Clone, Copy)]
enum Chunk {
    Role,
    Word(u64),
    Finish,
    Usage,
    Done,
}

/// Renders chunks from a prefix shared by all of them, so a chunk costs one `format!`.
struct ChunkWriter {
    head: String,
    tail: &'static str,
    seed: u64,
    usage: SimUsage,
}

impl ChunkWriter {
    fn frame(&self, chunk: Chunk) -> Bytes {
        let head = &self.head;
        let tail = self.tail;
        let choice = |delta: &str, finish: &str| {
            format!(r#"[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]"#)
        };
        let json = match chunk {
            Chunk::Role => {
                let choices = choice(r#"{"role":"assistant","content":"","refusal":null}"#, "null");
                format!("{head}{choices}{tail}")
            }
            Chunk::Word(i) => {
                let content = Value::String(text::delta(self.seed, i));
                let choices = choice(&format!(r#"{{"content":{content}}}"#), "null");
                format!("{head}{choices}{tail}")
            }
            Chunk::Finish => format!("{head}{}{tail}", choice("{}", r#""stop""#)),
            Chunk::Usage => {
                let usage = serde_json::to_string(&self.usage.chat_wire()).unwrap_or_default();
                format!(r#"{head}[],"usage":{usage}}}"#)
            }
            Chunk::Done => return done_frame(),
        };
        data_frame(&json)
    }
}

fn stream(id: String, created: u64, generation: &Gen) -> Payload {
    let head = format!(
        r#"{{"id":{id},"object":"chat.completion.chunk","created":{created},"model":{model},"service_tier":{tier},"system_fingerprint":"{FINGERPRINT}","choices":"#,
        id = Value::String(id),
        model = Value::String(generation.model.clone()),
        tier = json!(generation.served_tier),
    );
    let writer = ChunkWriter {
        head,
        tail: if generation.include_usage { r#","usage":null}"# } else { "}" },
        seed: generation.seed,
        usage: generation.usage,
    };
    let words = generation.usage.visible_tokens();
    let usage_chunk = generation.include_usage.then_some(Chunk::Usage);
    let chunks = std::iter::once(Chunk::Role)
        .chain((0..words).map(Chunk::Word))
        .chain(std::iter::once(Chunk::Finish))
        .chain(usage_chunk)
        .chain(std::iter::once(Chunk::Done));
    Payload::Sse {
        frames: Box::new(chunks.map(move |chunk| writer.frame(chunk))),
        prefix: 1 + usize::try_from(words.min(2)).unwrap_or(0),
    }
}
