//! Shared state for every request: configuration, the upstream client, metrics, drain flag.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{AuthConfig, Config};
use crate::metrics::Metrics;
use crate::startup::StartupError;
use crate::upstream::Upstream;

mod sessions;

pub use sessions::Sessions;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub upstream: Upstream,
    pub metrics: Metrics,
    /// Open WebSocket sessions, ended on shutdown (`crate::websocket`).
    pub websockets: Sessions,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(config: Config) -> Result<Self, StartupError> {
        let managed = matches!(config.auth, AuthConfig::Managed { .. });
        let upstream = Upstream::new(&config.upstream, managed, config.server.threads)?;
        let classes: Vec<&str> = config.classes.iter().map(|c| c.name.as_str()).collect();
        let metrics = Metrics::new(&classes).map_err(StartupError::Metrics)?;
        metrics.prime(&classes, &config.pricing);
        Ok(Self(Arc::new(Inner {
            config,
            upstream,
            metrics,
            websockets: Sessions::default(),
            draining: AtomicBool::new(false),
        })))
    }

    /// Mark the gateway as draining: `/readyz` answers 503 from now on, and WebSocket
    /// sessions are closed once the drain time is over.
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
        self.0.websockets.drain();
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
