//! The batches running in this process (`crate::batch`): the passthrough keys they run
//! with, kept in memory only, and each runner's cancel switch. Here, not in `batch`,
//! because the shared state holds it and `batch` sends its lines through the proxy.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderValue;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// The batches running in this process and the passthrough keys they run with.
#[derive(Default)]
pub struct Batches {
    /// Passthrough mode: the `Authorization` last presented by each owner (keyed by the
    /// key's SHA-256), in memory only. A batch resumed after a restart waits for its
    /// owner's key to arrive here (the client's next poll).
    keys: Mutex<HashMap<String, HeaderValue>>,
    pub key_arrived: Notify,
    /// The runner of each batch in this process, to cancel it.
    running: Mutex<HashMap<String, Arc<Control>>>,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches").field("running", &self.running.lock().len()).finish_non_exhaustive()
    }
}

impl Batches {
    /// Remember the key `owner` presented (passthrough mode) and wake batches waiting for it.
    pub fn offer_key(&self, owner: &str, authorization: &HeaderValue) {
        let mut keys = self.keys.lock();
        if keys.get(owner) != Some(authorization) {
            keys.insert(owner.to_owned(), authorization.clone());
            drop(keys);
            self.key_arrived.notify_waiters();
        }
    }

    pub fn key(&self, owner: &str) -> Option<HeaderValue> {
        self.keys.lock().get(owner).cloned()
    }

    /// The control of batch `id`'s runner, registered once; `None` when one already runs.
    pub fn register(&self, id: &str) -> Option<Arc<Control>> {
        let mut running = self.running.lock();
        if running.contains_key(id) {
            return None;
        }
        let control = Arc::new(Control::default());
        running.insert(id.to_owned(), Arc::clone(&control));
        Some(control)
    }

    pub fn finished(&self, id: &str) {
        self.running.lock().remove(id);
    }

    pub fn cancel(&self, id: &str) {
        if let Some(control) = self.running.lock().get(id) {
            control.cancel();
        }
    }
}

/// How the API tells a batch's runner to stop taking lines.
#[derive(Default)]
pub struct Control {
    cancelled: AtomicBool,
    changed: Notify,
}

impl Control {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves once the batch is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}
