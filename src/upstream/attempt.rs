//! One HTTP attempt: send the (tier-rewritten) request, wait for the answer up to the
//! attempt's cutoff, and read as much of it as classification needs.
//!
//! Error answers are read whole (they are small) so the retry loop can classify them.
//! Metered JSON answers are read whole inside the attempt, so a cut body is retryable.
//! Streams are peeked to their first chunk before the attempt counts as a success: that
//! is the commit point after which nothing is retried.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::BodyDataStream;
use tokio::time::Instant;

use super::Upstream;
use super::classify::{Reason, Verdict, classify};
use super::connect::BoxError;
use super::pool::PoolBody;
use super::retry::Attempter;
use crate::body::BodyInfo;
use crate::endpoint::Endpoint;
use crate::sse::SseParser;
use crate::tier::Tier;
use crate::usage::{self, BodyReport, EventVerdict, StreamUsage};

/// Error bodies beyond this are cut; classification needs only the first bytes.
const ERROR_BODY_CAP: usize = 1 << 20;
/// JSON answers larger than this are streamed through instead of buffered.
const BUFFER_CAP: usize = 64 << 20;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

#[expect(
    clippy::large_enum_variant,
    reason = "boxing the peek would cost an allocation per streamed request; the answer is moved a few times, never held across an await"
)]
pub enum AnswerBody {
    Full(Bytes),
    /// The first chunk (already read and observed, for SSE) and the rest of the stream.
    Stream {
        first: Option<Peeked>,
        rest: ByteStream,
    },
}

/// An SSE stream's first chunk as the peek read it, with the observer state after it, so
/// that the streamed body carries on from there instead of parsing the chunk again.
pub struct Peeked {
    pub chunk: Bytes,
    pub parser: SseParser,
    pub usage: StreamUsage,
    /// Spans of the usage-only chunks the first chunk holds (a short answer can arrive
    /// whole), for the stream to cut when flexgate asked for usage itself.
    pub usage_only: Vec<(u64, u64)>,
    /// The stream opened with an error event.
    pub error: bool,
}

impl Peeked {
    /// Observe a stream's first chunk.
    pub fn observe(endpoint: Endpoint, chunk: Bytes) -> Self {
        let mut parser = SseParser::default();
        let mut usage = StreamUsage::new(endpoint);
        let (mut usage_only, mut error) = (Vec::new(), false);
        for event in parser.feed(&chunk) {
            match usage.observe(&event) {
                EventVerdict::Error => error = true,
                EventVerdict::UsageOnlyChunk => usage_only.push((event.start, event.end)),
                _ => {}
            }
        }
        Self { chunk, parser, usage, usage_only, error }
    }
}

pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: AnswerBody,
    /// What a buffered JSON answer reports, read while it was validated (boxed: the
    /// answer moves through the retry loop by value).
    pub report: Option<Box<BodyReport>>,
}

#[expect(clippy::large_enum_variant, reason = "as for `AnswerBody`: a failure is the rare case")]
pub enum Answer {
    Response(UpstreamResponse),
    /// No usable answer.
    Failed(AttemptError),
}

/// Why an attempt brought back no answer to pass on. The texts are safe to show a client
/// (no URL, no key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// The connection could not be made or broke before an answer (with its root cause).
    #[error("{0}")]
    Connect(String),
    /// Nothing arrived before the attempt's cutoff.
    #[error("no answer before the attempt's deadline")]
    Timeout,
    #[error("the upstream closed the connection mid-response")]
    CutBody,
    #[error("the upstream answered with malformed JSON")]
    MalformedJson,
    #[error("the upstream stream ended before its first event")]
    EmptyStream,
    #[error("the upstream stream opened with an error event")]
    StreamOpenedWithError,
    /// No attempt was sent: admission control held the request until its deadline.
    #[error("{0}")]
    NotAdmitted(&'static str),
}

/// The request to replay on each attempt, with its per-tier body variants.
pub struct HttpAttempt<'a> {
    pub upstream: &'a Upstream,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Routing fields and spans, for endpoints that take `service_tier`.
    pub info: Option<BodyInfo>,
    /// The tier of the first attempt and the `service_tier` text it carries.
    pub first_tier: Option<Tier>,
    pub first_override: Option<&'static str>,
    /// Ask the upstream for streamed usage (`stream_options.include_usage`).
    pub force_usage: bool,
    pub endpoint: Endpoint,
    /// Read JSON answers whole (metered endpoints).
    pub buffer: bool,
    cache: Option<(Option<Tier>, Bytes)>,
}

