//! The batch flow as an SDK drives it: upload, create, poll, download; validation
//! failures with line numbers; unknown ids; cancel; each client sees only its own.

use std::collections::HashMap;
use std::time::Duration;

use flexgate::sim::SimConfig;
use serde_json::Value;

use crate::common::{client, envelope, spawn_gateway_with, spawn_sim};
use crate::support::{create, custom_ids, get, input, lines, until, upload};

const KEY: &str = "sk-client-a";

/// The simulator (zero latency unless `sim` says otherwise) and a gateway on a fresh store.
async fn stack(sim: SimConfig, toml: &str) -> (tempfile::TempDir, crate::common::Running, crate::common::Running) {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, sim_run) = spawn_sim(sim).await;
    let text = format!("[store]\ndir = \"{}\"\n{toml}", dir.path().display());
    let (_state, gw) = spawn_gateway_with(sim_run.addr, &text, &HashMap::new()).await;
    (dir, sim_run, gw)
}

#[tokio::test]
async fn upload_create_poll_download() {
    let (dir, _sim, gw) = stack(SimConfig::zero_latency(), "").await;
    let base = gw.url("/flex/v1");
    let r = upload(&base, KEY, "in.jsonl", "batch", input(30, "gpt-5-mini")).await;
    assert_eq!(r.status(), 200);
    let file: Value = r.json().await.unwrap();
    assert_eq!((file["object"].as_str(), file["purpose"].as_str()), (Some("file"), Some("batch")));
    assert!(file["id"].as_str().unwrap().starts_with("file-"));
    let id = file["id"].as_str().unwrap();
    // The file is listed, retrievable, and its content is the bytes uploaded.
    let listed: Value = get(&format!("{base}/files?purpose=batch"), KEY).await.json().await.unwrap();
    assert_eq!(listed["data"][0]["id"], id);
    let content = get(&format!("{base}/files/{id}/content"), KEY).await.text().await.unwrap();
    assert_eq!(content, input(30, "gpt-5-mini"));

    let batch = create(&base, KEY, id, "10m").await;
    assert_eq!(batch["status"], "validating");
    assert!(batch["id"].as_str().unwrap().starts_with("batch_"));
    let done =
        until(&base, KEY, batch["id"].as_str().unwrap(), &["completed", "failed"], Duration::from_secs(30)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"], serde_json::json!({"total": 30, "completed": 30, "failed": 0}));
    assert!(done["usage"]["input_tokens"].as_u64().unwrap() > 0, "{done}");
    assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0, "{done}");
    assert!(done["error_file_id"].is_null() && done["output_file_id"].is_string(), "{done}");
    for field in ["in_progress_at", "finalizing_at", "completed_at", "expires_at"] {
        assert!(done[field].is_i64(), "{field}: {done}");
    }
    assert_eq!(done["metadata"]["job"], "test");
    let output = lines(&base, KEY, &done["output_file_id"]).await;
    assert_eq!(output.len(), 30);
    let first = &output[0];
    assert!(first["id"].as_str().unwrap().starts_with("batch_req_"));
    assert_eq!(first["response"]["status_code"], 200);
    assert_eq!(first["response"]["body"]["object"], "chat.completion");
    assert!(first["response"]["request_id"].is_string() && first["error"].is_null(), "{first}");
    let seen = custom_ids(&base, KEY, &done).await;
    assert_eq!(seen.len(), 30);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    // Lines ran on flex, as the batch class's requests.
    assert_eq!(first["response"]["body"]["service_tier"], "flex", "{first}");

    // The store holds no key: not in the database, not in a file.
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "{} holds the key", entry.display());
    }

    // Delete: gone from retrieve.
    let r = client().delete(format!("{base}/files/{id}")).bearer_auth(KEY).send().await.unwrap();
    let deleted: Value = r.json().await.unwrap();
    assert_eq!(deleted["deleted"], true);
    let (status, e) = envelope(get(&format!("{base}/files/{id}"), KEY).await).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["message"], format!("No such File object: {id}"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { found.extend(walk(&path)) } else { found.push(path) }
    }
    found
}

