//! Real sockets: budgets per client. A request holds an estimate of what it can cost and
//! is refused in OpenAI's quota shape when that does not fit under its client's limit;
//! spend is counted at the tier that served (flex at half price fits twice as many
//! requests), requests in flight hold their estimates so concurrent ones cannot pass
//! the limit, a stream the client abandons is charged an estimate, and a client past
//! its soft limit is served on flex only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::common::{chat_body, client, count, envelope, h, metric, spawn_gateway_with, spawn_sim};
use flexgate::budgets::{NANOS_PER_USD, estimate};
use flexgate::endpoint::Endpoint;
use flexgate::pricing::{Day, PriceTable};
use flexgate::sim::SimConfig;
use flexgate::tier::Tier;
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

/// The test's request: capped at the 16 output tokens the simulator writes anyway, so its
/// estimate stays near its cost.
fn capped(stream: bool) -> Value {
    let mut body = chat_body("gpt-5", stream);
    body["max_completion_tokens"] = serde_json::json!(16);
    body
}

fn dollars(nanos: u64) -> Decimal {
    Decimal::from(nanos) / Decimal::from(NANOS_PER_USD)
}

/// What the gateway holds for `body` on `tier`: its estimate, from the body's size as
/// reqwest sends it (the estimator's own figures are checked in its unit tests).
fn estimate_of(body: &Value, tier: Tier) -> Decimal {
    let len = serde_json::to_vec(body).unwrap().len();
    let cap = body["max_completion_tokens"].as_u64().or_else(|| body["max_tokens"].as_u64());
    let e = estimate::request(&PriceTable::embedded(), Some("gpt-5"), tier, Endpoint::ChatCompletions, len, cap, 1);
    dollars(e.cost.unwrap())
}

/// What one capped chat request of the test costs on standard, read from an unbudgeted
/// gateway; never more than its estimate.
async fn standard_cost(sim: std::net::SocketAddr) -> Decimal {
    let (_state, gw) = spawn_gateway_with(sim, &keys(), &env()).await;
    let r = post(&gw.url("/v1/chat/completions"), "fg-std", &capped(false)).await;
    assert_eq!(r.status(), 200);
    let cost: Decimal = h(&r, "x-flexgate-cost-usd").parse().unwrap();
    assert!(cost <= estimate_of(&capped(false), Tier::Standard), "the estimate is an upper bound here");
    cost
}

/// Requests of `key` on `path`, one after another, until the first refusal; how many
/// were served, and the refusal.
async fn until_refused(url: &str, key: &str) -> (usize, reqwest::Response) {
    for served in 0..100 {
        let r = post(url, key, &capped(false)).await;
        if r.status() != 200 {
            return (served, r);
        }
        assert!(!h(&r, "x-flexgate-budget-remaining-usd").is_empty(), "every answer carries what is left");
    }
    panic!("never refused");
}

/// A request is admitted while its estimate fits under what is left: with room for three
/// requests' cost and one estimate, the fourth is the last served.
#[tokio::test]
async fn a_budget_refuses_at_the_right_count_and_flex_fits_twice_as_many() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let cost = standard_cost(s.addr).await;
    let held = estimate_of(&capped(false), Tier::Standard);
    let limit = cost * Decimal::from(3) + held;
    // Flex: half the cost and half the estimate, so seven costs and one estimate are
    // the same limit's worth of eight requests.
    let flex_limit = cost / Decimal::from(2) * Decimal::from(7) + estimate_of(&capped(false), Tier::Flex);
    let toml = format!(
        "{}[budgets.std]\nusd = \"{limit}\"\nperiod = \"day\"\n[budgets.flexy]\nusd = \"{flex_limit}\"\nperiod = \"week\"\n",
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
    assert_eq!(served, 4, "three costs and one estimate");
    assert_eq!(h(&refusal, "x-should-retry"), "false");
    let left = limit - cost * Decimal::from(4);
    assert_eq!(h(&refusal, "x-flexgate-budget-remaining-usd").parse::<Decimal>().unwrap(), left);
    let retry_after: u64 = h(&refusal, "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "until the end of the UTC day: {retry_after}");
    let (status, v) = envelope(refusal).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "insufficient_quota");
    assert_eq!(v["error"]["code"], "flexgate_budget_exceeded");
    let message = v["error"]["message"].as_str().unwrap();
    let spent = cost * Decimal::from(4);
    for part in [
        "`std`",
        &format!("${} spent", spent.normalize()),
        &format!("${} limit", limit.normalize()),
        &format!("This request may cost up to ${}, more than the ${} left.", held.normalize(), left.normalize()),
        "resets at",
    ] {
        assert!(message.contains(part), "{part} not in {message}");
    }

    let (served, refusal) = until_refused(&gw.url("/flex/v1/chat/completions"), "fg-flexy").await;
    assert_eq!(served, 8, "flex at half price fits twice as many");
    assert_eq!(refusal.status(), 429);

    let scrape = client().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let f = |d: Decimal| -> f64 { d.to_string().parse().unwrap() };
    for (c, limit) in [("std", limit), ("flexy", flex_limit)] {
        let spent = f(cost * Decimal::from(4));
        assert!((metric(&scrape, "flexgate_budget_spend_usd", &[("client", c)]) - spent).abs() < 1e-9);
        assert!((metric(&scrape, "flexgate_budget_limit_usd", &[("client", c)]) - f(limit)).abs() < 1e-9);
        assert!(metric(&scrape, "flexgate_budget_reserved_usd", &[("client", c)]).abs() < 1e-12);
        assert!((metric(&scrape, "flexgate_budget_refused_total", &[("client", c)]) - 1.0).abs() < 1e-12);
    }
}

