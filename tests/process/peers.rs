//! The admission controller's view shared across replicas through a real `redis-server`:
//! a rate-limit wait one gateway learned from its 429 holds the other gateway's requests,
//! and flex closed by one keeps the other's flex requests off it. Each is a claim about
//! what the upstream receives, read from the second gateway's own attempt counters.

use crate::common::{Samples as _, chat_body, client};
use crate::poll;
use crate::process::Process;
use crate::redis_server::Redis;

/// Two classes with short deadlines, and flex closing at its first refusal with probes
/// far apart (so that no probe comes within a test: closed is closed).
fn config(sim: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbase_url = \"http://{sim}/v1\"\n\
         [store]\ndir = \"{}\"\n\
         [classes.interactive]\ntier = \"standard\"\ndeadline = \"2s\"\nmax_attempts = 3\n\
         [classes.background]\ntier = \"flex\"\ndeadline = \"4s\"\nescalate = \"standard\"\n\
         escalate_reserve = \"2s\"\nmax_attempts = 8\npath_prefix = \"/flex/v1\"\n\
         [admission]\nflex_close_after = 1\nflex_probe_base = \"30s\"\nflex_probe_max = \"60s\"\n",
        tempfile::tempdir().unwrap().keep().display()
    )
}

async fn replicas(name: &str, sim: &str, redis: &Redis) -> [(Process, String); 2] {
    let env = [("OPENAI_API_KEY", "sk-up"), ("FLEXGATE_REDIS_URL", &redis.url())];
    // A store (and so a replica name) of each one's own, as on two hosts.
    let a = Process::serve(&format!("{name}-a"), &config(sim), &env).await;
    let b = Process::serve(&format!("{name}-b"), &config(sim), &env).await;
    for (_, addr) in [&a, &b] {
        let up = eventually(|| async { metrics(addr).await.count("flexgate_shared_state_up", &[]) == 1 });
        assert!(up.await, "{addr} never reached Redis");
    }
    [a, b]
}

/// Poll an awaited `check` until it holds, for at most [`poll::PATIENCE`]; whether it held.
async fn eventually<F: Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + poll::PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    check().await
}

async fn metrics(addr: &str) -> String {
    client().get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap()
}

/// One chat request on `path` (`/v1` or `/flex/v1`): its status and the tier that served.
async fn chat(addr: &str, path: &str) -> (u16, String) {
    let r = client()
        .post(format!("http://{addr}{path}/chat/completions"))
        .bearer_auth("sk-client")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    let tier = r.headers().get("x-flexgate-tier").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (r.status().as_u16(), tier)
}

/// Wait until `addr` has heard `n` notes of `kind` from the other replica.
async fn heard(addr: &str, kind: &str, n: u64) {
    let labels = [("direction", "received"), ("kind", kind)];
    let got = eventually(|| async { metrics(addr).await.count("flexgate_shared_admission_notes_total", &labels) >= n });
    assert!(got.await, "{addr} never heard {kind}:\n{}", metrics(addr).await);
}

/// A background request on a replica whose flex refuses everything: the refusal closes
/// flex, and the request moves to standard at its latest safe start.
async fn close_flex_on(addr: &str) {
    assert_eq!(chat(addr, "/flex/v1").await, (200, "standard".to_owned()));
}

fn attempts(text: &str, tier: &str) -> u64 {
    text.count("flexgate_upstream_attempts_total", &[("tier", tier)])
}

