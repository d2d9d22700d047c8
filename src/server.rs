//! Binds the listeners and serves until shutdown, then drains in-flight requests and
//! streams for up to `server.drain_timeout`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::app::{admin_router, build_router};
use crate::config::Config;
use crate::state::AppState;

pub struct Server {
    state: AppState,
    main: TcpListener,
    admin: Option<TcpListener>,
}

impl Server {
    /// Bind the configured addresses (port 0 picks a free port).
    pub async fn bind(config: Config) -> io::Result<Server> {
        let main = TcpListener::bind(config.server.listen).await?;
        let admin = match config.server.admin_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let state = AppState::new(config).map_err(io::Error::other)?;
        Ok(Server { state, main, admin })
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
        let Server { state, main, admin } = self;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let drain = state.config.server.drain_timeout;
        let signal_state = state.clone();
        tokio::spawn(async move {
            shutdown.await;
            signal_state.start_draining();
            tracing::info!("shutdown requested; draining in-flight requests");
            let _ = tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let app = build_router(state.clone(), admin.is_none()).into_make_service();
        // Streamed chunks are small writes: with Nagle's algorithm on, each waits for the
        // client's delayed ACK (up to 40 ms). The upstream side sets it in `Upstream::new`.
        let main = main.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "set_nodelay failed");
            }
        });
        let main_server = axum::serve(main, app).with_graceful_shutdown(stopped(rx.clone()));
        let admin_server = admin.map(|listener| {
            let admin_app = admin_router(state.clone()).into_make_service();
            tokio::spawn(axum::serve(listener, admin_app).with_graceful_shutdown(stopped(rx.clone())).into_future())
        });
        let deadline = async move {
            stopped(rx).await;
            tokio::time::sleep(drain).await;
        };
        let result = tokio::select! {
            r = main_server.into_future() => r,
            () = deadline => {
                tracing::warn!(drain_timeout = ?drain, "drain timeout reached; exiting with requests still in flight");
                Ok(())
            }
        };
        if let Some(handle) = admin_server {
            handle.abort();
        }
        result
    }
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
