//! An answer's body as the pool hands it out: reading it drives its HTTP/1.1 connection,
//! and reading it to the end puts the connection back in the pool.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::Shared;
use super::http1::Conn1;

/// Hands an HTTP/1.1 connection back to the pool.
pub(super) struct Back {
    pub(super) pool: Arc<Shared>,
    pub(super) conn: Box<Conn1>,
}

pin_project_lite::pin_project! {
    /// An answer's body. Read to its end, its HTTP/1.1 connection goes back to the pool;
    /// dropped before that, the connection closes with it (hyper cannot reuse it).
    pub struct PoolBody {
        #[pin]
        inner: Incoming,
        back: Option<Back>,
    }
}

impl PoolBody {
    /// `back`: the HTTP/1.1 connection the body arrives on (none over HTTP/2).
    pub(super) fn new(inner: Incoming, back: Option<Back>) -> Self {
        Self { inner, back }
    }
}

impl std::fmt::Debug for PoolBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBody").field("pooled", &self.back.is_some()).finish_non_exhaustive()
    }
}

impl Body for PoolBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        // The reader drives the connection: hyper reads the next chunk into the body's
        // channel (one fits without waiting for the reader) and the poll below takes it.
        if let Some(back) = this.back.as_mut() {
            back.conn.drive(cx);
        }
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = &polled
            && let Some(back) = this.back.take()
        {
            back.pool.put(back.conn, cx);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
