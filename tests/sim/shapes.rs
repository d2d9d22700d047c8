//! Non-streaming answer shapes, usage, headers and request validation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use serde_json::json;

use crate::support::{chat_body, fast, get, post, send};

#[tokio::test]
async fn chat_completion_shape_usage_and_headers() {
    let (_sim, app) = fast();
    // "Hello there" = 11 chars → ceil(11/4) + 3 = 6 prompt tokens.
    let reply = send(&app, post("/v1/chat/completions", &chat_body("gpt-4o-mini", "Hello there"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["service_tier"], "default");
    assert!(body["system_fingerprint"].is_string());
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["refusal"].is_null());
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().unwrap();
    assert_eq!(content.split(' ').count(), 16);
    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], 6);
    assert_eq!(usage["completion_tokens"], 16);
    assert_eq!(usage["total_tokens"], 22);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
    assert!(reply.header("x-request-id").unwrap().starts_with("req_"));
    assert_eq!(reply.header("openai-version"), Some("2020-10-01"));
    assert!(reply.header("openai-processing-ms").is_some());
    for name in ["requests", "tokens"] {
        for kind in ["limit", "remaining", "reset"] {
            let header = format!("x-ratelimit-{kind}-{name}");
            assert!(reply.header(&header).is_some(), "{header} missing");
        }
    }
    assert_eq!(reply.header("x-ratelimit-reset-requests"), Some("2ms"));
}

#[tokio::test]
async fn usage_counts_reasoning_cache_and_limits() {
    let (_sim, app) = fast();
    let long = "x".repeat(4096); // 1024 + 3 = 1027 prompt tokens → 512 cached
    let mut body = chat_body("gpt-5-mini-2025-08-07", &long);
    body["max_completion_tokens"] = json!(10);
    body["max_tokens"] = json!(99);
    let reply = send(&app, post("/v1/chat/completions", &body)).await;
    let body = reply.json();
    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], 1027);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 512);
    assert_eq!(usage["completion_tokens"], 10);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 5);
    assert_eq!(usage["total_tokens"], 1037);
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.split(' ').count(), 5, "visible words = output - reasoning");
    assert_eq!(body["model"], "gpt-5-mini-2025-08-07");
    let usage = flexgate::sim::usage_for("gpt-5-mini", 1027, Some(10));
    assert_eq!((usage.cached_tokens, usage.reasoning_tokens), (512, 5));
}

#[tokio::test]
async fn cache_writing_models_report_cache_write_tokens_in_both_shapes() {
    let (_sim, app) = fast();
    let long = "x".repeat(5188); // 1297 + 3 = 1300 prompt tokens → 640 read, 256 written
    let chat = send(&app, post("/v1/chat/completions", &chat_body("gpt-5.6-terra", &long))).await.json();
    let details = &chat["usage"]["prompt_tokens_details"];
    assert_eq!((details["cached_tokens"].as_u64(), details["cache_write_tokens"].as_u64()), (Some(640), Some(256)));
    let request = json!({"model": "gpt-6-astra", "input": long, "service_tier": "flex"});
    let response = send(&app, post("/v1/responses", &request)).await.json();
    assert_eq!(response["service_tier"], "flex");
    let details = &response["usage"]["input_tokens_details"];
    assert_eq!((details["cached_tokens"].as_u64(), details["cache_write_tokens"].as_u64()), (Some(640), Some(256)));
    // Older models: no field in chat usage, 0 in Responses usage.
    let chat = send(&app, post("/v1/chat/completions", &chat_body("gpt-5", &long))).await.json();
    assert!(chat["usage"]["prompt_tokens_details"].get("cache_write_tokens").is_none());
    let response = send(&app, post("/v1/responses", &json!({"model": "gpt-5", "input": long}))).await.json();
    assert_eq!(response["usage"]["input_tokens_details"]["cache_write_tokens"], 0);
}

