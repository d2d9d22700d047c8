//! `GET /v1/realtime?model=…`: a simulated Realtime session over WebSocket, text only.
//! On connect `session.created`; `session.update` merges into the session and answers
//! `session.updated`; `conversation.item.create` adds an item
//! (`conversation.item.added`, `conversation.item.done`); `response.create` answers
//! `response.created`, the output item and content part events, one
//! `response.output_text.delta` per word, their `done` events and `response.done` with
//! usage (the formula of [`usage`](super::usage) over the conversation's items; output
//! tokens from `max_output_tokens` when a number, else 16). Audio appends are taken
//! silently and priced as input audio tokens (base64 characters received in the session
//! / 1,000, rounded up). `response.create` with `response.metadata.sim_audio_bytes = N`
//! first sends one `response.output_audio.delta` of N characters (a way to make the
//! server send a large frame), priced as N / 1,000 output audio tokens. Unknown events
//! are answered with an `error` event. The retired
//! beta shape (`OpenAI-Beta: realtime=v1` or the `openai-beta.realtime-v1` subprotocol)
//! is refused as `OpenAI` refuses it now: an `error` event, then close code 4000.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::Sim;
use super::errors::ApiError;
use super::text;
use super::usage::{self, SimUsage};

/// Subprotocols the sim may select (the first the client offers).
const PROTOCOLS: [&str; 1] = ["realtime"];
/// Close code `OpenAI` uses for the retired beta interface.
const BETA_CLOSE: u16 = 4000;

#[derive(serde::Deserialize)]
pub(crate) struct Params {
    model: Option<String>,
}

/// Whether `model` names a Realtime model.
fn is_realtime(model: &str) -> bool {
    model.starts_with("gpt-realtime") || model.contains("-realtime-")
}

pub(crate) async fn handler(
    State(sim): State<Sim>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let model = match params.model.filter(|m| !m.is_empty()) {
        None => return ApiError::missing_param("model").into_response(),
        Some(model) if !is_realtime(&model) => return ApiError::model_not_found(&model).into_response(),
        Some(model) => model,
    };
    let offered = |needle: &str| {
        headers.get_all("sec-websocket-protocol").iter().any(|v| v.to_str().is_ok_and(|v| v.contains(needle)))
    };
    let beta = offered("openai-beta.realtime-v1")
        || headers.get("openai-beta").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("realtime"));
    upgrade.protocols(PROTOCOLS).on_upgrade(move |socket| async move {
        let mut session = Session::new(&sim, &model);
        if beta {
            session.refuse_beta(socket).await;
        } else {
            session.run(socket).await;
        }
    })
}

struct Session {
    sim: Sim,
    state: Value,
    /// Characters of each conversation item's text, for the prompt formula.
    items: Vec<usize>,
    /// Base64 characters of input audio appended so far.
    audio_chars: u64,
}

impl Session {
    fn new(sim: &Sim, model: &str) -> Self {
        let ids = &sim.inner.ids;
        let state = json!({
            "type": "realtime", "object": "realtime.session", "id": ids.object_id("sess_", 24),
            "model": model, "output_modalities": ["text"], "instructions": "", "tools": [],
            "tool_choice": "auto", "max_output_tokens": "inf", "tracing": null, "prompt": null,
            "expires_at": text::unix_now() + 3600, "include": null
        });
        Self { sim: sim.clone(), state, items: Vec::new(), audio_chars: 0 }
    }

    fn event(&self, kind: &str, body: Value) -> Message {
        let mut fields = match body {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        fields.insert("type".into(), Value::from(kind));
        fields.insert("event_id".into(), Value::from(self.sim.inner.ids.object_id("event_", 22)));
        Message::Text(Value::Object(fields).to_string().into())
    }

    async fn refuse_beta(&mut self, mut socket: WebSocket) {
        let error = json!({"error": {"type": "invalid_request_error", "code": "beta_api_shape_disabled",
            "message": "The Realtime beta interface has been removed; use the GA interface.", "param": null}});
        let _ = socket.send(self.event("error", error)).await;
        let frame = CloseFrame { code: BETA_CLOSE, reason: "beta_api_shape_disabled".into() };
        let _ = socket.send(Message::Close(Some(frame))).await;
    }

    async fn run(&mut self, mut socket: WebSocket) {
        if socket.send(self.event("session.created", json!({"session": self.state}))).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.recv().await {
            let Message::Text(text) = message else { continue };
            for reply in self.answer(text.as_str()) {
                if socket.send(reply).await.is_err() {
                    return;
                }
            }
        }
    }

    /// The server events answering one client event.
    fn answer(&mut self, text: &str) -> Vec<Message> {
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            return vec![self.error("invalid_json", "The event is not valid JSON.", None)];
        };
        let client_id = event.get("event_id");
        match event.get("type").and_then(Value::as_str) {
            Some("session.update") => {
                if let (Some(state), Some(Value::Object(update))) = (self.state.as_object_mut(), event.get("session")) {
                    state.extend(update.iter().filter(|(k, _)| *k != "type").map(|(k, v)| (k.clone(), v.clone())));
                }
                vec![self.event("session.updated", json!({"session": self.state}))]
            }
            Some("conversation.item.create") => {
                let item = event.get("item").cloned().unwrap_or_else(|| json!({}));
                self.items.push(super::pipeline::content_chars(item.get("content")));
                let mut item = item;
                if let Some(fields) = item.as_object_mut() {
                    fields.entry("id").or_insert_with(|| Value::from(self.sim.inner.ids.object_id("item_", 22)));
                    fields.insert("status".into(), Value::from("completed"));
                }
                let previous = Value::Null;
                vec![
                    self.event("conversation.item.added", json!({"previous_item_id": previous, "item": item})),
                    self.event("conversation.item.done", json!({"previous_item_id": previous, "item": item})),
                ]
            }
            Some("response.create") => self.respond(event.get("response")),
            Some("input_audio_buffer.append") => {
                let chars = event.get("audio").and_then(Value::as_str).map_or(0, str::len);
                self.audio_chars += u64::try_from(chars).unwrap_or(u64::MAX);
                Vec::new()
            }
            Some(kind) if kind.starts_with("input_audio_buffer.") || kind == "response.cancel" => Vec::new(),
            _ => vec![self.error("invalid_value", "Unknown or missing event type.", client_id)],
        }
    }

