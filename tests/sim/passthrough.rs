//! Forward-only endpoints (models, files, audio) and the request log / admin routes.

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{fast, get, post, post_with, send};

#[tokio::test]
async fn models_list_and_retrieve() {
    let (_sim, app) = fast();
    let list = send(&app, get("/v1/models")).await.json();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for id in [
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-5.1",
        "gpt-5.2",
        "gpt-5.4",
        "gpt-5.5",
        "o3",
        "o4-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4o",
        "gpt-4o-mini",
        "text-embedding-3-small",
        "text-embedding-3-large",
    ] {
        assert!(ids.contains(&id), "{id} missing");
    }
    let model = send(&app, get("/v1/models/gpt-5.1")).await.json();
    assert_eq!((model["id"].as_str(), model["object"].as_str()), (Some("gpt-5.1"), Some("model")));
    let missing = send(&app, get("/v1/models/gpt-0")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "model_not_found");
    let faulted = send(
        &app,
        Request::get("/v1/models")
            .header("authorization", "Bearer k")
            .header("x-sim-fault", "502")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(faulted.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn files_round_trip_bytes() {
    let (_sim, app) = fast();
    // Over axum's 2 MB extractor default, with bytes that look like a boundary.
    let mut payload = b"{\"custom_id\":1}\n\x00\xff\r\n--not-a-boundary\r\n".to_vec();
    payload.resize(3 * 1024 * 1024, b'x');
    let payload = &payload[..];
    let mut body = b"--B0undary\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
                     --B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
        .to_vec();
    body.extend_from_slice(payload);
    body.extend_from_slice(b"\r\n--B0undary--\r\n");
    let upload = Request::post("/v1/files")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "multipart/form-data; boundary=B0undary")
        .body(Body::from(body))
        .unwrap();
    let reply = send(&app, upload).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let file = reply.json();
    let id = file["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("file-"));
    assert_eq!((file["object"].as_str(), file["purpose"].as_str()), (Some("file"), Some("batch")));
    assert_eq!(file["bytes"], payload.len());
    assert_eq!(file["filename"], "in.jsonl");
    let content = send(&app, get(&format!("/v1/files/{id}/content"))).await;
    assert_eq!(content.header("content-type"), Some("application/octet-stream"));
    assert_eq!(&content.body[..], payload);
    assert_eq!(send(&app, get("/v1/files")).await.json()["data"][0]["id"], id.as_str());
    let delete = Request::delete(format!("/v1/files/{id}"))
        .header("authorization", "Bearer sk-test")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, delete).await.json()["deleted"], true);
    let gone = send(&app, get(&format!("/v1/files/{id}/content"))).await;
    assert_eq!((gone.status, gone.json()["error"]["param"].as_str()), (StatusCode::NOT_FOUND, Some("id")));
}

#[tokio::test]
async fn speech_is_deterministic_binary() {
    let (_sim, app) = fast();
    let speak = |input: &str| post("/v1/audio/speech", &json!({"model": "tts-1", "voice": "alloy", "input": input}));
    let short = send(&app, speak("hi")).await;
    assert_eq!(short.header("content-type"), Some("audio/mpeg"));
    let long = send(&app, speak("hello there")).await;
    assert!(long.body.len() > short.body.len());
    assert_eq!(send(&app, speak("hi")).await.body, short.body);
    assert_eq!(send(&app, post("/v1/audio/speech", &json!({"model": "tts-1"}))).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn log_records_what_was_received() {
    let (sim, app) = fast();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                      "stream": true, "stream_options": {"include_usage": false}});
    let headers = [("x-request-id", "trace-1"), ("X-Custom", "Value")];
    let request = post_with("/v1/chat/completions?trace=1", &body, &headers);
    send(&app, request).await;
    send(&app, get("/_sim/healthz")).await;
    let admin = send(&app, get("/_sim/requests")).await.json();
    assert_eq!(admin.as_array().unwrap().len(), 1, "admin routes are not logged");
    let logged = sim.received();
    assert_eq!(logged.len(), 1);
    let entry = &logged[0];
    assert_eq!((entry.method.as_str(), entry.path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(entry.query.as_deref(), Some("trace=1"));
    assert_eq!(entry.request_id.as_deref(), Some("trace-1"));
    assert_eq!((entry.stream, entry.include_usage), (true, Some(false)));
    assert_eq!((entry.status, entry.served_tier.as_deref()), (200, Some("default")));
    assert_eq!(entry.body_len, body.to_string().len());
    assert_eq!(entry.body_sha256, hex::encode(Sha256::digest(body.to_string())));
    assert!(entry.headers.contains(&("authorization".into(), "Bearer sk-test".into())));
    assert!(entry.headers.contains(&("x-custom".into(), "Value".into())));
    assert_eq!(admin[0]["path"], "/v1/chat/completions");
    let reset = Request::post("/_sim/reset").body(Body::empty()).unwrap();
    assert_eq!(send(&app, reset).await.status, StatusCode::OK);
    assert!(sim.received().is_empty());
}