#[tokio::test]
async fn validation_failures_name_their_lines() {
    let (_dir, _sim, gw) = stack(SimConfig::zero_latency(), "").await;
    let base = gw.url("/flex/v1");
    let mut text = input(3, "gpt-5-mini");
    text.push_str("{not json\n");
    text.push_str(&input(1, "gpt-5-mini")); // req-0 again
    let file: Value = upload(&base, KEY, "bad.jsonl", "batch", text).await.json().await.unwrap();
    let batch = create(&base, KEY, file["id"].as_str().unwrap(), "24h").await;
    let failed =
        until(&base, KEY, batch["id"].as_str().unwrap(), &["failed", "completed"], Duration::from_secs(10)).await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["failed_at"].is_i64());
    let data = &failed["errors"]["data"];
    assert_eq!(data[0]["code"], "invalid_json_line");
    assert_eq!(data[0]["line"], 4);
    assert_eq!(data[1]["code"], "duplicate_custom_id");
    assert_eq!(data[1]["line"], 5);
    assert_eq!(failed["request_counts"]["total"], 0);

    // Not JSONL, a wrong purpose, an unknown file or batch: clear 400s and 404s.
    let (status, _) = envelope(upload(&base, KEY, "notes.txt", "batch", "hello".into()).await).await;
    assert_eq!(status, 400);
    let other: Value = upload(&base, KEY, "a.jsonl", "user_data", input(1, "m")).await.json().await.unwrap();
    let body = serde_json::json!({"input_file_id": other["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let r = client().post(format!("{base}/batches")).bearer_auth(KEY).json(&body).send().await.unwrap();
    assert_eq!(envelope(r).await.0, 400);
    let body = serde_json::json!({"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let r = client().post(format!("{base}/batches")).bearer_auth(KEY).json(&body).send().await.unwrap();
    assert_eq!(envelope(r).await.0, 404);
    let body = serde_json::json!({"input_file_id": other["id"], "endpoint": "/v1/images", "completion_window": "24h"});
    let r = client().post(format!("{base}/batches")).bearer_auth(KEY).json(&body).send().await.unwrap();
    let (status, e) = envelope(r).await;
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("endpoint")));
    let (status, e) = envelope(get(&format!("{base}/batches/batch_nope"), KEY).await).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["message"], "No batch found with id 'batch_nope'.");
}

#[tokio::test]
async fn cancel_keeps_finished_lines_and_accounts_for_every_custom_id() {
    let sim = SimConfig { latency_flex: Duration::from_millis(300), ..SimConfig::zero_latency() };
    let (_dir, _sim, gw) = stack(sim, "[batch]\nmax_in_flight = 2\n").await;
    let base = gw.url("/flex/v1");
    let file: Value = upload(&base, KEY, "in.jsonl", "batch", input(40, "gpt-5-mini")).await.json().await.unwrap();
    let batch = create(&base, KEY, file["id"].as_str().unwrap(), "1h").await;
    let id = batch["id"].as_str().unwrap();
    let running = until(&base, KEY, id, &["in_progress"], Duration::from_secs(10)).await;
    assert_eq!(running["request_counts"]["total"], 40);
    let r = client().post(format!("{base}/batches/{id}/cancel")).bearer_auth(KEY).send().await.unwrap();
    let cancelling: Value = r.json().await.unwrap();
    assert!(matches!(cancelling["status"].as_str(), Some("cancelling" | "cancelled")), "{cancelling}");
    assert!(cancelling["cancelling_at"].is_i64());
    let done = until(&base, KEY, id, &["cancelled"], Duration::from_secs(10)).await;
    let counts = &done["request_counts"];
    assert!(counts["completed"].as_u64().unwrap() < 40, "the cancel stopped new lines: {done}");
    assert_eq!(counts["completed"].as_u64().unwrap() + counts["failed"].as_u64().unwrap(), 40, "{done}");
    let seen = custom_ids(&base, KEY, &done).await;
    assert_eq!(seen.len(), 40);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    let errors = lines(&base, KEY, &done["error_file_id"]).await;
    assert!(errors.iter().any(|l| l["error"]["code"] == "batch_cancelled"), "{errors:?}");
}

#[tokio::test]
async fn a_client_sees_only_its_own_files_and_batches() {
    let (_dir, _sim, gw) = stack(SimConfig::zero_latency(), "").await;
    let base = gw.url("/flex/v1");
    let file: Value = upload(&base, KEY, "in.jsonl", "batch", input(2, "gpt-5-mini")).await.json().await.unwrap();
    let id = file["id"].as_str().unwrap();
    let batch = create(&base, KEY, id, "24h").await;
    let other = "sk-client-b";
    assert_eq!(get(&format!("{base}/files/{id}"), other).await.status(), 404);
    assert_eq!(get(&format!("{base}/batches/{}", batch["id"].as_str().unwrap()), other).await.status(), 404);
    let listed: Value = get(&format!("{base}/batches"), other).await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 0);
    let listed: Value = get(&format!("{base}/batches?limit=1"), KEY).await.json().await.unwrap();
    assert_eq!(listed["data"][0]["id"], batch["id"]);
}

#[tokio::test]
async fn managed_mode_runs_lines_with_the_upstream_key_and_keeps_clients_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, sim_run) = spawn_sim(SimConfig::zero_latency()).await;
    let env: HashMap<String, String> = [("OPENAI_API_KEY", "sk-upstream"), ("KEY_A", "gk-a"), ("KEY_B", "gk-b")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let text = format!(
        "[store]\ndir = \"{}\"\n[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"a\"\nenv = \"KEY_A\"\n\
         [[auth.keys]]\nclient = \"b\"\nenv = \"KEY_B\"\n",
        dir.path().display()
    );
    let (_state, gw) = spawn_gateway_with(sim_run.addr, &text, &env).await;
    let base = gw.url("/flex/v1");
    // No gateway key, no files.
    assert_eq!(get(&format!("{base}/files"), "gk-wrong").await.status(), 401);
    let file: Value = upload(&base, "gk-a", "in.jsonl", "batch", input(5, "gpt-5-mini")).await.json().await.unwrap();
    let batch = create(&base, "gk-a", file["id"].as_str().unwrap(), "10m").await;
    let id = batch["id"].as_str().unwrap();
    // Lines authenticate upstream with flexgate's own key: they succeed.
    let done = until(&base, "gk-a", id, &["completed", "failed"], Duration::from_secs(20)).await;
    assert_eq!(done["request_counts"]["completed"], 5, "{done}");
    // Client b sees none of it, and cannot cancel it.
    assert_eq!(get(&format!("{base}/batches/{id}"), "gk-b").await.status(), 404);
    let r = client().post(format!("{base}/batches/{id}/cancel")).bearer_auth("gk-b").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let file_id = file["id"].as_str().unwrap();
    assert_eq!(get(&format!("{base}/files/{file_id}/content"), "gk-b").await.status(), 404);
}
