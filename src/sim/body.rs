//! Turning a rendered answer into an HTTP response, shaped by the scripted fault: whole
//! bodies, SSE streams paced by `chunk_interval`, and the broken variants (`cut` ends the
//! body with an error so the connection drops without a clean end, `stall` stops sending
//! but keeps it open, `reset` drops the connection before the head is sent, `malformed`
//! sends invalid JSON). Every body sent piecewise holds a
//! [`StreamGuard`], so `Sim::open_streams` shows whether a client going away really
//! ended the sim's side.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};

use tokio::sync::watch;

use super::Sim;
use super::faults::Shape;

/// Lazily rendered SSE frames, each a complete `data:`/`event:` block.
pub(crate) type Frames = Box<dyn Iterator<Item = Bytes> + Send>;

/// A successful answer before fault shaping.
pub(crate) enum Payload {
    Json(Bytes),
    Binary {
        content_type: &'static str,
        bytes: Bytes,
    },
    /// `prefix` frames are what `cut` / `stall` deliver; always fewer than the whole stream.
    Sse {
        frames: Frames,
        prefix: usize,
    },
}

/// Counts bodies still being sent; decremented when the body is dropped.
pub(crate) struct StreamGuard(Arc<AtomicUsize>);

impl StreamGuard {
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A data-only SSE frame: `data: {json}\n\n`.
pub(crate) fn data_frame(json: &str) -> Bytes {
    let mut frame = String::with_capacity(json.len() + 8);
    frame.push_str("data: ");
    frame.push_str(json);
    frame.push_str("\n\n");
    Bytes::from(frame)
}

/// The sentinel closing Chat Completions and legacy completions streams.
pub(crate) fn done_frame() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// Pause before a `cut` breaks the connection, so the head and the frames before the cut
/// leave the server first (an error in the same poll makes hyper drop unflushed bytes).
const CUT_FLUSH: Duration = Duration::from_millis(1);

/// Body of the `malformed` fault: starts like a completion, never closes.
const MALFORMED: &[u8] =
    b"{\"id\":\"chatcmpl-sim\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"tru";

/// Builds the response for `payload` delivered as `shape`.
pub(crate) fn respond(sim: &Sim, payload: Payload, shape: Shape) -> Response {
    let pacing = Pacing {
        interval: sim.inner.config.chunk_interval,
        open: &sim.inner.open_streams,
        stop: sim.inner.stop.subscribe(),
    };
    match shape {
        Shape::Malformed => return whole("application/json", Bytes::from_static(MALFORMED)),
        Shape::Reset => return reset(),
        Shape::Normal | Shape::Cut | Shape::Stall => {}
    }
    match payload {
        Payload::Json(bytes) => sized("application/json", bytes, shape, pacing),
        Payload::Binary { content_type, bytes } => sized(content_type, bytes, shape, pacing),
        Payload::Sse { frames, prefix } => {
            let limit = (shape != Shape::Normal).then_some(prefix);
            let body = paced(frames, limit, shape, pacing);
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    }
}

/// The `reset` fault: a body that fails on its first poll. hyper has only buffered the
/// head at that point and drops the connection without flushing it, so the client sees
/// the socket close with no answer at all, as when an upstream or a proxy resets it.
pub(crate) fn reset() -> Response {
    let failing = futures_util::stream::once(async { Err::<Bytes, _>(io::Error::other("simulated connection reset")) });
    Body::from_stream(failing).into_response()
}

fn whole(content_type: &'static str, bytes: Bytes) -> Response {
    ([(CONTENT_TYPE, content_type)], bytes).into_response()
}

/// A body with a `content-length`; `cut`/`stall` deliver only its first half.
fn sized(content_type: &'static str, bytes: Bytes, shape: Shape, pacing: Pacing<'_>) -> Response {
    if shape == Shape::Normal {
        return whole(content_type, bytes);
    }
    let full = bytes.len();
    let half = bytes.slice(..full / 2);
    let frames: Frames = Box::new(std::iter::once(half));
    let pacing = Pacing { interval: Duration::ZERO, ..pacing };
    let body = paced(frames, Some(1), shape, pacing);
    let mut response = whole(content_type, Bytes::new());
    *response.body_mut() = body;
    response.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(full));
    response
}

/// What a piecewise body needs from the sim.
struct Pacing<'a> {
    interval: Duration,
    open: &'a Arc<AtomicUsize>,
    stop: watch::Receiver<bool>,
}

struct Pacer {
    frames: Frames,
    sent: usize,
    interval: Duration,
    limit: Option<usize>,
    shape: Shape,
    finished: bool,
    stop: watch::Receiver<bool>,
    _guard: StreamGuard,
}

/// Streams `frames`, sleeping `interval` between them; after `limit` frames it breaks
/// (`cut`) or goes quiet (`stall`, until the client leaves or `serve` shuts down).
fn paced(frames: Frames, limit: Option<usize>, shape: Shape, pacing: Pacing<'_>) -> Body {
    let pacer = Pacer {
        frames,
        sent: 0,
        interval: pacing.interval,
        limit,
        shape,
        finished: false,
        _guard: StreamGuard::new(pacing.open),
        stop: pacing.stop,
    };
    let stream = futures_util::stream::unfold(pacer, |mut p| async move {
        if p.finished {
            return None;
        }
        if p.limit.is_some_and(|limit| p.sent >= limit) {
            if p.shape == Shape::Stall {
                // Keeps the pacer (and its guard) alive until the client goes away.
                let _ = p.stop.wait_for(|stopped| *stopped).await;
            } else {
                // One `Pending` lets the server flush what was sent before the break;
                // an error at once could drop the buffered head and prefix with it.
                tokio::task::yield_now().await;
            }
            p.finished = true;
            tokio::time::sleep(CUT_FLUSH).await;
            return Some((Err(io::Error::other("simulated connection cut")), p));
        }
        if p.sent > 0 && !p.interval.is_zero() {
            tokio::time::sleep(p.interval).await;
        }
        let frame = p.frames.next()?;
        p.sent += 1;
        Some((Ok::<Bytes, io::Error>(frame), p))
    });
    Body::from_stream(stream)
}
