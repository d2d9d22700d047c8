//! Many requests failing at once: 5xx bursts and 429 storms of every kind. Each storm
//! checks the client's answers, the exact number of attempts the simulator saw (retries
//! are bounded, billing errors are never repeated) and the counters.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;
use tokio::time::Instant;

use crate::common::{chat_body, client, count, metric};
use crate::memory::Memory;
use crate::support::{FAST, FAST_RETRY_ONLY, HANG, Stack, h, in_memory, post, stack_with};

/// Storms check exact counts per failure kind, so an attempt must never hit the attempt
/// timeout on a busy machine: the shipped 15-minute timeout stays, backoff is fast.
async fn storm_stack() -> Arc<Stack> {
    Arc::new(stack_with(flexgate::sim::SimConfig::zero_latency(), FAST_RETRY_ONLY).await)
}

/// `n` concurrent requests to `path`, each with `x-sim-fault: fault`; returns status,
/// attempts, escalated, tier, body and elapsed time per request.
async fn storm(s: &Arc<Stack>, n: usize, path: &'static str, fault: &'static str) -> Vec<Answer> {
    storm_with(s, n, path, &[("x-sim-fault", fault)]).await
}

/// [`storm`] with the request headers given.
async fn storm_with(s: &Arc<Stack>, n: usize, path: &'static str, headers: &[(&str, &str)]) -> Vec<Answer> {
    let c = client();
    let tasks = (0..n).map(|_| {
        let (s, c) = (s.clone(), c.clone());
        async move {
            let started = Instant::now();
            let r = post(&c, &s.gw, path, &chat_body("gpt-5", false), headers).await;
            answer(r, started).await
        }
    });
    join_all(tasks).await
}

/// [`storm`] in memory, for storms whose waits are asserted on paused time.
async fn storm_in_memory(s: &Memory, n: usize, path: &'static str, fault: &'static str) -> Vec<Answer> {
    let tasks = (0..n).map(|_| async move {
        let started = Instant::now();
        let r = s.post(path, &chat_body("gpt-5", false), &[("x-sim-fault", fault)]).await;
        answer(r, started).await
    });
    join_all(tasks).await
}

async fn answer(r: reqwest::Response, started: Instant) -> Answer {
    let answer = Answer {
        status: r.status().as_u16(),
        attempts: h(&r, "x-flexgate-attempts"),
        escalated: h(&r, "x-flexgate-escalated"),
        tier: h(&r, "x-flexgate-tier"),
        should_retry: h(&r, "x-should-retry"),
        body: Value::Null,
        took: Duration::ZERO,
    };
    let body = r.json().await.unwrap_or(Value::Null);
    Answer { body, took: started.elapsed(), ..answer }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    attempts: String,
    escalated: String,
    tier: String,
    should_retry: String,
    body: Value,
    took: Duration,
}

#[tokio::test]
async fn a_5xx_burst_is_absorbed_with_bounded_retries() {
    let s = storm_stack().await;
    for a in storm(&s, 40, "/v1/chat/completions", "500,502,ok").await {
        assert_eq!((a.status, a.attempts.as_str()), (200, "3"), "{a:?}");
        assert_eq!(a.body["object"], "chat.completion");
    }
    assert_eq!(s.sim.received().len(), 120, "exactly three attempts each");
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_retries_total", &[("tier", "standard"), ("reason", "server_error")]), 80);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "success")]), 40);
}

/// A persistent outage is not amplified: `max_attempts` per request, then the last
/// upstream answer with `x-should-retry: false` so SDKs do not multiply it again.
#[tokio::test]
async fn a_persistent_5xx_outage_is_passed_on_after_max_attempts_not_amplified() {
    let s = storm_stack().await;
    for a in storm(&s, 20, "/v1/chat/completions", "502").await {
        assert_eq!((a.status, a.attempts.as_str(), a.should_retry.as_str()), (502, "3", "false"), "{a:?}");
        assert_eq!(a.body["error"]["type"], "server_error", "the upstream's body: {a:?}");
    }
    assert_eq!(s.sim.received().len(), 60);
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_upstream_attempts_total", &[("result", "server_error")]), 60);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "upstream_error")]), 20);
}