#[tokio::test]
async fn the_remaining_header_counts_each_answer_at_its_cost() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let cost = standard_cost(s.addr).await;
    let held = estimate_of(&capped(false), Tier::Standard);
    let toml = format!(
        "{}[budgets.std]\nusd = \"1\"\nperiod = \"month\"\n[budgets.flexy]\nusd = \"{held}\"\nperiod = \"day\"\n",
        keys(),
    );
    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let url = gw.url("/v1/chat/completions");
    for n in 1..=3 {
        let r = post(&url, "fg-std", &capped(false)).await;
        let left: Decimal = h(&r, "x-flexgate-budget-remaining-usd").parse().unwrap();
        assert_eq!(left, Decimal::ONE - cost * Decimal::from(n));
    }
    // A limit of exactly one estimate: the answer leaves what its cost did not use.
    let r = post(&url, "fg-flexy", &capped(false)).await;
    assert_eq!(h(&r, "x-flexgate-budget-remaining-usd").parse::<Decimal>().unwrap(), held - cost);
    // An unbudgeted client's answers carry no budget header.
    let r = post(&url, "fg-soft", &capped(false)).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-flexgate-budget-remaining-usd").is_none());
}

/// A limit below one request's estimate refuses it before anything is sent, even on a
/// fresh account; a limit of exactly one estimate admits it.
#[tokio::test]
async fn a_request_whose_estimate_does_not_fit_under_the_limit_is_refused() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let held = estimate_of(&capped(false), Tier::Standard);
    let below = held - dollars(1);
    let toml = format!(
        "{}[budgets.std]\nusd = \"{below}\"\nperiod = \"day\"\n[budgets.flexy]\nusd = \"{held}\"\nperiod = \"day\"\n",
        keys()
    );
    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let url = gw.url("/v1/chat/completions");
    let r = post(&url, "fg-std", &capped(false)).await;
    assert_eq!(h(&r, "x-flexgate-budget-remaining-usd").parse::<Decimal>().unwrap(), below);
    let (status, v) = envelope(r).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["code"], "flexgate_budget_exceeded");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("$0 spent"), "{message}");
    assert!(message.contains(&format!("may cost up to ${}", held.normalize())), "{message}");
    assert_eq!(post(&url, "fg-flexy", &capped(false)).await.status(), 200);
}

/// Nothing cuts a stream for the budget; a request is refused once its estimate no
/// longer fits beside what the stream cost.
#[tokio::test]
async fn a_stream_is_finished_and_the_next_request_refused_when_its_estimate_no_longer_fits() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let cost = standard_cost(s.addr).await;
    let held = estimate_of(&capped(true), Tier::Standard);
    let toml = format!("{}[budgets.std]\nusd = \"{}\"\nperiod = \"day\"\n", keys(), held + cost / Decimal::from(2));
    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let url = gw.url("/v1/chat/completions");
    let r = post(&url, "fg-std", &capped(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "the stream is finished, not cut: {text}");
    let r = post(&url, "fg-std", &capped(true)).await;
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
    let first = post(&url, "fg-soft", &capped(false)).await;
    assert_eq!(h(&first, "x-flexgate-tier"), "standard", "under the soft limit the class decides");
    let second = post(&url, "fg-soft", &capped(false)).await;
    assert_eq!(second.status(), 200);
    assert_eq!(h(&second, "x-flexgate-tier"), "flex");
    assert_eq!(h(&second, "x-flexgate-escalated"), "false");
}

/// 64 requests of one client at once, each slow enough to be in flight together: only as
/// many are admitted as their estimates fit under the limit, and as none costs more
/// than its estimate the spend never passes the limit. Without reservations all 64
/// would be admitted.
#[tokio::test]
async fn concurrent_requests_that_cost_no_more_than_their_estimates_stay_under_the_limit() {
    let sim_config = SimConfig { latency_standard: Duration::from_millis(300), ..SimConfig::zero_latency() };
    let (_sim, s) = spawn_sim(sim_config).await;
    let cost = standard_cost(s.addr).await;
    let limit = cost * Decimal::from(10);
    let toml = format!("{}[budgets.std]\nusd = \"{limit}\"\nperiod = \"day\"\n", keys());
    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let url = gw.url("/v1/chat/completions");
    let requests = (0..64).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { post(&url, "fg-std", &capped(false)).await.status().as_u16() })
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
    let bound: f64 = limit.to_string().parse().unwrap();
    assert!(spent <= bound + 1e-12, "spent {spent} beyond the limit {bound}");
}

