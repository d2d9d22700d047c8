//! `flexgate replay FILE.jsonl --base-url URL`: send a workload file to any running
//! OpenAI-compatible base URL (flexgate, another gateway, or OpenAI itself) and print
//! the report. Also [`run_workload`], the run-and-measure step `demo --workload` shares.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::time::Instant;

use super::counters::{self, Counters};
use super::progress::Progress;
use super::report::{self, RunInfo};
use super::runner::{self, Target};
use super::stats::{self, Summary};
use super::{Item, Lane, parse_jsonl};
use crate::pricing::PriceTable;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Workload file: JSONL in flexgate's format (docs/workload.md) or OpenAI Batch API
    /// input lines.
    pub file: PathBuf,
    /// Base URL of the interactive lane, as an SDK takes it: `http://127.0.0.1:8080/v1`
    /// or `https://api.openai.com/v1` (a URL without a path gets `/v1`).
    #[arg(long)]
    pub base_url: String,
    /// Base URL of the background lane, e.g. flexgate's `http://127.0.0.1:8080/flex/v1`.
    /// Without it, background requests go to `--base-url` with `service_tier: "flex"`
    /// in the body (how OpenAI itself is asked for flex; flexgate honours it too).
    #[arg(long)]
    pub flex_base_url: Option<String>,
    /// Lane of lines that name none (OpenAI Batch API lines never do).
    #[arg(long, value_enum, default_value_t = Lane::Background)]
    pub lane: Lane,
    /// Sent as `Authorization: Bearer KEY`; none is sent without it.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// flexgate's metrics, read before and after the run for the flex 429 count
    /// (default: `/metrics` on the base URL's host; `none` to skip).
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// Honour `HTTP_PROXY`/`HTTPS_PROXY` from the environment.
    #[arg(long)]
    pub use_env_proxy: bool,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read workload `{}`: {e}", args.file.display()))?;
    let items = match parse_jsonl(&text) {
        Ok(items) => items,
        Err(errors) => {
            crate::output::diagnostic(format_args!("{}: {errors}", args.file.display()));
            return Ok(ExitCode::FAILURE);
        }
    };
    let base_url = with_default_path(&args.base_url)?;
    let flex_base_url = args.flex_base_url.as_deref().map(with_default_path).transpose()?;
    let metrics_url = match args.metrics_url.as_deref() {
        Some("none") => None,
        Some(url) => Some(url.to_owned()),
        None => counters::default_url(&base_url),
    };
    let target = Target {
        base_url,
        flex_base_url,
        api_key: args.api_key,
        default_lane: args.lane,
        env_proxy: args.use_env_proxy,
    };
    let (summary, info) = run_workload(items, &target, usize::from(args.concurrency), metrics_url.as_deref()).await?;
    print_report(&summary, &info);
    Ok(ExitCode::SUCCESS)
}

/// Send `items`, reading flexgate's counters around the run, and summarise.
pub async fn run_workload(
    items: Vec<Item>,
    target: &Target,
    concurrency: usize,
    metrics_url: Option<&str>,
) -> anyhow::Result<(Summary, RunInfo)> {
    let http = runner::client(target)?;
    let before = scrape(&http, metrics_url).await;
    let progress = Progress::for_stderr(items.len());
    let started = Instant::now();
    let outcomes = runner::run(&http, target, items, concurrency, &progress).await;
    let wall = started.elapsed();
    progress.finish();
    let after = scrape(&http, metrics_url).await;
    let prices = PriceTable::embedded();
    let summary = stats::summarize(&outcomes, &prices);
    let info = RunInfo {
        target: describe(target),
        concurrency,
        wall,
        gateway: before.zip(after).map(|(b, a)| b.delta(a)),
        prices_as_of: prices.prices_as_of().to_owned(),
    };
    Ok((summary, info))
}

async fn scrape(http: &reqwest::Client, url: Option<&str>) -> Option<Counters> {
    counters::scrape(http, url?).await
}

pub fn print_report(summary: &Summary, info: &RunInfo) {
    crate::output::out(report::render(summary, info));
}

fn describe(target: &Target) -> String {
    match &target.flex_base_url {
        Some(flex) => format!("{} (background: {flex})", target.base_url),
        None => format!("{} (background: same URL, service_tier=flex)", target.base_url),
    }
}

/// `http://host:8080` → `http://host:8080/v1`; a URL with a path is kept as given.
fn with_default_path(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        anyhow::bail!("`{url}`: only http and https base URLs are supported");
    }
    let trimmed = url.trim_end_matches('/');
    Ok(if parsed.path() == "/" { format!("{trimmed}/v1") } else { trimmed.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_v1_only_without_a_path() {
        assert_eq!(with_default_path("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080/v1");
        assert_eq!(with_default_path("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080/v1");
        assert_eq!(with_default_path("https://api.openai.com/v1/").unwrap(), "https://api.openai.com/v1");
        assert_eq!(with_default_path("http://gw/flex/v1").unwrap(), "http://gw/flex/v1");
        assert!(with_default_path("ftp://gw/v1").is_err());
        assert!(with_default_path("gw:8080").is_err());
    }
}
