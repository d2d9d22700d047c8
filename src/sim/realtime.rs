//! A minimal Realtime API endpoint, `GET /v1/realtime` upgraded to a WebSocket, so
//! clients and gateways can be tested against something that speaks its events.
//!
//! On connect it sends `session.created`; `session.update` is answered with
//! `session.updated`, and `response.create` with `response.created`, one
//! `response.output_text.delta`, and `response.done` carrying usage. Other client events
//! (`input_audio_buffer.append`, `conversation.item.create`) are taken silently. The
//! subprotocol `realtime` is selected when the client offers it.
//!
//! Usage is deterministic:
//! - input audio tokens = base64 characters appended so far in the session / 1,000,
//!   rounded up (earlier turns come back as input, as with OpenAI);
//! - input text tokens = [`TEXT_INPUT_TOKENS`]; nothing is cached;
//! - output text tokens = the words of the delta ([`REPLY`]), output audio tokens =
//!   `response.metadata.sim_audio_bytes` / 1,000 rounded up. When that metadata is set
//!   (a number of bytes), one `response.output_audio.delta` of that many base64
//!   characters precedes the text: a way to make the server send a large frame.

use axum::extract::Query;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::{Value, json};

/// The reply's text, streamed as one delta.
pub const REPLY: &str = "Hello from the simulator.";
/// Text input tokens of every response.
pub const TEXT_INPUT_TOKENS: u64 = 12;

#[derive(serde::Deserialize)]
pub(crate) struct Params {
    model: Option<String>,
}

/// `GET /v1/realtime`: upgrade, then run the session.
pub(crate) async fn handler(upgrade: WebSocketUpgrade, Query(params): Query<Params>) -> Response {
    let model = params.model.unwrap_or_else(|| "gpt-realtime".to_owned());
    upgrade.protocols(["realtime"]).on_upgrade(move |socket| session(socket, model))
}

struct Session {
    model: String,
    events: u64,
    responses: u64,
    /// Base64 characters of input audio appended so far.
    audio_chars: u64,
    config: Value,
}

impl Session {
    fn event(&mut self, kind: &str, mut body: Value) -> Message {
        self.events += 1;
        body["type"] = json!(kind);
        body["event_id"] = json!(format!("event_sim{:04}", self.events));
        Message::Text(body.to_string().into())
    }

    fn session_object(&self) -> Value {
        let mut session = json!({"object": "realtime.session", "id": "sess_sim", "model": self.model});
        if let (Some(target), Some(update)) = (session.as_object_mut(), self.config.as_object()) {
            target.extend(update.clone());
        }
        session
    }

    /// The answer to one client event.
    fn answer(&mut self, event: &Value) -> Vec<Message> {
        match event.get("type").and_then(Value::as_str) {
            Some("session.update") => {
                if let Some(update) = event.get("session").filter(|s| s.is_object()) {
                    self.config = update.clone();
                }
                let session = self.session_object();
                vec![self.event("session.updated", json!({"session": session}))]
            }
            Some("input_audio_buffer.append") => {
                let chars = event.get("audio").and_then(Value::as_str).map_or(0, str::len);
                self.audio_chars += chars as u64;
                Vec::new()
            }
            Some("response.create") => self.respond(event),
            _ => Vec::new(),
        }
    }

    fn respond(&mut self, event: &Value) -> Vec<Message> {
        self.responses += 1;
        let id = format!("resp_sim{:04}", self.responses);
        let audio_out = event
            .pointer("/response/metadata/sim_audio_bytes")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(0);
        let mut out = vec![self.event(
            "response.created",
            json!({"response": {"object": "realtime.response", "id": id, "status": "in_progress"}}),
        )];
        if audio_out > 0 {
            let delta = "A".repeat(usize::try_from(audio_out).unwrap_or(0));
            out.push(self.event("response.output_audio.delta", json!({"response_id": id, "delta": delta})));
        }
        out.push(self.event("response.output_text.delta", json!({"response_id": id, "delta": REPLY})));
        let audio_in = self.audio_chars.div_ceil(1000);
        let (text_out, audio_tokens_out) = (REPLY.split_whitespace().count() as u64, audio_out.div_ceil(1000));
        let usage = json!({
            "total_tokens": TEXT_INPUT_TOKENS + audio_in + text_out + audio_tokens_out,
            "input_tokens": TEXT_INPUT_TOKENS + audio_in,
            "output_tokens": text_out + audio_tokens_out,
            "input_token_details": {
                "text_tokens": TEXT_INPUT_TOKENS, "audio_tokens": audio_in, "image_tokens": 0, "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_tokens_out}
        });
        let response = json!({
            "object": "realtime.response", "id": id, "status": "completed",
            "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": REPLY}]}],
            "usage": usage
        });
        out.push(self.event("response.done", json!({"response": response})));
        out
    }
}

async fn session(mut socket: WebSocket, model: String) {
    let mut session = Session { model, events: 0, responses: 0, audio_chars: 0, config: json!({}) };
    let created = session.session_object();
    let created = session.event("session.created", json!({"session": created}));
    if socket.send(created).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = socket.recv().await {
        let event = match message {
            Message::Text(text) => serde_json::from_str::<Value>(text.as_str()).unwrap_or(Value::Null),
            Message::Close(_) => return,
            _ => continue,
        };
        for answer in session.answer(&event) {
            if socket.send(answer).await.is_err() {
                return;
            }
        }
    }
}
