//! `POST /v1/responses` answers: the `response` object (one assistant `message` output
//! item, or `function_call` items when the answer calls a tool; usage, served
//! `service_tier`, the request's `text`, `tools` and `tool_choice` echoed, and the fields
//! the SDKs require) and its typed event stream (in [`stream`]). An answer cut by
//! `max_output_tokens` has `status: "incomplete"` and
//! `incomplete_details.reason: "max_output_tokens"`.

mod stream;

use bytes::Bytes;
use serde_json::{Value, json};

use super::Sim;
use super::answer::{Finish, ToolCall};
use super::body::Payload;
use super::errors::ApiError;
use super::pipeline::{Gen, content_chars};
use super::text;
use super::usage;

/// Prompt tokens of a Responses request: `input` (a string is one item, a list one item
/// per element) plus `instructions` as one more item when it is a string.
pub(crate) fn prompt_tokens(json: &Value) -> Result<u64, ApiError> {
    let mut items: Vec<usize> = match json.get("input") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(input)) => vec![input.chars().count()],
        Some(Value::Array(items)) => items.iter().map(item_chars).collect(),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "input",
                "Invalid 'input': expected a string or an array of input items.",
            ));
        }
    };
    if let Some(Value::String(instructions)) = json.get("instructions") {
        items.push(instructions.chars().count());
    }
    Ok(usage::prompt_tokens(items))
}

/// Text characters of one input item: message content, or a tool output string.
fn item_chars(item: &Value) -> usize {
    match item {
        Value::String(text) => text.chars().count(),
        _ => content_chars(item.get("content")) + content_chars(item.get("output")),
    }
}

/// One output item of the answer.
pub(crate) enum Item {
    Message { id: String, text: String, pieces: Vec<String> },
    Call { id: String, call: ToolCall },
}

impl Item {
    /// The item as `response.output` lists it, with `status`.
    fn value(&self, status: &str) -> Value {
        match self {
            Self::Message { id, text, .. } => message_item(id, status, text),
            Self::Call { id, call } => json!({
                "id": id, "type": "function_call", "status": status, "call_id": call.id,
                "name": call.name, "arguments": call.arguments()
            }),
        }
    }
}

pub(crate) fn render(sim: &Sim, generation: &Gen) -> Payload {
    let ids = &sim.inner.ids;
    let id = ids.object_id("resp_", 48);
    let created = text::unix_now();
    let Some(choice) = generation.answer.choices.first() else {
        return Payload::Json(Bytes::new());
    };
    let items: Vec<Item> = if choice.tool_calls.is_empty() {
        let text = choice.pieces.concat();
        vec![Item::Message { id: ids.object_id("msg_", 48), text, pieces: choice.pieces.clone() }]
    } else {
        choice.tool_calls.iter().map(|call| Item::Call { id: ids.object_id("fc_", 48), call: call.clone() }).collect()
    };
    let incomplete = choice.finish == Finish::Length;
    let (status, item_status) = if incomplete { ("incomplete", "incomplete") } else { ("completed", "completed") };
    let done_items: Vec<Value> = items.iter().map(|item| item.value(item_status)).collect();
    let usage = serde_json::to_value(generation.usage.responses_wire()).unwrap_or_default();
    let finished = response_object(&id, created, generation, status, &json!(done_items), &usage);
    if !generation.stream {
        return Payload::Json(Bytes::from(finished.to_string()));
    }
    let pending = response_object(&id, created, generation, "in_progress", &json!([]), &Value::Null);
    stream::render(stream::EventWriter { pending, finished, done_items, items, incomplete })
}

fn message_item(id: &str, status: &str, text: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    })
}

fn response_object(id: &str, created: u64, generation: &Gen, status: &str, output: &Value, usage: &Value) -> Value {
    let echo = |field: &str| generation.json.get(field).cloned().unwrap_or(Value::Null);
    let echo_or =
        |field: &str, default: Value| generation.json.get(field).filter(|v| !v.is_null()).cloned().unwrap_or(default);
    let metadata = generation.json.get("metadata").filter(|m| m.is_object()).cloned().unwrap_or_else(|| json!({}));
    let format = generation.json.pointer("/text/format").filter(|f| f.is_object()).cloned();
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": echo("instructions"),
        "max_output_tokens": echo("max_output_tokens"),
        "metadata": metadata,
        "model": generation.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": echo("previous_response_id"),
        "reasoning": {"effort": null, "summary": null},
        "service_tier": generation.served_tier,
        "store": true,
        "temperature": echo_or("temperature", json!(1.0)),
        "text": {"format": format.unwrap_or_else(|| json!({"type": "text"})), "verbosity": "medium"},
        "tool_choice": echo_or("tool_choice", json!("auto")),
        "tools": echo_or("tools", json!([])),
        "top_p": echo_or("top_p", json!(1.0)),
        "truncation": "disabled",
        "usage": usage,
        "user": null
    })
}
