//! Scripted faults (`x-sim-fault`): every step, per-request-id sequences, the `flex:`
//! guard, and the broken-connection steps (`cut`, `stall`, `hang`) in paused time.

use std::time::Duration;

use axum::body::Body;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};
use tower::ServiceExt;

use crate::support::{chat_body, fast, post_with, send};

fn chat(fault: &str, id: &str) -> http::Request<Body> {
    let headers = [("x-sim-fault", fault), ("x-request-id", id)];
    post_with("/v1/chat/completions", &chat_body("gpt-5", "hi"), &headers)
}

#[tokio::test]
async fn every_error_step() {
    let (sim, app) = fast();
    let cases: [(&str, u16, Value, Option<&str>); 11] = [
        ("ok", 200, Value::Null, None),
        ("500", 500, Value::Null, None),
        ("502", 502, Value::Null, None),
        ("503", 503, json!("server_is_overloaded"), Some("1")),
        ("400", 400, Value::Null, None),
        ("429-capacity", 429, json!("resource_unavailable"), None),
        ("429-rate", 429, json!("rate_limit_exceeded"), Some("1")),
        ("429-slow-down", 429, json!("slow_down"), None),
        ("429-quota", 429, json!("insufficient_quota"), None),
        ("429-credit", 429, json!("credit_balance_exhausted"), None),
        ("429-spend", 429, json!("project_spend_limit_exceeded"), None),
    ];
    for (step, status, code, retry_after) in cases {
        let reply = send(&app, chat(step, step)).await;
        assert_eq!(reply.status.as_u16(), status, "{step}");
        if status != 200 {
            assert_eq!(reply.code(), code, "{step}");
            assert!(reply.json()["error"]["message"].is_string());
        }
        assert_eq!(reply.header("retry-after"), retry_after, "{step}");
        assert_eq!(reply.header("x-request-id"), Some(step), "request id echoed");
        let logged = sim.received().pop().unwrap();
        assert_eq!(logged.fault.as_deref(), Some(step));
        assert_eq!(logged.status, status);
    }
    let rate = send(&app, chat("429-rate", "r")).await;
    assert_eq!(rate.header("retry-after-ms"), Some("200"));
    assert_eq!(rate.header("x-ratelimit-reset-requests"), Some("200ms"));
    assert_eq!(rate.header("x-ratelimit-remaining-requests"), Some("0"));
    let long = send(&app, chat("429-rate:90s", "l")).await;
    assert_eq!((long.header("retry-after-ms"), long.header("retry-after")), (Some("90000"), Some("90")));
    assert_eq!(long.header("x-ratelimit-reset-requests"), Some("1m30s"));
    let bad = send(&app, chat("500,explode", "x")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sequences_advance_per_request_id() {
    let (sim, app) = fast();
    let statuses = |id: &'static str, n: usize| {
        let app = app.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(send(&app, chat("500,503,ok", id)).await.status.as_u16());
            }
            out
        }
    };
    assert_eq!(statuses("a", 4).await, [500, 503, 200, 200]);
    assert_eq!(statuses("b", 2).await, [500, 503]);
    sim.reset();
    assert!(sim.received().is_empty());
    assert_eq!(statuses("a", 1).await, [500]);
}

#[tokio::test]
async fn flex_guard_applies_only_on_flex() {
    let (sim, app) = fast();
    let mut flex = chat_body("gpt-5", "hi");
    flex["service_tier"] = json!("flex");
    let header = [("x-sim-fault", "flex:429-capacity"), ("x-request-id", "g")];
    let reply = send(&app, post_with("/v1/chat/completions", &flex, &header)).await;
    assert_eq!(reply.code(), "resource_unavailable");
    assert_eq!(sim.received()[0].fault.as_deref(), Some("flex:429-capacity"));
    flex["service_tier"] = json!("default");
    let reply = send(&app, post_with("/v1/chat/completions", &flex, &header)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(sim.received()[1].fault, None);
}

#[tokio::test(start_paused = true)]
async fn slow_and_malformed() {
    let (_sim, app) = fast();
    let start = Instant::now();
    assert_eq!(send(&app, chat("slow:2s", "s")).await.status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_secs(2));
    let reply = send(&app, chat("malformed", "m")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
}

fn streaming(fault: &str) -> http::Request<Body> {
    let mut body = chat_body("gpt-4o", "hi");
    body["stream"] = json!(true);
    post_with("/v1/chat/completions", &body, &[("x-sim-fault", fault)])
}

/// Reads data frames until the body ends, errors, or is quiet for a (virtual) minute.
async fn drain(body: &mut Body) -> (String, &'static str) {
    let mut text = String::new();
    loop {
        match timeout(Duration::from_secs(60), body.frame()).await {
            Err(_) => return (text, "stalled"),
            Ok(None) => return (text, "ended"),
            Ok(Some(Err(_))) => return (text, "broken"),
            Ok(Some(Ok(frame))) => {
                text.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn cut_and_stall_streams() {
    let (sim, app) = fast();
    let response = app.clone().oneshot(streaming("cut")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let (text, end) = drain(&mut body).await;
    assert_eq!(end, "broken");
    assert_eq!(text.matches("data: ").count(), 3, "role chunk and two words");
    assert!(!text.contains("[DONE]"));
    drop(body);
    assert_eq!(sim.open_streams(), 0);

    let response = app.clone().oneshot(streaming("stall")).await.unwrap();
    let mut body = response.into_body();
    let (text, end) = drain(&mut body).await;
    assert_eq!((end, text.matches("data: ").count()), ("stalled", 3));
    assert_eq!(sim.open_streams(), 1, "a stalled stream stays open");
    drop(body);
    assert_eq!(sim.open_streams(), 0, "dropping the body ends the sim's stream");
}

#[tokio::test(start_paused = true)]
async fn cut_and_stall_whole_bodies() {
    let (sim, app) = fast();
    let response = app.clone().oneshot(chat("cut", "c")).await.unwrap();
    let length: usize = response.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let mut body = response.into_body();
    let (text, end) = drain(&mut body).await;
    assert_eq!((end, text.len()), ("broken", length / 2));
    drop(body);
    let response = app.clone().oneshot(chat("stall", "t")).await.unwrap();
    let mut body = response.into_body();
    assert_eq!(drain(&mut body).await.1, "stalled");
    assert_eq!(sim.open_streams(), 1);
    drop(body);
    assert_eq!(sim.open_streams(), 0);
}

#[tokio::test(start_paused = true)]
async fn hang_never_answers() {
    let (sim, app) = fast();
    let pending = timeout(Duration::from_secs(3600), app.clone().oneshot(chat("hang", "h"))).await;
    assert!(pending.is_err(), "hang must never send headers");
    let logged = sim.received().pop().unwrap();
    assert_eq!((logged.status, logged.fault.as_deref()), (0, Some("hang")));
    assert_eq!(logged.model.as_deref(), Some("gpt-5"));
}
