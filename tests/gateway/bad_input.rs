//! Malformed and hostile requests: each gets a clear 4xx (in OpenAI's error shape
//! wherever flexgate's own code gets to answer), reaches the upstream only when it is
//! harmless to forward, and has no effect on a stream running alongside.
//!
//! `errors.rs` holds the first examples (413 declared and chunked, the basic JSON
//! type errors, dot-segment paths); this file is the full table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{Running, chat_body, client, count, spawn_gateway_with, spawn_sim};
use flexgate::sim::{Sim, SimConfig};
use flexgate::state::AppState;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHAT: &str = "/v1/chat/completions";

/// An answer read off a raw socket: status, and the JSON body when there was one.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Option<Value>,
}

/// Send `request` as raw bytes (no client library to normalise or refuse it).
async fn raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A server may answer and close before reading everything (an oversized head): the
    // answer is still there to read even when the rest of the write fails.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status line: {text:?}"));
    // Bodies flexgate writes are small JSON, sent with a content-length.
    let body = serde_json::from_str(body).ok();
    Raw { status, head: head.to_owned(), body }
}

fn assert_envelope(v: &Value, what: &str) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| m.len() > 10), "{what}: {v}");
    assert!(e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some(), "{what}: {v}");
}

/// Bodies with the wrong shape for the fields routing reads: (what, body, code, param).
fn json_cases() -> Vec<(&'static str, Vec<u8>, &'static str, Option<&'static str>)> {
    vec![
        ("empty body", b"".to_vec(), "invalid_json", None),
        ("truncated object", b"{\"model\":\"gpt-5\",".to_vec(), "invalid_json", None),
        ("an array", b"[1,2,3]".to_vec(), "invalid_json", None),
        ("a string", b"\"gpt-5\"".to_vec(), "invalid_json", None),
        ("null", b"null".to_vec(), "invalid_json", None),
        ("trailing garbage", b"{\"model\":\"gpt-5\"} {}".to_vec(), "invalid_json", None),
        ("duplicate model", br#"{"model":"gpt-5","model":"o3"}"#.to_vec(), "invalid_json", None),
        ("invalid UTF-8 in model", b"{\"model\":\"gpt-\xff\"}".to_vec(), "invalid_json", None),
        (
            "invalid UTF-8 in a message",
            b"{\"model\":\"gpt-5\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}".to_vec(),
            "invalid_json",
            None,
        ),
        ("lone surrogate escape", br#"{"model":"\ud800"}"#.to_vec(), "invalid_value", Some("model")),
        ("model a number", br#"{"model":42}"#.to_vec(), "invalid_value", Some("model")),
        ("model an array", br#"{"model":["gpt-5"]}"#.to_vec(), "invalid_value", Some("model")),
        ("model an object", br#"{"model":{"name":"gpt-5"}}"#.to_vec(), "invalid_value", Some("model")),
        ("stream a string", br#"{"model":"gpt-5","stream":"yes"}"#.to_vec(), "invalid_value", Some("stream")),
        ("stream a number", br#"{"model":"gpt-5","stream":1}"#.to_vec(), "invalid_value", Some("stream")),
        (
            "unknown tier",
            br#"{"model":"gpt-5","service_tier":"cheapest"}"#.to_vec(),
            "invalid_value",
            Some("service_tier"),
        ),
        ("tier a number", br#"{"model":"gpt-5","service_tier":2}"#.to_vec(), "invalid_value", Some("service_tier")),
        (
            "tier an object",
            br#"{"model":"gpt-5","service_tier":{"tier":"flex"}}"#.to_vec(),
            "invalid_value",
            Some("service_tier"),
        ),
        (
            "tier in another case",
            br#"{"model":"gpt-5","service_tier":"FLEX"}"#.to_vec(),
            "invalid_value",
            Some("service_tier"),
        ),
        (
            "stream_options a string",
            br#"{"model":"gpt-5","stream_options":"on"}"#.to_vec(),
            "invalid_value",
            Some("stream_options"),
        ),
        (
            "stream_options an array",
            br#"{"model":"gpt-5","stream_options":[true]}"#.to_vec(),
            "invalid_value",
            Some("stream_options"),
        ),
        (
            "include_usage a string",
            br#"{"model":"gpt-5","stream":true,"stream_options":{"include_usage":"no"}}"#.to_vec(),
            "invalid_value",
            Some("stream_options"),
        ),
    ]
}

/// Routing headers with bad values: (header, value bytes, code).
fn header_cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        ("x-flexgate-class", b"urgent".to_vec(), "unknown_class"),
        ("x-flexgate-class", b"".to_vec(), "unknown_class"),
        ("x-flexgate-class", b"backgr\xc3\xb6und".to_vec(), "unknown_class"),
        ("x-flexgate-class", "x".repeat(4096).into_bytes(), "unknown_class"),
        ("x-flexgate-deadline", b"soon".to_vec(), "invalid_deadline"),
        ("x-flexgate-deadline", b"0s".to_vec(), "invalid_deadline"),
        ("x-flexgate-deadline", b"-5s".to_vec(), "invalid_deadline"),
        ("x-flexgate-deadline", b"30".to_vec(), "invalid_deadline"),
        ("x-flexgate-deadline", b"1e3s".to_vec(), "invalid_deadline"),
        ("x-flexgate-deadline", b"99999999999999999999999999h".to_vec(), "invalid_deadline"),
        ("x-flexgate-deadline", b"\xff\xfe".to_vec(), "invalid_deadline"),
    ]
}

/// Raw requests: (what, bytes, status, flexgate's error code). `None` marks requests the
/// HTTP parser (hyper) refuses before any flexgate code runs: a bare status, no body.
fn raw_cases() -> Vec<(&'static str, Vec<u8>, u16, Option<&'static str>)> {
    let get = |target: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk\r\n{extra}Connection: close\r\n\r\n")
            .into_bytes()
    };
    let post = |extra: &str, body: &str| {
        format!("POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk\r\n{extra}Connection: close\r\n\r\n{body}")
            .into_bytes()
    };
    let many = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<Vec<_>>().concat();
    vec![
        ("dot segments", get("/v1/../metrics", ""), 400, Some("invalid_value")),
        ("encoded dot segments", get("/v1/%2e%2e/metrics", ""), 400, Some("invalid_value")),
        ("encoded slash", get("/v1/files%2F..%2Fmetrics", ""), 400, Some("invalid_value")),
        ("encoded double slash to a host", get("/v1/%2F%2Fevil.example/models", ""), 400, Some("invalid_value")),
        ("encoded backslash", get("/v1/..%5cmetrics", ""), 400, Some("invalid_value")),
        ("encoded NUL", get("/v1/models%00", ""), 400, Some("invalid_value")),
        ("lane escape", get("/flex/v1/../../metrics", ""), 400, Some("invalid_value")),
        ("network-path reference", get("//evil.example/v1/models", ""), 404, Some("unknown_url")),
        (
            "CONNECT to another host",
            b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n".to_vec(),
            404,
            Some("unknown_url"),
        ),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), 404, Some("unknown_url")),
        (
            "invalid chunk size",
            post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"),
            400,
            Some("invalid_value"),
        ),
        (
            "content-length and chunked",
            post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
            400,
            Some("invalid_json"),
        ),
        ("declared 1 EB", post("Content-Length: 1000000000000000000\r\n", "{}"), 413, Some("request_too_large")),
        (
            "form-encoded body",
            post("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n", "model=gpt-5"),
            400,
            Some("invalid_json"),
        ),
        ("bare CR in a header value", get("/v1/models", "X-A: a\rX-Injected: b\r\n"), 400, None),
        ("obs-fold continuation line", get("/v1/models", "X-A: a\r\n X-Injected: b\r\n"), 400, None),
        ("NUL in a header value", get("/v1/models", "X-A: a\u{0}b\r\n"), 400, None),
        // hyper's head limit (~400 KB) is soft: one read may bring in more, so test far past it.
        ("1 MB header", get("/v1/models", &format!("X-Big: {}\r\n", "a".repeat(1_000_000))), 431, None),
        ("200 headers", get("/v1/models", &many), 431, None),
        ("100 KB request target", get(&format!("/v1/models?q={}", "a".repeat(100_000)), ""), 414, None),
        ("non-numeric content-length", post("Content-Length: abc\r\n", "{}"), 400, None),
        ("two content-lengths", post("Content-Length: 2\r\nContent-Length: 3\r\n", "{}"), 400, None),
        ("not HTTP", b"HELLO THERE\r\n\r\n".to_vec(), 400, None),
    ]
}

/// A stream that runs while bad input arrives next to it, and must end complete.
struct Victim {
    stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    text: String,
}

impl Victim {
    async fn start(gw: &Running) -> Self {
        let mut body = chat_body("gpt-5", true);
        body["max_tokens"] = serde_json::json!(150);
        let r = client().post(gw.url(CHAT)).bearer_auth("sk").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let mut stream = Box::pin(r.bytes_stream());
        let first = stream.next().await.unwrap().unwrap();
        Self { stream, text: String::from_utf8(first.to_vec()).unwrap() }
    }

    async fn finish(mut self) {
        while let Some(chunk) = self.stream.next().await {
            self.text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        assert!(self.text.ends_with("data: [DONE]\n\n"), "bad input disturbed a stream: {}", self.text);
    }
}

struct Bench {
    sim: Sim,
    state: AppState,
    gw: Running,
    _sim_run: Running,
}

async fn bench() -> Bench {
    let mut sim_config = SimConfig::zero_latency();
    sim_config.chunk_interval = Duration::from_millis(5);
    let (sim, sim_run) = spawn_sim(sim_config).await;
    let (state, gw) = spawn_gateway_with(sim_run.addr, "[server]\nmax_body = \"64KiB\"\n", &HashMap::new()).await;
    Bench { sim, state, gw, _sim_run: sim_run }
}

impl Bench {
    /// Every rejected request was counted as a client error, the victim as a success.
    fn assert_counted(&self, rejected: u64) {
        let m = self.state.metrics.render();
        assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "client_error")]), rejected, "{m}");
        assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "success")]), 1, "{m}");
        assert_eq!(count(&m, "flexgate_inflight_requests", &[]), 0);
    }
}

