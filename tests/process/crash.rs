//! `kill -9` in the middle of a batch, a restart on the same store, and completion with
//! every `custom_id` exactly once; in passthrough mode, where the key was never written
//! down, the batch resumes when the client's next poll brings it. One process per store:
//! a second one on the same folder is refused at its start.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::process::Process;

const KEY: &str = "sk-crash-test-key";

fn input(n: usize) -> String {
    (0..n)
        .map(|i| {
            let body = json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": format!("line {i}")}]});
            json!({"custom_id": format!("c-{i}"), "method": "POST", "url": "/v1/chat/completions", "body": body})
                .to_string()
                + "\n"
        })
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn batch(base: &str, id: &str) -> Value {
    client().get(format!("{base}/batches/{id}")).bearer_auth(KEY).send().await.unwrap().json().await.unwrap()
}

async fn content(base: &str, file: &Value) -> String {
    let Some(id) = file.as_str() else { return String::new() };
    let url = format!("{base}/files/{id}/content");
    client().get(url).bearer_auth(KEY).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn kill_9_mid_batch_resumes_on_the_next_poll_with_each_custom_id_once() {
    let (_sim, sim) = Process::sim(&["--latency-flex", "150ms", "--latency-standard", "10ms"]).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbase_url = \"http://{sim}/v1\"\nproxy = \"none\"\n\
         [store]\ndir = \"{}\"\n[batch]\nmax_in_flight = 4\n",
        dir.path().display()
    );
    let (mut gw, addr) = Process::serve("crash-1", &toml, &[]).await;
    let base = format!("http://{addr}/flex/v1");
    let part = reqwest::multipart::Part::bytes(input(60).into_bytes()).file_name("in.jsonl");
    let form = reqwest::multipart::Form::new().text("purpose", "batch").part("file", part);
    let r = client().post(format!("{base}/files")).bearer_auth(KEY).multipart(form).send().await.unwrap();
    let file: Value = r.json().await.unwrap();
    let body = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "10m"});
    let r = client().post(format!("{base}/batches")).bearer_auth(KEY).json(&body).send().await.unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    // Wait until some lines are done and others are not, then kill the process outright.
    loop {
        let b = batch(&base, &id).await;
        if b["request_counts"]["completed"].as_u64().unwrap_or(0) >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.child.start_kill().unwrap();
    gw.child.wait().await.unwrap();

    let (mut gw, addr) = Process::serve("crash-2", &toml, &[]).await;
    gw.line_with("resuming unfinished batches").await;
    let base = format!("http://{addr}/flex/v1");
    let resumed = batch(&base, &id).await;
    assert_eq!(resumed["status"], "in_progress", "{resumed}");
    let done = completed(&base, &id).await;
    assert_eq!(done["request_counts"], json!({"total": 60, "completed": 60, "failed": 0}), "{done}");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in content(&base, &done["output_file_id"])
        .await
        .lines()
        .chain(content(&base, &done["error_file_id"]).await.lines())
    {
        let v: Value = serde_json::from_str(line).unwrap();
        *seen.entry(v["custom_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(seen.len(), 60, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "a custom_id twice: {seen:?}");
    // The key was never written down, in the database, its journal or a file.
    for entry in std::fs::read_dir(dir.path()).unwrap().chain(std::fs::read_dir(dir.path().join("files")).unwrap()) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "{} holds the key", path.display());
        }
    }
}

/// Poll (each poll presents the key) until the batch completes.
async fn completed(base: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let b = batch(base, id).await;
        if b["status"] == "completed" {
            return b;
        }
        assert!(tokio::time::Instant::now() < deadline, "never completed: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_second_process_on_the_same_store_is_refused_at_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbase_url = \"http://127.0.0.1:9/v1\"\n[store]\ndir = \"{}\"\n",
        dir.path().display()
    );
    // The folder exists, so the first process opens the store as it starts.
    let (_first, _) = Process::serve("store-first", &toml, &[]).await;
    let path = std::env::temp_dir().join(format!("flexgate-{}-store-second.toml", std::process::id()));
    std::fs::write(&path, &toml).unwrap();
    let mut second = Process::spawn(&["serve", "--config", path.to_str().unwrap()], &[]);
    let status = tokio::time::timeout(Duration::from_secs(30), second.child.wait()).await.unwrap().unwrap();
    let _ = std::fs::remove_file(path);
    assert!(!status.success(), "the second process served on the first one's store");
    let said = second.line_with("store.dir").await;
    assert!(said.contains("in use by another flexgate process"), "{said}");
}