impl<'a> HttpAttempt<'a> {
    #[expect(clippy::too_many_arguments, reason = "a plain constructor for the request's fields")]
    pub fn new(
        upstream: &'a Upstream,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
        info: Option<BodyInfo>,
        first: (Option<Tier>, Option<&'static str>),
        endpoint: Endpoint,
        buffer: bool,
    ) -> Self {
        let force_usage = info.as_ref().is_some_and(|i| i.forces_usage(endpoint));
        Self {
            upstream,
            method,
            uri,
            headers,
            body,
            info,
            first_tier: first.0,
            first_override: first.1,
            force_usage,
            endpoint,
            buffer,
            cache: None,
        }
    }

    /// The body for an attempt on `tier`: the first tier keeps the plan's override; any
    /// later tier (escalation) pins its tier explicitly.
    fn body_for(&mut self, tier: Option<Tier>) -> Bytes {
        let Some(info) = &self.info else {
            return self.body.clone();
        };
        if let Some((cached_tier, body)) = &self.cache
            && *cached_tier == tier
        {
            return body.clone();
        }
        let text = if tier == self.first_tier { self.first_override } else { tier.map(Tier::param) };
        let body = info.rewrite(&self.body, text, self.force_usage);
        self.cache = Some((tier, body.clone()));
        body
    }

    async fn send(&mut self, tier: Option<Tier>) -> (Verdict, Answer) {
        let body = self.body_for(tier);
        let sent = self.upstream.send(&self.method, &self.uri, &self.headers, &body);
        let response = match sent.await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_connect() { "connection failed" } else { "the connection broke before an answer" };
                return (
                    Verdict::Retry { reason: Reason::ConnectError, hint: None },
                    Answer::Failed(AttemptError::Connect(format!("{what} ({})", root_cause(&e)))),
                );
            }
        };
        // Boxed: a held request waits above with only the response future, and a future
        // is as large as its largest state, which is reading the answer: every held
        // request would carry that state, for one allocation made once the answer is here.
        Box::pin(self.read_answer(response, tier)).await
    }

    /// Read as much of an answer as classification and usage need.
    async fn read_answer(&self, response: http::Response<PoolBody>, tier: Option<Tier>) -> (Verdict, Answer) {
        let (parts, incoming) = response.into_parts();
        let (status, headers) = (parts.status, parts.headers);
        if !status.is_success() {
            let body = read_capped(incoming, ERROR_BODY_CAP).await.unwrap_or_default();
            let verdict = classify(status, &headers, &body, tier);
            return (
                verdict,
                Answer::Response(UpstreamResponse { status, headers, body: AnswerBody::Full(body), report: None }),
            );
        }
        let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if content_type.starts_with("text/event-stream") {
            return self.peek_stream(incoming, status, headers).await;
        }
        let small = incoming.size_hint().exact().is_none_or(|n| n <= BUFFER_CAP as u64);
        if self.buffer && small && content_type.starts_with("application/json") {
            let server_error = Verdict::Retry { reason: Reason::ServerError, hint: None };
            let Some(body) = read_capped(incoming, BUFFER_CAP).await else {
                return (server_error, Answer::Failed(AttemptError::CutBody));
            };
            let Some(report) = usage::scan_body(self.endpoint, &body) else {
                return (server_error, Answer::Failed(AttemptError::MalformedJson));
            };
            return (
                Verdict::Success,
                Answer::Response(UpstreamResponse {
                    status,
                    headers,
                    body: AnswerBody::Full(body),
                    report: Some(Box::new(report)),
                }),
            );
        }
        let rest = byte_stream(incoming);
        (
            Verdict::Success,
            Answer::Response(UpstreamResponse {
                status,
                headers,
                body: AnswerBody::Stream { first: None, rest },
                report: None,
            }),
        )
    }

    /// Read a stream's first chunk; an empty stream or one opening with an error event
    /// (overload inside a 200) is retryable, since the client has seen nothing yet.
    async fn peek_stream(&self, incoming: PoolBody, status: StatusCode, headers: HeaderMap) -> (Verdict, Answer) {
        let retry = Verdict::Retry { reason: Reason::ServerError, hint: None };
        let mut rest = byte_stream(incoming);
        let Some(Ok(first)) = rest.next().await else {
            return (retry, Answer::Failed(AttemptError::EmptyStream));
        };
        let first = Peeked::observe(self.endpoint, first);
        if first.error {
            return (retry, Answer::Failed(AttemptError::StreamOpenedWithError));
        }
        (
            Verdict::Success,
            Answer::Response(UpstreamResponse {
                status,
                headers,
                body: AnswerBody::Stream { first: Some(first), rest },
                report: None,
            }),
        )
    }
}

/// The body's data frames, as the stream module consumes them.
fn byte_stream(body: PoolBody) -> ByteStream {
    Box::pin(BodyDataStream::new(body).map(|r| r.map_err(BoxError::from)))
}

/// The innermost error's text: the pool's own ("connection failed") says little,
/// the cause ("Connection refused", a certificate problem) says what happened. No part of
/// the chain carries the URL or a key.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// Read a whole body, or `None` if the connection broke; bytes past `cap` are dropped.
async fn read_capped(body: PoolBody, cap: usize) -> Option<Bytes> {
    let mut stream = BodyDataStream::new(body);
    let Some(first) = stream.next().await else {
        return Some(Bytes::new());
    };
    let first = first.ok()?;
    let Some(mut next) = stream.next().await else {
        // The common case, one chunk: keep it without copying.
        return Some(first.slice(..first.len().min(cap)));
    };
    let mut buf = bytes::BytesMut::with_capacity(first.len() * 2);
    buf.extend_from_slice(&first[..first.len().min(cap)]);
    loop {
        let chunk = next.ok()?;
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        match stream.next().await {
            Some(more) => next = more,
            None => return Some(buf.freeze()),
        }
    }
}

impl Attempter for HttpAttempt<'_> {
    type Output = Answer;

    fn headers(output: &Answer) -> Option<&HeaderMap> {
        match output {
            Answer::Response(r) => Some(&r.headers),
            Answer::Failed(_) => None,
        }
    }

    fn unsent(&mut self, why: &'static str) -> Answer {
        Answer::Failed(AttemptError::NotAdmitted(why))
    }

    async fn attempt(&mut self, tier: Option<Tier>, cutoff: Instant) -> (Verdict, Answer) {
        match tokio::time::timeout_at(cutoff, self.send(tier)).await {
            Ok(answer) => answer,
            Err(_) => (Verdict::Retry { reason: Reason::Timeout, hint: None }, Answer::Failed(AttemptError::Timeout)),
        }
    }
}
