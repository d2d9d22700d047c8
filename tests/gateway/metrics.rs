//! Real sockets: the bill flexgate exports equals the hand-computed one to 1e-9 USD,
//! streaming and non-streaming runs of the same work agree, and labels stay bounded.

use std::collections::HashMap;
use std::str::FromStr;

use crate::common::{client, count, metric, spawn_gateway_with, spawn_sim};
use flexgate::sim::SimConfig;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// USD per 1M tokens (input, cached input, output), from the official price table.
fn price(model: &str, tier: &str) -> (Decimal, Decimal, Decimal) {
    let d = |s: &str| Decimal::from_str(s).unwrap();
    match (model, tier) {
        ("gpt-5", "flex") => (d("0.625"), d("0.0625"), d("5.00")),
        ("gpt-5", "default") => (d("1.25"), d("0.125"), d("10.00")),
        ("gpt-5-mini", "default") => (d("0.25"), d("0.025"), d("2.00")),
        ("o3", "flex") => (d("1.00"), d("0.25"), d("4.00")),
        ("o3", "default") => (d("2.00"), d("0.50"), d("8.00")),
        ("gpt-5-mini", "flex") => (d("0.125"), d("0.0125"), d("1.00")),
        ("text-embedding-3-small", "default") => (d("0.02"), d("0.02"), d("0")),
        other => panic!("no test price for {other:?}"),
    }
}

/// (input, cached, output) tokens from a non-streaming body of any endpoint.
fn usage(body: &Value) -> (u64, u64, u64) {
    let u = &body["usage"];
    let input = u["prompt_tokens"].as_u64().or_else(|| u["input_tokens"].as_u64()).unwrap();
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .or_else(|| u["input_tokens_details"]["cached_tokens"].as_u64())
        .unwrap_or(0);
    let output = u["completion_tokens"].as_u64().or_else(|| u["output_tokens"].as_u64()).unwrap_or(0);
    (input, cached, output)
}

fn cost(model: &str, tier: &str, (input, cached, output): (u64, u64, u64)) -> Decimal {
    let (pi, pc, po) = price(model, tier);
    let million = Decimal::from(1_000_000);
    (Decimal::from(input - cached) * pi + Decimal::from(cached) * pc + Decimal::from(output) * po) / million
}

struct Case {
    path: &'static str,
    body: Value,
    headers: Vec<(&'static str, &'static str)>,
    /// The price-table name of the model.
    model: &'static str,
    streams: bool,
}

fn workload() -> Vec<Case> {
    let long = "lorem ipsum ".repeat(400); // ~4800 chars: past 1024 prompt tokens, so cached tokens appear
    vec![
        Case {
            path: "/flex/v1/chat/completions",
            body: json!({"model": "gpt-5", "max_tokens": 100, "messages": [{"role": "user", "content": long}]}),
            headers: vec![],
            model: "gpt-5",
            streams: true,
        },
        Case {
            path: "/v1/chat/completions",
            body: json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": "short question"}]}),
            headers: vec![],
            model: "gpt-5-mini",
            streams: true,
        },
        Case {
            path: "/flex/v1/responses",
            body: json!({"model": "o3", "instructions": "be brief", "input": long, "max_output_tokens": 64}),
            headers: vec![],
            model: "o3",
            streams: true,
        },
        Case {
            path: "/flex/v1/chat/completions",
            body: json!({"model": "gpt-5", "messages": [{"role": "user", "content": "escalate me"}]}),
            headers: vec![("x-sim-fault", "flex:429-capacity"), ("x-flexgate-deadline", "2s")],
            model: "gpt-5",
            streams: true,
        },
        Case {
            path: "/flex/v1/chat/completions",
            body: json!({"model": "gpt-5-2025-08-07", "messages": [{"role": "user", "content": "snapshot"}]}),
            headers: vec![],
            model: "gpt-5",
            streams: true,
        },
        Case {
            path: "/flex/v1/responses",
            body: json!({"model": "gpt-5-mini", "input": [{"role": "user", "content": "a list input"}]}),
            headers: vec![],
            model: "gpt-5-mini",
            streams: true,
        },
        Case {
            path: "/v1/completions",
            body: json!({"model": "gpt-5-mini", "prompt": "Once upon a time", "max_tokens": 12}),
            headers: vec![],
            model: "gpt-5-mini",
            streams: true,
        },
        Case {
            path: "/v1/embeddings",
            body: json!({"model": "text-embedding-3-small", "input": ["one", "two three"]}),
            headers: vec![],
            model: "text-embedding-3-small",
            streams: false,
        },
    ]
}