#[tokio::test]
async fn malformed_bodies_are_400_with_the_field_named() {
    let b = bench().await;
    let victim = Victim::start(&b.gw).await;
    let cases = json_cases();
    for (what, body, code, param) in &cases {
        let r = client()
            .post(b.gw.url(CHAT))
            .bearer_auth("sk")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some(*code)), "{what}: {v}");
        assert_envelope(&v, what);
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], *p, "{what}");
        }
    }
    assert_eq!(b.sim.received().len(), 1, "only the victim reached the upstream");
    victim.finish().await;
    b.assert_counted(cases.len() as u64);
}

#[tokio::test]
async fn bad_routing_headers_are_400_and_never_echoed_at_length() {
    let b = bench().await;
    let victim = Victim::start(&b.gw).await;
    let cases = header_cases();
    for (name, value, code) in &cases {
        let value = http::HeaderValue::from_bytes(value).unwrap();
        let r = client()
            .post(b.gw.url(CHAT))
            .bearer_auth("sk")
            .header(*name, value.clone())
            .json(&chat_body("gpt-5", false))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some(*code)), "{name}: {value:?}: {v}");
        assert_envelope(&v, name);
        assert_eq!(v["error"]["param"], *name);
        assert!(v["error"]["message"].as_str().unwrap().len() < 400, "{v}");
    }
    assert_eq!(b.sim.received().len(), 1, "only the victim reached the upstream");
    victim.finish().await;
    b.assert_counted(cases.len() as u64);
}