#[tokio::test]
async fn responses_object_shape() {
    let (_sim, app) = fast();
    let input = json!([
        {"role": "user", "content": "Hello there"},
        {"role": "user", "content": [{"type": "input_text", "text": "abcd"}]}
    ]);
    let request = json!({"model": "o3", "input": input, "instructions": "Be brief", "max_output_tokens": 6});
    let reply = send(&app, post("/v1/responses", &request)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert!(body["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(body["object"], "response");
    // The simulated model writes up to a given limit, so `max_output_tokens` cuts it.
    assert_eq!(body["status"], "incomplete");
    assert_eq!(body["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(body["service_tier"], "default");
    assert_eq!(body["instructions"], "Be brief");
    for field in ["error", "previous_response_id"] {
        assert!(body[field].is_null(), "{field}");
    }
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["tools"], json!([]));
    assert_eq!(body["text"]["format"]["type"], "text");
    let message = &body["output"][0];
    assert_eq!((message["type"].as_str(), message["role"].as_str()), (Some("message"), Some("assistant")));
    let part = &message["content"][0];
    assert_eq!(part["type"], "output_text");
    assert_eq!(part["text"].as_str().unwrap().split(' ').count(), 3);
    // (3+3) + (1+3) + ("Be brief" 2+3) = 15 input tokens; o3 reasons on half of 6.
    let usage = &body["usage"];
    assert_eq!(usage["input_tokens"], 15);
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["output_tokens"], 6);
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 3);
    assert_eq!(usage["total_tokens"], 21);
}

#[tokio::test]
async fn legacy_completion_shape() {
    let (_sim, app) = fast();
    let request = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 4});
    let body = send(&app, post("/v1/completions", &request)).await.json();
    assert_eq!(body["object"], "text_completion");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(body["choices"][0]["text"].as_str().unwrap().split(' ').count(), 4);
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 9);
}

#[tokio::test]
async fn embeddings_float_and_base64_agree() {
    let (_sim, app) = fast();
    let request = json!({"model": "text-embedding-3-small", "input": ["alpha", "beta"], "dimensions": 5});
    let floats = send(&app, post("/v1/embeddings", &request)).await.json();
    let mut b64_request = request.clone();
    b64_request["encoding_format"] = json!("base64");
    let encoded = send(&app, post("/v1/embeddings", &b64_request)).await.json();
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["usage"], json!({"prompt_tokens": 9, "total_tokens": 9}));
    for index in 0..2 {
        let float: Vec<f32> = serde_json::from_value(floats["data"][index]["embedding"].clone()).unwrap();
        assert_eq!(float.len(), 5);
        let raw = STANDARD.decode(encoded["data"][index]["embedding"].as_str().unwrap()).unwrap();
        assert_eq!(raw.len(), 5 * 4);
        let decoded: Vec<f32> = raw.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(decoded, float);
        assert_eq!(floats["data"][index]["object"], "embedding");
        assert_eq!(floats["data"][index]["index"], index);
    }
    let single = json!({"model": "text-embedding-3-large", "input": "alpha"});
    let body = send(&app, post("/v1/embeddings", &single)).await.json();
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 3072);
    let vector: Vec<f32> = serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(vector, flexgate::sim::embeddings::vector("alpha", 3072), "deterministic vectors");
}

#[tokio::test]
async fn bad_requests_are_openai_shaped() {
    let (_sim, app) = fast();
    let no_auth = http::Request::post("/v1/chat/completions")
        .body(axum::body::Body::from(chat_body("gpt-4o", "hi").to_string()))
        .unwrap();
    let reply = send(&app, no_auth).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "invalid_api_key");
    assert!(reply.header("x-request-id").is_some());

    let bad_json = http::Request::post("/v1/chat/completions")
        .header("authorization", "Bearer sk-test")
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    let reply = send(&app, bad_json).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");

    let reply = send(&app, post("/v1/chat/completions", &json!({"messages": []}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("model"));

    let reply = send(&app, post("/v1/chat/completions", &chat_body("gpt-9", "hi"))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "model_not_found");

    let reply = send(&app, post("/v1/chat/completions", &json!({"model": "gpt-4o"}))).await;
    assert_eq!((reply.status, reply.json()["error"]["param"].as_str()), (StatusCode::BAD_REQUEST, Some("messages")));

    let mut too_many = chat_body("gpt-4o", "hi");
    too_many["max_tokens"] = json!(0);
    assert_eq!(send(&app, post("/v1/chat/completions", &too_many)).await.status, StatusCode::BAD_REQUEST);

    let reply = send(&app, post("/v1/foo", &json!({}))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("Unknown request URL: POST /v1/foo"), "{message}");

    let reply = send(&app, get("/v1/chat/completions")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
}
