//! The upstream's route applies to WebSocket sessions too: through a forwarding proxy, the
//! handshake goes with an absolute-form target and the proxy's credentials.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{connect, until};

/// A forwarding proxy that records the head each connection opens with and then joins
/// the connection to `upstream` byte for byte (the simulator accepts absolute-form
/// targets).
async fn forwarding_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                seen.lock().push(String::from_utf8_lossy(&buf).into_owned());
                let mut server = TcpStream::connect(upstream).await.unwrap();
                server.write_all(&buf).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn a_session_goes_through_the_configured_forwarding_proxy() {
    let (_sim, sim_run) = crate::common::spawn_sim(flexgate::sim::SimConfig::zero_latency()).await;
    let (proxy, heads) = forwarding_proxy(sim_run.addr).await;
    let toml = format!("[upstream]\nproxy = \"http://flex:secret@{proxy}\"\n");
    let env = std::collections::HashMap::new();
    let (_state, gw) = crate::common::spawn_gateway_with(sim_run.addr, &toml, &env).await;
    let (mut socket, _) =
        connect(&gw, "/v1/realtime?model=gpt-realtime", &[("authorization", "Bearer sk-client")]).await.unwrap();
    until(&mut socket, "session.created").await;
    let heads = heads.lock().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let first = heads[0].lines().next().unwrap();
    assert_eq!(first, format!("GET http://{}/v1/realtime?model=gpt-realtime HTTP/1.1", sim_run.addr));
    // "flex:secret" as Basic credentials.
    assert!(heads[0].to_lowercase().contains("proxy-authorization: basic zmxledpzzwnyzxq="), "{heads:?}");
}
