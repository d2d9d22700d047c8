//! `flexgate demo --workload N`: the generated mix sent through the demo's in-process
//! gateway (interactive on `/v1`, background on `/flex/v1`), then the report.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::sim::FlexOutage;
use crate::tools::workload::generate::{self, SHORT_DEADLINE};
use crate::tools::workload::replay::{print_report, run_workload};
use crate::tools::workload::runner::Target;
use crate::tools::workload::{Item, Lane};

/// What the demo asks of the workload run.
#[derive(Debug, Clone)]
pub struct DemoWorkload {
    pub requests: usize,
    pub concurrency: usize,
    pub seed: u64,
    pub save: Option<PathBuf>,
    /// For the header line only: the simulator's flex 429 rate and outage windows.
    pub flex_429_rate: f64,
    pub flex_outage: Option<FlexOutage>,
}

/// Generate, send and report. `gateway` and `sim` are the running demo's addresses.
pub async fn run(workload: &DemoWorkload, gateway: SocketAddr, sim: SocketAddr) -> anyhow::Result<()> {
    let items = generate::demo_mix(workload.requests, workload.seed);
    if let Some(path) = &workload.save {
        std::fs::write(path, generate::to_jsonl(&items))
            .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?;
    }
    print_header(workload, &items, gateway, sim);
    let target = Target {
        base_url: format!("http://{gateway}/v1"),
        flex_base_url: Some(format!("http://{gateway}/flex/v1")),
        api_key: Some("sk-demo".to_owned()),
        default_lane: Lane::Background,
        env_proxy: false,
    };
    let metrics = format!("http://{gateway}/metrics");
    let (summary, info) = run_workload(items, &target, workload.concurrency, Some(&metrics)).await?;
    print_report(&summary, &info);
    Ok(())
}

fn fmt(d: std::time::Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

fn print_header(workload: &DemoWorkload, items: &[Item], gateway: SocketAddr, sim: SocketAddr) {
    let interactive = items.iter().filter(|i| i.lane == Some(Lane::Interactive)).count();
    let background = items.len() - interactive;
    let streamed = items.iter().filter(|i| i.stream()).count();
    let short = items.iter().filter(|i| !i.headers.is_empty()).count();
    let rate = (workload.flex_429_rate * 100.0).round();
    let outage = workload.flex_outage.map(|o| format!(", flex down {} of every {}", fmt(o.down), fmt(o.period)));
    crate::output::line(format_args!(
        "flexgate demo workload: {} requests (seed {}), {interactive} interactive on /v1, {background} background on \
         /flex/v1 ({short} with x-flexgate-deadline: {SHORT_DEADLINE}), {streamed} streamed\n  \
         gateway http://{gateway}, simulated upstream http://{sim} ({rate}% of flex requests answer 429{})\n",
        items.len(),
        workload.seed,
        outage.unwrap_or_default(),
    ));
}
