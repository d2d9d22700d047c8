//! A minimal HTTP forward proxy for the tests of `upstream.proxy`, over HTTP and
//! WebSocket: it records the head each connection opens with, answers `CONNECT` with 200
//! and tunnels to the named host, and passes anything else to `upstream` as is (the
//! simulator accepts absolute-form targets).

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The heads the proxy has seen, one a connection, in the order they arrived.
pub type Heads = Arc<Mutex<Vec<String>>>;

/// Start the proxy on `127.0.0.1:0`; its address and the heads it records.
pub async fn spawn(upstream: SocketAddr) -> (SocketAddr, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Heads::default();
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(serve(client, upstream, seen.clone()));
        }
    });
    (addr, heads)
}

/// One connection: read its head, record it, then join it to its target byte for byte.
async fn serve(mut client: TcpStream, upstream: SocketAddr, seen: Heads) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = client.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    seen.lock().push(head.clone());
    let mut server = if let Some(target) = head.strip_prefix("CONNECT ") {
        let host = target.split(' ').next().unwrap().to_owned();
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
        // The tunnel carries only what follows the CONNECT head.
        buf.drain(..end);
        TcpStream::connect(host).await.unwrap()
    } else {
        TcpStream::connect(upstream).await.unwrap()
    };
    server.write_all(&buf).await.unwrap();
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
