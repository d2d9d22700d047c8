//! How sessions end when flexgate ends them: on shutdown after the drain time (1001) and
//! when idle (1000).

use std::time::Duration;

use crate::common::count;
use crate::support::{close_code, connect, metrics, stack, until};

#[tokio::test]
async fn shutdown_closes_open_sessions_with_1001_after_the_drain_time() {
    let (_sim, _s, state, gw) = stack("[server]\ndrain_timeout = \"300ms\"\n").await;
    let (mut socket, _) =
        connect(&gw, "/v1/realtime?model=gpt-realtime", &[("authorization", "Bearer sk-client")]).await.unwrap();
    until(&mut socket, "session.created").await;
    assert_eq!(count(&metrics(&state), "flexgate_websocket_sessions", &[]), 1);
    // The server's run ends only once the session is closed.
    let stopped = tokio::spawn(gw.shutdown());
    assert_eq!(close_code(&mut socket).await, Some(1001));
    tokio::time::timeout(Duration::from_secs(10), stopped).await.unwrap().unwrap();
    assert_eq!(count(&metrics(&state), "flexgate_websocket_sessions", &[]), 0);
}

#[tokio::test]
async fn an_idle_session_is_closed_with_1000() {
    let (_sim, _s, state, gw) = stack("[websocket]\nidle_timeout = \"300ms\"\n").await;
    let (mut socket, _) =
        connect(&gw, "/v1/realtime?model=gpt-realtime", &[("authorization", "Bearer sk-client")]).await.unwrap();
    until(&mut socket, "session.created").await;
    assert_eq!(close_code(&mut socket).await, Some(1000));
    tokio::time::timeout(Duration::from_secs(10), state.websockets.closed()).await.unwrap();
}
