//! Slow clients (slowloris): a connection that never finishes its request head is closed
//! after `server.header_timeout`, and a request body that stalls is refused with a 408
//! after `server.body_timeout`. Raw sockets, so no client library fills the gaps.

use std::net::SocketAddr;
use std::time::Duration;

use flexgate::sim::SimConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::common::count;
use crate::support::{Stack, stack_with};

const HEADER_TIMEOUT: Duration = Duration::from_millis(300);
const BODY_TIMEOUT: Duration = Duration::from_millis(300);
/// The server's clock starts a little before the client's (at accept, before the
/// client's write returns), so a close may come this much short of the timeout.
const NO_SOONER_THAN: Duration = Duration::from_millis(250);
/// Generous bound on how long any wait below may take on a busy machine.
const OUTER: Duration = Duration::from_secs(10);

async fn slow_stack() -> Stack {
    let toml = format!(
        "[server]\nheader_timeout = \"{}ms\"\nbody_timeout = \"{}ms\"\n",
        HEADER_TIMEOUT.as_millis(),
        BODY_TIMEOUT.as_millis()
    );
    stack_with(SimConfig::zero_latency(), &toml).await
}

/// Read until the server closes the connection; everything it sent, and when it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut out = Vec::new();
    let read = tokio::time::timeout(OUTER, stream.read_to_end(&mut out)).await;
    let closed = Instant::now();
    // A reset counts as closed too: the server gave the connection up either way.
    assert!(read.is_ok(), "the connection was still open after {OUTER:?}");
    (out, closed)
}

/// One complete request on `stream`, answered with a `content-length` body.
async fn round_trip(stream: &mut TcpStream, addr: SocketAddr) {
    stream.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let answered = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering: {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no content-length: {head}"));
                if body.len() >= length {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return;
                }
            }
        }
    };
    tokio::time::timeout(OUTER, answered).await.expect("an answer to a complete request");
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_request_head_is_closed_at_the_header_timeout() {
    let s = slow_stack().await;
    let addr = s.gw.addr;
    // Nothing at all, half the h2c preface (hyper's protocol sniff has no timer of its
    // own), and half an HTTP/1.1 head.
    let partial: [&[u8]; 3] =
        [b"", b"PRI * HTTP/2.0\r\n", b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: appl"];
    for sent in partial {
        let what = String::from_utf8_lossy(sent);
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        stream.write_all(sent).await.unwrap();
        let (answer, closed) = read_until_closed(&mut stream).await;
        let waited = closed - started;
        assert!(answer.is_empty(), "{what:?}: answered {:?}", String::from_utf8_lossy(&answer));
        assert!(waited >= NO_SOONER_THAN, "{what:?}: closed early, after {waited:?}");
    }

    // On a kept-alive connection the next head is timed by hyper itself (its timer).
    let mut stream = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut stream, addr).await;
    let started = Instant::now();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut stream).await;
    assert!(answer.is_empty(), "answered {:?}", String::from_utf8_lossy(&answer));
    assert!(closed - started >= NO_SOONER_THAN, "{:?}", closed - started);

    // A prompt client on a fresh connection is unaffected.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut stream, addr).await;
    assert!(s.sim.received().is_empty(), "nothing was forwarded");
}

#[tokio::test]
async fn a_request_body_that_stalls_is_refused_with_408_at_the_body_timeout() {
    let s = slow_stack().await;
    let addr = s.gw.addr;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer sk-test\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(br#"{"model":"#).await.unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream).await;
    let waited = closed - started;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer: {text:?}"));
    assert!(head.starts_with("HTTP/1.1 408"), "{text}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-should-retry: true") && lower.contains("connection: close"), "{head}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(v["error"]["code"], "request_timeout", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("server.body_timeout")), "{v}");
    assert!(waited >= NO_SOONER_THAN, "answered early, after {waited:?}");

    assert!(s.sim.received().is_empty(), "a half-read body was forwarded");
    let m = s.metrics();
    assert_eq!(count(m, "flexgate_requests_total", &[("outcome", "client_error")]), 1);
    assert_eq!(count(m, "flexgate_inflight_requests", &[]), 0);
}