async fn send(gw: &crate::common::Running, case: &Case, stream: bool) -> reqwest::Response {
    let mut body = case.body.clone();
    if stream {
        body["stream"] = json!(true);
    }
    let mut r = client().post(gw.url(case.path)).bearer_auth("sk").json(&body);
    for (k, v) in &case.headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", case.path);
    r
}

fn approx(a: f64, b: Decimal) -> bool {
    (Decimal::from_f64_retain(a).unwrap() - b).abs() < Decimal::new(1, 9)
}

#[tokio::test]
async fn exported_cost_and_savings_equal_the_hand_computed_bill() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let fast = "[retry]\nbase_delay = \"10ms\"\nmax_delay = \"50ms\"\n";
    let (plain, gw_plain) = spawn_gateway_with(s.addr, fast, &HashMap::new()).await;
    let (streamed, gw_stream) = spawn_gateway_with(s.addr, fast, &HashMap::new()).await;
    let (mut total, mut saved) = (Decimal::ZERO, Decimal::ZERO);
    let mut tokens = (0u64, 0u64, 0u64);
    for case in workload() {
        let r = send(&gw_plain, &case, false).await;
        let header = r.headers().get("x-flexgate-cost-usd").map(|v| Decimal::from_str(v.to_str().unwrap()).unwrap());
        let body: Value = r.json().await.unwrap();
        let tier = body["service_tier"].as_str().unwrap_or("default").to_owned();
        let u = usage(&body);
        let c = cost(case.model, &tier, u);
        assert_eq!(header, Some(c), "x-flexgate-cost-usd for {}", case.path);
        total += c;
        saved += cost(case.model, "default", u) - c;
        tokens = (tokens.0 + u.0, tokens.1 + u.1, tokens.2 + u.2);
        // The same work, streamed, through the second gateway.
        let r = send(&gw_stream, &case, case.streams).await;
        let _ = r.bytes().await.unwrap();
    }
    assert!(saved > Decimal::ZERO && total > Decimal::ZERO);
    for (name, m) in [("non-streaming", plain.metrics.render()), ("streaming", streamed.metrics.render())] {
        let c = metric(&m, "flexgate_cost_usd_total", &[]);
        let sv = metric(&m, "flexgate_savings_usd_total", &[]);
        assert!(approx(c, total), "{name}: cost {c} != {total}\n{m}");
        assert!(approx(sv, saved), "{name}: savings {sv} != {saved}");
        assert_eq!(count(&m, "flexgate_tokens_total", &[("kind", "input")]), tokens.0, "{name}");
        assert_eq!(count(&m, "flexgate_tokens_total", &[("kind", "cached_input")]), tokens.1, "{name}");
        assert_eq!(count(&m, "flexgate_tokens_total", &[("kind", "output")]), tokens.2, "{name}");
        assert_eq!(count(&m, "flexgate_usage_missing_total", &[]), 0, "{name}");
        assert_eq!(count(&m, "flexgate_escalations_total", &[("class", "background")]), 1, "{name}");
        assert!(
            metric(&m, "flexgate_cost_usd_total", &[("tier", "flex"), ("model", "o3")]) > 0.0,
            "{name}: priced on the reported tier"
        );
        assert!(
            metric(&m, "flexgate_savings_usd_total", &[("class", "interactive")]).abs() < 1e-12,
            "{name}: standard saves nothing"
        );
    }
}

