//! State shared across replicas through Redis (`[shared] redis_url`): the connection and
//! its health ([`Link`]), this replica's identity, and the tasks that keep it in step:
//! budget slices (`crate::budgets::shared`) and the admission controllers' notes
//! (`notes`). Nothing on the request path waits for Redis: requests answer from local
//! state, which these tasks update in the background.

pub mod notes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::Digest as _;
use tokio::sync::{Notify, mpsc};

use crate::admission::{Note, Outbox};

/// How long one Redis call may take before Redis counts as unreachable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// Wait between attempts to connect.
pub const RECONNECT: Duration = Duration::from_secs(1);
/// Admission notes waiting to be sent; beyond this they are dropped (never waited for).
const OUTBOX: usize = 256;

/// The shared state of this replica: where Redis is, whether it answers, and the
/// admission notes waiting to go out.
pub struct Shared {
    /// The URL, password included: handed to the client and nowhere else.
    url: String,
    /// The URL with its password masked, for logs and `Debug`.
    shown: String,
    pub link: Arc<Link>,
    /// The channel and key prefix of this upstream's admission state: replicas behind
    /// different upstreams share a Redis without hearing each other.
    namespace: String,
    /// Taken by the task that sends them.
    notes: Mutex<Option<mpsc::Receiver<Note>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("redis", &self.shown).finish_non_exhaustive()
    }
}

impl Shared {
    /// The shared state of the replica with this store, behind this upstream, through
    /// the Redis at `url` (`shown` masks its password); and the outbox its admission
    /// controllers write their notes to.
    pub fn new(url: String, shown: String, store_dir: &std::path::Path, upstream: &str) -> (Self, Outbox) {
        let (tx, rx) = mpsc::channel(OUTBOX);
        let digest = sha2::Sha256::digest(upstream.as_bytes());
        let shared = Self {
            url,
            shown,
            link: Arc::new(Link::new(&identity(store_dir))),
            namespace: format!("flexgate:admission:{}", hex::encode(&digest[..6])),
            notes: Mutex::new(Some(rx)),
        };
        (shared, tx)
    }

    /// The URL to connect to (it holds the password: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Whether Redis answers, this replica's name in it, and a wake-up for a budget slice
/// running low.
pub struct Link {
    up: AtomicBool,
    pub(crate) wake: Notify,
    /// This process's field in each budget hash, and its name on admission notes.
    pub(crate) replica: String,
}

impl Link {
    /// A link for the replica known as `identity`: its field in each hash is derived
    /// from it, so a replica that restarts with its store finds its own field again and
    /// its restored spend is not counted twice.
    pub fn new(identity: &str) -> Self {
        let digest = sha2::Sha256::digest(identity.as_bytes());
        Self { up: AtomicBool::new(false), wake: Notify::new(), replica: hex::encode(&digest[..8]) }
    }

    /// Whether the last call to Redis succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// A slice runs low: top it up now rather than at the next tick.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn set_up(&self, up: bool, why: &dyn std::fmt::Display) {
        if self.up.swap(up, Ordering::AcqRel) != up {
            if up {
                tracing::info!("shared state: Redis reachable; budgets and admission shared across replicas");
            } else {
                tracing::warn!(error = %why, "shared state: Redis unreachable; serving on local state");
            }
        }
    }
}

/// This replica's identity: the host name and the store's folder, which together
/// outlive a restart exactly when the spend restored from the store does.
pub fn identity(store_dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    // Absolute, not canonical: the folder may not exist yet on the first start.
    let dir = std::path::absolute(store_dir).unwrap_or_else(|_| store_dir.to_path_buf());
    format!("{}:{}", host.trim(), dir.display())
}

/// A connection that reconnects by itself, each call bounded by [`CALL_TIMEOUT`].
pub async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(CALL_TIMEOUT)
        .set_response_timeout(CALL_TIMEOUT)
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config).await
}

/// A call that took longer than [`CALL_TIMEOUT`], as Redis's own error type.
pub fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replica_name_is_stable_for_one_identity_and_differs_between_two() {
        assert_eq!(Link::new("a:/data").replica, Link::new("a:/data").replica);
        assert_ne!(Link::new("a:/data").replica, Link::new("b:/data").replica);
    }

    #[test]
    fn replicas_behind_different_upstreams_use_different_names() {
        let config = |u: &str| {
            let url = "redis://127.0.0.1:6379/0".to_owned();
            let (s, _) = Shared::new(url.clone(), url, std::path::Path::new("/data"), u);
            s.namespace
        };
        assert_eq!(config("https://api.openai.com/v1"), config("https://api.openai.com/v1"));
        assert_ne!(config("https://api.openai.com/v1"), config("http://sim:8080/v1"));
    }
}
