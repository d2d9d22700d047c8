//! Streams an upstream body to the client as it arrives, observing it on the side.
//!
//! Bytes are forwarded as the same `Bytes` the upstream produced (no copy, no
//! re-framing). For SSE answers of metered endpoints the events are parsed as they pass
//! to pick up usage and the served tier; when flexgate itself asked for streamed usage
//! the extra usage-only chunk is cut out again (by slicing, still without copying).
//!
//! The stream ends in one of four ways, each settled in the request's [`Ledger`]:
//! completed (the terminal event was seen), upstream error or idle timeout (an SSE error
//! event is appended so SDKs raise instead of ending quietly), or client disconnect
//! (the body is dropped, which drops the upstream response and cancels it).

pub mod sse;

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::ledger::{Ledger, Report};
use crate::metrics::Outcome;
use crate::upstream::attempt::ByteStream;
use crate::usage::{Endpoint, EventVerdict, StreamUsage};
use sse::SseParser;

/// How to treat a streamed answer.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Parse as SSE for this endpoint's usage (None: forward opaque bytes).
    pub sse: Option<Endpoint>,
    /// Remove the usage-only chunk flexgate asked for on the client's behalf.
    pub strip_usage_chunk: bool,
    /// Longest allowed silence between two chunks.
    pub idle_timeout: Duration,
}

struct Observer {
    parser: SseParser,
    usage: StreamUsage,
    /// Byte ranges (absolute offsets) to cut out of the forwarded stream.
    cuts: Vec<(u64, u64)>,
    /// Bytes not yet forwarded, only when cutting: `(absolute start, bytes)`.
    held: VecDeque<(u64, Bytes)>,
}

struct State {
    rest: ByteStream,
    first: Option<Bytes>,
    observer: Option<Observer>,
    strip: bool,
    idle: Duration,
    out: VecDeque<Bytes>,
    ledger: Option<Ledger>,
    endpoint: Option<Endpoint>,
    /// The body has ended (or failed); only queued output remains.
    finished: bool,
}

enum Next {
    Chunk(Bytes),
    End,
    Broken(&'static str),
}

/// Wrap an upstream byte stream as the client's response body.
pub fn body(first: Option<Bytes>, rest: ByteStream, options: StreamOptions, ledger: Ledger) -> Body {
    let observer = options.sse.map(|endpoint| Observer {
        parser: SseParser::default(),
        usage: StreamUsage::new(endpoint),
        cuts: Vec::new(),
        held: VecDeque::new(),
    });
    let state = State {
        rest,
        first,
        observer,
        strip: options.strip_usage_chunk && options.sse.is_some(),
        idle: options.idle_timeout,
        out: VecDeque::new(),
        ledger: Some(ledger),
        endpoint: options.sse,
        finished: false,
    };
    Body::from_stream(futures_util::stream::unfold(state, step))
}

async fn step(mut st: State) -> Option<(Result<Bytes, std::io::Error>, State)> {
    loop {
        if let Some(chunk) = st.out.pop_front() {
            if let Some(ledger) = st.ledger.as_mut() {
                ledger.first_byte();
            }
            return Some((Ok(chunk), st));
        }
        if st.finished {
            return None;
        }
        let next = match st.first.take() {
            Some(chunk) => Next::Chunk(chunk),
            None => match tokio::time::timeout(st.idle, st.rest.next()).await {
                Ok(Some(Ok(chunk))) => Next::Chunk(chunk),
                Ok(None) => Next::End,
                Ok(Some(Err(_))) => Next::Broken("the upstream connection broke mid-stream"),
                Err(_) => Next::Broken("the upstream stream went silent past `upstream.idle_timeout`"),
            },
        };
        match next {
            Next::Chunk(chunk) => {
                st.forward(chunk);
                // SDKs stop reading at the terminal event and may hang up before the
                // upstream's EOF arrives, so the request is settled as soon as it is seen.
                if st.observer.as_ref().is_some_and(|o| o.usage.saw_terminal()) && st.ledger.is_some() {
                    st.flush_held();
                    st.settle(Outcome::Success);
                }
            }
            Next::End => {
                st.finished = true;
                let complete = st.observer.as_ref().is_none_or(|o| o.usage.saw_terminal());
                if complete {
                    st.flush_held();
                    st.settle(Outcome::Success);
                } else {
                    st.fail("the upstream stream ended before its final event");
                }
            }
            Next::Broken(why) => {
                st.finished = true;
                if st.ledger.is_none() {
                    // Already complete: a connection dropped after the terminal event loses nothing.
                    continue;
                }
                if st.observer.is_none() {
                    // Opaque bytes: abort the body so the client sees a broken transfer.
                    st.settle(Outcome::UpstreamError);
                    return Some((Err(std::io::Error::other(why)), st));
                }
                st.fail(why);
            }
        }
    }
}

impl State {
    fn forward(&mut self, chunk: Bytes) {
        let Some(obs) = self.observer.as_mut() else {
            self.out.push_back(chunk);
            return;
        };
        let start = obs.parser.offset();
        for event in obs.parser.feed(&chunk) {
            if obs.usage.observe(&event) == EventVerdict::UsageOnlyChunk && self.strip {
                obs.cuts.push((event.start, event.end));
            }
        }
        if !self.strip {
            self.out.push_back(chunk);
            return;
        }
        obs.held.push_back((start, chunk));
        let safe = obs.parser.pending_start();
        release(obs, safe, &mut self.out);
    }

