//! Budgets shared across replicas through a real `redis-server` (Debian's package,
//! installed by `tests/redis/install.sh` when missing, started here on a free port and
//! stopped by pid): two gateway processes on one Redis enforce one limit, and a gateway
//! whose Redis is killed mid-run keeps serving (`fail = "open"`), says so, and writes its
//! count back when an empty Redis returns on the same port.

use std::time::Duration;

use rust_decimal::Decimal;

use crate::common::{chat_body, client};
use crate::poll;
use crate::process::Process;
use crate::redis_server::{PASSWORD, Redis};

/// A gateway with managed auth and one budgeted client `team` (key `fg-team`).
fn config(sim: &str, budget: &str) -> String {
    let dir = tempfile::tempdir().unwrap().keep();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbase_url = \"http://{sim}/v1\"\n[store]\ndir = \"{}\"\n\
         [auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"team\"\nenv = \"KEY_TEAM\"\n[budgets.team]\n{budget}",
        dir.display()
    )
}

async fn serve(name: &str, toml: &str, redis: &str) -> (Process, String) {
    let env = [("OPENAI_API_KEY", "sk-up"), ("KEY_TEAM", "fg-team"), ("FLEXGATE_REDIS_URL", redis)];
    Process::serve(name, toml, &env).await
}

/// One chat request: its status and what it cost (0 when refused). Capped at the 16
/// output tokens the simulator writes anyway, so what it holds in flight (its estimate,
/// about $0.0002) stays near its cost and below `reserve_usd`.
async fn chat(addr: &str) -> (u16, Decimal) {
    let mut body = chat_body("gpt-5", false);
    body["max_completion_tokens"] = serde_json::json!(16);
    let r = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth("fg-team")
        .json(&body)
        .send()
        .await
        .unwrap();
    let cost = r.headers().get("x-flexgate-cost-usd").and_then(|v| v.to_str().ok()?.parse().ok());
    (r.status().as_u16(), cost.unwrap_or_default())
}

