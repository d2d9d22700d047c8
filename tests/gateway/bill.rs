//! Real sockets: the bill's dated, long-context and cache-write dimensions, each on chat,
//! Responses and streams. Every cost is computed here by hand from the usage the
//! simulator reported and prices typed into this file, then compared with the
//! `x-flexgate-cost-usd` header (exactly) and `flexgate_cost_usd_total` (to 1e-9 USD),
//! once for a gateway answered in JSON and once for one answered in streams.

use std::collections::HashMap;
use std::str::FromStr;

use crate::common::{client, count, metric, spawn_gateway_with, spawn_sim};
use flexgate::sim::SimConfig;
use flexgate::state::AppState;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// USD per 1M tokens: input, cached input, cache write, output.
type Prices = [&'static str; 4];

/// A price table as this test knows it: per (model, reported tier) the short-context
/// prices, and the prompt size above which input-side prices double and output's are
/// multiplied by 1.5.
struct Table {
    prices: fn(&str, &str) -> Prices,
    long_above: fn(&str) -> Option<u64>,
}

/// The embedded table's prices for the models used here.
fn embedded(model: &str, tier: &str) -> Prices {
    match (model, tier) {
        // gpt-5.4 standard and gpt-5.5 flex cost the same (no cache-write price: input).
        ("gpt-5.4", "default") | ("gpt-5.5", "flex") => ["2.50", "0.25", "2.50", "15.00"],
        ("gpt-6-astra", "default") => ["10.00", "1.00", "12.50", "50.00"],
        ("gpt-5.6-luna", "flex") => ["0.10", "0.01", "0.125", "0.60"],
        other => panic!("no test price for {other:?}"),
    }
}

fn embedded_long(model: &str) -> Option<u64> {
    matches!(model, "gpt-5.4" | "gpt-5.5" | "gpt-5.6-luna").then_some(272_000)
}

/// An override file with three dated entries: the one in force today is the middle one.
const DATED_FILE: &str = r#"
prices_as_of = "2026-11-01"

[[models."gpt-5.6-terra"]]
standard = { input = "100", cached_input = "100", cache_write = "100", output = "100" }
flex     = { input = "100", cached_input = "100", cache_write = "100", output = "100" }

[[models."gpt-5.6-terra"]]
effective_from = "2999-01-01"
standard = { input = "200", cached_input = "200", cache_write = "200", output = "200" }
flex     = { input = "200", cached_input = "200", cache_write = "200", output = "200" }

[[models."gpt-5.6-terra"]]
effective_from = 2000-01-01
standard = { input = "3.00", cached_input = "0.30", cache_write = "3.75",  output = "18.00" }
flex     = { input = "1.50", cached_input = "0.15", cache_write = "1.875", output = "9.00" }
long_context = { above_input_tokens = 1000, input = "2", output = "1.5" }
"#;

fn dated(model: &str, tier: &str) -> Prices {
    match (model, tier) {
        ("gpt-5.6-terra", "default") => ["3.00", "0.30", "3.75", "18.00"],
        ("gpt-5.6-terra", "flex") => ["1.50", "0.15", "1.875", "9.00"],
        other => panic!("no test price for {other:?}"),
    }
}

/// (input, cached, cache write, output) tokens from a non-streaming body of any endpoint.
fn usage(body: &Value) -> [u64; 4] {
    let u = &body["usage"];
    let details =
        if u["prompt_tokens_details"].is_object() { &u["prompt_tokens_details"] } else { &u["input_tokens_details"] };
    [
        u["prompt_tokens"].as_u64().or_else(|| u["input_tokens"].as_u64()).unwrap(),
        details["cached_tokens"].as_u64().unwrap_or(0),
        details["cache_write_tokens"].as_u64().unwrap_or(0),
        u["completion_tokens"].as_u64().or_else(|| u["output_tokens"].as_u64()).unwrap(),
    ]
}

fn cost(table: &Table, model: &str, tier: &str, [input, cached, written, output]: [u64; 4]) -> Decimal {
    let d = |s: &str| Decimal::from_str(s).unwrap();
    let long = (table.long_above)(model).is_some_and(|above| input > above);
    let (grow_in, grow_out) = if long { (d("2"), d("1.5")) } else { (Decimal::ONE, Decimal::ONE) };
    let [pi, pc, pw, po] = (table.prices)(model, tier).map(d);
    let tokens = |n: u64| Decimal::from(n);
    let input_side = tokens(input - cached - written) * pi + tokens(cached) * pc + tokens(written) * pw;
    (input_side * grow_in + tokens(output) * po * grow_out) / Decimal::from(1_000_000)
}

struct Case {
    path: &'static str,
    body: Value,
    model: &'static str,
}

fn chat(path: &'static str, model: &'static str, content: &str) -> Case {
    Case { path, body: json!({"model": model, "messages": [{"role": "user", "content": content}]}), model }
}

fn responses(path: &'static str, model: &'static str, input: &str) -> Case {
    Case { path, body: json!({"model": model, "input": input, "max_output_tokens": 40}), model }
}

/// Send every case to one gateway in JSON and to the other as a stream; return the
/// hand-computed bill and the cache-write tokens reported, after checking each header.
async fn run(
    table: &Table,
    cases: &[Case],
    plain: &crate::common::Running,
    streamed: &crate::common::Running,
) -> (Decimal, u64) {
    let (mut total, mut written) = (Decimal::ZERO, 0);
    for case in cases {
        let r = client().post(plain.url(case.path)).bearer_auth("sk").json(&case.body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", case.path);
        let header = r.headers().get("x-flexgate-cost-usd").map(|v| Decimal::from_str(v.to_str().unwrap()).unwrap());
        let body: Value = r.json().await.unwrap();
        let tier = body["service_tier"].as_str().unwrap().to_owned();
        let u = usage(&body);
        let c = cost(table, case.model, &tier, u);
        assert_eq!(header, Some(c), "x-flexgate-cost-usd for {} {} {u:?}", case.path, case.model);
        total += c;
        written += u[2];
        let mut body = case.body.clone();
        body["stream"] = json!(true);
        let r = client().post(streamed.url(case.path)).bearer_auth("sk").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{} streamed", case.path);
        let _ = r.bytes().await.unwrap();
    }
    (total, written)
}

fn assert_billed(states: [&AppState; 2], total: Decimal, written: u64) {
    for (name, state) in ["json", "streamed"].into_iter().zip(states) {
        let m = state.metrics.render();
        let c = metric(&m, "flexgate_cost_usd_total", &[]);
        let diff = (Decimal::from_f64_retain(c).unwrap() - total).abs();
        assert!(diff < Decimal::new(1, 9), "{name}: flexgate_cost_usd_total {c} != {total}\n{m}");
        assert_eq!(count(&m, "flexgate_tokens_total", &[("kind", "cache_write")]), written, "{name}");
        assert_eq!(count(&m, "flexgate_cost_unknown_total", &[]), 0, "{name}");
    }
}

#[tokio::test]
async fn long_context_and_cache_writes_are_billed_on_chat_responses_and_streams() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let (plain, gw_plain) = spawn_gateway_with(s.addr, "", &HashMap::new()).await;
    let (streamed, gw_stream) = spawn_gateway_with(s.addr, "", &HashMap::new()).await;
    // 1,100,000 characters: 275,003 prompt tokens, past the 272,000 long-context line.
    let long = "abcd".repeat(275_000);
    // 5,188 characters: 1,300 prompt tokens, 640 read from the cache and 256 written.
    let cached = "x".repeat(5188);
    let cases = [
        chat("/v1/chat/completions", "gpt-5.4", &long),
        responses("/flex/v1/responses", "gpt-5.5", &long),
        chat("/v1/chat/completions", "gpt-6-astra", &cached),
        responses("/flex/v1/responses", "gpt-5.6-luna", &cached),
        // Both at once: a long prompt that writes the cache.
        chat("/flex/v1/chat/completions", "gpt-5.6-luna", &long),
    ];
    let table = Table { prices: embedded, long_above: embedded_long };
    let (total, written) = run(&table, &cases, &gw_plain, &gw_stream).await;
    assert!(written > 0);
    assert_billed([&plain, &streamed], total, written);
}

#[tokio::test]
async fn the_price_entry_in_force_today_is_billed_on_chat_responses_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pricing.toml");
    std::fs::write(&file, DATED_FILE).unwrap();
    let config = format!("[pricing]\nfile = {:?}\n", file.display().to_string());
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let (plain, gw_plain) = spawn_gateway_with(s.addr, &config, &HashMap::new()).await;
    let (streamed, gw_stream) = spawn_gateway_with(s.addr, &config, &HashMap::new()).await;
    let cached = "x".repeat(5188);
    let cases = [
        chat("/v1/chat/completions", "gpt-5.6-terra", "a short question"),
        chat("/flex/v1/chat/completions", "gpt-5.6-terra", &cached),
        responses("/v1/responses", "gpt-5.6-terra", "a short question"),
        // A dated snapshot name is priced as its model.
        Case { model: "gpt-5.6-terra", ..responses("/flex/v1/responses", "gpt-5.6-terra-2026-07-01", &cached) },
    ];
    let table = Table { prices: dated, long_above: |_| Some(1000) };
    let (total, written) = run(&table, &cases, &gw_plain, &gw_stream).await;
    assert_billed([&plain, &streamed], total, written);
}
