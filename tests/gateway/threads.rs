//! The gateway's threads (`flexgate::runtime`): connections are handed out in turn, each
//! served by its own thread's runtime, upstream connections included.

use std::collections::HashMap;

use flexgate::config::Config;
use flexgate::runtime::Workers;
use flexgate::server::Server;
use flexgate::sim::SimConfig;

#[tokio::test]
async fn connections_are_spread_over_the_threads_and_served_there() {
    let (_sim, sim_run) = crate::common::spawn_sim(SimConfig::zero_latency()).await;
    let mut config = Config::from_toml("[server]\nthreads = 3\n", &HashMap::new()).unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.upstream.base_url = format!("http://{}/v1", sim_run.addr).parse().unwrap();
    let workers = Workers::start(config.server.threads).unwrap();
    assert_eq!(workers.handles().len(), 2);
    let server = Server::bind(config).await.unwrap().with_threads(workers.handles());
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // Six clients, one keep-alive connection each, two requests on each connection.
    let clients: Vec<reqwest::Client> = (0..6).map(|_| crate::common::client()).collect();
    let body = serde_json::json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]});
    for round in 0..2 {
        for client in &clients {
            let r = client
                .post(format!("http://{addr}/flex/v1/chat/completions"))
                .bearer_auth("sk-test")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "round {round}");
            let answer: serde_json::Value = r.json().await.unwrap();
            assert_eq!(answer["service_tier"], "flex");
        }
    }
    // Each of the other threads holds the connections it was handed: two client
    // connections each (connections 2 and 5 go to thread 1, 3 and 6 to thread 2).
    for (i, handle) in workers.handles().iter().enumerate() {
        let tasks = handle.metrics().num_alive_tasks();
        assert!(tasks >= 2, "thread {} serves {tasks} tasks", i + 1);
    }
    drop(clients);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    drop(workers);
}
