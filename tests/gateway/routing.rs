//! Real sockets against the simulator: every class-assignment rule and every row of the
//! 429 table, asserted on what the client got and what the upstream received.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{chat_body, client, count, h, spawn_gateway_with, spawn_sim};
use crate::memory::{Memory, memory_stack};
use crate::poll::eventually_within;
use flexgate::sim::{Sim, SimConfig};
use serde_json::{Value, json};
use tokio::time::Instant;

/// A routing case: path, body, headers, expected class, `service_tier` sent upstream.
type Case = (&'static str, Value, Vec<(&'static str, &'static str)>, &'static str, Option<&'static str>);

/// Fast retries so the schedule is exercised without slow tests.
const FAST: &str = "[retry]\nbase_delay = \"20ms\"\nmax_delay = \"100ms\"\n";

/// [`FAST`] plus `extra`, in memory: for the tests that time the gateway, on paused time.
fn in_memory(extra: &str) -> Memory {
    memory_stack(SimConfig::zero_latency(), &format!("{FAST}{extra}"))
}

async fn fast_stack(extra: &str) -> (Sim, crate::common::Running, flexgate::state::AppState, crate::common::Running) {
    let (sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let (state, gw) = spawn_gateway_with(s.addr, &format!("{FAST}{extra}"), &HashMap::new()).await;
    (sim, s, state, gw)
}

async fn chat(gw: &crate::common::Running, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = client().post(gw.url(path)).bearer_auth("sk").json(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn tiers_sent(sim: &Sim) -> Vec<Option<String>> {
    sim.received().into_iter().map(|r| r.service_tier).collect()
}

#[tokio::test]
async fn class_assignment_follows_the_documented_order() {
    let rules = "[[routing.rules]]\nclass = \"background\"\nmodel = \"gpt-5-nano\"\n[[routing.rules]]\nclass = \"background\"\nheader = \"x-job-kind: enrichment\"\n";
    let (sim, _s, _state, gw) = fast_stack(rules).await;
    let cases: Vec<Case> = vec![
        // 5. default class: standard, body untouched.
        ("/v1/chat/completions", chat_body("gpt-5", false), vec![], "interactive", None),
        // 3. path prefix.
        ("/flex/v1/chat/completions", chat_body("gpt-5", false), vec![], "background", Some("flex")),
        // 2. header beats the lane.
        (
            "/flex/v1/chat/completions",
            chat_body("gpt-5", false),
            vec![("x-flexgate-class", "interactive")],
            "interactive",
            None,
        ),
        (
            "/v1/chat/completions",
            chat_body("gpt-5", false),
            vec![("x-flexgate-class", "background")],
            "background",
            Some("flex"),
        ),
        // 1. the client's own tier beats everything.
        (
            "/flex/v1/chat/completions",
            json!({"model": "gpt-5", "service_tier": "default", "messages": [{"role": "user", "content": "hi"}]}),
            vec![("x-flexgate-class", "background")],
            "interactive",
            Some("default"),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "gpt-5", "service_tier": "flex", "messages": [{"role": "user", "content": "hi"}]}),
            vec![],
            "background",
            Some("flex"),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "gpt-5", "service_tier": "priority", "messages": [{"role": "user", "content": "hi"}]}),
            vec![],
            "interactive",
            Some("priority"),
        ),
        // `auto` is no explicit tier: the lane decides and pins flex.
        (
            "/flex/v1/chat/completions",
            json!({"model": "gpt-5", "service_tier": "auto", "messages": [{"role": "user", "content": "hi"}]}),
            vec![],
            "background",
            Some("flex"),
        ),
        // 4. rules: by model (snapshot names resolve) and by header value.
        ("/v1/chat/completions", chat_body("gpt-5-nano-2025-08-07", false), vec![], "background", Some("flex")),
        (
            "/v1/chat/completions",
            chat_body("gpt-5", false),
            vec![("x-job-kind", "enrichment")],
            "background",
            Some("flex"),
        ),
        ("/v1/chat/completions", chat_body("gpt-5", false), vec![("x-job-kind", "other")], "interactive", None),
        // Responses are routed the same way.
        ("/flex/v1/responses", json!({"model": "o3", "input": "hi"}), vec![], "background", Some("flex")),
    ];
    for (i, (path, body, headers, class, sent)) in cases.iter().enumerate() {
        let r = chat(&gw, path, body, headers).await;
        assert_eq!(r.status(), 200, "case {i}");
        assert_eq!(h(&r, "x-flexgate-class"), *class, "case {i}");
        let got = sim.received();
        assert_eq!(got.last().unwrap().service_tier.as_deref(), *sent, "case {i}: service_tier sent upstream");
    }
}

