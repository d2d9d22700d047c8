//! An HTTP/1.1 upstream connection with no task of its own: the request that holds it
//! drives hyper's state machine for the socket from the request's own task.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;

use super::H1;
use crate::upstream::connect::Io;

/// An HTTP/1.1 connection driven by the task that uses it (boxed where it is held: a
/// waiting request keeps a pointer, and the box is made once per connection).
pub(super) struct Conn1 {
    pub(super) sender: H1,
    /// hyper's reads and writes for the socket; `None` once the connection has ended.
    pub(super) driver: Option<http1::Connection<Io, Full<Bytes>>>,
}

impl Conn1 {
    /// Let hyper make progress on the socket (write the request, read the answer, hand
    /// body chunks over), waking `cx` when there is more. False once it has ended; the
    /// driver is then dropped, which fails whatever still waits on it.
    pub(super) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(driver) = self.driver.as_mut() else { return false };
        match Pin::new(driver).poll(cx) {
            Poll::Pending => true,
            Poll::Ready(ended) => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
                self.driver = None;
                false
            }
        }
    }

    /// Open and ready for a request, as far as the socket says without waiting. An idle
    /// connection is polled by nobody, so a close by the server shows only when hyper is
    /// asked; the no-op waker leaves no task to wake for it.
    pub(super) fn is_reusable(&mut self) -> bool {
        self.drive(&mut Context::from_waker(Waker::noop())) && self.sender.is_ready()
    }
}

pin_project_lite::pin_project! {
    /// Waits for `answer` while driving the connection it was sent on. A hand-written
    /// future, not an `async fn`: a held request keeps it for the whole wait, and an
    /// `async fn` would hold hyper's 272-byte answer future twice (argument and local).
    pub(super) struct Exchange<'a, F> {
        pub(super) conn: &'a mut Conn1,
        #[pin]
        pub(super) answer: F,
    }
}

impl<F: Future> Future for Exchange<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        this.conn.drive(cx);
        this.answer.poll(cx)
    }
}
