//! Workloads end to end: the shipped example file and scripted faults through the
//! in-process sim and gateway, Batch lines routed by `service_tier`, a run against a
//! target that is not flexgate, and the `replay` and `demo --workload` commands.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::{spawn_gateway_with, spawn_sim, stack};
use flexgate::sim::SimConfig;
use flexgate::tier::Tier;
use flexgate::tools::workload::replay::run_workload;
use flexgate::tools::workload::stats::tier_key;
use flexgate::tools::workload::{Lane, Target, parse_jsonl};

const EXAMPLE: &str = include_str!("../../config/workload.example.jsonl");
const BIN: &str = env!("CARGO_BIN_EXE_flexgate");

fn target(gateway: &str, flex_lane: bool) -> Target {
    Target {
        base_url: format!("http://{gateway}/v1"),
        flex_base_url: flex_lane.then(|| format!("http://{gateway}/flex/v1")),
        api_key: Some("sk-workload-test".into()),
        default_lane: Lane::Background,
        env_proxy: false,
    }
}

fn served(summary: &flexgate::tools::workload::stats::Summary, class: &str, tier: Tier) -> usize {
    let stats = &summary.classes.iter().find(|(name, _)| name == class).unwrap().1;
    stats.served.get(&Some(tier_key(tier))).copied().unwrap_or(0)
}

#[tokio::test]
async fn the_example_file_through_both_lanes() {
    let (_sim, _sim_run, _state, gw) = stack(SimConfig::zero_latency()).await;
    let items = parse_jsonl(EXAMPLE).unwrap();
    let n = items.len();
    let metrics = gw.url("/metrics");
    let (summary, info) =
        run_workload(items, &target(&gw.addr.to_string(), true), 4, Some(metrics.as_str())).await.unwrap();
    assert_eq!(summary.requests, n);
    assert_eq!(summary.error_count(), 0, "{:?}", summary.errors);
    let names: Vec<&str> = summary.classes.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, ["interactive", "background"]);
    assert_eq!(served(&summary, "interactive", Tier::Standard), 3);
    // Every chat/Responses background line is served on flex; embeddings report no tier.
    assert_eq!(served(&summary, "background", Tier::Flex), n - 3 - 1);
    assert_eq!((summary.priced, summary.unpriced), (n, 0), "every line is priced, streams included");
    assert!(summary.cost > rust_decimal::Decimal::ZERO);
    assert!(summary.standard_cost > summary.cost, "flex work is cheaper");
    assert!(summary.saw_flexgate);
    assert_eq!(summary.extra_attempts, 0);
    assert_eq!(info.gateway.map(|g| g.flex_429), Some(0));
}

