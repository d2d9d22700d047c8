//! `flexgate batch run FILE.jsonl -o OUT.jsonl --base-url URL`: a Batch API client for
//! any OpenAI-compatible Batch API (flexgate's `/flex/v1`, or OpenAI's own `/v1`). It
//! uploads the file (streamed, never read whole), creates the batch, polls it with a
//! progress bar (lines done and failed, cost so far where the server reports it, ETA),
//! downloads the output and error files, and exits 1 when any line failed or the batch
//! did not complete.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Batch API input: one `{custom_id, method, url, body}` request per line.
    pub file: PathBuf,
    /// Where the output file (the successful lines) is written.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Where the error file is written (default: OUT with `.errors.jsonl` in place of
    /// its extension).
    #[arg(long)]
    pub errors: Option<PathBuf>,
    /// The API's base URL, as an SDK takes it: `http://127.0.0.1:8080/flex/v1`, or
    /// `https://api.openai.com/v1` for OpenAI's own Batch API.
    #[arg(long)]
    pub base_url: String,
    /// Sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// `24h` (OpenAI), or any duration flexgate accepts (`30m`).
    #[arg(long, default_value = "24h")]
    pub completion_window: String,
    /// The batch's endpoint (default: the first line's `url`).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Time between two polls of the batch.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll: Duration,
}

/// The statuses a batch ends in.
const ENDS: [&str; 4] = ["completed", "failed", "expired", "cancelled"];

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let base = args.base_url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder().build()?;
    let auth = |r: reqwest::RequestBuilder| match &args.api_key {
        Some(key) => r.bearer_auth(key),
        None => r,
    };
    let endpoint = match &args.endpoint {
        Some(e) => e.clone(),
        None => first_url(&args.file)?,
    };
    let file = upload(&http, &base, &args, &auth).await?;
    let body = json!({"input_file_id": file, "endpoint": endpoint, "completion_window": args.completion_window});
    // JSON by hand: reqwest's `json` feature is not part of the shipped build.
    let create = http
        .post(format!("{base}/batches"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let batch = answer(auth(create).send().await?).await?;
    let id = batch["id"].as_str().context("the batch has no id")?.to_owned();
    output::diagnostic(format_args!("batch {id}: uploaded {file}, {endpoint}, window {}", args.completion_window));
    let batch = poll(&http, &base, &id, args.poll, &auth).await?;
    let counts = &batch["request_counts"];
    let (completed, failed) = (counts["completed"].as_u64().unwrap_or(0), counts["failed"].as_u64().unwrap_or(0));
    let errors_path = args.errors.clone().unwrap_or_else(|| args.output.with_extension("errors.jsonl"));
    for (field, path) in [("output_file_id", &args.output), ("error_file_id", &errors_path)] {
        if let Some(file) = batch[field].as_str().filter(|f| !f.is_empty()) {
            download(&http, &base, file, path, &auth).await?;
            output::diagnostic(format_args!("wrote {}", path.display()));
        }
    }
    let status = batch["status"].as_str().unwrap_or_default();
    output::line(format_args!(
        "batch {id} {status}: {completed} completed, {failed} failed{}",
        batch["flexgate_cost_usd"].as_str().map(|c| format!(", cost ${c}")).unwrap_or_default()
    ));
    if let Some(errors) = batch["errors"]["data"].as_array() {
        for e in errors.iter().take(20) {
            output::line(format_args!("  line {}: {} ({})", e["line"], e["message"], e["code"]));
        }
    }
    Ok(if status == "completed" && failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The first line's `url`.
fn first_url(path: &Path) -> anyhow::Result<String> {
    use std::io::BufRead as _;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let line = std::io::BufReader::new(file).lines().find(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()));
    let line = line.context("the input file is empty")??;
    let value: Value = serde_json::from_str(&line).context("the first line is not JSON")?;
    value["url"].as_str().map(str::to_owned).context("the first line has no `url`; pass --endpoint")
}

/// A JSON answer, or the API's error message.
async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{status}: {}", body["error"]["message"].as_str().unwrap_or("no error message"));
    }
    Ok(body)
}

/// Upload as `multipart/form-data`, the file streamed from disk between the form's parts.
async fn upload(
    http: &reqwest::Client,
    base: &str,
    args: &RunArgs,
    auth: &impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> anyhow::Result<String> {
    let boundary = format!("flexgate-{}", hex::encode(rand::random::<[u8; 12]>()));
    let name = args.file.file_name().and_then(|n| n.to_str()).unwrap_or("input.jsonl").replace('"', "");
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/jsonl\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let file =
        tokio::fs::File::open(&args.file).await.with_context(|| format!("cannot read `{}`", args.file.display()))?;
    let size = file.metadata().await?.len();
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buffer = vec![0u8; 256 << 10];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let parts = futures_util::stream::once(async move { Ok(bytes::Bytes::from(head)) })
        .chain(chunks)
        .chain(futures_util::stream::once(async move { Ok(bytes::Bytes::from(tail)) }));
    let request = http
        .post(format!("{base}/files"))
        .header(http::header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .body(reqwest::Body::wrap_stream(parts));
    let file = answer(auth(request).send().await?).await?;
    output::diagnostic(format_args!("uploaded {} ({size} bytes)", args.file.display()));
    file["id"].as_str().map(str::to_owned).context("the uploaded file has no id")
}

/// Poll until the batch ends, drawing the progress bar.
async fn poll(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    every: Duration,
    auth: &impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> anyhow::Result<Value> {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(4)
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} eta {eta} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    loop {
        let batch = answer(auth(http.get(format!("{base}/batches/{id}"))).send().await?).await?;
        let counts = &batch["request_counts"];
        let (total, completed, failed) = (
            counts["total"].as_u64().unwrap_or(0),
            counts["completed"].as_u64().unwrap_or(0),
            counts["failed"].as_u64().unwrap_or(0),
        );
        let status = batch["status"].as_str().unwrap_or_default().to_owned();
        bar.set_length(total);
        bar.set_position(completed + failed);
        let cost = batch["flexgate_cost_usd"].as_str().map(|c| format!(", ${c}")).unwrap_or_default();
        bar.set_message(format!("{status}: {completed} done, {failed} failed{cost}"));
        if ENDS.contains(&status.as_str()) {
            bar.finish();
            return Ok(batch);
        }
        tokio::time::sleep(every).await;
    }
}

/// Stream a file's content to `path`.
async fn download(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    path: &Path,
    auth: &impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> anyhow::Result<()> {
    let response = auth(http.get(format!("{base}/files/{id}/content"))).send().await?;
    if !response.status().is_success() {
        bail!("downloading {id}: {}", response.status());
    }
    let mut out = tokio::fs::File::create(path).await.with_context(|| format!("cannot write `{}`", path.display()))?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    Ok(())
}
