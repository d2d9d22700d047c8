//! Helpers for the batch tests: input files, uploads, polling a batch to an end.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::client;

/// A batch input file of `n` chat lines `req-0` … `req-{n-1}` for `model`.
pub fn input(n: usize, model: &str) -> String {
    (0..n)
        .map(|i| {
            let body = json!({"model": model, "messages": [{"role": "user", "content": format!("line {i}")}]});
            json!({"custom_id": format!("req-{i}"), "method": "POST", "url": "/v1/chat/completions", "body": body})
                .to_string()
                + "\n"
        })
        .collect()
}

/// Upload `text` as `filename` with `purpose`; the response.
pub async fn upload(base: &str, key: &str, filename: &str, purpose: &str, text: String) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(text.into_bytes()).file_name(filename.to_owned());
    let form = reqwest::multipart::Form::new().text("purpose", purpose.to_owned()).part("file", part);
    client().post(format!("{base}/files")).bearer_auth(key).multipart(form).send().await.unwrap()
}

/// Create a batch over `file` and return its object.
pub async fn create(base: &str, key: &str, file: &str, window: &str) -> Value {
    let body = json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": window,
        "metadata": {"job": "test"}});
    let r = client().post(format!("{base}/batches")).bearer_auth(key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

pub async fn get(url: &str, key: &str) -> reqwest::Response {
    client().get(url).bearer_auth(key).send().await.unwrap()
}

/// Poll the batch until its status is one of `ends`, for at most `limit`.
pub async fn until(base: &str, key: &str, id: &str, ends: &[&str], limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let batch: Value = get(&format!("{base}/batches/{id}"), key).await.json().await.unwrap();
        if ends.contains(&batch["status"].as_str().unwrap_or_default()) {
            return batch;
        }
        assert!(tokio::time::Instant::now() < deadline, "batch never reached {ends:?}: {batch}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lines of a file's content, parsed.
pub async fn lines(base: &str, key: &str, file: &Value) -> Vec<Value> {
    let Some(id) = file.as_str() else { return Vec::new() };
    let text = get(&format!("{base}/files/{id}/content"), key).await.text().await.unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// How often each `custom_id` appears in the batch's output and error files.
pub async fn custom_ids(base: &str, key: &str, batch: &Value) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for file in [&batch["output_file_id"], &batch["error_file_id"]] {
        for line in lines(base, key, file).await {
            *seen.entry(line["custom_id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
    }
    seen
}
