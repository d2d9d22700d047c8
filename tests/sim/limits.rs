//! Service tiers, flex capacity 429s, outage windows, the RPM limit and billing state.

use std::time::Duration;

use flexgate::sim::{FlexOutage, FlexTrace, SimConfig};
use http::StatusCode;
use serde_json::json;

use crate::support::{chat_body, fast, post, send, sim};

fn with_tier(model: &str, tier: &str) -> serde_json::Value {
    let mut body = chat_body(model, "hi");
    body["service_tier"] = json!(tier);
    body
}

#[tokio::test]
async fn tier_mapping_and_log() {
    let (sim, app) = fast();
    let cases = [
        ("gpt-5", "flex", Some("flex")),
        ("gpt-5-2025-08-07", "flex", Some("flex")),
        ("o3", "auto", Some("default")),
        ("gpt-4o", "default", Some("default")),
        ("gpt-4o", "priority", Some("priority")),
        ("gpt-5.4", "fast", Some("priority")),
        ("gpt-4o", "flex", None),
        ("gpt-5", "scale", None),
    ];
    for (model, tier, served) in cases {
        for path in ["/v1/chat/completions", "/v1/responses"] {
            let body = if path == "/v1/responses" {
                json!({"model": model, "input": "hi", "service_tier": tier})
            } else {
                with_tier(model, tier)
            };
            let reply = send(&app, post(path, &body)).await;
            if let Some(served) = served {
                assert_eq!(reply.status, StatusCode::OK, "{model} {tier} {path}");
                assert_eq!(reply.json()["service_tier"], served);
            } else {
                assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{model} {tier} {path}");
                assert_eq!(reply.json()["error"]["param"], "service_tier");
            }
            let logged = sim.received().pop().unwrap();
            assert_eq!(logged.service_tier.as_deref(), Some(tier));
            assert_eq!(logged.served_tier.as_deref(), served);
        }
    }
    let reply = send(&app, post("/v1/chat/completions", &chat_body("gpt-5", "hi"))).await;
    assert_eq!(reply.json()["service_tier"], "default");
    assert_eq!(sim.received().pop().unwrap().service_tier, None);
}

#[tokio::test]
async fn flex_capacity_429_without_retry_after() {
    let (_sim, app) = sim(SimConfig { flex_429_rate: 1.0, ..SimConfig::zero_latency() });
    let reply = send(&app, post("/v1/chat/completions", &with_tier("gpt-5-mini", "flex"))).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.code(), "resource_unavailable");
    assert!(reply.json()["error"]["param"].is_null());
    assert!(reply.header("retry-after").is_none());
    assert!(reply.header("retry-after-ms").is_none());
    let standard = send(&app, post("/v1/chat/completions", &with_tier("gpt-5-mini", "default"))).await;
    assert_eq!(standard.status, StatusCode::OK);
}

#[tokio::test]
async fn flex_429_draws_are_seeded() {
    let outcomes = |seed| async move {
        let (_sim, app) = sim(SimConfig { flex_429_rate: 0.5, seed, ..SimConfig::zero_latency() });
        let mut statuses = Vec::new();
        for _ in 0..32 {
            let reply = send(&app, post("/v1/chat/completions", &with_tier("o3", "flex"))).await;
            statuses.push(reply.status.as_u16());
        }
        statuses
    };
    let first = outcomes(7).await;
    assert_eq!(first, outcomes(7).await);
    assert!(first.contains(&429) && first.contains(&200), "{first:?}");
}

#[tokio::test(start_paused = true)]
async fn flex_outage_windows() {
    let (_sim, app) =
        sim(SimConfig { flex_outage: Some(FlexOutage::parse("10s/60s").unwrap()), ..SimConfig::zero_latency() });
    let flex = || post("/v1/chat/completions", &with_tier("gpt-5", "flex"));
    assert_eq!(send(&app, flex()).await.status, StatusCode::TOO_MANY_REQUESTS);
    let standard = post("/v1/chat/completions", &with_tier("gpt-5", "default"));
    assert_eq!(send(&app, standard).await.status, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(send(&app, flex()).await.status, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(send(&app, flex()).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(start_paused = true)]
async fn flex_capacity_follows_the_trace_and_refusals_count_against_the_limit() {
    let trace = FlexTrace::parse("10s:1.0,10s:0.0").unwrap();
    let (_sim, app) = sim(SimConfig { flex_trace: Some(trace), rps_limit: Some(2), ..SimConfig::zero_latency() });
    let flex = || post("/v1/chat/completions", &with_tier("gpt-5", "flex"));
    let refused = send(&app, flex()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(refused.header("x-ratelimit-remaining-requests"), Some("1"));
    assert_eq!(send(&app, flex()).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Two refused flex attempts used the second's whole limit: standard waits too.
    let standard = send(&app, post("/v1/chat/completions", &with_tier("gpt-5", "default"))).await;
    assert_eq!(standard.code(), "rate_limit_exceeded");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(send(&app, flex()).await.status, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(send(&app, flex()).await.status, StatusCode::TOO_MANY_REQUESTS, "the trace repeats");
}

#[tokio::test(start_paused = true)]
async fn rpm_limit_answers_rate_limit_429() {
    let (_sim, app) = sim(SimConfig { rpm_limit: Some(3), ..SimConfig::zero_latency() });
    let chat = || post("/v1/chat/completions", &chat_body("gpt-4.1-mini", "hi"));
    let first = send(&app, chat()).await;
    assert_eq!(first.header("x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(first.header("x-ratelimit-remaining-requests"), Some("2"));
    assert_eq!(first.header("x-ratelimit-reset-requests"), Some("1m0s"));
    // Flex attempts count against the same limit, as at OpenAI.
    let flex = send(&app, post("/v1/chat/completions", &with_tier("gpt-5", "flex"))).await;
    assert_eq!(flex.status, StatusCode::OK);
    assert_eq!(flex.header("x-ratelimit-remaining-requests"), Some("1"));
    assert_eq!(send(&app, chat()).await.status, StatusCode::OK);
    tokio::time::advance(Duration::from_millis(58_800)).await;
    let limited = send(&app, chat()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limit_exceeded");
    assert_eq!(limited.json()["error"]["type"], "requests");
    let message = limited.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("gpt-4.1-mini") && message.contains("Limit 3"), "{message}");
    assert!(message.contains("Please try again in 1.2s."), "{message}");
    assert_eq!(limited.header("retry-after-ms"), Some("1200"));
    assert_eq!(limited.header("retry-after"), Some("2"));
    assert_eq!(limited.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(limited.header("x-ratelimit-reset-requests"), Some("1.2s"));
    tokio::time::advance(Duration::from_millis(1_200)).await;
    assert_eq!(send(&app, chat()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn quota_exhausted_refuses_everything_billable() {
    let (_sim, app) = sim(SimConfig { quota_exhausted: true, ..SimConfig::zero_latency() });
    let reply = send(&app, post("/v1/chat/completions", &chat_body("gpt-4o", "hi"))).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.code(), "insufficient_quota");
    assert_eq!(reply.json()["error"]["type"], "insufficient_quota");
    let embed = json!({"model": "text-embedding-3-small", "input": "x"});
    assert_eq!(send(&app, post("/v1/embeddings", &embed)).await.code(), "insufficient_quota");
}