#[tokio::test]
async fn spend_survives_a_restart() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let cost = standard_cost(s.addr).await;
    // Room for two costs and one estimate: three requests.
    let limit = cost * Decimal::from(2) + estimate_of(&capped(false), Tier::Standard);
    let toml = format!("{}[budgets.std]\nusd = \"{limit}\"\nperiod = \"month\"\n", keys());
    let (state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    for _ in 0..2 {
        assert_eq!(post(&gw.url("/v1/chat/completions"), "fg-std", &capped(false)).await.status(), 200);
    }
    gw.shutdown().await;
    // The store is one process's at a time: the first gateway lets go of it first.
    drop(state);

    let (_state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let (served, refusal) = until_refused(&gw.url("/v1/chat/completions"), "fg-std").await;
    assert_eq!(served, 1, "two of three were spent before the restart");
    assert_eq!(refusal.status(), 429);
}

/// A client that leaves mid-stream, before the usage chunk: its reservation is released
/// and it is charged an estimate of what was generated, its input and the content
/// streamed until it left, instead of $0 (which would let a client escape its budget by
/// hanging up just before the end).
#[tokio::test]
async fn a_client_that_abandons_a_stream_is_charged_an_estimate() {
    use futures_util::StreamExt as _;
    let sim_config = SimConfig { chunk_interval: Duration::from_millis(20), ..SimConfig::zero_latency() };
    let (_sim, s) = spawn_sim(sim_config).await;
    let toml = format!("{}[budgets.std]\nusd = \"1\"\nreserve_usd = \"0.25\"\nperiod = \"day\"\n", keys());
    let (state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let mut body = chat_body("gpt-5", true);
    body["max_tokens"] = serde_json::json!(500);
    let held = estimate_of(&body, Tier::Standard);
    let r = post(&gw.url("/v1/chat/completions"), "fg-std", &body).await;
    let left: Decimal = h(&r, "x-flexgate-budget-remaining-usd").parse().unwrap();
    assert_eq!(left, Decimal::ONE - held, "the stream holds its estimate, not `reserve_usd`");
    // Read until some content has come through (the first chunk carries only the role).
    let mut stream = r.bytes_stream();
    let mut seen = String::new();
    while seen.matches("\"content\":\"").count() < 3 {
        seen.push_str(std::str::from_utf8(&stream.next().await.unwrap().unwrap()).unwrap());
    }
    assert!(!seen.contains("[DONE]"), "left before the end: {seen}");
    drop(stream);
    let account = || {
        state.metrics.budgets.export(&state.budgets);
        let m = state.metrics.render();
        (
            metric(&m, "flexgate_budget_reserved_usd", &[("client", "std")]),
            metric(&m, "flexgate_budget_spend_usd", &[("client", "std")]),
        )
    };
    assert!(crate::poll::eventually(|| account().0 == 0.0).await, "{:?}", account());
    // More than the input alone: the streamed content is counted too; less than the
    // whole estimate, whose 500 output tokens were never all generated.
    let len = serde_json::to_vec(&body).unwrap().len() as u64;
    let input = estimate::tokens_in(len);
    let pricing = PriceTable::embedded();
    let input_only = estimate::cost(&pricing, "gpt-5", Tier::Standard, Day::today(), input, 0).unwrap();
    let spent = account().1;
    assert!(spent > dollars_f64(input_only), "spent {spent}, the input alone {input_only} nano-dollars");
    assert!(spent < held.to_string().parse::<f64>().unwrap(), "spent {spent}, the estimate {held}");
    let m = state.metrics.render();
    assert_eq!(count(&m, "flexgate_budget_estimated_total", &[("client", "std"), ("end", "abandoned")]), 1);
    assert!((metric(&m, "flexgate_budget_estimated_usd_total", &[("client", "std")]) - spent).abs() < 1e-12);
    // The cost metrics count reported usage only.
    assert!(metric(&m, "flexgate_cost_usd_total", &[]).abs() < 1e-15);
}

#[expect(clippy::cast_precision_loss, reason = "a test's comparison in USD")]
fn dollars_f64(nanos: u64) -> f64 {
    nanos as f64 / NANOS_PER_USD as f64
}

/// A stream the upstream cuts before its usage: charged an estimate, counted as `cut`.
#[tokio::test]
async fn a_stream_the_upstream_cuts_is_charged_an_estimate() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let toml = format!("{}[budgets.std]\nusd = \"1\"\nperiod = \"day\"\n", keys());
    let (state, gw) = spawn_gateway_with(s.addr, &toml, &env()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("fg-std")
        .header("x-sim-fault", "cut")
        .json(&capped(true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("upstream_stream_error") && !text.contains("[DONE]"), "{text}");
    state.metrics.budgets.export(&state.budgets);
    let m = state.metrics.render();
    let spent = metric(&m, "flexgate_budget_spend_usd", &[("client", "std")]);
    assert!(spent > 0.0, "a cut stream is not free");
    assert!(spent <= estimate_of(&capped(true), Tier::Standard).to_string().parse::<f64>().unwrap());
    assert_eq!(count(&m, "flexgate_budget_estimated_total", &[("client", "std"), ("end", "cut")]), 1);
}
