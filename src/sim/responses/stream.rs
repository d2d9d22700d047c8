//! The Responses event stream, as `OpenAI` emits it: `response.created`,
//! `response.in_progress`, then per output item `response.output_item.added`, and for a
//! message `response.content_part.added`, one `response.output_text.delta` per token,
//! `response.output_text.done`, `response.content_part.done`; for a function call one
//! `response.function_call_arguments.delta` per token and
//! `response.function_call_arguments.done`; then `response.output_item.done`. Last
//! `response.completed`, or `response.incomplete` when `max_output_tokens` cut the
//! answer. Sequence numbers start at 0 and increase by one; usage is null until the last
//! event; there is no `[DONE]`.

use bytes::Bytes;
use serde_json::{Value, json};

use super::Item;
use crate::sim::body::Payload;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Event {
    Created,
    InProgress,
    ItemAdded(usize),
    PartAdded(usize),
    Delta(usize, usize),
    TextDone(usize),
    PartDone(usize),
    ArgsDelta(usize, usize),
    ArgsDone(usize),
    ItemDone(usize),
    Finished,
}

pub(super) struct EventWriter {
    pub pending: Value,
    pub finished: Value,
    pub done_items: Vec<Value>,
    pub items: Vec<Item>,
    pub incomplete: bool,
}

impl EventWriter {
    fn frame(&self, seq: usize, event: Event) -> Bytes {
        let part = |text: &str| json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text});
        let (kind, body) = match event {
            Event::Created => ("response.created", json!({"response": &self.pending})),
            Event::InProgress => ("response.in_progress", json!({"response": &self.pending})),
            Event::ItemAdded(k) => {
                let item = match &self.items[k] {
                    Item::Message { id, .. } => {
                        json!({"id": id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"})
                    }
                    Item::Call { id, call } => json!({
                        "id": id, "type": "function_call", "status": "in_progress", "call_id": call.id,
                        "name": call.name, "arguments": ""
                    }),
                };
                ("response.output_item.added", json!({"output_index": k, "item": item}))
            }
            Event::PartAdded(k) => (
                "response.content_part.added",
                json!({"item_id": self.item_id(k), "output_index": k, "content_index": 0, "part": part("")}),
            ),
            Event::Delta(k, i) => {
                // The hot path of long streams: one `format!`, no `Value` tree.
                let Item::Message { id, pieces, .. } = &self.items[k] else { return Bytes::new() };
                let delta = Value::String(pieces[i].clone());
                let data = format!(
                    r#"{{"type":"response.output_text.delta","sequence_number":{seq},"item_id":"{id}","output_index":{k},"content_index":0,"delta":{delta},"logprobs":[]}}"#
                );
                return sse_frame("response.output_text.delta", &data);
            }
            Event::TextDone(k) => (
                "response.output_text.done",
                json!({"item_id": self.item_id(k), "output_index": k, "content_index": 0,
                       "text": self.text(k), "logprobs": []}),
            ),
            Event::PartDone(k) => (
                "response.content_part.done",
                json!({"item_id": self.item_id(k), "output_index": k, "content_index": 0,
                       "part": part(self.text(k))}),
            ),
            Event::ArgsDelta(k, i) => {
                let Item::Call { id, call } = &self.items[k] else { return Bytes::new() };
                (
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": k, "delta": call.pieces[i]}),
                )
            }
            Event::ArgsDone(k) => {
                let Item::Call { id, call } = &self.items[k] else { return Bytes::new() };
                (
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": k, "name": call.name, "arguments": call.arguments()}),
                )
            }
            Event::ItemDone(k) => {
                ("response.output_item.done", json!({"output_index": k, "item": &self.done_items[k]}))
            }
            Event::Finished => {
                let kind = if self.incomplete { "response.incomplete" } else { "response.completed" };
                (kind, json!({"response": &self.finished}))
            }
        };
        let mut body = body;
        if let Some(fields) = body.as_object_mut() {
            fields.insert("type".to_owned(), Value::from(kind));
            fields.insert("sequence_number".to_owned(), Value::from(seq));
        }
        sse_frame(kind, &body.to_string())
    }

    fn item_id(&self, k: usize) -> &str {
        match &self.items[k] {
            Item::Message { id, .. } | Item::Call { id, .. } => id,
        }
    }

    fn text(&self, k: usize) -> &str {
        match &self.items[k] {
            Item::Message { text, .. } => text,
            Item::Call { .. } => "",
        }
    }

    fn events(&self) -> Vec<Event> {
        let mut out = vec![Event::Created, Event::InProgress];
        for (k, item) in self.items.iter().enumerate() {
            out.push(Event::ItemAdded(k));
            match item {
                Item::Message { pieces, .. } => {
                    out.push(Event::PartAdded(k));
                    out.extend((0..pieces.len()).map(|i| Event::Delta(k, i)));
                    out.extend([Event::TextDone(k), Event::PartDone(k)]);
                }
                Item::Call { call, .. } => {
                    out.extend((0..call.pieces.len()).map(|i| Event::ArgsDelta(k, i)));
                    out.push(Event::ArgsDone(k));
                }
            }
            out.push(Event::ItemDone(k));
        }
        out.push(Event::Finished);
        out
    }
}

fn sse_frame(kind: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

pub(super) fn render(writer: EventWriter) -> Payload {
    let events = writer.events();
    // `cut` / `stall` deliver the head and the first two deltas, as before any text.
    let first_delta = events.iter().position(|e| matches!(e, Event::Delta(..) | Event::ArgsDelta(..)));
    let deltas = events.iter().filter(|e| matches!(e, Event::Delta(..) | Event::ArgsDelta(..))).count();
    let prefix = first_delta.unwrap_or(4).min(events.len() - 1) + deltas.min(2);
    let frames = events.into_iter().enumerate().map(move |(seq, event)| writer.frame(seq, event));
    Payload::Sse { frames: Box::new(frames), prefix }
}
