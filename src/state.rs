//! Shared state for every request: configuration, the upstream client, the admission
//! controllers, metrics, drain flag.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::admission::Admission;
use crate::budgets::Budgets;
use crate::config::{AuthConfig, Config};
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::startup::StartupError;
use crate::upstream::Upstream;

mod batches;
mod sessions;

pub use batches::{Batches, Control};
pub use sessions::Sessions;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub upstream: Upstream,
    /// One admission controller per model, seen by every request.
    pub admission: Admission,
    pub metrics: Metrics,
    /// Spending limits per client (`[budgets.CLIENT]`); empty without any.
    pub budgets: Arc<Budgets>,
    /// What replicas share through Redis (`[shared]`), when configured.
    pub shared: Option<Shared>,
    /// Open WebSocket sessions, ended on shutdown (`crate::websocket`).
    pub websockets: Sessions,
    /// The embedded store (`store.dir`), opened once (`crate::store::Opened`).
    pub store: crate::store::Opened,
    /// The batches running in this process (`crate::batch`).
    pub batches: Batches,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(config: Config) -> Result<Self, StartupError> {
        let managed = matches!(config.auth, AuthConfig::Managed { .. });
        let upstream = Upstream::new(&config.upstream, managed, config.server.threads)?;
        let classes: Vec<&str> = config.classes.iter().map(|c| c.name.as_str()).collect();
        let metrics = Metrics::new(&classes).map_err(StartupError::Metrics)?;
        metrics.prime(&classes, &config.pricing);
        let (shared, outbox) = match &config.shared {
            Some(c) => {
                let url = c.redis_url().to_owned();
                let (shared, outbox) =
                    Shared::new(url, c.to_string(), &config.store.dir, config.upstream.base_url.as_str());
                metrics.shared.prime(false);
                (Some(shared), Some(outbox))
            }
            None => (None, None),
        };
        let admission = Admission::new(config.admission, config.pricing.models(), outbox.as_ref());
        let store = crate::store::Opened::new(config.store.dir.clone());
        let budgets = Arc::new(Budgets::with_link(&config.budgets, shared.as_ref().map(|s| Arc::clone(&s.link))));
        metrics.budgets.prime(&budgets);
        Ok(Self(Arc::new(Inner {
            config,
            upstream,
            admission,
            metrics,
            budgets,
            shared,
            websockets: Sessions::default(),
            store,
            batches: Batches::default(),
            draining: AtomicBool::new(false),
        })))
    }

    /// Mark the gateway as draining: `/readyz` answers 503 from now on; requests waiting
    /// for admission move to standard (if their class may) or give up within the drain
    /// timeout, before the server stops waiting for them; WebSocket sessions are closed
    /// once the drain time is over.
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
        let drain = self.config.server.drain_timeout.mul_f64(0.9);
        self.0.admission.drain(tokio::time::Instant::now() + drain);
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
