//! Clients that go away: the upstream request is cancelled promptly, and nothing is left
//! behind — in-flight gauge back to zero, no growing task count, no growing file
//! descriptor count. The only test in its binary, so `/proc/self/fd` counts its own
//! sockets and nobody else's.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code, helpers included: a failed unwrap is a failed test"
)]

#[path = "common/harness.rs"]
mod common;
#[path = "common/poll.rs"]
mod poll;

use std::collections::HashMap;
use std::time::Duration;

use common::{Running, chat_body, client, count, spawn_gateway_with, spawn_sim};
use flexgate::sim::{Sim, SimConfig};
use flexgate::state::AppState;
use futures_util::StreamExt;
use poll::eventually;

/// Sockets, pipes and files this process holds open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Tasks alive on this test's runtime: the sim's and the gateway's connection tasks and
/// anything they spawned (stable tokio metrics, no `tokio_unstable` needed).
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Open `n` streams, read the first chunk of each, then drop the client and every stream.
async fn abandon_streams(gw: &Running, n: usize) {
    let c = client();
    let mut body = chat_body("gpt-5", true);
    body["max_tokens"] = serde_json::json!(2000);
    let mut open = Vec::new();
    for _ in 0..n {
        let r = c.post(gw.url("/v1/chat/completions")).bearer_auth("sk-test").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let mut stream = r.bytes_stream();
        stream.next().await.unwrap().unwrap();
        open.push(stream);
    }
    drop(open);
    drop(c);
}

/// Send requests the simulator never answers, and give up on them once they all reached it.
async fn abandon_hanging(gw: &Running, sim: &Sim, n: usize) {
    let c = client();
    let before = sim.received().len();
    let requests = (0..n).map(|_| {
        c.post(gw.url("/flex/v1/chat/completions"))
            .bearer_auth("sk-test")
            .header("x-sim-fault", "hang")
            .json(&chat_body("gpt-5", false))
            .send()
    });
    let all = futures_util::future::join_all(requests);
    tokio::select! {
        _ = all => panic!("a hanging request was answered"),
        reached = eventually(|| sim.received().len() == before + n) => {
            assert!(reached, "the hanging requests never reached the simulator");
        }
    }
    // Leaving the select dropped every request future: the client has gone away.
}

fn settled(sim: &Sim, state: &AppState, cancelled: u64) -> bool {
    let m = state.metrics.render();
    sim.open_streams() == 0
        && count(&m, "flexgate_inflight_requests", &[]) == 0
        && count(&m, "flexgate_requests_total", &[("outcome", "cancelled")]) == cancelled
}

#[tokio::test]
async fn clients_leaving_cancel_the_upstream_promptly_and_leak_nothing() {
    let mut config = SimConfig::zero_latency();
    // 2000 tokens at 20 ms a chunk: each stream would run for tens of seconds.
    config.chunk_interval = Duration::from_millis(20);
    let (sim, sim_run) = spawn_sim(config).await;
    // The shipped 15-minute attempt timeout: only cancellation can end a hanging attempt.
    let (state, gw) = spawn_gateway_with(sim_run.addr, "", &HashMap::new()).await;

    // Warm-up: the same work once, so pools and lazily created state exist for the baseline.
    abandon_streams(&gw, 20).await;
    abandon_hanging(&gw, &sim, 20).await;
    assert!(eventually(|| settled(&sim, &state, 40)).await);
    let (tasks, fds) = (alive_tasks(), open_fds());

    let mut cancelled = 40;
    // "Promptly": well before any timeout could end them (streams run for tens of
    // seconds, the attempt timeout is 15 minutes), however busy the machine.
    for round in 0..3 {
        abandon_streams(&gw, 20).await;
        cancelled += 20;
        assert!(
            eventually(|| settled(&sim, &state, cancelled)).await,
            "round {round}: upstream streams not cancelled: open {}\n{}",
            sim.open_streams(),
            state.metrics.render()
        );
        abandon_hanging(&gw, &sim, 20).await;
        cancelled += 20;
        assert!(
            eventually(|| settled(&sim, &state, cancelled)).await,
            "round {round}: hanging attempts outlived their clients\n{}",
            state.metrics.render()
        );
        assert!(
            eventually(|| alive_tasks() <= tasks && open_fds() <= fds).await,
            "round {round}: tasks {} (baseline {tasks}), fds {} (baseline {fds})",
            alive_tasks(),
            open_fds()
        );
    }
    let received = sim.received();
    assert_eq!(received.len(), 160, "one upstream request per client request, none replayed");
    gw.shutdown().await;
}
