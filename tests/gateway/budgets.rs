//! Real sockets: budgets per client. A client is refused in OpenAI's quota shape once its
//! spend reaches its limit, spend is counted at the tier that served (flex at half price
//! fits twice as many requests), requests in flight hold a reservation that bounds the
//! overshoot, and a client past its soft limit is served on flex only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::common::{chat_body, client, envelope, h, metric, spawn_gateway_with, spawn_sim};
use flexgate::sim::SimConfig;
use rust_decimal::Decimal;
use serde_json::Value;

/// Gateway keys of the test's clients: `fg-NAME` for client `NAME`.
const CLIENTS: [&str; 3] = ["std", "flexy", "soft"];

fn env() -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::from([("OPENAI_API_KEY".to_owned(), "sk-up".to_owned())]);
    for c in CLIENTS {
        env.insert(format!("KEY_{}", c.to_uppercase()), format!("fg-{c}"));
    }
    env
}

/// The gateway keys, and a store of the test's own (budget spend is kept there).
fn keys() -> String {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut text = format!("[store]\ndir = \"{}\"\n[auth]\nmode = \"managed\"\n", dir.display());
    for c in CLIENTS {
        let _ = write!(text, "[[auth.keys]]\nclient = \"{c}\"\nenv = \"KEY_{}\"\n", c.to_uppercase());
    }
    text
}

async fn post(url: &str, key: &str, body: &Value) -> reqwest::Response {
    client().post(url).bearer_auth(key).json(body).send().await.unwrap()
}

/// What one chat request of the test costs on standard, read from an unbudgeted gateway.
async fn standard_cost(sim: std::net::SocketAddr) -> Decimal {
    let (_state, gw) = spawn_gateway_with(sim, &keys(), &env()).await;
    let r = post(&gw.url("/v1/chat/completions"), "fg-std", &chat_body("gpt-5", false)).await;
    assert_eq!(r.status(), 200);
    h(&r, "x-flexgate-cost-usd").parse().unwrap()
}

/// Requests of `key` on `path`, one after another, until the first refusal; how many
/// were served, and the refusal.
async fn until_refused(url: &str, key: &str) -> (usize, reqwest::Response) {
    for served in 0..100 {
        let r = post(url, key, &chat_body("gpt-5", false)).await;
        if r.status() != 200 {
            return (served, r);
        }
        assert!(!h(&r, "x-flexgate-budget-remaining-usd").is_empty(), "every answer carries what is left");
    }
    panic!("never refused");
}

#[tokio::test]
async fn a_budget_refuses_at_the_right_count_and_flex_fits_twice_as_many() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let cost = standard_cost(s.addr).await;
    let limit = cost * Decimal::from(4);
    let toml = format!(
        "{}[budgets.std]\nusd = \"{limit}\"\nperiod = \"day\"\n[budgets.flexy]\nusd = \"{limit}\"\nperiod = \"week\"\n",
        keys()
    );
    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    // Every budget family the dashboard and the alerts read exists from the first scrape.
    let fresh = client().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for family in ["spend", "reserved", "remaining", "limit", "soft_limit"] {
        let line = format!("flexgate_budget_{family}_usd{{client=\"std\"}} ");
        assert!(fresh.lines().any(|l| l.starts_with(&line)), "{line} missing from {fresh}");
    }
    assert!(fresh.contains("flexgate_budget_refused_total{client=\"flexy\"} 0"));

    let (served, refusal) = until_refused(&gw.url("/v1/chat/completions"), "fg-std").await;
    assert_eq!(served, 4, "four standard requests spend the limit exactly");
    assert_eq!(h(&refusal, "x-should-retry"), "false");
    assert_eq!(h(&refusal, "x-flexgate-budget-remaining-usd"), "0");
    let retry_after: u64 = h(&refusal, "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "until the end of the UTC day: {retry_after}");
    let (status, v) = envelope(refusal).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "insufficient_quota");
    assert_eq!(v["error"]["code"], "flexgate_budget_exceeded");
    let message = v["error"]["message"].as_str().unwrap();
    for part in
        ["`std`", &format!("${} spent", limit.normalize()), &format!("${} limit", limit.normalize()), "resets at"]
    {
        assert!(message.contains(part), "{part} not in {message}");
    }

    let (served, refusal) = until_refused(&gw.url("/flex/v1/chat/completions"), "fg-flexy").await;
    assert_eq!(served, 8, "flex at half price fits twice as many");
    assert_eq!(refusal.status(), 429);

    let scrape = client().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let spent: f64 = limit.to_string().parse().unwrap();
    for c in ["std", "flexy"] {
        assert!((metric(&scrape, "flexgate_budget_spend_usd", &[("client", c)]) - spent).abs() < 1e-9);
        assert!((metric(&scrape, "flexgate_budget_limit_usd", &[("client", c)]) - spent).abs() < 1e-9);
        assert!(metric(&scrape, "flexgate_budget_remaining_usd", &[("client", c)]).abs() < 1e-12);
        assert!((metric(&scrape, "flexgate_budget_refused_total", &[("client", c)]) - 1.0).abs() < 1e-12);
    }
}

#[tokio::test]
async fn the_remaining_header_counts_each_answer_at_its_cost() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let cost = standard_cost(s.addr).await;
    let toml = format!(
        "{}[budgets.std]\nusd = \"1\"\nperiod = \"month\"\n[budgets.flexy]\nusd = \"{}\"\nperiod = \"day\"\n",
        keys(),
        cost / Decimal::from(2)
    );
    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let url = gw.url("/v1/chat/completions");
    for n in 1..=3 {
        let r = post(&url, "fg-std", &chat_body("gpt-5", false)).await;
        let left: Decimal = h(&r, "x-flexgate-budget-remaining-usd").parse().unwrap();
        assert_eq!(left, Decimal::ONE - cost * Decimal::from(n));
    }
    // An answer that spends past the limit leaves nothing, not its reservation's worth.
    let r = post(&url, "fg-flexy", &chat_body("gpt-5", false)).await;
    assert_eq!(h(&r, "x-flexgate-budget-remaining-usd"), "0");
    // An unbudgeted client's answers carry no budget header.
    let r = post(&url, "fg-soft", &chat_body("gpt-5", false)).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-flexgate-budget-remaining-usd").is_none());
}