async fn get(addr: &str, path: &str) -> String {
    client().get(format!("http://{addr}{path}")).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn two_replicas_on_one_redis_share_one_budget() {
    let redis = Redis::start(0).await;
    let (_sim, sim) = Process::sim(&["--latency-standard", "0ms", "--latency-flex", "0ms"]).await;
    let limit = Decimal::new(2, 2);
    // Each replica has a store of its own, as on separate hosts.
    let budget = format!("usd = \"{limit}\"\nperiod = \"day\"\nreserve_usd = \"0.0005\"\n");
    let (_a, a) = serve("shared-a", &config(&sim, &budget), &redis.url()).await;
    let (_b, b) = serve("shared-b", &config(&sim, &budget), &redis.url()).await;

    // One request at a time, alternating, until both replicas have refused 20 rounds in
    // a row after Redis had granted the whole limit (a replica out of slice asks Redis
    // for more in the background, so a refusal alone may come before its next slice).
    let (mut spent, mut served, mut largest) = (Decimal::ZERO, 0_u32, Decimal::ZERO);
    let limit_nanos = u64::try_from(limit * Decimal::from(1_000_000_000_u64)).unwrap();
    let (mut refusing, mut granted_all) = (0, false);
    loop {
        if refusing >= 20 {
            if granted_all {
                break;
            }
            granted_all = redis.counted("team") >= limit_nanos;
            refusing = 0;
        }
        let mut refused = 0;
        for addr in [&a, &b] {
            let (status, cost) = chat(addr).await;
            match status {
                200 => {
                    spent += cost;
                    served += 1;
                    largest = largest.max(cost);
                }
                429 => refused += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        refusing = if refused == 2 { refusing + 1 } else { 0 };
        assert!(served < 1000, "never refused");
    }
    assert!(limit >= largest * Decimal::from(10), "a request costs {largest}: too much for this limit");
    // Alone, each replica would have spent the whole limit: twice it in all.
    assert!(spent < limit + largest * Decimal::from(2), "{served} served for ${spent} past the ${limit} limit");
    assert!(spent >= limit, "only ${spent} of ${limit} served");
    let counted = Decimal::from(redis.counted("team")) / Decimal::from(1_000_000_000_u64);
    assert!(counted >= limit && counted <= spent, "Redis counts ${counted}, the replicas spent ${spent}");
    // Each replica's metrics show the client's spend on both: its own and the other's.
    for addr in [&a, &b] {
        let shown = metric_until(addr, "flexgate_budget_spend_usd{client=\"team\"}", spent).await;
        assert!((shown - spent).abs() < Decimal::new(1, 9), "{addr} shows ${shown} of ${spent} spent");
    }
}

/// A metric's value once it equals `want` (within 1e-9), polled for at most [`poll::PATIENCE`].
async fn metric_until(addr: &str, series: &str, want: Decimal) -> Decimal {
    let deadline = tokio::time::Instant::now() + poll::PATIENCE;
    loop {
        let text = get(addr, "/metrics").await;
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .and_then(|v| Decimal::try_from(v).ok())
            .unwrap_or_default();
        if (value - want).abs() < Decimal::new(1, 9) || tokio::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_requests_on_two_replicas_overshoot_by_at_most_the_reservations() {
    let redis = Redis::start(0).await;
    // Requests take 20 ms upstream, so many are in flight on each replica at once.
    let (_sim, sim) = Process::sim(&["--latency-standard", "20ms", "--latency-flex", "0ms"]).await;
    let (limit, reserve) = (Decimal::new(2, 2), Decimal::new(5, 4));
    let budget = format!("usd = \"{limit}\"\nperiod = \"day\"\nreserve_usd = \"{reserve}\"\n");
    let (_a, a) = serve("shared-many-a", &config(&sim, &budget), &redis.url()).await;
    let (_b, b) = serve("shared-many-b", &config(&sim, &budget), &redis.url()).await;
    let workers: Vec<_> = (0..64)
        .map(|i| {
            let addr = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let (mut spent, mut largest, mut refused_in_a_row) = (Decimal::ZERO, Decimal::ZERO, 0);
                // Each worker stops once its replica has refused it 20 times in a row.
                while refused_in_a_row < 20 {
                    match chat(&addr).await {
                        (200, cost) => {
                            spent += cost;
                            largest = largest.max(cost);
                            refused_in_a_row = 0;
                        }
                        (429, _) => refused_in_a_row += 1,
                        (other, _) => panic!("unexpected status {other}"),
                    }
                }
                (spent, largest)
            })
        })
        .collect();
    let (mut spent, mut largest) = (Decimal::ZERO, Decimal::ZERO);
    for w in workers {
        let (s, l) = w.await.unwrap();
        spent += s;
        largest = largest.max(l);
    }
    assert!(largest <= reserve, "a request cost {largest}, more than `reserve_usd`");
    // Each replica stays within its slices plus one request's estimate (below
    // `reserve_usd` here); the slices within the limit.
    assert!(spent <= limit + reserve * Decimal::from(2), "${spent} spent against a ${limit} limit");
    // Slices leased but unused when a worker gave up go unserved; most of the limit is spent.
    assert!(spent >= limit / Decimal::from(2), "only ${spent} of ${limit} served");
}

#[tokio::test]
async fn redis_killed_mid_run_fails_no_request_and_the_count_comes_back() {
    let redis = Redis::start(0).await;
    let port = redis.port;
    let (_sim, sim) = Process::sim(&["--latency-standard", "0ms", "--latency-flex", "0ms"]).await;
    // Slices of $0.0005, a few requests each: the 50 requests served while Redis is down
    // are many slices' worth, served on the local count of the whole limit.
    let toml = config(&sim, "usd = \"0.05\"\nperiod = \"day\"\nreserve_usd = \"0.0001\"\nfail = \"open\"\n");
    let (gw_process, gw) = serve("shared-faults", &toml, &redis.url()).await;
    let readyz = get(&gw, "/readyz").await;
    assert!(readyz.contains("redis: up"), "{readyz}");
    assert!(get(&gw, "/metrics").await.contains("flexgate_shared_state_up{backend=\"redis\"} 1"));

    let mut spent = Decimal::ZERO;
    for _ in 0..20 {
        let (status, cost) = chat(&gw).await;
        assert_eq!(status, 200);
        spent += cost;
    }
    redis.kill();
    for _ in 0..50 {
        let (status, cost) = chat(&gw).await;
        assert_eq!(status, 200, "a request failed while Redis was down");
        spent += cost;
    }
    let down = ready_until(&gw, "unreachable").await;
    assert!(down.contains("unreachable"), "/readyz never said Redis is unreachable: {down}");
    assert!(get(&gw, "/metrics").await.contains("flexgate_shared_state_up{backend=\"redis\"} 0"));
    let (status, cost) = chat(&gw).await;
    assert_eq!(status, 200);
    spent += cost;

    // Redis returns on the same port with its data lost: the replica writes its count back.
    let redis = Redis::start(port).await;
    let spent_nanos = u64::try_from((spent * Decimal::from(1_000_000_000_u64)).ceil()).unwrap();
    let back = poll::eventually(|| redis.counted("team") >= spent_nanos).await;
    assert!(back, "Redis counts {} nano-dollars, the replica spent {spent_nanos}", redis.counted("team"));
    let up = ready_until(&gw, "redis: up").await;
    assert!(up.contains("redis: up"), "{up}");
    let log = gw_process.all.lock().join("\n");
    assert!(log.contains("Redis unreachable") && log.contains("Redis reachable"), "{log}");
    assert!(!log.contains(PASSWORD), "Redis's password in the log:\n{log}");
}

#[tokio::test]
async fn a_hung_redis_fails_no_request_and_is_used_again_when_it_answers() {
    let redis = Redis::start(0).await;
    let (_sim, sim) = Process::sim(&["--latency-standard", "0ms", "--latency-flex", "0ms"]).await;
    let toml = config(&sim, "usd = \"0.05\"\nperiod = \"day\"\nreserve_usd = \"0.0001\"\n");
    let (_gw, gw) = serve("shared-hung", &toml, &redis.url()).await;
    assert!(get(&gw, "/readyz").await.contains("redis: up"));
    let mut spent = Decimal::ZERO;
    // The client is busy: its slices grow to its pace.
    for _ in 0..30 {
        let (status, cost) = chat(&gw).await;
        assert_eq!(status, 200);
        spent += cost;
    }
    // Redis stops answering without closing anything, mid-run: requests go on from the
    // slice in hand and then from local state (each would otherwise wait for a call that
    // never returns).
    redis.pause();
    for _ in 0..30 {
        let (status, cost) = chat(&gw).await;
        assert_eq!(status, 200, "a request failed while Redis hung");
        spent += cost;
    }
    let down = ready_until(&gw, "unreachable").await;
    assert!(down.contains("unreachable"), "/readyz never said Redis hung: {down}");
    assert!(get(&gw, "/metrics").await.contains("flexgate_shared_state_up{backend=\"redis\"} 0"));
    let (status, cost) = chat(&gw).await;
    assert_eq!(status, 200);
    spent += cost;
    // Answering again, Redis is used again and counts what was spent meanwhile.
    redis.resume();
    let up = ready_until(&gw, "redis: up").await;
    assert!(up.contains("redis: up"), "{up}");
    let spent_nanos = u64::try_from((spent * Decimal::from(1_000_000_000_u64)).ceil()).unwrap();
    let counted = poll::eventually(|| redis.counted("team") >= spent_nanos).await;
    assert!(counted, "Redis counts {} nano-dollars, the replica spent {spent_nanos}", redis.counted("team"));
}

#[tokio::test]
async fn fail_closed_refuses_once_the_leased_slice_is_spent_while_redis_is_down() {
    let redis = Redis::start(0).await;
    let (_sim, sim) = Process::sim(&["--latency-standard", "0ms", "--latency-flex", "0ms"]).await;
    let toml = config(&sim, "usd = \"0.05\"\nperiod = \"day\"\nreserve_usd = \"0.0001\"\nfail = \"closed\"\n");
    let (_gw, gw) = serve("shared-closed", &toml, &redis.url()).await;
    assert_eq!(chat(&gw).await.0, 200);
    redis.kill();
    let down = ready_until(&gw, "unreachable").await;
    assert!(down.contains("unreachable"), "{down}");
    // What is left of the $0.0005 slice is a few requests; then refusals in the quota shape.
    let mut served = 0;
    while chat(&gw).await.0 == 200 {
        served += 1;
        assert!(served < 10, "still served past the leased slice");
    }
    let r = client()
        .post(format!("http://{gw}/v1/chat/completions"))
        .bearer_auth("fg-team")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("flexgate_budget_exceeded"));
}

#[tokio::test]
async fn a_replica_restarted_with_its_store_keeps_its_one_field() {
    let redis = Redis::start(0).await;
    let (_sim, sim) = Process::sim(&["--latency-standard", "0ms", "--latency-flex", "0ms"]).await;
    let toml = config(&sim, "usd = \"1\"\nperiod = \"day\"\n");
    let replicas = |spend: bool| redis.fields("team").iter().filter(|(f, _)| f.starts_with("s:") == spend).count();
    for run in ["first", "second"] {
        let (mut gw, addr) = serve(&format!("shared-restart-{run}"), &toml, &redis.url()).await;
        assert_eq!(chat(&addr).await.0, 200);
        let _ = gw.child.kill().await;
    }
    // Spend restored from the store is counted under the replica's own fields again (its
    // count and its spend), not a second time under new ones.
    assert_eq!((replicas(false), replicas(true) <= 1), (1, true), "{:?}", redis.fields("team"));
}

/// `/readyz` once it contains `needle`, polled for at most [`poll::PATIENCE`].
async fn ready_until(addr: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + poll::PATIENCE;
    loop {
        let text = get(addr, "/readyz").await;
        if text.contains(needle) || tokio::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