#[tokio::test]
async fn models_that_cannot_use_flex_go_standard_and_are_counted() {
    let (sim, _s, state, gw) = fast_stack("").await;
    let r = chat(&gw, "/flex/v1/chat/completions", &chat_body("gpt-4o", false), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!((h(&r, "x-flexgate-class"), h(&r, "x-flexgate-tier")), ("background".into(), "standard".into()));
    assert_eq!(tiers_sent(&sim), [None]);
    assert_eq!(count(&state.metrics, "flexgate_flex_ineligible_total", &[("model", "gpt-4o")]), 1);
}

#[tokio::test]
async fn flex_capacity_429s_are_retried_on_flex() {
    let (sim, _s, state, gw) = fast_stack("").await;
    let r = chat(
        &gw,
        "/flex/v1/chat/completions",
        &chat_body("gpt-5", false),
        &[("x-sim-fault", "429-capacity,429-capacity,ok")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        (h(&r, "x-flexgate-attempts"), h(&r, "x-flexgate-escalated"), h(&r, "x-flexgate-tier")),
        ("3".into(), "false".into(), "flex".into())
    );
    assert_eq!(tiers_sent(&sim), [Some("flex".into()), Some("flex".into()), Some("flex".into())]);
    let m = state.metrics.render();
    assert_eq!(count(&m, "flexgate_upstream_attempts_total", &[("tier", "flex"), ("result", "flex_capacity")]), 2);
    assert_eq!(count(&m, "flexgate_retries_total", &[("tier", "flex"), ("reason", "flex_capacity")]), 2);
}

#[tokio::test(start_paused = true)]
async fn persistent_flex_capacity_escalates_to_default_before_the_deadline() {
    let s = in_memory("");
    let (sim, state) = (&s.sim, &s.state);
    let started = Instant::now();
    let r = s
        .post(
            "/flex/v1/chat/completions",
            &chat_body("gpt-5", false),
            &[("x-sim-fault", "flex:429-capacity"), ("x-flexgate-deadline", "3s")],
        )
        .await;
    let took = started.elapsed();
    assert_eq!(r.status(), 200, "a client never sees a flex capacity 429 while escalation is allowed");
    assert_eq!((h(&r, "x-flexgate-escalated"), h(&r, "x-flexgate-tier")), ("true".into(), "standard".into()));
    let sent = tiers_sent(sim);
    assert_eq!(sent.last().unwrap().as_deref(), Some("default"), "escalation pins `default`, never `auto`");
    assert!(sent[..sent.len() - 1].iter().all(|t| t.as_deref() == Some("flex")));
    // Flex keeps half of a 3 s deadline for standard: it is given up by 1.5 s.
    assert!(took <= Duration::from_millis(1500), "{took:?}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["service_tier"], "default");
    let m = state.metrics.render();
    assert_eq!(count(&m, "flexgate_escalations_total", &[("class", "background"), ("model", "gpt-5")]), 1);
    assert!(count(&m, "flexgate_requests_total", &[("tier", "standard"), ("outcome", "success")]) == 1, "{m}");
}

#[tokio::test(start_paused = true)]
async fn escalate_never_returns_a_429_naming_flex_capacity() {
    let classes = "[classes.interactive]\ntier = \"standard\"\n[classes.cheap]\ntier = \"flex\"\nescalate = \"never\"\ndeadline = \"1s\"\nmax_attempts = 50\npath_prefix = \"/cheap/v1\"\n[routing]\nflex_class = \"cheap\"\n";
    let s = in_memory(classes);
    let sim = &s.sim;
    let started = Instant::now();
    let r = s.post("/cheap/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "429-capacity")]).await;
    assert!(started.elapsed() <= Duration::from_secs(1), "the 1 s deadline bounds it: {:?}", started.elapsed());
    assert_eq!(r.status(), 429);
    assert_eq!(h(&r, "x-should-retry"), "false");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "flex_capacity_unavailable");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("Flex capacity was unavailable until the request's deadline")
    );
    assert!(tiers_sent(sim).iter().all(|t| t.as_deref() == Some("flex")), "never escalated");
}

#[tokio::test(start_paused = true)]
async fn rate_limits_wait_for_the_hint_then_retry() {
    let s = in_memory("");
    // `retry-after-ms: 200` is waited exactly; without a hint, and with requests left in the
    // reported count, the refused request backs off on its own (20 to 100 ms).
    for (fault, waited) in [("429-rate,ok", 200..=200), ("429-slow-down,ok", 0..=100)] {
        s.sim.reset();
        let started = Instant::now();
        let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", fault)]).await;
        let took = started.elapsed().as_millis();
        assert_eq!(r.status(), 200, "{fault}");
        assert_eq!(h(&r, "x-flexgate-attempts"), "2", "{fault}");
        assert!(waited.contains(&took), "{fault}: waited {took} ms");
    }
    assert_eq!(count(&s.metrics(), "flexgate_retries_total", &[("reason", "rate_limit")]), 2);
}

#[tokio::test]
async fn billing_429s_are_never_retried_or_escalated() {
    let (sim, _s, state, gw) = fast_stack("").await;
    for (fault, code) in [
        ("429-quota", "insufficient_quota"),
        ("429-credit", "credit_balance_exhausted"),
        ("429-spend", "project_spend_limit_exceeded"),
    ] {
        sim.reset();
        let r = chat(&gw, "/flex/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", fault)]).await;
        assert_eq!(r.status(), 429, "{fault}");
        assert_eq!(
            (h(&r, "x-flexgate-attempts"), h(&r, "x-should-retry"), h(&r, "x-flexgate-escalated")),
            ("1".into(), "false".into(), "false".into())
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "the upstream body passes through");
        assert_eq!(sim.received().len(), 1, "{fault}");
    }
    assert_eq!(count(&state.metrics, "flexgate_upstream_attempts_total", &[("result", "billing")]), 3);
}