    /// Forward whatever is still held (an unterminated tail) as it is.
    fn flush_held(&mut self) {
        if let Some(obs) = self.observer.as_mut() {
            let end = obs.parser.offset();
            release(obs, end, &mut self.out);
        }
    }

    /// End the stream with an error event the SDKs raise, then settle as an upstream error.
    fn fail(&mut self, why: &str) {
        self.flush_held();
        let mid_event = self.observer.as_ref().is_some_and(|o| o.parser.pending_start() != o.parser.offset());
        let mut text = String::from(if mid_event { "\n\n" } else { "" });
        text.push_str(&error_event(self.endpoint, why));
        self.out.push_back(Bytes::from(text));
        self.settle(Outcome::UpstreamError);
    }

    fn settle(&mut self, outcome: Outcome) {
        let report = self.observer.as_ref().map(|o| Report {
            usage: o.usage.usage(),
            service_tier: o.usage.service_tier().map(str::to_owned),
            model: o.usage.model().map(str::to_owned),
        });
        if let Some(mut ledger) = self.ledger.take() {
            if !self.out.is_empty() {
                // The queued bytes go out next; this is the first byte if none went before.
                ledger.first_byte();
            }
            ledger.settle(outcome, &report.unwrap_or_default());
        }
    }
}

/// Move held bytes before `upto` to `out`, skipping the cut ranges; slices, never copies.
fn release(obs: &mut Observer, upto: u64, out: &mut VecDeque<Bytes>) {
    while let Some((start, piece)) = obs.held.front() {
        let (start, end) = (*start, *start + piece.len() as u64);
        let stop = end.min(upto);
        if stop <= start {
            break;
        }
        let mut at = start;
        for &(cut_start, cut_end) in &obs.cuts {
            if cut_end <= at || cut_start >= stop {
                continue;
            }
            if cut_start > at {
                out.push_back(slice(piece, start, at, cut_start));
            }
            at = cut_end.min(stop);
        }
        if at < stop {
            out.push_back(slice(piece, start, at, stop));
        }
        let piece = piece.clone();
        obs.held.pop_front();
        if stop < end {
            obs.held.push_front((stop, slice(&piece, start, stop, end)));
            break;
        }
    }
    obs.cuts.retain(|&(_, cut_end)| cut_end > upto);
}

fn slice(piece: &Bytes, base: u64, from: u64, to: u64) -> Bytes {
    let lo = usize::try_from(from - base).unwrap_or(0);
    let hi = usize::try_from(to - base).unwrap_or(piece.len());
    piece.slice(lo..hi)
}

/// An SSE error event in the endpoint's dialect: chat/completions SDKs raise on a `data:`
/// payload with an `error` key; Responses clients on an `error` event.
pub fn error_event(endpoint: Option<Endpoint>, why: &str) -> String {
    let error = serde_json::json!({"message": format!("flexgate: {why}"), "type": "server_error", "param": null, "code": "upstream_stream_error"});
    match endpoint {
        Some(Endpoint::Responses) => {
            let data = serde_json::json!({"type": "error", "code": "upstream_stream_error", "message": error["message"], "param": null, "sequence_number": 0, "error": error});
            format!("event: error\ndata: {data}\n\n")
        }
        _ => format!("data: {}\n\n", serde_json::json!({ "error": error })),
    }
}

#[cfg(test)]
mod tests;
