//! The processes under test: start `flexgate sim` and `flexgate serve` on port 0, learn
//! their addresses from their logs, and read their CPU time, RSS and open files from
//! `/proc`. Every child is started here and killed here (or when dropped).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use tokio::process::{Child, Command};

use crate::bare::Kind;

/// A running flexgate process (simulator or gateway) whose stderr goes to a log file.
pub struct Proc {
    pub addr: String,
    pub pid: u32,
    child: Child,
}

/// Which gateway to run and how it logs.
pub struct GatewaySpec<'a> {
    pub upstream: &'a str,
    pub log_level: &'a str,
    /// More TOML after the generated tables (auth, budgets, shared state, store).
    pub extra: &'a str,
    /// Environment of the gateway process (the upstream key and gateway keys of managed auth).
    pub env: &'a [(&'a str, &'a str)],
}

impl Proc {
    /// `flexgate sim` answering after `latency` on every tier, streaming without pauses.
    pub async fn sim(bin: &Path, dir: &Path, name: &str, latency: &str) -> Result<Proc> {
        let args = [
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--latency-standard",
            latency,
            "--latency-priority",
            latency,
            "--latency-flex",
            latency,
            "--chunk-interval",
            "0ms",
        ];
        Self::start(bin, dir, name, &args.map(str::to_owned), &[], "listening").await
    }

    /// `flexgate serve` in front of `spec.upstream`, flex routing and cost accounting on.
    pub async fn gateway(bin: &Path, dir: &Path, name: &str, spec: &GatewaySpec<'_>) -> Result<Proc> {
        let config = dir.join(format!("{name}.toml"));
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[upstream]\nbase_url = \"http://{}/v1\"\n\n[log]\nformat = \"json\"\nlevel = \"{}\"\n\n{}",
            spec.upstream, spec.log_level, spec.extra
        );
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let args = ["serve".to_owned(), "--config".to_owned(), config.display().to_string()];
        Self::start(bin, dir, name, &args, spec.env, "\"listening\"").await
    }

    /// A bare forwarder (this program, `--bare-forwarder`): axum + reqwest, or hyper alone
    /// with an optional exact read-buffer size for its upstream connections.
    pub async fn bare(dir: &Path, name: &str, upstream: &str, kind: Kind, read_buf: Option<usize>) -> Result<Proc> {
        let exe = std::env::current_exe()?;
        let kind = kind.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
        let mut args = vec!["--bare-forwarder".to_owned(), upstream.to_owned(), "--bare-kind".to_owned(), kind];
        if let Some(size) = read_buf {
            args.extend(["--bare-read-buf".to_owned(), size.to_string()]);
        }
        Self::start(&exe, dir, name, &args, &[], "listening").await
    }

    async fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
        marker: &str,
    ) -> Result<Proc> {
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(bin)
            .args(args)
            .env_remove("FLEXGATE_CONFIG")
            .env_remove("FLEXGATE_LISTEN")
            .env_remove("FLEXGATE_UPSTREAM_URL")
            .env_remove("RUST_LOG")
            // Shared state and the store only as the config file says.
            .env_remove("FLEXGATE_REDIS_URL")
            .env_remove("FLEXGATE_DATA_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("child has no pid")?;
        let mut proc = Proc { addr: String::new(), pid, child };
        for _ in 0..200 {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(addr) = text.lines().filter(|l| l.contains(marker)).find_map(loopback_addr) {
                proc.addr = addr;
                return Ok(proc);
            }
            if let Ok(Some(status)) = proc.child.try_wait() {
                bail!("{name} exited with {status} before listening:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("{name} did not log its address within 5 s (see {})", log_path.display())
    }

    /// User + system CPU time so far.
    pub fn cpu(&self) -> Result<Duration> {
        cpu_time(self.pid)
    }

    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.pid)
    }

    pub fn fds(&self) -> Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.pid))?.count())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `127.0.0.1:PORT` out of a log line.
fn loopback_addr(line: &str) -> Option<String> {
    let at = line.find("127.0.0.1:")?;
    let rest = &line[at + "127.0.0.1:".len()..];
    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!port.is_empty()).then(|| format!("127.0.0.1:{port}"))
}

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime of a process, from fields 14 and 15 of `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(clock_ticks);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).context("odd /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(Duration::from_nanos((utime + stime) * 1_000_000_000 / ticks))
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("odd VmRSS")?.parse()?)
}

/// The open-file limit this process (and so its children) runs with.
pub fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A fresh scratch directory for configs and logs.
pub fn scratch_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("flexload-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