/// On paused time: a 300 ms attempt timeout would race a busy machine over sockets.
#[tokio::test(start_paused = true)]
async fn server_errors_and_silent_attempts_are_retried() {
    let s = in_memory("[upstream]\ntimeout = \"300ms\"\nconnect_timeout = \"100ms\"\n");
    for fault in ["500,ok", "502,ok", "503,ok", "hang,ok", "malformed,ok"] {
        let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", fault)]).await;
        assert_eq!(r.status(), 200, "{fault}");
        assert_eq!(h(&r, "x-flexgate-attempts"), "2", "{fault}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion", "{fault}");
    }
}

#[tokio::test]
async fn other_client_errors_pass_through_after_one_attempt() {
    let (sim, _s, _state, gw) = fast_stack("").await;
    let r = chat(&gw, "/flex/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "400")]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(h(&r, "x-flexgate-attempts"), "1");
    assert!(r.headers().get("x-should-retry").is_none(), "a plain 4xx is passed through unchanged");
    assert_eq!(sim.received().len(), 1);
}

#[tokio::test]
async fn exhausted_plans_return_the_last_upstream_error_with_no_retry() {
    let (sim, _s, _state, gw) = fast_stack("").await;
    let r = chat(&gw, "/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "503")]).await;
    assert_eq!(r.status(), 503);
    assert_eq!((h(&r, "x-flexgate-attempts"), h(&r, "x-should-retry")), ("3".into(), "false".into()));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "server_is_overloaded");
    assert_eq!(sim.received().len(), 3);
}

#[tokio::test]
async fn streams_retry_and_escalate_only_before_the_first_byte() {
    let (sim, _s, _state, gw) = fast_stack("").await;
    let r = chat(
        &gw,
        "/flex/v1/chat/completions",
        &chat_body("gpt-5", true),
        &[("x-sim-fault", "429-capacity,503,ok"), ("x-flexgate-deadline", "5s")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "x-flexgate-attempts"), "3");
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    sim.reset();
    let r = chat(
        &gw,
        "/flex/v1/chat/completions",
        &chat_body("gpt-5", true),
        &[("x-sim-fault", "flex:429-capacity"), ("x-flexgate-deadline", "2s")],
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), h(&r, "x-flexgate-escalated"), h(&r, "x-flexgate-tier")),
        (200, "true".into(), "standard".into())
    );
    assert!(r.text().await.unwrap().contains("\"service_tier\":\"default\""));
}

