//! The `chat.completion.chunk` stream, framed as `OpenAI` frames it. Per choice (each
//! chunk carries one, by `index`): a role chunk, then one chunk per content token (with
//! its `logprobs` when asked) or, for a tool call, a first delta with the call's `id`,
//! `type`, `name` and empty `arguments` followed by one `arguments` fragment per token,
//! then a `finish_reason` chunk. After all choices, with `include_usage`, a `choices: []`
//! usage chunk (every other chunk then has `"usage": null`); last `[DONE]`. Every chunk
//! carries the served `service_tier`.

use bytes::Bytes;
use serde_json::{Value, json};

use super::FINGERPRINT;
use crate::sim::answer::Answer;
use crate::sim::body::{Payload, data_frame, done_frame};
use crate::sim::logprobs;
use crate::sim::pipeline::Gen;
use crate::sim::usage::SimUsage;

#[derive(Clone, Copy)]
enum Chunk {
    Role(usize),
    Piece(usize, usize),
    ToolArgs(usize, usize, usize),
    Finish(usize),
    Usage,
    Done,
}

/// Renders chunks from a prefix shared by all of them, so a chunk costs one `format!`.
struct ChunkWriter {
    head: String,
    tail: &'static str,
    answer: Answer,
    usage: SimUsage,
}

impl ChunkWriter {
    fn frame(&self, chunk: Chunk) -> Bytes {
        let head = &self.head;
        let tail = self.tail;
        let choice = |index: usize, delta: &str, logprobs: &str, finish: &str| {
            format!(r#"[{{"index":{index},"delta":{delta},"logprobs":{logprobs},"finish_reason":{finish}}}]"#)
        };
        let json = match chunk {
            Chunk::Role(c) => {
                let calls = &self.answer.choices[c].tool_calls;
                let delta = if calls.is_empty() {
                    r#"{"role":"assistant","content":"","refusal":null}"#.to_owned()
                } else {
                    let heads: Vec<Value> = calls
                        .iter()
                        .enumerate()
                        .map(|(t, call)| {
                            json!({"index": t, "id": call.id, "type": "function",
                                   "function": {"name": call.name, "arguments": ""}})
                        })
                        .collect();
                    json!({"role": "assistant", "content": null, "tool_calls": heads, "refusal": null}).to_string()
                };
                format!("{head}{}{tail}", choice(c, &delta, "null", "null"))
            }
            Chunk::Piece(c, i) => {
                let entry = &self.answer.choices[c];
                let piece = &entry.pieces[i];
                let content = Value::String(piece.clone());
                let logprobs = self
                    .answer
                    .logprobs
                    .map_or_else(|| "null".to_owned(), |top| logprobs::chunk(entry.seed, i, piece, top).to_string());
                format!("{head}{}{tail}", choice(c, &format!(r#"{{"content":{content}}}"#), &logprobs, "null"))
            }
            Chunk::ToolArgs(c, t, i) => {
                let fragment = Value::String(self.answer.choices[c].tool_calls[t].pieces[i].clone());
                let delta = format!(r#"{{"tool_calls":[{{"index":{t},"function":{{"arguments":{fragment}}}}}]}}"#);
                format!("{head}{}{tail}", choice(c, &delta, "null", "null"))
            }
            Chunk::Finish(c) => {
                let reason = Value::from(self.answer.choices[c].finish.reason());
                format!("{head}{}{tail}", choice(c, "{}", "null", &reason.to_string()))
            }
            Chunk::Usage => {
                let usage = serde_json::to_string(&self.usage.chat_wire()).unwrap_or_default();
                format!(r#"{head}[],"usage":{usage}}}"#)
            }
            Chunk::Done => return done_frame(),
        };
        data_frame(&json)
    }
}

/// The chunks in order.
fn chunks(answer: &Answer, include_usage: bool) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (c, choice) in answer.choices.iter().enumerate() {
        out.push(Chunk::Role(c));
        out.extend((0..choice.pieces.len()).map(|i| Chunk::Piece(c, i)));
        for (t, call) in choice.tool_calls.iter().enumerate() {
            out.extend((0..call.pieces.len()).map(|i| Chunk::ToolArgs(c, t, i)));
        }
        out.push(Chunk::Finish(c));
    }
    if include_usage {
        out.push(Chunk::Usage);
    }
    out.push(Chunk::Done);
    out
}

pub(super) fn render(id: String, created: u64, generation: &Gen) -> Payload {
    let head = format!(
        r#"{{"id":{id},"object":"chat.completion.chunk","created":{created},"model":{model},"service_tier":{tier},"system_fingerprint":"{FINGERPRINT}","choices":"#,
        id = Value::String(id),
        model = Value::String(generation.model.clone()),
        tier = json!(generation.served_tier),
    );
    let list = chunks(&generation.answer, generation.include_usage);
    let first = generation.answer.choices.first();
    let tokens = first.map_or(0, |c| c.pieces.len() + c.tool_calls.iter().map(|t| t.pieces.len()).sum::<usize>());
    let writer = ChunkWriter {
        head,
        tail: if generation.include_usage { r#","usage":null}"# } else { "}" },
        answer: generation.answer.clone(),
        usage: generation.usage,
    };
    Payload::Sse { frames: Box::new(list.into_iter().map(move |chunk| writer.frame(chunk))), prefix: 1 + tokens.min(2) }
}
