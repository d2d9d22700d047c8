//! Drives `oha` (a public HTTP load generator) and reads its JSON summary.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::process::Command;

/// One load phase: closed loop (as fast as `conns` connections go) or a fixed rate.
pub struct Phase<'a> {
    pub url: &'a str,
    pub body: &'a Path,
    /// The bearer token sent: any text in passthrough, a gateway key under managed auth.
    pub bearer: &'a str,
    pub conns: usize,
    pub duration: Duration,
    /// Requests per second (open loop, corrected for coordinated omission); None: flat out.
    pub rate: Option<u32>,
}

/// What one phase measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses with status 200.
    pub ok: u64,
    /// Every other status or transport error, not counting requests cut by the end of the phase.
    pub errors: u64,
    pub bytes_per_sec: f64,
}

pub async fn run(oha: &Path, phase: &Phase<'_>) -> Result<Load> {
    let mut cmd = Command::new(oha);
    cmd.args(["--no-tui", "--output-format", "json", "-m", "POST"])
        .args(["-H", &format!("authorization: Bearer {}", phase.bearer), "-H", "content-type: application/json"])
        .arg("-D")
        .arg(phase.body)
        .args(["-c", &phase.conns.to_string()])
        .args(["-z", &format!("{}ms", phase.duration.as_millis())]);
    if let Some(rate) = phase.rate {
        cmd.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    let output = cmd.arg(phase.url).kill_on_drop(true).output().await.context("running oha")?;
    if !output.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let json: Value = serde_json::from_slice(&output.stdout).context("oha printed no JSON")?;
    parse(&json)
}

fn parse(json: &Value) -> Result<Load> {
    let num = |v: &Value| v.as_f64().context("oha JSON: missing number");
    let codes = json["statusCodeDistribution"].as_object().context("oha JSON: no status codes")?;
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let ok = codes.get("200").map_or(0, count);
    let other: u64 = codes.iter().filter(|(k, _)| k.as_str() != "200").map(|(_, v)| count(v)).sum();
    let errors: u64 = json["errorDistribution"]
        .as_object()
        .map_or(0, |m| m.iter().filter(|(k, _)| !k.contains("deadline")).map(|(_, v)| count(v)).sum());
    let seconds = num(&json["summary"]["total"])?;
    Ok(Load {
        // Only answered requests count towards the rate.
        rps: f64::from(u32::try_from(ok).unwrap_or(u32::MAX)) / seconds.max(1e-9),
        p50_ms: num(&json["metrics"]["latency_ms"]["p50"])?,
        p99_ms: num(&json["metrics"]["latency_ms"]["p99"])?,
        ok,
        errors: other + errors,
        bytes_per_sec: num(&json["summary"]["sizePerSec"])?,
    })
}