/// The scenario: 80% of flex attempts answer 429. 500 background requests with a
/// 20 s deadline all succeed by their deadline, escalations show in the headers, and
/// interactive requests sent at the same time never wait on flex. In memory on paused
/// time, so every wait measured is the gateway's own.
#[tokio::test(start_paused = true)]
async fn eighty_percent_flex_429s_never_reach_the_client() {
    let mut sim_config = SimConfig::zero_latency();
    sim_config.flex_429_rate = 0.8;
    let s = memory_stack(sim_config, "[retry]\nbase_delay = \"50ms\"\nmax_delay = \"500ms\"\n");
    let deadline = Duration::from_secs(20);
    let mut background = Vec::new();
    for i in 0..500 {
        let s = s.clone();
        background.push(tokio::spawn(async move {
            let started = Instant::now();
            let body = chat_body("gpt-5-mini", i % 5 == 0);
            let r = s.post("/flex/v1/chat/completions", &body, &[("x-flexgate-deadline", "20s")]).await;
            let status = r.status();
            let escalated = h(&r, "x-flexgate-escalated") == "true";
            let _ = r.bytes().await.unwrap();
            (status, escalated, started.elapsed())
        }));
    }
    // Interactive requests go in once every background request has made its first attempt,
    // so they meet the storm of flex retries rather than the start-up burst.
    assert!(eventually_within(deadline, || s.sim.received().len() >= 500).await);
    let mut interactive = Vec::new();
    for _ in 0..5 {
        let batch: Vec<_> = (0..10)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let r = s.post("/v1/chat/completions", &chat_body("gpt-5-mini", false), &[]).await;
                    (r.status(), h(&r, "x-flexgate-attempts"), h(&r, "x-flexgate-tier"), started.elapsed())
                })
            })
            .collect();
        for task in batch {
            interactive.push(task.await.unwrap());
        }
    }
    let mut escalations = 0;
    for task in background {
        let (status, escalated, took) = task.await.unwrap();
        assert_eq!(status, 200);
        assert!(took <= deadline, "{took:?}");
        escalations += usize::from(escalated);
    }
    assert!(escalations > 0, "with 80% capacity errors some requests escalate");
    // Interactive work is never queued behind flex retries: it waits for nothing at all.
    for (status, attempts, tier, took) in interactive {
        assert_eq!((status.as_u16(), attempts.as_str(), tier.as_str()), (200, "1", "standard"));
        assert_eq!(took, Duration::ZERO);
    }
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_requests_total", &[("class", "background"), ("outcome", "success")]), 500);
    assert_eq!(count(&m, "flexgate_escalations_total", &[]), escalations as u64);
}