    fn error(&self, code: &str, message: &str, event_id: Option<&Value>) -> Message {
        let error = json!({"type": "invalid_request_error", "code": code, "message": message,
                           "param": "type", "event_id": event_id});
        self.event("error", json!({"error": error}))
    }

    fn respond(&mut self, options: Option<&Value>) -> Vec<Message> {
        let ids = &self.sim.inner.ids;
        let limit = options
            .and_then(|o| o.get("max_output_tokens"))
            .or_else(|| self.state.get("max_output_tokens"))
            .and_then(Value::as_u64);
        let model = self.state["model"].as_str().unwrap_or_default().to_owned();
        let instructions = self.state["instructions"].as_str().map_or(0, |i| i.chars().count());
        let prompt = usage::prompt_tokens(self.items.iter().copied().chain([instructions]));
        let usage = usage::usage_for(&model, prompt, limit);
        let words = usage.completion_tokens;
        let (response_id, item_id) = (ids.object_id("resp_", 22), ids.object_id("item_", 22));
        let full = text::sentence(prompt, words);
        let item = |status: &str, text: &str| {
            json!({"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant", "status": status,
                   "content": [{"type": "output_text", "text": text}]})
        };
        let response = |status: &str, output: Value, usage: Value| {
            json!({"object": "realtime.response", "id": response_id, "status": status, "status_details": null,
                   "output": output, "output_modalities": ["text"], "max_output_tokens": limit.map_or(json!("inf"), Value::from),
                   "conversation_id": "conv_sim", "metadata": null, "usage": usage})
        };
        let at = |extra: Value| {
            let mut fields =
                json!({"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0});
            if let (Some(fields), Value::Object(extra)) = (fields.as_object_mut(), extra) {
                fields.extend(extra);
            }
            fields
        };
        let part = |text: &str| json!({"type": "output_text", "text": text});
        let audio_out = options
            .and_then(|o| o.pointer("/metadata/sim_audio_bytes"))
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(0);
        let audio = Audio { input: self.audio_chars.div_ceil(1000), output: audio_out.div_ceil(1000) };
        let mut out = vec![
            self.event("response.created", json!({"response": response("in_progress", json!([]), Value::Null)})),
            self.event(
                "response.output_item.added",
                json!({"response_id": response_id, "output_index": 0, "item": item("in_progress", "")}),
            ),
            self.event("response.content_part.added", at(json!({"part": part("")}))),
        ];
        if audio_out > 0 {
            let delta = "A".repeat(usize::try_from(audio_out).unwrap_or(0));
            out.push(self.event("response.output_audio.delta", at(json!({"delta": delta}))));
        }
        out.extend(
            (0..words).map(|i| self.event("response.output_text.delta", at(json!({"delta": text::delta(prompt, i)})))),
        );
        self.items.push(full.chars().count());
        out.extend([
            self.event("response.output_text.done", at(json!({"text": full}))),
            self.event("response.content_part.done", at(json!({"part": part(&full)}))),
            self.event(
                "response.output_item.done",
                json!({"response_id": response_id, "output_index": 0, "item": item("completed", &full)}),
            ),
            self.event(
                "response.done",
                json!({"response": response("completed", json!([item("completed", &full)]), usage_wire(usage, audio))}),
            ),
        ]);
        out
    }
}

/// Audio tokens of one response, in and out.
#[derive(Clone, Copy)]
struct Audio {
    input: u64,
    output: u64,
}

/// Realtime's `response.usage`: text and audio tokens, cached a subset of text input.
fn usage_wire(usage: SimUsage, audio: Audio) -> Value {
    let (input, output) = (usage.prompt_tokens + audio.input, usage.completion_tokens + audio.output);
    json!({
        "total_tokens": input + output,
        "input_tokens": input,
        "output_tokens": output,
        "input_token_details": {
            "text_tokens": usage.prompt_tokens, "audio_tokens": audio.input, "image_tokens": 0,
            "cached_tokens": usage.cached_tokens,
            "cached_tokens_details": {"text_tokens": usage.cached_tokens, "audio_tokens": 0, "image_tokens": 0}
        },
        "output_token_details": {"text_tokens": usage.completion_tokens, "audio_tokens": audio.output}
    })
}
