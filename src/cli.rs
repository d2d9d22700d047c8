//! Command-line interface: `serve`, `check-config`, `sim`, `demo`, `replay`, `batch run`,
//! `healthcheck`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigErrors, LogConfig, LogFormat, ProcessEnv};
use crate::server::{Server, shutdown_signal};
use crate::sim::{self, SimConfig};
use crate::state::AppState;
use crate::tools::{batch_run, demo, workload};
use crate::{logging, output, runtime};

#[derive(Debug, Parser)]
#[command(
    name = "flexgate",
    version,
    about = "OpenAI-compatible gateway that sends latency-tolerant work to the flex tier"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (default: `FLEXGATE_CONFIG`, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and print every problem.
    CheckConfig { file: PathBuf },
    /// Run the simulated OpenAI upstream (for tests, demos and benchmarks).
    Sim {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        #[command(flatten)]
        config: SimConfig,
    },
    /// Run the simulator and the gateway together and print how to use them; with
    /// `--workload N`, send a mixed workload through them and print its report.
    Demo(demo::DemoArgs),
    /// Send a JSONL workload (or OpenAI Batch API input) to a running gateway or API and
    /// report classes, tiers, errors, latency, cost and savings.
    Replay(workload::replay::ReplayArgs),
    /// Batch API files: `batch run` uploads one, runs it as a batch and downloads the
    /// results (flexgate's `/flex/v1` or any OpenAI-compatible Batch API).
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Probe a running gateway's readiness; exit 0 when ready (for container HEALTHCHECK).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Upload FILE, create the batch, poll it with a progress bar, write the output to
    /// OUT and the errors beside it; exit 1 when a line failed.
    Run(batch_run::RunArgs),
}

/// Run a command; an error is reported on stderr as `flexgate: <error>` and exits 1.
pub fn run(cli: Cli) -> ExitCode {
    command(cli.command).unwrap_or_else(|e| {
        output::diagnostic(format_args!("flexgate: {e:#}"));
        ExitCode::FAILURE
    })
}

/// The gateway runs on its own threads, one current-thread runtime each
/// (`crate::runtime`); every other command runs on tokio's multi-threaded runtime.
fn command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            let config = match Config::load(config.as_deref(), &ProcessEnv) {
                Ok(c) => c,
                Err(e) => {
                    // Before logging exists: straight to the operator.
                    output::diagnostic(e);
                    return Ok(ExitCode::FAILURE);
                }
            };
            // This thread is the gateway's thread 0; `serve` starts the others.
            runtime::single()?.block_on(serve(config))
        }
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Sim { listen, config } => multi_threaded(async move {
            let _log = logging::init(&LogConfig { format: LogFormat::Pretty, level: "info".into() });
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!(addr = %listener.local_addr()?, "simulator listening");
            sim::serve(listener, sim::Sim::new(config), shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Demo(args) => multi_threaded(demo::run(args)),
        Command::Replay(args) => multi_threaded(workload::replay::run(args)),
        Command::Batch(BatchCommand::Run(args)) => multi_threaded(batch_run::run(args)),
        Command::Healthcheck { url } => multi_threaded(async move { Ok(healthcheck(&url).await) }),
    }
}

fn multi_threaded(command: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    tokio::runtime::Runtime::new()?.block_on(command)
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    // Held to the end of `serve`: dropping it writes out the last lines, "stopped" included.
    let _log = logging::init(&config.log);
    tracing::info!(config = %config.summary(), "configuration loaded");
    let workers = runtime::Workers::start(config.server.threads)?;
    let server = Server::bind(config).await?.with_threads(workers.handles());
    tracing::info!(addr = %server.local_addr()?, admin = ?server.admin_addr(), "listening");
    server.run(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn check_config(file: &std::path::Path) -> ExitCode {
    // What `serve` builds before it binds, built here too: whatever `serve` would refuse
    // after validation, `check-config` refuses.
    let checked = Config::load(Some(file), &ProcessEnv).and_then(|config| match AppState::new(config.clone()) {
        Ok(_) => Ok(config),
        Err(e) => Err(ConfigErrors(vec![with_causes(&e)])),
    });
    match checked {
        Ok(config) => {
            output::line(format_args!("{}: ok ({})", file.display(), config.summary()));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            output::line(format_args!("{}: {} problem(s)", file.display(), errors.0.len()));
            for problem in &errors.0 {
                output::line(format_args!("  - {problem}"));
            }
            ExitCode::FAILURE
        }
    }
}

/// An error and the chain of its causes, on one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(text, ": {c}");
        cause = c.source();
    }
    text
}

async fn healthcheck(url: &str) -> ExitCode {
    // The probe targets this pod or host: a proxy from the environment must not catch it.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).no_proxy().build();
    let ok = match client {
        Ok(c) => c.get(url).send().await.is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    };
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
