//! The real binary: `check-config`, `serve` with SIGTERM draining an open stream, the
//! request log lines, and `demo`.

use std::time::Duration;

use futures_util::StreamExt;

use crate::process::{BIN, Process};

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("flexgate-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let bad = temp_file(
        "bad.toml",
        "[server]\nlisten = \"nowhere\"\nmax_body = \"huge\"\n[upstream]\nbase_url = \"not a url\"\n[log]\nformat = \"xml\"\n",
    );
    let out = std::process::Command::new(BIN).args(["check-config", bad.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for key in ["`server.listen`", "`server.max_body`", "`upstream.base_url`", "`log.format`"] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
    let good = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flexgate.toml");
    let out = std::process::Command::new(BIN)
        .args(["check-config", good.to_str().unwrap()])
        .env("OPENAI_API_KEY", "sk-should-not-print")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("sk-should-not-print"), "{text}");
    let _ = std::fs::remove_file(bad);
}

#[test]
fn check_config_refuses_what_serve_refuses() {
    // A managed key with a trailing newline, and an upstream URL too long for an HTTP
    // request: both used to pass `check-config` and stop `serve`.
    let managed =
        format!("[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"a\"\nsha256 = \"{}\"\n", "ab".repeat(32));
    let long_url =
        format!("[upstream]\nbase_url = \"http://127.0.0.1:9/{}/v1\"\nproxy = \"none\"\n", "a".repeat(70_000));
    let cases = [
        ("key.toml", managed.as_str(), "sk-should-not-print\n", "`upstream.api_key_env`"),
        ("url.toml", long_url.as_str(), "sk-fine", "`upstream.base_url`"),
    ];
    for (name, text, key, problem) in cases {
        let file = temp_file(name, &format!("{text}[server]\nlisten = \"127.0.0.1:0\"\n"));
        for command in [&["check-config", file.to_str().unwrap()][..], &["serve", "--config", file.to_str().unwrap()]] {
            let out = std::process::Command::new(BIN).args(command).env("OPENAI_API_KEY", key).output().unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.status.code(), Some(1), "{command:?}: {text}");
            assert!(text.contains(problem), "{command:?}: {problem} missing from:\n{text}");
            assert!(!text.contains("should-not-print"), "{text}");
        }
        let _ = std::fs::remove_file(file);
    }
}

#[tokio::test]
async fn sigterm_lets_an_open_stream_finish_and_logs_each_request() {
    sigterm_drains_on(1).await;
}

/// The same on tokio's work-stealing runtime (`server.threads` above 1).
#[tokio::test]
async fn sigterm_drains_on_several_threads_too() {
    sigterm_drains_on(3).await;
}

async fn sigterm_drains_on(threads: usize) {
    let (_sim, sim_addr) = Process::sim(&["--chunk-interval", "40ms", "--latency-standard", "0ms"]).await;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = \"20s\"\nthreads = {threads}\n[upstream]\nbase_url = \"http://{sim_addr}/v1\"\n[log]\nformat = \"json\"\n"
    );
    let (mut gw, gw_addr) = Process::serve(&format!("serve-{threads}"), &config, &[]).await;
    if threads > 1 {
        // Connections are handed out in turn, the first to the accepting thread: take
        // that turn, so the stream below is served (and drained) on another thread.
        drop(std::net::TcpStream::connect(&gw_addr).unwrap());
    }
    let secret = "sk-client-secret-for-log-test";
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "gpt-5", "stream": true, "max_tokens": 40, "messages": [{"role": "user", "content": "hi"}]});
    let r = client
        .post(format!("http://{gw_addr}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut text = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();

    assert!(std::process::Command::new("kill").args(["-TERM", &gw.pid()]).status().unwrap().success());
    gw.line_with("draining").await;
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "the stream completed during the drain: {text}");
    let status = tokio::time::timeout(Duration::from_secs(20), gw.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status:?}");

    let lines = gw.all.lock().clone();
    let request_line =
        lines.iter().find(|l| l.contains("\"message\":\"request\"")).unwrap_or_else(|| panic!("{lines:#?}"));
    let v: serde_json::Value = serde_json::from_str(request_line).unwrap();
    for field in ["request_id", "method", "route", "status", "duration_ms", "attempts", "class", "tier"] {
        assert!(v.get(field).is_some(), "{field} missing in {request_line}");
    }
    assert_eq!(v["status"], 200);
    assert!(lines.iter().all(|l| !l.contains(secret)), "a client key reached the log");
    assert!(lines.iter().any(|l| l.contains(&format!("threads={threads} "))), "{lines:#?}");
}

#[tokio::test]
async fn demo_prints_its_urls_and_serves() {
    let mut demo = Process::spawn(&["demo"], &[]);
    let addr = demo.addr_after("urgent lane").await;
    let body = serde_json::json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": "Hello"}]});
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/flex/v1/chat/completions"))
        .bearer_auth("sk-demo")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-flexgate-class"], "background");

    // The banner's ready batch file runs through the demo's own Batch API.
    let line = demo.line_with("flexgate batch run ").await;
    let example = line.split_whitespace().nth(3).unwrap().to_owned();
    let out = std::env::temp_dir().join(format!("flexgate-{}-demo-out.jsonl", std::process::id()));
    let run = tokio::process::Command::new(BIN)
        .args(["batch", "run", &example, "-o", out.to_str().unwrap(), "--base-url"])
        .args([&format!("http://{addr}/flex/v1"), "--api-key", "sk-demo", "--completion-window", "10m"])
        .args(["--poll", "100ms"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 8, "{stdout}");
    let _ = std::fs::remove_file(out);
}
