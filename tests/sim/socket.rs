//! The sim over a real socket (`serve` on 127.0.0.1:0) with reqwest: plain answers,
//! streaming, a broken stream, and a client that disconnects mid-stream.

use std::net::SocketAddr;
use std::time::Duration;

use flexgate::sim::{Sim, SimConfig, serve};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::poll::eventually;

pub struct Running {
    pub sim: Sim,
    pub base: String,
    pub stop: oneshot::Sender<()>,
    pub task: JoinHandle<std::io::Result<()>>,
}

pub async fn start() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let sim = Sim::new(SimConfig::zero_latency());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, sim.clone(), async move {
        let _ = stopped.await;
    }));
    Running { sim, base: format!("http://{addr}"), stop, task }
}

fn chat(client: &reqwest::Client, base: &str, body: &Value, fault: Option<&str>) -> reqwest::RequestBuilder {
    let request = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-test")
        .header("content-type", "application/json")
        .body(body.to_string());
    match fault {
        Some(fault) => request.header("x-sim-fault", fault),
        None => request,
    }
}

#[tokio::test]
async fn real_socket_round_trips() {
    let running = start().await;
    let client = reqwest::Client::new();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let reply = chat(&client, &running.base, &body, None).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["openai-version"], "2020-10-01");
    let json: Value = serde_json::from_slice(&reply.bytes().await.unwrap()).unwrap();
    assert_eq!(json["usage"]["total_tokens"], 4 + 16);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let text = chat(&client, &running.base, &streamed, None).send().await.unwrap().text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));

    let cut = chat(&client, &running.base, &streamed, Some("cut")).send().await.unwrap();
    assert_eq!(cut.status(), 200);
    let mut chunks = cut.bytes_stream();
    let mut received = Vec::new();
    let broke = loop {
        match chunks.next().await {
            Some(Ok(bytes)) => received.extend_from_slice(&bytes),
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    let received = String::from_utf8(received).unwrap();
    assert!(broke, "a cut stream must fail to read to the end");
    assert_eq!(received.matches("data: ").count(), 3, "the prefix arrives first: {received:?}");
    let cut = chat(&client, &running.base, &body, Some("cut")).send().await.unwrap();
    assert!(cut.bytes().await.is_err(), "a cut body must fail to read to the end");

    let unauthorized = client.get(format!("{}/v1/models", running.base)).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(running.sim.received().len(), 5);

    running.stop.send(()).unwrap();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn client_disconnect_ends_the_stream() {
    let running = start().await;
    let client = reqwest::Client::new();
    let body = json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let reply = chat(&client, &running.base, &body, Some("stall")).send().await.unwrap();
    let mut stream = reply.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert_eq!(running.sim.open_streams(), 1);
    drop(stream);
    drop(client);
    let sim = running.sim.clone();
    // Real sockets: the server needs a moment to notice the disconnect.
    assert!(eventually(move || sim.open_streams() == 0).await, "the sim's stream did not end after the client left");

    // A hanging request must not hold up shutdown beyond the grace period.
    let hang_client = reqwest::Client::new();
    let hang = chat(&hang_client, &running.base, &body, Some("hang")).send();
    let hang = tokio::spawn(hang);
    let sim = running.sim.clone();
    assert!(eventually(move || sim.received().len() == 2).await, "the hanging request never arrived");
    running.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.task).await.unwrap().unwrap().unwrap();
    let ended = hang.await.unwrap();
    assert!(ended.is_err() || ended.is_ok_and(|r| r.status() == 503), "shutdown ends a hang");
}
