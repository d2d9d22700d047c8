//! `flexgate batch run`: upload, create, poll and download against a running gateway's
//! Batch API, with the exit code telling whether every line succeeded.

use serde_json::{Value, json};

use crate::process::{BIN, Process};

#[tokio::test]
async fn batch_run_writes_the_output_and_exits_by_the_result() {
    let (_sim, sim) = Process::sim(&["--latency-flex", "5ms", "--latency-standard", "1ms"]).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbase_url = \"http://{sim}/v1\"\nproxy = \"none\"\n\
         [store]\ndir = \"{}\"\n",
        dir.path().join("store").display()
    );
    let (_gw, addr) = Process::serve("batch-cli", &toml, &[]).await;
    let input = dir.path().join("in.jsonl");
    let lines: String = (0..5)
        .map(|i| {
            let body = json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]});
            json!({"custom_id": format!("k-{i}"), "method": "POST", "url": "/v1/chat/completions", "body": body})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&input, lines).unwrap();
    let out = dir.path().join("out.jsonl");
    let run = tokio::process::Command::new(BIN)
        .args(["batch", "run", input.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--base-url", &format!("http://{addr}/flex/v1"), "--api-key", "sk-cli", "--poll", "50ms"])
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("completed: 5 completed, 0 failed"), "{stdout}");
    let written = std::fs::read_to_string(&out).unwrap();
    let mut ids: Vec<String> = written
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["custom_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["k-0", "k-1", "k-2", "k-3", "k-4"]);

    // A file that fails validation: the problems are printed and the exit code is 1.
    std::fs::write(&input, "{broken\n").unwrap();
    let run = tokio::process::Command::new(BIN)
        .args(["batch", "run", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--endpoint"])
        .args(["/v1/chat/completions", "--base-url", &format!("http://{addr}/flex/v1"), "--poll", "50ms"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("failed") && stdout.contains("line 1"), "{stdout}");
}
