//! The open WebSocket sessions (`crate::websocket`), kept in the shared state so that
//! shutdown can end them: an upgraded connection has left hyper's graceful drain.

use std::time::Duration;

use tokio::sync::watch;

/// The open sessions, and the signal that ends them on shutdown.
pub struct Sessions {
    draining: watch::Sender<bool>,
    open: watch::Sender<usize>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self { draining: watch::Sender::new(false), open: watch::Sender::new(0) }
    }
}

impl Sessions {
    /// Start the shutdown: sessions are closed `drain_timeout` from now.
    pub fn drain(&self) {
        self.draining.send_replace(true);
    }

    /// Resolves when no session is open any more.
    pub async fn closed(&self) {
        let _ = self.open.subscribe().wait_for(|open| *open == 0).await;
    }

    /// One more session is open.
    pub(crate) fn enter(&self) {
        self.open.send_modify(|open| *open += 1);
    }

    /// A session has ended.
    pub(crate) fn leave(&self) {
        self.open.send_modify(|open| *open = open.saturating_sub(1));
    }

    /// Resolves `drain_timeout` after the shutdown started.
    pub(crate) async fn drained(&self, drain_timeout: Duration) {
        if self.draining.subscribe().wait_for(|draining| *draining).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(drain_timeout).await;
    }
}
