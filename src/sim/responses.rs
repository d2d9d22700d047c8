//! `POST /v1/responses` answers: the `response` object (one assistant `message` output
//! item, usage, served `service_tier`, and the fields the SDKs require) and its typed
//! event stream: `response.created`, `response.in_progress`,
//! `response.output_item.added`, `response.content_part.added`, one
//! `response.output_text.delta` per visible word, `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`, `response.completed`.
//! Sequence numbers start at 0 and increase by one; usage is null until
//! `response.completed`; there is no `[DONE]`.

use bytes::Bytes;
use serde_json::{Value, json};

use super::Sim;
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

pub(crate) fn render(sim: &Sim, generation: &Gen) -> Payload {
    let ids = &sim.inner.ids;
    let id = ids.object_id("resp_", 48);
    let item_id = ids.object_id("msg_", 48);
    let created = text::unix_now();
    let full_text = text::sentence(generation.seed, generation.usage.visible_tokens());
    let done_item = message_item(&item_id, "completed", &full_text);
    let usage = serde_json::to_value(generation.usage.responses_wire()).unwrap_or_default();
    let completed = response_object(&id, created, generation, "completed", &json!([done_item]), &usage);
    if !generation.stream {
        return Payload::Json(Bytes::from(completed.to_string()));
    }
    let pending = response_object(&id, created, generation, "in_progress", &json!([]), &Value::Null);
    stream(
        EventWriter { pending, completed, done_item, item_id, full_text, seed: generation.seed },
        generation.usage.visible_tokens(),
    )
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
    let metadata = generation.json.get("metadata").filter(|m| m.is_object()).cloned().unwrap_or_else(|| json!({}));
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": null,
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
        "temperature": generation.json.get("temperature").cloned().unwrap_or(json!(1.0)),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": generation.json.get("top_p").cloned().unwrap_or(json!(1.0)),
        "truncation": "disabled",
        "usage": usage,
        "user": null
    })
}

#[derive(Clone, Copy)]
enum Event {
    Created,
    InProgress,
    ItemAdded,
    PartAdded,
    Delta(u64),
    TextDone,
    PartDone,
    ItemDone,
    Completed,
}

struct EventWriter {
    pending: Value,
    completed: Value,
    done_item: Value,
    item_id: String,
    full_text: String,
    seed: u64,
}

impl EventWriter {
    fn frame(&self, seq: usize, event: Event) -> Bytes {
        let item_id = &self.item_id;
        let part = |text: &str| json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text});
        let (kind, body) = match event {
            Event::Created => ("response.created", json!({"response": &self.pending})),
            Event::InProgress => ("response.in_progress", json!({"response": &self.pending})),
            Event::ItemAdded => (
                "response.output_item.added",
                json!({"output_index": 0, "item": {
                    "id": item_id, "type": "message", "status": "in_progress",
                    "content": [], "role": "assistant"
                }}),
            ),
            Event::PartAdded => (
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part("")}),
            ),
            Event::Delta(i) => {
                // The hot path of long streams: one `format!`, no `Value` tree.
                let delta = Value::String(text::delta(self.seed, i));
                let data = format!(
                    r#"{{"type":"response.output_text.delta","sequence_number":{seq},"item_id":"{item_id}","output_index":0,"content_index":0,"delta":{delta},"logprobs":[]}}"#
                );
                return sse_frame("response.output_text.delta", &data);
            }
            Event::TextDone => (
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                       "text": self.full_text, "logprobs": []}),
            ),
            Event::PartDone => (
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                       "part": part(&self.full_text)}),
            ),
            Event::ItemDone => ("response.output_item.done", json!({"output_index": 0, "item": &self.done_item})),
            Event::Completed => ("response.completed", json!({"response": &self.completed})),
        };
        let mut body = body;
        if let Some(fields) = body.as_object_mut() {
            fields.insert("type".to_owned(), Value::from(kind));
            fields.insert("sequence_number".to_owned(), Value::from(seq));
        }
        sse_frame(kind, &body.to_string())
    }
}

fn sse_frame(kind: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn stream(writer: EventWriter, words: u64) -> Payload {
    let head = [Event::Created, Event::InProgress, Event::ItemAdded, Event::PartAdded];
    let tail = [Event::TextDone, Event::PartDone, Event::ItemDone, Event::Completed];
    let events = head
        .into_iter()
        .chain((0..words).map(Event::Delta))
        .chain(tail)
        .enumerate()
        .map(move |(seq, event)| writer.frame(seq, event));
    Payload::Sse { frames: Box::new(events), prefix: head.len() + usize::try_from(words.min(2)).unwrap_or(0) }
}