#[tokio::test]
async fn labels_stay_bounded_under_random_input() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let (state, gw) = spawn_gateway_with(s.addr, "", &HashMap::new()).await;
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let mut names = Vec::new();
    let mut after_ten = 0;
    for i in 0..1000u32 {
        let model = format!("model-{:016x}", rand_u64(i));
        let path = if i % 2 == 0 { "/v1/chat/completions" } else { "/flex/v1/responses" };
        let body = json!({"model": model, "input": "x", "messages": [{"role": "user", "content": "x"}]});
        let r = client().post(gw.url(path)).bearer_auth("sk").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 404);
        names.push(model);
        if i == 9 {
            after_ten = series(&state.metrics.render());
        }
    }
    let text = state.metrics.render();
    assert_eq!(series(&text), after_ten, "1,000 random model names added no series");
    assert!(names.iter().all(|n| !text.contains(n.as_str())));
    assert_eq!(count(&text, "flexgate_requests_total", &[("model", "other")]), 1000);
}

/// A deterministic spread of values (splitmix64), so the test needs no RNG crate.
fn rand_u64(i: u32) -> u64 {
    let mut z = u64::from(i).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Metric names the shipped dashboard, alert rules and rule tests read.
fn names_the_deploy_files_use() -> std::collections::BTreeSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let files = ["grafana/dashboards", "prometheus/rules", "prometheus/tests"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap())
        .map(|entry| entry.unwrap().path());
    let mut names = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("flexgate_") {
            let name: String =
                text[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .fold(name, |n, s| n.strip_suffix(s).map_or(n.clone(), str::to_owned));
            names.insert(name);
        }
    }
    names
}

#[tokio::test]
async fn a_fresh_gateway_exports_every_series_the_dashboard_and_alerts_read() {
    let (_sim, sim_run) = spawn_sim(SimConfig::default()).await;
    let (_state, gw) = spawn_gateway_with(sim_run.addr, "", &HashMap::new()).await;
    let text = client().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let used = names_the_deploy_files_use();
    assert!(used.len() > 10, "read too few names from deploy/: {used:?}");
    // Unknown until the upstream answers: a 0 would read as an exhausted limit.
    let unknown_until_answered = ["flexgate_upstream_ratelimit_remaining"];
    let missing: Vec<_> = used
        .iter()
        .filter(|name| !unknown_until_answered.contains(&name.as_str()))
        // One series per budgeted client, primed when budgets are configured (none here;
        // tests/gateway/budgets.rs checks them on a budgeted gateway).
        .filter(|name| !name.starts_with("flexgate_budget_"))
        // Only with `[shared]` Redis (tests/process/shared.rs and peers.rs read them there).
        .filter(|name| !name.starts_with("flexgate_shared_"))
        .filter(|name| !text.lines().any(|l| !l.starts_with('#') && l.starts_with(name.as_str())))
        .collect();
    assert!(missing.is_empty(), "absent from a fresh gateway's /metrics: {missing:?}");
    // Ratio alerts divide by these: they exist, at zero.
    assert_eq!(count(&text, "flexgate_escalations_total", &[("class", "background"), ("reason", "deadline")]), 0);
    assert!(
        text.contains("flexgate_escalations_total{class=\"background\",model=\"gpt-5-mini\",reason=\"deadline\"} 0")
    );
    assert!(text.contains("flexgate_usage_missing_total{endpoint=\"chat_completions\"} 0"));
    assert!(text.contains("flexgate_flex_ineligible_total{model=\"other\"} 0"));
    // Bounded: the per-request families are primed with `model="other"` only.
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series < 5_000, "{series} series on a gateway that served nothing");
}
