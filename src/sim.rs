//! Simulated `OpenAI` upstream (`flexgate sim`): the upstream of every test, demo and
//! benchmark. It answers the `OpenAI` shapes (chat, responses, legacy completions,
//! embeddings, models, files, audio speech, a text-only Realtime WebSocket), SSE
//! framing, usage, headers, service tiers and errors as `OpenAI` documents them, and it
//! is never reachable from the gateway's production routing path.
//!
//! Behaviour in one place each: request order of checks in [`pipeline`], what an answer
//! says (text, structured JSON, tool calls, `n`, `stop`, limits) in `answer`, JSON
//! Schema instances in `schema`, usage formula in [`usage`], scripted faults
//! (`x-sim-fault`) in [`faults`], rate limits and `x-ratelimit-*` in [`ratelimit`],
//! tiers and models in [`catalog`], the request log in `log`. Admin routes:
//! `GET /_sim/requests`, `POST /_sim/reset`, `GET /_sim/healthz` (no auth, not logged).
//! All timing uses `tokio::time`, so paused-time tests work.

mod answer;
mod body;
pub mod catalog;
mod chat;
mod completions;
mod config;
pub mod embeddings;
mod errors;
pub mod faults;
mod files;
mod log;
mod logprobs;
mod multipart;
mod passthrough;
pub mod pipeline;
pub mod ratelimit;
mod realtime;
mod record;
mod responses;
mod schema;
mod text;
pub mod usage;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

pub use config::{FlexOutage, FlexTrace, SimConfig};
pub use log::{LOG_CAPACITY, ReceivedRequest};
pub use usage::{SimUsage, usage_for};

/// How long `serve` lets open connections finish after shutdown before dropping them
/// (a `hang` or `stall` would otherwise hold shutdown forever).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The simulator; cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Sim {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: SimConfig,
    /// Origin of the `flex_outage` windows.
    pub started: Instant,
    pub log: log::RequestLog,
    pub faults: faults::FaultScripts,
    pub limiter: ratelimit::RateLimiter,
    pub rng: Mutex<StdRng>,
    pub ids: text::Ids,
    pub files: files::FileStore,
    pub open_streams: Arc<AtomicUsize>,
    /// Set by `serve` on shutdown so `hang` and `stall` let their connections go.
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl Sim {
    pub fn new(config: SimConfig) -> Self {
        let inner = Inner {
            started: Instant::now(),
            log: log::RequestLog::default(),
            faults: faults::FaultScripts::default(),
            limiter: ratelimit::RateLimiter::with_window(config.request_limit()),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            ids: text::Ids::new(config.seed),
            files: files::FileStore::default(),
            open_streams: Arc::new(AtomicUsize::new(0)),
            stop: tokio::sync::watch::Sender::new(false),
            config,
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// The whole sim, admin routes included.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/v1/chat/completions", post(pipeline::chat_handler))
            .route("/v1/responses", post(pipeline::responses_handler))
            .route("/v1/completions", post(pipeline::completions_handler))
            .route("/v1/embeddings", post(pipeline::embeddings_handler))
            .route("/v1/models", get(passthrough::list_models))
            .route("/v1/models/{id}", get(passthrough::retrieve_model))
            .route("/v1/files", post(passthrough::upload_file).get(passthrough::list_files))
            .route("/v1/files/{id}", get(passthrough::retrieve_file).delete(passthrough::delete_file))
            .route("/v1/files/{id}/content", get(passthrough::file_content))
            .route("/v1/audio/speech", post(passthrough::speech))
            .route("/v1/realtime", get(realtime::handler))
            .method_not_allowed_fallback(record::unknown)
            .fallback(record::unknown)
            // `record` already buffered the body under its own limit; axum's 2 MB
            // extractor default would otherwise refuse large uploads again.
            .layer(DefaultBodyLimit::disable())
            .layer(from_fn_with_state(self.clone(), record::record));
        Router::new()
            .route("/_sim/requests", get(admin_requests))
            .route("/_sim/reset", post(admin_reset))
            .route("/_sim/healthz", get(|| async { "ok" }))
            .merge(api)
            .with_state(self.clone())
    }

    /// Every request received (bounded by [`LOG_CAPACITY`]), in arrival order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.inner.log.snapshot()
    }

    /// Clears the request log, the scripted-fault counters and the RPM window.
    pub fn reset(&self) {
        self.inner.log.clear();
        self.inner.faults.reset();
        self.inner.limiter.reset();
    }

    /// Response bodies still being sent (streams, and `cut`/`stall` bodies). A client
    /// that goes away drops its body, so this falls back once the server notices.
    pub fn open_streams(&self) -> usize {
        self.inner.open_streams.load(Ordering::SeqCst)
    }

    /// Resolves once a `serve` of this sim is shutting down.
    pub(crate) async fn stopped(&self) {
        let mut stop = self.inner.stop.subscribe();
        let _ = stop.wait_for(|stopped| *stopped).await;
    }

    /// Whether a flex request arriving at `now` meets exhausted capacity.
    pub(crate) fn flex_unavailable(&self, now: Instant) -> bool {
        let config = &self.inner.config;
        if let Some(outage) = config.flex_outage
            && outage.is_down(now.duration_since(self.inner.started))
        {
            return true;
        }
        let p = config
            .flex_trace
            .as_ref()
            .map_or(config.flex_429_rate, |t| t.rate_at(now.duration_since(self.inner.started)));
        if p.is_nan() || p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.inner.rng.lock().random_bool(p)
        }
    }
}

async fn admin_requests(State(sim): State<Sim>) -> axum::Json<Vec<ReceivedRequest>> {
    axum::Json(sim.received())
}

async fn admin_reset(State(sim): State<Sim>) -> axum::Json<serde_json::Value> {
    sim.reset();
    axum::Json(serde_json::json!({"ok": true}))
}

/// Serve `sim` on `listener` until `shutdown` resolves. Then `hang` and `stall`
/// answers end (a 503 and a broken body), other connections get `SHUTDOWN_GRACE` to
/// finish, and the function returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sim: Sim,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Streams of small frames must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "sim: set_nodelay failed");
        }
    });
    sim.inner.stop.send_replace(false);
    let notifier = sim.clone();
    tokio::spawn(async move {
        shutdown.await;
        notifier.inner.stop.send_replace(true);
    });
    let graceful = sim.clone();
    let server = axum::serve(listener, sim.router()).with_graceful_shutdown(async move { graceful.stopped().await });
    tokio::select! {
        result = server => result,
        () = async {
            sim.stopped().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
}
