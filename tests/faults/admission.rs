//! Admission control over real sockets: one controller per model shared by every request,
//! against a simulator whose rate limit counts every attempt of every tier.

use std::time::Duration;

use flexgate::sim::{FlexOutage, SimConfig};
use futures_util::future::join_all;
use tokio::time::Instant;

use crate::common::{chat_body, client, count};
use crate::memory::{Memory, memory_stack};
use crate::poll::{eventually, eventually_within};
use crate::support::{FAST_RETRY_ONLY, Stack, envelope, h, stack_with};

/// What one request's client saw.
#[derive(Debug)]
struct Seen {
    status: u16,
    tier: String,
    took: Duration,
}

/// One request sent `after` into the run, on the in-memory stack's clock.
async fn request(s: &Memory, path: &str, deadline: &str, after: Duration) -> Seen {
    tokio::time::sleep(after).await;
    let started = Instant::now();
    let r = s.post(path, &chat_body("gpt-5", false), &[("x-flexgate-deadline", deadline)]).await;
    Seen { status: r.status().as_u16(), tier: h(&r, "x-flexgate-tier"), took: started.elapsed() }
}

/// A flex storm (95 % refused) and an organisation limit shared by every tier: flex closes
/// for the model instead of every background request retrying on its own, so the limit
/// stays free for urgent requests, which all succeed at once; background requests wait
/// for flex until their latest safe start and then move to standard, all within deadline.
/// In memory on paused time: urgent requests arrive every 100 ms of the simulator's clock
/// through the storm, and how long each took is exact.
#[tokio::test(start_paused = true)]
async fn in_a_storm_sharing_a_rate_limit_urgent_requests_keep_succeeding() {
    let sim = SimConfig { flex_429_rate: 0.95, rps_limit: Some(50), ..SimConfig::zero_latency() };
    let s = memory_stack(sim, FAST_RETRY_ONLY);
    let background = (0..30).map(|_| request(&s, "/flex/v1/chat/completions", "6s", Duration::ZERO));
    let urgent = (0..10_u32).map(|i| request(&s, "/v1/chat/completions", "5s", Duration::from_millis(100) * i));
    let (background, urgent) = tokio::join!(join_all(background), join_all(urgent));
    for seen in &urgent {
        assert_eq!((seen.status, seen.tier.as_str()), (200, "standard"), "{seen:?}");
        assert!(seen.took < Duration::from_millis(100), "urgent requests are not queued: {seen:?}");
    }
    for seen in &background {
        assert_eq!(seen.status, 200, "no background request failed or missed its deadline: {seen:?}");
    }
    // Each background request: its flex attempt (or none, once flex closed), a probe now
    // and then, one standard attempt. Retrying on their own they sent 8 each.
    let sent = s.sim.received().len();
    assert!(sent <= 30 * 2 + 10 + 10, "{sent} upstream attempts for 40 requests");
    let m = s.metrics();
    assert!(count(&m, "flexgate_admission_throttled_total", &[]) > 0, "background work was held back");
}

/// Flex away for 2 s, deadlines of 20 s: the requests wait for flex instead of spending
/// their attempts, and are served on flex once it returns; only probes reach flex meanwhile.
/// In memory on paused time, so the outage is exactly 2 s of the simulator's clock.
#[tokio::test(start_paused = true)]
async fn a_flex_outage_shorter_than_the_deadline_is_waited_out_on_flex() {
    let outage = FlexOutage::parse("2s/1h").unwrap();
    let s = memory_stack(SimConfig { flex_outage: Some(outage), ..SimConfig::zero_latency() }, FAST_RETRY_ONLY);
    let started = Instant::now();
    let body = chat_body("gpt-5", false);
    let headers = [("x-flexgate-deadline", "20s")];
    let requests = (0..10).map(|_| s.post("/flex/v1/chat/completions", &body, &headers));
    for r in join_all(requests).await {
        let seen = (r.status().as_u16(), h(&r, "x-flexgate-tier"), h(&r, "x-flexgate-escalated"));
        assert_eq!(seen, (200, "flex".into(), "false".into()));
        let attempts: u32 = h(&r, "x-flexgate-attempts").parse().unwrap();
        assert!(attempts <= 3, "waiting is not paid for in attempts: {attempts}");
    }
    assert!(started.elapsed() >= Duration::from_secs(2), "served once flex returned, not before");
    let flex = s.tiers_sent().iter().filter(|t| t.as_deref() == Some("flex")).count();
    assert!(flex <= 10 + 10 + 5, "{flex} flex attempts: first tries, probes and the served ones");
}

