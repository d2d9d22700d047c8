//! Usage of a WebSocket session, read from the upstream's events and counted turn by
//! turn like any request's (endpoint label `realtime`).
//!
//! The Realtime API reports each response's usage in `response.done`
//! (`input_token_details.cached_tokens`, and a text/audio split on both sides); the
//! Responses API's WebSocket mode in `response.completed` / `incomplete` / `failed`, shaped
//! as over HTTP; a transcription session in
//! `conversation.item.input_audio_transcription.completed` (`usage.type = "tokens"`; the
//! `duration` kind has no tokens and is not counted). Each event is one turn: earlier
//! turns come back as input, so usage is counted per event, never summed per session.

use std::borrow::Cow;

use serde::Deserialize;
use tokio::time::Instant;

use crate::budgets::Reservation;
use crate::ledger::{Ledger, Report, RequestFacts};
use crate::metrics::Outcome;
use crate::state::AppState;
use crate::usage::Usage;
use crate::usage::raw::{RawDetails, lenient_str, lenient_struct, lenient_u64};

/// What one metered event reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Turn {
    pub usage: Usage,
    /// Audio tokens in and out, part of `usage.input` and `usage.output`.
    pub audio: (u64, u64),
    pub model: Option<String>,
    pub service_tier: Option<String>,
}

// The event's wire shape, reduced to what metering reads: everything else (a response's
// whole output, often most of the message) is skipped without building a value tree,
// and a wrongly typed field is `None` rather than a lost turn.

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(default, borrow, rename = "type", deserialize_with = "lenient_str")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient_struct")]
    response: Option<RawResponse<'a>>,
    /// A transcription's usage, beside the event's other fields.
    #[serde(default, borrow, deserialize_with = "lenient_struct")]
    usage: Option<RawUsage<'a>>,
}

#[derive(Deserialize)]
struct RawResponse<'a> {
    #[serde(default, borrow, deserialize_with = "lenient_str")]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient_str")]
    service_tier: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient_struct")]
    usage: Option<RawUsage<'a>>,
}

/// The Realtime API says `input_token_details`, the Responses API `input_tokens_details`.
#[derive(Deserialize)]
struct RawUsage<'a> {
    #[serde(default, borrow, rename = "type", deserialize_with = "lenient_str")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_u64")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_struct")]
    input_token_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "lenient_struct")]
    input_tokens_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "lenient_struct")]
    output_token_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "lenient_struct")]
    output_tokens_details: Option<RawDetails>,
}

/// Read a complete text message; `None` unless it is a metered event with usage.
pub fn read_turn(message: &[u8]) -> Option<Turn> {
    let event: RawEvent<'_> = serde_json::from_slice(message).ok()?;
    let (usage, response) = match event.kind.as_deref()? {
        "response.done" | "response.completed" | "response.incomplete" | "response.failed" => {
            let mut response = event.response?;
            (response.usage.take()?, Some(response))
        }
        "conversation.item.input_audio_transcription.completed" => {
            let usage = event.usage?;
            if usage.kind.as_deref().is_some_and(|t| t != "tokens") {
                return None;
            }
            (usage, None)
        }
        _ => return None,
    };
    if usage.input_tokens.is_none() && usage.output_tokens.is_none() {
        return None;
    }
    let input_details = usage.input_token_details.or(usage.input_tokens_details).unwrap_or_default();
    let output_details = usage.output_token_details.or(usage.output_tokens_details).unwrap_or_default();
    let (model, service_tier) = response.map(|r| (r.model, r.service_tier)).unwrap_or_default();
    Some(Turn {
        usage: Usage {
            input: usage.input_tokens.unwrap_or(0),
            cached_input: input_details.cached_tokens.unwrap_or(0),
            cache_write: input_details.cache_write_tokens.unwrap_or(0),
            output: usage.output_tokens.unwrap_or(0),
            reasoning: output_details.reasoning_tokens.unwrap_or(0),
        },
        audio: (input_details.audio_tokens.unwrap_or(0), output_details.audio_tokens.unwrap_or(0)),
        model: model.map(Cow::into_owned),
        service_tier: service_tier.map(Cow::into_owned),
    })
}

/// Count one turn in the request, token and cost metrics, with its log line. `since`:
/// when the turn began (the previous turn's end, or the handshake), for its duration.
/// `budget`: the client's hold, charged the turn's cost.
pub fn record(state: &AppState, facts: &RequestFacts, since: Instant, turn: Turn, budget: Option<Reservation>) {
    let mut ledger = Ledger::open(state.clone(), facts.clone(), since);
    if let Some(budget) = budget {
        ledger.hold_budget(budget, 0);
    }
    // A turn has no answer head of its own: the session's 101 stands for it.
    ledger.record_handshake(http::StatusCode::SWITCHING_PROTOCOLS, &http::HeaderMap::new());
    let report = Report { usage: Some(turn.usage), service_tier: turn.service_tier, model: turn.model, streamed: None };
    ledger.settle(Outcome::Success, &report);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_response_done() {
        let event = br#"{"type":"response.done","event_id":"e","response":{"object":"realtime.response","usage":{
            "total_tokens":253,"input_tokens":132,"output_tokens":121,
            "input_token_details":{"text_tokens":119,"audio_tokens":13,"cached_tokens":64,
                "cached_tokens_details":{"text_tokens":64,"audio_tokens":0}},
            "output_token_details":{"text_tokens":30,"audio_tokens":91}}}}"#;
        let turn = read_turn(event).unwrap();
        assert_eq!(turn.usage, Usage { input: 132, cached_input: 64, cache_write: 0, output: 121, reasoning: 0 });
        assert_eq!(turn.audio, (13, 91));
        assert_eq!(turn.model, None);
    }

    #[test]
    fn responses_websocket_completed() {
        let event = br#"{"type":"response.completed","response":{"model":"gpt-5.6-luna","service_tier":"flex",
            "usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4,"cache_write_tokens":3},
            "output_tokens":7,"output_tokens_details":{"reasoning_tokens":5}}}}"#;
        let turn = read_turn(event).unwrap();
        assert_eq!(turn.usage, Usage { input: 10, cached_input: 4, cache_write: 3, output: 7, reasoning: 5 });
        assert_eq!((turn.model.as_deref(), turn.service_tier.as_deref()), (Some("gpt-5.6-luna"), Some("flex")));
    }

    #[test]
    fn transcription_tokens_but_not_duration() {
        let tokens = br#"{"type":"conversation.item.input_audio_transcription.completed","usage":{"type":"tokens",
            "input_tokens":20,"output_tokens":5,"input_token_details":{"audio_tokens":20}}}"#;
        assert_eq!(read_turn(tokens).unwrap().usage.input, 20);
        let duration =
            br#"{"type":"conversation.item.input_audio_transcription.completed","usage":{"type":"duration","seconds":3}}"#;
        assert_eq!(read_turn(duration), None);
    }

    #[test]
    fn other_and_broken_events_report_nothing() {
        for event in [
            &br#"{"type":"session.created"}"#[..],
            br#"{"type":"response.done","response":{"usage":null}}"#,
            br#"{"type":"response.done","response":{"usage":{"input_tokens":"many"}}}"#,
            br#"{"type":"response.done""#,
            b"not json",
        ] {
            assert_eq!(read_turn(event), None, "{}", String::from_utf8_lossy(event));
        }
    }
}