#[tokio::test]
async fn a_rate_limit_wait_learned_by_one_replica_holds_the_other() {
    let redis = Redis::start(0).await;
    // Two requests a minute for the whole organisation.
    let (_sim, sim) = Process::sim(&["--latency-standard", "0ms", "--rpm-limit", "2"]).await;
    let [(_a, a), (_b, b)] = replicas("peers-rate", &sim, &redis).await;

    // Another client of the organisation uses the minute's two requests directly.
    for _ in 0..2 {
        let r = client().post(format!("http://{sim}/v1/chat/completions")).bearer_auth("sk-up");
        assert_eq!(r.json(&chat_body("gpt-5", false)).send().await.unwrap().status(), 200);
    }
    // A learns the wait from a 429 (its request cannot wait a minute within 2 s).
    let (status, _) = chat(&a, "/v1").await;
    assert_ne!(status, 200);
    let a_metrics = metrics(&a).await;
    assert_eq!(a_metrics.count("flexgate_upstream_attempts_total", &[("result", "rate_limit")]), 1, "{a_metrics}");

    // B hears it and holds its own request instead of spending an attempt on a 429.
    heard(&b, "rate_limit", 1).await;
    let (status, _) = chat(&b, "/v1").await;
    assert_ne!(status, 200);
    let b_metrics = metrics(&b).await;
    assert_eq!(attempts(&b_metrics, "standard"), 0, "B sent an attempt into the known wait:\n{b_metrics}");
    let held = [("reason", "rate_limit")];
    assert_eq!(b_metrics.count("flexgate_admission_throttled_total", &held), 1, "{b_metrics}");
    // The wait is kept in Redis for replicas that join later, until it ends: a third
    // replica started now holds its requests too.
    let keys = redis.cli(&["--raw", "KEYS", "flexgate:admission:*:gpt-5:rate"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    let env = [("OPENAI_API_KEY", "sk-up"), ("FLEXGATE_REDIS_URL", &redis.url())];
    let (_c, c) = Process::serve("peers-rate-c", &config(&sim), &env).await;
    heard(&c, "rate_limit", 1).await;
    assert_ne!(chat(&c, "/v1").await.0, 200);
    assert_eq!(attempts(&metrics(&c).await, "standard"), 0);
}

#[tokio::test]
async fn flex_closed_by_one_replica_keeps_the_others_flex_requests_off_it() {
    let redis = Redis::start(0).await;
    // Flex refuses everything; standard answers.
    let flags = ["--latency-standard", "0ms", "--latency-flex", "0ms", "--flex-429-rate", "1"];
    let (_sim, sim) = Process::sim(&flags).await;
    let [(_a, a), (_b, b)] = replicas("peers-flex", &sim, &redis).await;

    // A background request on A is refused: A closes flex and tells the others.
    close_flex_on(&a).await;
    let told = [("direction", "sent"), ("kind", "flex_closed")];
    let sent = eventually(|| async { metrics(&a).await.count("flexgate_shared_admission_notes_total", &told) == 1 });
    assert!(sent.await, "A never told the others");
    let a_metrics = metrics(&a).await;
    assert_eq!(attempts(&a_metrics, "flex"), 1, "{a_metrics}");

    // B heard it: its background request goes to standard without a flex attempt.
    heard(&b, "flex_closed", 1).await;
    assert_eq!(chat(&b, "/flex/v1").await, (200, "standard".to_owned()));
    let b_metrics = metrics(&b).await;
    assert_eq!(attempts(&b_metrics, "flex"), 0, "B sent a flex attempt to a closed flex:\n{b_metrics}");
    assert_eq!(attempts(&b_metrics, "standard"), 1, "{b_metrics}");
    let held = [("reason", "flex_closed")];
    assert_eq!(b_metrics.count("flexgate_admission_throttled_total", &held), 1, "{b_metrics}");
    // A heard its own note on the channel too, and ignored it.
    let own = [("direction", "received")];
    assert_eq!(metrics(&a).await.count("flexgate_shared_admission_notes_total", &own), 0);
}

#[tokio::test]
async fn after_redis_restarts_empty_the_replicas_hear_each_other_again() {
    let redis = Redis::start(0).await;
    let port = redis.port;
    let flags = ["--latency-standard", "0ms", "--latency-flex", "0ms", "--flex-429-rate", "1"];
    let (_sim, sim) = Process::sim(&flags).await;
    let [(_a, a), (_b, b)] = replicas("peers-restart", &sim, &redis).await;
    redis.kill();
    for addr in [&a, &b] {
        let down = eventually(|| async { metrics(addr).await.count("flexgate_shared_state_up", &[]) == 0 });
        assert!(down.await, "{addr} never noticed Redis gone");
    }
    let redis = Redis::start(port).await;
    for addr in [&a, &b] {
        let up = eventually(|| async { metrics(addr).await.count("flexgate_shared_state_up", &[]) == 1 });
        assert!(up.await, "{addr} never noticed Redis back");
    }
    // A's subscription and B's came back with Redis: a note from A reaches B. (A note
    // sent before B subscribed again would reach it through the key B reads then.)
    close_flex_on(&a).await;
    heard(&b, "flex_closed", 1).await;
    assert_eq!(chat(&b, "/flex/v1").await, (200, "standard".to_owned()));
    assert_eq!(attempts(&metrics(&b).await, "flex"), 0);
    drop(redis);
}