#[tokio::test]
async fn a_stream_that_crosses_the_limit_is_finished_and_the_next_request_refused() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let cost = standard_cost(s.addr).await;
    let toml = format!("{}[budgets.std]\nusd = \"{}\"\nperiod = \"day\"\n", keys(), cost / Decimal::from(2));
    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let url = gw.url("/v1/chat/completions");
    let r = post(&url, "fg-std", &chat_body("gpt-5", true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "the stream is finished, not cut: {text}");
    let r = post(&url, "fg-std", &chat_body("gpt-5", true)).await;
    assert_eq!(r.status(), 429);
    let (_, v) = envelope(r).await;
    assert!(v["error"]["message"].as_str().unwrap().contains(&format!("${} spent", cost.normalize())), "{v}");
}

#[tokio::test]
async fn past_the_soft_limit_requests_go_to_flex_without_escalation() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let toml = format!(
        "{}[budgets.soft]\nusd = \"10\"\nsoft_usd = \"0.000001\"\non_soft = \"flex_only\"\nperiod = \"day\"\n",
        keys()
    );
    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let url = gw.url("/v1/chat/completions");
    let first = post(&url, "fg-soft", &chat_body("gpt-5", false)).await;
    assert_eq!(h(&first, "x-flexgate-tier"), "standard", "under the soft limit the class decides");
    let second = post(&url, "fg-soft", &chat_body("gpt-5", false)).await;
    assert_eq!(second.status(), 200);
    assert_eq!(h(&second, "x-flexgate-tier"), "flex");
    assert_eq!(h(&second, "x-flexgate-escalated"), "false");
}

/// 64 requests of one client at once, each slow enough to be in flight together: only as
/// many are admitted as their reservations fit under the limit, so the spend passes the
/// limit by less than one reservation. Without reservations all 64 would be admitted.
#[tokio::test]
async fn concurrent_requests_overshoot_by_at_most_the_reservations_in_flight() {
    let sim_config = SimConfig { latency_standard: Duration::from_millis(300), ..SimConfig::zero_latency() };
    let (_sim, s) = spawn_sim(sim_config).await;
    let cost = standard_cost(s.addr).await;
    let limit = cost * Decimal::from(10);
    let toml = format!("{}[budgets.std]\nusd = \"{limit}\"\nreserve_usd = \"{cost}\"\nperiod = \"day\"\n", keys());
    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let url = gw.url("/v1/chat/completions");
    let requests = (0..64).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { post(&url, "fg-std", &chat_body("gpt-5", false)).await.status().as_u16() })
    });
    let mut served = 0;
    for r in requests {
        match r.await.unwrap() {
            200 => served += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!((1..=10).contains(&served), "{served} admitted");
    let scrape = client().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let spent = metric(&scrape, "flexgate_budget_spend_usd", &[("client", "std")]);
    let bound: f64 = (limit + cost).to_string().parse().unwrap();
    assert!(spent <= bound + 1e-12, "spent {spent} beyond the limit and one reservation");
}

#[tokio::test]
async fn spend_survives_a_restart() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let cost = standard_cost(s.addr).await;
    let toml = format!("{}[budgets.std]\nusd = \"{}\"\nperiod = \"month\"\n", keys(), cost * Decimal::from(3));
    let (state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    for _ in 0..2 {
        assert_eq!(post(&gw.url("/v1/chat/completions"), "fg-std", &chat_body("gpt-5", false)).await.status(), 200);
    }
    gw.shutdown().await;
    // The store is one process's at a time: the first gateway lets go of it first.
    drop(state);

    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let (served, refusal) = until_refused(&gw.url("/v1/chat/completions"), "fg-std").await;
    assert_eq!(served, 1, "two of three were spent before the restart");
    assert_eq!(refusal.status(), 429);
}

/// A client that leaves mid-stream: the request dies unsettled, so its reservation is
/// released and nothing is charged (the usage never arrived), instead of holding part of
/// the budget for ever.
#[tokio::test]
async fn a_request_that_dies_releases_its_reservation() {
    use futures_util::StreamExt as _;
    let sim_config = SimConfig { chunk_interval: Duration::from_millis(20), ..SimConfig::zero_latency() };
    let (_sim, s) = spawn_sim(sim_config).await;
    let toml = format!("{}[budgets.std]\nusd = \"1\"\nreserve_usd = \"0.25\"\nperiod = \"day\"\n", keys());
    let (state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let mut body = chat_body("gpt-5", true);
    body["max_tokens"] = serde_json::json!(500);
    let r = post(&gw.url("/v1/chat/completions"), "fg-std", &body).await;
    assert_eq!(h(&r, "x-flexgate-budget-remaining-usd"), "0.75", "the stream holds its reservation");
    let mut stream = r.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let account = || {
        state.metrics.budgets.export(&state.budgets);
        let m = state.metrics.render();
        (
            metric(&m, "flexgate_budget_reserved_usd", &[("client", "std")]),
            metric(&m, "flexgate_budget_spend_usd", &[("client", "std")]),
        )
    };
    assert!(crate::poll::eventually(|| account() == (0.0, 0.0)).await, "{:?}", account());
}
