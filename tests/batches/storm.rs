//! A flex storm inside a short window: flex refuses everything, the lines hold on flex
//! while the window allows, move to standard before it ends, and the batch completes
//! inside its window, escalations counted as for any request of the class.

use std::collections::HashMap;
use std::time::Duration;

use flexgate::sim::SimConfig;
use serde_json::Value;

use crate::common::{count, spawn_gateway_with, spawn_sim};
use crate::support::{create, custom_ids, input, lines, until, upload};

#[tokio::test]
async fn a_storm_forces_escalation_and_the_batch_still_finishes_in_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConfig { flex_429_rate: 1.0, ..SimConfig::zero_latency() };
    let (_sim, sim_run) = spawn_sim(sim).await;
    let text = format!("[store]\ndir = \"{}\"\n[batch]\nmax_in_flight = 24\n", dir.path().display());
    let (state, gw) = spawn_gateway_with(sim_run.addr, &text, &HashMap::new()).await;
    let (base, key) = (gw.url("/flex/v1"), "sk-storm");
    let file: Value = upload(&base, key, "in.jsonl", "batch", input(24, "gpt-5-mini")).await.json().await.unwrap();
    let batch = create(&base, key, file["id"].as_str().unwrap(), "6s").await;
    let id = batch["id"].as_str().unwrap();
    let done = until(&base, key, id, &["completed", "expired", "failed"], Duration::from_secs(20)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["completed"], 24, "{done}");
    assert!(done["completed_at"].as_i64().unwrap() <= done["expires_at"].as_i64().unwrap(), "{done}");
    let output = lines(&base, key, &done["output_file_id"]).await;
    assert!(output.iter().all(|l| l["response"]["body"]["service_tier"] == "default"), "served on standard");
    let seen = custom_ids(&base, key, &done).await;
    assert!(seen.len() == 24 && seen.values().all(|n| *n == 1), "{seen:?}");
    let escalated = count(&state.metrics, "flexgate_escalations_total", &[("class", "background")]);
    assert_eq!(escalated, 24, "each line escalated once, counted like any request of the class");
    let m = &state.metrics;
    assert_eq!(count(m, "flexgate_batch_lines_total", &[("result", "completed")]), 24);
    assert_eq!(count(m, "flexgate_batches_total", &[("status", "completed")]), 1);
    assert!(crate::common::metric(m, "flexgate_batch_cost_usd_total", &[]) > 0.0, "standard lines cost money");
}