#[tokio::test]
async fn a_flex_capacity_storm_escalates_every_request_and_costs_nothing_on_flex() {
    let s = storm_stack().await;
    // A 3 s deadline keeps 1.5 s for standard: flex is waited for until then.
    let headers = [("x-sim-fault", "flex:429-capacity"), ("x-flexgate-deadline", "3s")];
    for a in storm_with(&s, 30, "/flex/v1/chat/completions", &headers).await {
        assert_eq!(a.status, 200, "a client never sees a flex capacity 429: {a:?}");
        assert_eq!((a.escalated.as_str(), a.tier.as_str()), ("true", "standard"), "{a:?}");
        assert!(a.attempts.parse::<u32>().unwrap() <= 3, "waiting costs no attempts: {a:?}");
    }
    // Refusals throttle and then close flex for the model: after the first few, only probes
    // reach it (requests retrying on their own sent 7 each, 210 in all).
    let tiers: Vec<Option<String>> = s.tiers_sent();
    let flex = tiers.iter().filter(|t| t.as_deref() == Some("flex")).count();
    assert!((1..=36).contains(&flex), "{flex} flex attempts");
    assert_eq!(tiers.iter().filter(|t| t.as_deref() == Some("default")).count(), 30);
    let m = s.metrics();
    assert_eq!(
        count(&m, "flexgate_upstream_attempts_total", &[("tier", "flex"), ("result", "flex_capacity")]),
        u64::try_from(flex).unwrap()
    );
    let escalated = ["flex_capacity", "deadline"]
        .iter()
        .map(|r| count(&m, "flexgate_escalations_total", &[("class", "background"), ("reason", r)]))
        .sum::<u64>();
    assert_eq!(escalated, 30);
    assert!(count(&m, "flexgate_admission_throttled_total", &[]) > 0);
    assert!(metric(&m, "flexgate_cost_usd_total", &[("tier", "flex")]) <= 0.0, "rejected flex attempts cost $0");
    assert!(metric(&m, "flexgate_cost_usd_total", &[("tier", "standard")]) > 0.0);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_storms_wait_for_the_hint_then_succeed() {
    let s = in_memory(FAST_RETRY_ONLY);
    // `429-rate` asks for 200 ms (`retry-after-ms`), waited exactly. `429-slow-down` gives
    // no hint and the reported count has requests left: each request backs off on its own
    // (10 to 50 ms), the model is not held.
    for (fault, waited) in [("429-rate,ok", 200..=200), ("429-slow-down,ok", 0..=50)] {
        s.sim.reset();
        for a in storm_in_memory(&s, 30, "/v1/chat/completions", fault).await {
            assert_eq!((a.status, a.attempts.as_str()), (200, "2"), "{fault}: {a:?}");
            assert!(waited.contains(&a.took.as_millis()), "{fault}: the hint was not honoured: {a:?}");
        }
    }
    assert_eq!(s.sim.received().len(), 60, "the second storm's attempts");
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_retries_total", &[("tier", "standard"), ("reason", "rate_limit")]), 60);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "success")]), 60);
}

/// A rate-limit hint longer than the time left is not slept on: the client gets the 429
/// at once, marked not worth retrying by the SDK.
#[tokio::test(start_paused = true)]
async fn a_rate_limit_hint_past_the_deadline_returns_at_once() {
    let s = in_memory(FAST);
    let started = Instant::now();
    // The hint (30 s) is past the deadline (5 s): answering before the deadline shows the
    // gateway neither slept on the hint nor waited the deadline out.
    let headers = [("x-sim-fault", "429-rate:30s"), ("x-flexgate-deadline", "5s")];
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &headers).await;
    assert_eq!(started.elapsed(), Duration::ZERO, "the simulator answers at once, and so must the gateway");
    assert_eq!(
        (r.status().as_u16(), h(&r, "x-should-retry"), h(&r, "x-flexgate-attempts")),
        (429, "false".into(), "1".into())
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(s.sim.received().len(), 1);
    assert_eq!(count(&s.metrics(), "flexgate_requests_total", &[("outcome", "deadline_exceeded")]), 1);
}

#[tokio::test]
async fn billing_429_storms_are_never_retried_or_escalated() {
    let s = storm_stack().await;
    let kinds = [
        ("429-quota", "insufficient_quota"),
        ("429-credit", "credit_balance_exhausted"),
        ("429-spend", "project_spend_limit_exceeded"),
    ];
    for (fault, code) in kinds {
        for a in storm(&s, 20, "/flex/v1/chat/completions", fault).await {
            assert_eq!(a.status, 429, "{a:?}");
            assert_eq!((a.attempts.as_str(), a.escalated.as_str(), a.should_retry.as_str()), ("1", "false", "false"));
            assert_eq!(a.body["error"]["code"], code, "the upstream's body passes through");
        }
    }
    assert_eq!(s.sim.received().len(), 60, "one attempt per request, never repeated");
    assert!(s.tiers_sent().iter().all(|t| t.as_deref() == Some("flex")), "never escalated to standard");
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_upstream_attempts_total", &[("result", "billing")]), 60);
    assert_eq!(count(&m, "flexgate_retries_total", &[]), 0);
    assert_eq!(count(&m, "flexgate_escalations_total", &[]), 0);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "client_error")]), 60);
}

/// Faults on some requests never slow the others: while a storm of hanging requests
/// waits out its attempts, healthy requests on the same gateway answer at once.
#[tokio::test(start_paused = true)]
async fn healthy_requests_are_not_held_up_by_a_storm() {
    let s = in_memory(HANG);
    let storm_started = Instant::now();
    let stormy: Vec<_> = (0..30)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "hang")]).await;
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    assert!(crate::poll::eventually(|| s.sim.received().len() >= 30).await);
    for _ in 0..10 {
        let started = Instant::now();
        let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(started.elapsed(), Duration::ZERO, "a healthy request waits for nothing");
    }
    assert!(storm_started.elapsed() < Duration::from_millis(400), "the storm was still waiting on its first attempts");
    for task in stormy {
        let (status, body) = task.await.unwrap();
        assert_eq!((status, &body["error"]["code"]), (504, &Value::from("upstream_timeout")), "{body}");
    }
}
