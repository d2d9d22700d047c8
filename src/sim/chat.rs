//! `POST /v1/chat/completions` answers: the `chat.completion` object (one choice per
//! `n`, each with text content or `tool_calls`, and `logprobs` when asked) and its
//! `chat.completion.chunk` stream (in [`stream`]). What each choice says is decided in
//! [`answer`](super::answer).

mod stream;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use super::Sim;
use super::answer::Choice;
use super::body::Payload;
use super::errors::ApiError;
use super::logprobs;
use super::pipeline::{Gen, content_chars};
use super::text;
use super::usage::{self, ChatUsageWire};

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
        stream::render(id, created, generation)
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
    choices: Vec<ChoiceWire>,
    usage: ChatUsageWire,
    service_tier: Option<&'static str>,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct ChoiceWire {
    index: usize,
    message: Message,
    logprobs: Option<Value>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: Option<String>,
    refusal: Option<()>,
    annotations: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
}

/// A choice's `tool_calls`, complete (the non-streaming shape).
pub(crate) fn tool_calls(choice: &Choice) -> Option<Value> {
    (!choice.tool_calls.is_empty()).then(|| {
        choice
            .tool_calls
            .iter()
            .map(|call| {
                json!({"id": call.id, "type": "function",
                       "function": {"name": call.name, "arguments": call.arguments()}})
            })
            .collect()
    })
}

fn completion(id: &str, created: u64, generation: &Gen) -> Bytes {
    let answer = &generation.answer;
    let choices = answer
        .choices
        .iter()
        .enumerate()
        .map(|(index, choice)| ChoiceWire {
            index,
            message: Message {
                role: "assistant",
                content: choice.content(),
                refusal: None,
                annotations: [],
                tool_calls: tool_calls(choice),
            },
            logprobs: answer.logprobs.map(|top| logprobs::content(choice.seed, &choice.pieces, top)),
            finish_reason: choice.finish.reason(),
        })
        .collect();
    let body = Completion {
        id,
        object: "chat.completion",
        created,
        model: &generation.model,
        choices,
        usage: generation.usage.chat_wire(),
        service_tier: generation.served_tier,
        system_fingerprint: FINGERPRINT,
    };
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}