/// Past the model's retry budget a request that may not escalate fails fast: one attempt,
/// the upstream's error passed on with `x-should-retry: false`, so the SDK does not retry
/// on its own, and `retry-after`, when a retry is likely to fit again.
#[tokio::test]
async fn past_the_retry_budget_a_request_fails_fast_saying_when_to_retry() {
    let toml = format!("{FAST_RETRY_ONLY}[admission]\nretry_budget_ratio = 0.0\nretry_budget_floor = 0.0\n");
    let s = stack_with(SimConfig::zero_latency(), &toml).await;
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "500,ok")]).await;
    assert_eq!(r.status(), 500, "the upstream's answer, not retried");
    assert_eq!(h(&r, "x-should-retry"), "false");
    let seconds: u64 = h(&r, "retry-after").parse().expect("retry-after in whole seconds");
    let millis: u64 = h(&r, "retry-after-ms").parse().expect("retry-after-ms");
    assert!(seconds >= 1 && millis > 0 && millis <= seconds * 1000, "{seconds} s, {millis} ms");
    assert_eq!(s.sim.received().len(), 1, "no retry past the budget");
}

/// Flex away for the whole test, so flex requests close it and then wait in the queue.
fn flex_gone() -> SimConfig {
    SimConfig { flex_outage: FlexOutage::parse("1h/2h").ok(), ..SimConfig::zero_latency() }
}

/// `n` flex requests with a 10-minute deadline, sent at once; `class` names their class.
fn waiting_requests(s: &Stack, n: usize, class: &str) -> Vec<impl Future<Output = reqwest::Response> + use<>> {
    (0..n)
        .map(|_| {
            let headers = [("x-flexgate-deadline", "10m"), ("x-flexgate-class", class)];
            let request = client()
                .post(s.gw.url("/flex/v1/chat/completions"))
                .bearer_auth("sk-test")
                .headers(headers.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect())
                .json(&chat_body("gpt-5", false));
            async move { request.send().await.unwrap() }
        })
        .collect()
}

fn queued(s: &Stack) -> usize {
    s.state.admission.model("gpt-5").snapshot().queued
}

/// Shutdown with requests waiting for flex: none is dropped. Those whose class may
/// escalate move to standard at once and are served; those whose class may not get their
/// flex-unavailable answer before the drain timeout is over; then the server stops.
#[tokio::test]
async fn shutdown_drains_the_requests_waiting_for_flex() {
    let toml = format!(
        "{FAST_RETRY_ONLY}[server]\ndrain_timeout = \"3s\"\n\
         [classes.interactive]\ntier = \"standard\"\n\
         [classes.background]\ntier = \"flex\"\npath_prefix = \"/flex/v1\"\n\
         [classes.patient]\ntier = \"flex\"\nescalate = \"never\"\nmax_attempts = 20\n"
    );
    let s = stack_with(flex_gone(), &toml).await;
    let escalating = join_all(waiting_requests(&s, 6, "background"));
    let patient = join_all(waiting_requests(&s, 2, "patient"));
    let answers = tokio::spawn(async move { tokio::join!(escalating, patient) });
    assert!(eventually(|| queued(&s) == 8).await, "{} requests queued", queued(&s));
    let started = Instant::now();
    s.gw.shutdown().await;
    let (escalated, patient) = answers.await.unwrap();
    for r in &escalated {
        assert_eq!(
            (r.status().as_u16(), h(r, "x-flexgate-tier"), h(r, "x-flexgate-escalated")),
            (200, "standard".into(), "true".into())
        );
    }
    for r in patient {
        assert_eq!(r.status(), 429, "flex unavailable, answered rather than dropped");
        assert_eq!(envelope(r).await.1["error"]["code"], "flex_capacity_unavailable");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "within the drain timeout: {:?}", started.elapsed());
}

/// A client that goes away while its request waits for flex takes it out of the queue at
/// once, long before its deadline.
#[tokio::test]
async fn a_queued_request_whose_client_leaves_is_out_of_the_queue_at_once() {
    let s = stack_with(flex_gone(), FAST_RETRY_ONLY).await;
    let requests = join_all(waiting_requests(&s, 6, "background"));
    tokio::select! {
        _ = requests => panic!("a request was answered while flex was away"),
        all = eventually(|| queued(&s) == 6) => assert!(all, "{} requests queued", queued(&s)),
    }
    // Leaving the select dropped the requests: their clients have gone away.
    assert!(eventually_within(Duration::from_secs(2), || queued(&s) == 0).await, "{} still queued", queued(&s));
}