#[tokio::test]
async fn raw_protocol_abuse_is_refused_and_only_the_configured_upstream_is_ever_contacted() {
    let b = bench().await;
    let victim = Victim::start(&b.gw).await;
    let cases = raw_cases();
    let mut shaped = 0;
    for (what, request, status, code) in &cases {
        let answer = raw(b.gw.addr, request).await;
        assert_eq!(answer.status, *status, "{what}: {answer:?}");
        match code {
            Some(code) => {
                let v = answer.body.as_ref().unwrap_or_else(|| panic!("{what}: no JSON body: {answer:?}"));
                assert_envelope(v, what);
                assert_eq!(v["error"]["code"], *code, "{what}: {v}");
                shaped += 1;
            }
            None => {
                assert!(answer.head.starts_with("HTTP/1.1 4") && answer.body.is_none(), "{what}: {answer:?}");
            }
        }
    }
    assert_eq!(b.sim.received().len(), 1, "only the victim reached the upstream: {:?}", b.sim.received());
    victim.finish().await;
    // Requests hyper refused never reached flexgate's router, so they are not counted.
    b.assert_counted(shaped);
}

/// Requests that are hostile but valid HTTP and JSON: forwarded only to the configured
/// upstream, unable to redirect flexgate, inject a header, grow a metric label or
/// stretch a deadline; the upstream's own 4xx comes back in its shape.
#[tokio::test]
async fn hostile_but_well_formed_requests_reach_only_the_upstream_and_change_nothing_else() {
    let b = bench().await;
    let victim = Victim::start(&b.gw).await;
    let sim_host = b.state.config.upstream.base_url.host_str().unwrap().to_owned();
    let answer = raw(
        b.gw.addr,
        b"GET http://169.254.169.254/v1/models HTTP/1.1\r\nHost: 169.254.169.254\r\nAuthorization: Bearer sk\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    for target in
        ["/v1//evil.example/models", "/v1/models%0d%0aX-Injected:%20yes", "/v1/models?a=%0d%0aX-Injected:%20yes"]
    {
        let answer = raw(
            b.gw.addr,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(answer.status == 200 || answer.status == 404, "{target}: {answer:?}");
        if answer.status == 404 {
            assert_envelope(answer.body.as_ref().unwrap(), target);
        }
    }
    // A model name built to break the exposition format, and one 4 KB long.
    let injected = "gpt-5\"} 1\nflexgate_injected_total 1\n#";
    for model in [injected.to_owned(), "m".repeat(4096)] {
        let r = client().post(b.gw.url(CHAT)).bearer_auth("sk").json(&chat_body(&model, false)).send().await.unwrap();
        assert_eq!(r.status(), 404, "the upstream's answer is passed through");
        assert_envelope(&r.json::<Value>().await.unwrap(), "unknown model");
    }
    // Valid JSON flexgate need not understand deeply: forwarded, the upstream decides.
    let deep = format!("{{\"model\":\"gpt-5\",\"messages\":{}{}}}", "[".repeat(20_000), "]".repeat(20_000));
    let r = client()
        .post(b.gw.url(CHAT))
        .bearer_auth("sk")
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_envelope(&r.json::<Value>().await.unwrap(), "deep nesting");
    // Request ids that are unsafe to log are replaced.
    for id in [
        http::HeaderValue::from_static("has spaces in it"),
        http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        http::HeaderValue::from_str(&"i".repeat(4096)).unwrap(),
    ] {
        let r = client()
            .post(b.gw.url(CHAT))
            .bearer_auth("sk")
            .header("x-request-id", id)
            .json(&chat_body("gpt-5", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["x-request-id"].to_str().unwrap().starts_with("fg-"));
    }

    for request in b.sim.received() {
        let host = request.headers.iter().find(|(k, _)| k == "host").map(|(_, v)| v.as_str()).unwrap_or_default();
        assert!(host.starts_with(&sim_host), "only the configured upstream is contacted: {request:?}");
        assert!(request.headers.iter().all(|(k, _)| k != "x-injected"), "{request:?}");
        let id = request.request_id.as_deref().unwrap_or_default();
        assert!(id.len() <= 128 && id.bytes().all(|c| c.is_ascii_graphic()), "{request:?}");
    }
    victim.finish().await;
    let m = b.state.metrics.render();
    assert!(!m.contains("flexgate_injected"), "a label broke the exposition format:\n{m}");
    assert!(m.lines().filter(|l| l.starts_with("flexgate_requests_total")).all(|l| l.len() < 300), "{m}");
}

/// Deadlines that parse but make no sense are bounded: a huge one is capped at the
/// class deadline and SDK timeouts that are not numbers are ignored.
#[tokio::test]
async fn absurd_deadline_values_are_capped_or_fail_fast() {
    let b = bench().await;
    let victim = Victim::start(&b.gw).await;
    let harmless = [
        ("x-flexgate-deadline", "1000000000h"),
        ("x-flexgate-deadline", "18446744073709551615s"),
        ("x-stainless-timeout", "1e308"),
        ("x-stainless-timeout", "NaN"),
        ("x-stainless-timeout", "-5"),
        ("x-stainless-timeout", "inf"),
        ("x-stainless-read-timeout", "0"),
        ("x-stainless-read-timeout", "soon"),
    ];
    for (name, value) in harmless {
        let r = client()
            .post(b.gw.url(CHAT))
            .bearer_auth("sk")
            .header(name, value)
            .json(&chat_body("gpt-5", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}: {value}");
    }
    victim.finish().await;
}

/// A 1 ns deadline ends at once, even in front of an upstream that never answers: in
/// memory on paused time, where "at once" is exact.
#[tokio::test(start_paused = true)]
async fn a_one_nanosecond_deadline_fails_fast() {
    let s = crate::memory::memory_stack(SimConfig::zero_latency(), "");
    let started = tokio::time::Instant::now();
    let headers = [("x-flexgate-deadline", "1ns"), ("x-sim-fault", "hang")];
    let r = s.post(CHAT, &chat_body("gpt-5", false), &headers).await;
    assert!(started.elapsed() <= Duration::from_millis(1), "{:?}", started.elapsed());
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!((status, v["error"]["code"].as_str()), (504, Some("deadline_exceeded")), "{v}");
}

/// A request refused before its body was read leaves unread bytes on the connection, so
/// the server must close it — and say so, or a client reusing the connection for its next
/// request races the close and gets a connection error for a request that did nothing
/// wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_with_an_unread_body_never_breaks_the_next_request_on_the_connection() {
    let b = bench().await;
    let c = client();
    let big = vec![b' '; 70_000];
    for round in 0..20 {
        for (path, body) in [(CHAT, big.clone()), ("/v1/files%2Fx", b"{}".repeat(20_000)), ("/v2/nowhere", big.clone())]
        {
            let r = c.post(b.gw.url(path)).bearer_auth("sk").body(body).send().await.unwrap();
            assert!(r.status().is_client_error(), "{path}");
            let r = c.post(b.gw.url(CHAT)).bearer_auth("sk").json(&chat_body("gpt-5", false)).send().await;
            let r = r.unwrap_or_else(|e| panic!("round {round}, after {path}: {e:?}"));
            assert_eq!(r.status(), 200);
        }
    }
}
