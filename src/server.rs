//! Binds the listeners and serves until shutdown, then drains in-flight requests and
//! streams for up to `server.drain_timeout`. The accept loop and its connection-level
//! timeouts live in `accept`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::{admin_router, build_router};
use crate::config::Config;
use crate::startup::StartupError;
use crate::state::AppState;
use crate::tls::{Resolver, acceptor};
use tokio_rustls::TlsAcceptor;

mod accept;

async fn listen_on(key: &'static str, addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { key, addr, source })
}

/// How long the start waits for Redis to lease the first budget slices.
const SHARED_START_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Time beyond the drain timeout for WebSocket sessions to send their close frames.
const SESSION_CLOSE_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Server {
    state: AppState,
    main: TcpListener,
    admin: Option<TcpListener>,
    /// The main listener's certificate and acceptor, when it serves TLS.
    tls: Option<(Arc<Resolver>, TlsAcceptor)>,
    /// Other threads' runtimes that serve a share of the main listener's connections.
    threads: Vec<tokio::runtime::Handle>,
    /// The connection to the Redis shared budgets live in, when it answered at start.
    redis: Option<redis::aio::ConnectionManager>,
}

impl Server {
    /// Build the shared state and bind the configured addresses (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Server, StartupError> {
        let (listen, admin_listen) = (config.server.listen, config.server.admin_listen);
        let tls = match &config.server.tls {
            Some(files) => {
                let resolver = Arc::new(Resolver::new(files.clone()).map_err(StartupError::ListenerTls)?);
                let acceptor = acceptor(Arc::clone(&resolver)).map_err(StartupError::ListenerTls)?;
                Some((resolver, acceptor))
            }
            None => None,
        };
        let state = AppState::new(config)?;
        // A store left by an earlier run is opened now, so a broken one stops the start.
        state.store.open_if_present().await.map_err(StartupError::Store)?;
        // Budget spend lives in the store: opened (created) now, and this period's spend
        // restored before the first request is admitted.
        if !state.budgets.is_empty() {
            let store = state.store.get().await.map_err(StartupError::Store)?;
            crate::budgets::persist::restore(&state.budgets, store).await.map_err(StartupError::Store)?;
        }
        // Shared state: the first budget slices are leased before the first request, when
        // Redis answers in time; otherwise the gateway starts on local state.
        let redis = match &state.shared {
            Some(shared) => {
                crate::budgets::shared::start(shared.url(), &shared.link, &state.budgets, SHARED_START_WAIT).await
            }
            None => None,
        };
        let main = listen_on("server.listen", listen).await?;
        let admin = match admin_listen {
            Some(addr) => Some(listen_on("server.admin_listen", addr).await?),
            None => None,
        };
        Ok(Server { state, main, admin, tls, threads: Vec::new(), redis })
    }

    /// Serve a share of the connections on each of these runtimes too (`crate::runtime`).
    #[must_use]
    pub fn with_threads(mut self, threads: &[tokio::runtime::Handle]) -> Self {
        self.threads = threads.to_vec();
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.main.local_addr()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves; then stop accepting, mark not-ready, and let
    /// in-flight requests finish for up to the drain timeout.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let Server { state, main, admin, tls, threads, redis } = self;
        // Unfinished batches in the store resume; expired files are swept from now on.
        let sweeper = crate::batch::start(&state).await;
        // Rotated certificate files are picked up while the server runs.
        let (watcher, tls) = tls.map(|(resolver, acceptor)| (resolver.watch(), acceptor)).unzip();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let signal_state = state.clone();
        tokio::spawn(async move {
            shutdown.await;
            signal_state.start_draining();
            tracing::info!("shutdown requested; draining in-flight requests");
            let _ = tx.send(true);
        });
        let spend_writer = state.store.if_open().filter(|_| !state.budgets.is_empty()).map(|store| {
            tokio::spawn(crate::budgets::persist::write_behind(Arc::clone(&state.budgets), store.clone()))
        });
        let shared = shared_tasks(&state, redis.clone());
        let server = &state.config.server;
        let (header_timeout, drain_timeout) = (server.header_timeout, server.drain_timeout);
        let main = accept::Listener {
            name: "main",
            listener: main,
            router: build_router(state.clone(), admin.is_none()),
            header_timeout,
            drain_timeout,
            threads,
            tls,
        };
        let main = accept::serve(main, rx.clone());
        let admin = async {
            if let Some(admin) = admin {
                let router = admin_router(state.clone());
                let admin = accept::Listener {
                    name: "admin",
                    listener: admin,
                    router,
                    header_timeout,
                    drain_timeout,
                    threads: Vec::new(),
                    tls: None,
                };
                accept::serve(admin, rx).await;
            }
        };
        tokio::join!(main, admin);
        // Upgraded connections left hyper's drain: WebSocket sessions close themselves
        // with 1001 when the drain time is over; wait for them, with a margin for their
        // close frames.
        let sessions = state.websockets.closed();
        if tokio::time::timeout(drain_timeout + SESSION_CLOSE_MARGIN, sessions).await.is_err() {
            tracing::warn!("WebSocket sessions still open after the drain timeout; exiting");
        }
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        // The background tasks end with the server: none is left holding the state (and
        // its store) once `run` returns.
        stop(shared.into_iter().chain([sweeper])).await;
        if let Some(shared) = &state.shared {
            crate::budgets::shared::release(shared.url(), &shared.link, &state.budgets, redis).await;
        }
        if let (Some(writer), Some(store)) = (spend_writer, state.store.if_open()) {
            stop([writer]).await;
            if let Err(error) = crate::budgets::persist::flush(&state.budgets, store).await {
                tracing::error!(error = %error, "could not write budget spend to the store at shutdown");
            }
        }
        if let Some(store) = state.store.if_open() {
            store.unlock();
        }
        Ok(())
    }
}