#[tokio::test]
async fn absorbed_429s_escalations_and_client_visible_errors() {
    // A chunk interval, so the `cut` falls mid-stream, after chunks reached the client.
    let sim = SimConfig { chunk_interval: Duration::from_millis(2), ..SimConfig::zero_latency() };
    let (_sim, sim_run) = spawn_sim(sim).await;
    let fast_retries = "[retry]\nbase_delay = \"10ms\"\nmax_delay = \"50ms\"\n";
    let (_state, gw) = spawn_gateway_with(sim_run.addr, fast_retries, &HashMap::new()).await;
    let line = |id: &str, stream: bool, headers: &str| {
        format!(
            r#"{{"id": "{id}", "url": "/v1/chat/completions", "body": {{"model": "gpt-5-mini", "stream": {stream}, "max_tokens": 40, "messages": [{{"role": "user", "content": "hi"}}]}}, "headers": {{{headers}}}}}"#
        )
    };
    let text = [
        line(
            "absorbed",
            false,
            r#""x-request-id": "w-absorbed", "x-sim-fault": "flex:429-capacity,flex:429-capacity,ok""#,
        ),
        // Escalated once flex has used its share of the attempts, not at a deadline: a flex
        // attempt cut at the deadline's reserve would be retried without being a flex 429,
        // and whether one is in flight then is up to the machine's speed.
        line("escalated", false, r#""x-request-id": "w-escalated", "x-sim-fault": "flex:429-capacity""#),
        line("billing", false, r#""x-request-id": "w-billing", "x-sim-fault": "429-quota""#),
        line("cut", true, r#""x-request-id": "w-cut", "x-sim-fault": "cut""#),
        line("fine", true, ""),
    ]
    .join("\n");
    let items = parse_jsonl(&text).unwrap();
    let metrics = gw.url("/metrics");
    let (summary, info) =
        run_workload(items, &target(&gw.addr.to_string(), true), 5, Some(metrics.as_str())).await.unwrap();
    assert_eq!(summary.requests, 5);
    let errors: Vec<(&str, usize)> = summary.errors.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(errors, [("429 insufficient_quota", 1), ("stream error upstream_stream_error", 1)]);
    assert_eq!(summary.escalations, 1);
    assert_eq!(served(&summary, "background", Tier::Flex), 2);
    assert_eq!(served(&summary, "background", Tier::Standard), 1);
    let gateway = info.gateway.unwrap();
    assert!(gateway.flex_429 >= 3, "two absorbed plus at least one before escalating: {gateway:?}");
    assert_eq!(summary.extra_attempts, gateway.flex_429, "every failed attempt here was a flex 429");
}

#[tokio::test]
async fn batch_lines_without_a_flex_lane_ask_for_flex_in_the_body() {
    let (sim, sim_run, _state, gw) = stack(SimConfig::zero_latency()).await;
    let batch: String = EXAMPLE.lines().filter(|l| l.contains("custom_id")).collect::<Vec<_>>().join("\n");
    let items = parse_jsonl(&batch).unwrap();
    let n = items.len();
    let (summary, _) = run_workload(items.clone(), &target(&gw.addr.to_string(), false), 2, None).await.unwrap();
    assert_eq!(summary.error_count(), 0);
    assert_eq!(served(&summary, "background", Tier::Flex), n, "flexgate honours the client's service_tier");
    let tiers: HashSet<Option<String>> = sim.received().into_iter().map(|r| r.service_tier).collect();
    assert_eq!(tiers, HashSet::from([Some("flex".to_owned())]));

    // The same lines straight to the simulator: an OpenAI-like target, not flexgate.
    let direct = Target { base_url: sim_run.url("/v1"), ..target("unused", false) };
    let metrics = sim_run.url("/metrics");
    let (summary, info) = run_workload(items, &direct, 2, Some(metrics.as_str())).await.unwrap();
    assert_eq!(summary.error_count(), 0);
    assert!(!summary.saw_flexgate);
    assert_eq!(info.gateway, None, "no flexgate metrics there");
    assert_eq!(served(&summary, "background", Tier::Flex), n, "class from the lane, tier from the body");
}

/// Run the binary to completion off the async runtime (the gateway under test runs on it).
async fn run_bin(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN).args(&args).env_remove("OPENAI_API_KEY").output().unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.unwrap().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test]
async fn replay_command_reads_the_example_and_reports() {
    let (_sim, _sim_run, _state, gw) = stack(SimConfig::zero_latency()).await;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/workload.example.jsonl");
    let base = gw.url("/v1");
    let flex = gw.url("/flex/v1");
    let args = ["replay", file.to_str().unwrap(), "--base-url", &base, "--flex-base-url", &flex, "--api-key", "sk-x"];
    let (ok, stdout, stderr) = run_bin(&args).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("flexgate workload report\n"), "{stdout}");
    assert!(stdout.contains("Client-visible errors                   0"), "{stdout}");
    assert!(stdout.contains("of which flex 429s                  0"), "{stdout}");
    assert!(stderr.contains("progress: 10/10 requests (100%)"), "{stderr}");

    let bad = std::env::temp_dir().join(format!("flexgate-bad-workload-{}.jsonl", std::process::id()));
    std::fs::write(&bad, "{\"url\": \"/v1/chat/completions\"}\n").unwrap();
    let (ok, _, stderr) = run_bin(&["replay", bad.to_str().unwrap(), "--base-url", &base]).await;
    assert!(!ok && stderr.contains("line 1:") && stderr.contains("body"), "{stderr}");
    let _ = std::fs::remove_file(bad);
}

#[tokio::test]
async fn demo_workload_prints_a_report_and_exits() {
    let saved = std::env::temp_dir().join(format!("flexgate-demo-workload-{}.jsonl", std::process::id()));
    let args = ["demo", "--workload", "30", "--flex-outage", "0s/1s", "--save-workload", saved.to_str().unwrap()];
    let (ok, stdout, stderr) = run_bin(&args).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("flexgate demo workload: 30 requests"), "{stdout}");
    for section in ["Requests by class and served tier", "Absorbed by the gateway", "Latency by class", "savings"] {
        assert!(stdout.contains(section), "{section} missing:\n{stdout}");
    }
    let items = parse_jsonl(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(items.len(), 30);
    let _ = std::fs::remove_file(saved);
}
