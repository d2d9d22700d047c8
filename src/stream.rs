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
//! (the body is dropped, which drops the upstream response and cancels it; settled with
//! what the stream reported and carried until then).

use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::time::{Instant, Sleep};

use crate::endpoint::Endpoint;
use crate::ledger::{Ledger, Report};
use crate::metrics::Outcome;
use crate::sse::SseParser;
use crate::upstream::attempt::{ByteStream, Peeked};
use crate::usage::{EventVerdict, StreamUsage};

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
    /// The first chunk was observed already, at the attempt's peek.
    first_observed: bool,
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
    /// An opaque stream broke: the client's body ends with this error.
    pending_error: Option<std::io::Error>,
}

enum Next {
    Chunk(Bytes),
    End,
    Broken(&'static str),
}

/// Wrap an upstream byte stream as the client's response body. An SSE stream's first
/// chunk comes observed by the attempt's peek, and observing carries on from there.
pub fn body(first: Option<Peeked>, rest: ByteStream, options: StreamOptions, ledger: Ledger) -> Body {
    let strip = options.strip_usage_chunk && options.sse.is_some();
    let (first, peeked) = match first {
        Some(p) => (Some(p.chunk), Some((p.parser, p.usage, p.usage_only))),
        None => (None, None),
    };
    let budgeted = ledger.is_budgeted();
    let observer = options.sse.map(|endpoint| {
        let held = VecDeque::new();
        let mut observer = match peeked {
            Some((parser, usage, usage_only)) => {
                let cuts = if strip { usage_only } else { Vec::new() };
                Observer { parser, usage, cuts, held, first_observed: true }
            }
            None => Observer {
                parser: SseParser::default(),
                usage: StreamUsage::new(endpoint),
                cuts: Vec::new(),
                held,
                first_observed: false,
            },
        };
        // Only a budget reads the content measured (a stream that ends without usage).
        observer.usage.measure_content(budgeted);
        observer
    });
    let state = State {
        rest,
        first,
        observer,
        strip,
        idle: options.idle_timeout,
        out: VecDeque::new(),
        ledger: Some(ledger),
        endpoint: options.sse,
        finished: false,
        pending_error: None,
    };
    Body::from_stream(Forwarded { state, silence: Box::pin(tokio::time::sleep(options.idle_timeout)), waiting: false })
}

/// The client's body: polls the upstream in place, one timer for the whole stream.
///
/// A timer per chunk (`tokio::time::timeout` around each read) registers and removes a
/// wheel entry for every chunk, and a stream built with `unfold` moves its whole state
/// in and out of a new future per chunk: together a visible share of a chunk's cost
/// (docs/benchmarks.md). Here
/// the timer is pushed back when the wait for a chunk begins, which moves a deadline
/// later and so touches only the entry's own state.
struct Forwarded {
    state: State,
    /// The upstream's allowed silence, from when the wait for its next chunk began.
    silence: Pin<Box<Sleep>>,
    /// `silence` is armed for the current wait.
    waiting: bool,
}

impl Stream for Forwarded {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let st = &mut this.state;
        loop {
            if let Some(chunk) = st.out.pop_front() {
                if let Some(ledger) = st.ledger.as_mut() {
                    ledger.first_byte();
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            if st.finished {
                return Poll::Ready(None);
            }
            let next = match st.first.take() {
                Some(chunk) => Next::Chunk(chunk),
                None => match st.rest.poll_next_unpin(cx) {
                    Poll::Ready(Some(Ok(chunk))) => Next::Chunk(chunk),
                    Poll::Ready(None) => Next::End,
                    Poll::Ready(Some(Err(_))) => Next::Broken("the upstream connection broke mid-stream"),
                    Poll::Pending => {
                        if !this.waiting {
                            this.waiting = true;
                            this.silence.as_mut().reset(Instant::now() + st.idle);
                        }
                        match this.silence.as_mut().poll(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(()) => {
                                Next::Broken("the upstream stream went silent past `upstream.idle_timeout`")
                            }
                        }
                    }
                },
            };
            this.waiting = false;
            st.handle(next);
            if let Some(error) = st.pending_error.take() {
                return Poll::Ready(Some(Err(error)));
            }
        }
    }
}

impl State {
    fn handle(&mut self, next: Next) {
        match next {
            Next::Chunk(chunk) => {
                self.forward(chunk);
                // SDKs stop reading at the terminal event and may hang up before the
                // upstream's EOF arrives, so the request is settled as soon as it is seen.
                if self.observer.as_ref().is_some_and(|o| o.usage.saw_terminal()) && self.ledger.is_some() {
                    self.flush_held();
                    self.settle(Outcome::Success);
                }
            }
            Next::End => {
                self.finished = true;
                let complete = self.observer.as_ref().is_none_or(|o| o.usage.saw_terminal());
                if complete {
                    self.flush_held();
                    self.settle(Outcome::Success);
                } else {
                    self.fail("the upstream stream ended before its final event");
                }
            }
            Next::Broken(why) => {
                self.finished = true;
                if self.ledger.is_none() {
                    // Already complete: a connection dropped after the terminal event loses nothing.
                    return;
                }
                if self.observer.is_none() {
                    // Opaque bytes: abort the body so the client sees a broken transfer.
                    self.settle(Outcome::UpstreamError);
                    self.pending_error = Some(std::io::Error::other(why));
                    return;
                }
                self.fail(why);
            }
        }
    }

    fn forward(&mut self, chunk: Bytes) {
        let Some(obs) = self.observer.as_mut() else {
            self.out.push_back(chunk);
            return;
        };
        let start = if std::mem::take(&mut obs.first_observed) {
            0
        } else {
            let start = obs.parser.offset();
            for event in obs.parser.feed(&chunk) {
                if obs.usage.observe(&event) == EventVerdict::UsageOnlyChunk && self.strip {
                    obs.cuts.push((event.start, event.end));
                }
            }
            start
        };
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
            streamed: Some(o.usage.streamed()),
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

impl Drop for State {
    /// The client went away mid-stream: settled as cancelled with what the stream
    /// reported and carried so far, so a budget is charged for what was generated.
    fn drop(&mut self) {
        if self.ledger.is_some() {
            // Queued bytes will never go out: no first byte is recorded for them.
            self.out.clear();
            self.settle(Outcome::Cancelled);
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