/// Cancel background tasks and wait until each is gone.
async fn stop(tasks: impl IntoIterator<Item = tokio::task::JoinHandle<()>>) {
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
}

/// Start the tasks that keep this replica in step with the others (none without
/// `[shared]`): budget slices and Redis's health, and the admission notes both ways.
/// `con` is the connection made at start, if Redis answered then.
fn shared_tasks(state: &AppState, con: Option<redis::aio::ConnectionManager>) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(shared) = &state.shared else {
        return Vec::new();
    };
    let budgets = crate::budgets::shared::run(
        shared.url().to_owned(),
        Arc::clone(&shared.link),
        Arc::clone(&state.budgets),
        con.clone(),
    );
    let s = state.clone();
    let send = async move {
        if let Some(shared) = &s.shared {
            crate::shared::notes::send(shared, &|way, change| s.metrics.shared.note(way, change), con).await;
        }
    };
    let s = state.clone();
    let listen = async move {
        if let Some(shared) = &s.shared {
            crate::shared::notes::listen(shared, &s.admission, &|way, change| s.metrics.shared.note(way, change)).await;
        }
    };
    vec![tokio::spawn(budgets), tokio::spawn(send), tokio::spawn(listen)]
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_address_is_reported_with_its_key() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let mut config = Config::for_upstream("http://127.0.0.1:9/v1").unwrap();
        config.server.admin_listen = Some(addr);
        let Err(e) = Server::bind(config.clone()).await else { panic!("bound a taken address") };
        assert!(matches!(e, StartupError::Bind { key: "server.admin_listen", .. }), "{e:?}");
        assert!(e.to_string().starts_with("`server.admin_listen`: cannot listen on 127.0.0.1:"), "{e}");
        config.server.listen = addr;
        let Err(e) = Server::bind(config).await else { panic!("bound a taken address") };
        assert!(e.to_string().starts_with("`server.listen`"), "{e}");
    }
}
