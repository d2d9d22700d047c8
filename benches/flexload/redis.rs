//! A `redis-server` of the benchmark's own, for the `budgets` mode: Debian's package
//! (installed by `tests/redis/install.sh` when missing), started on a free loopback port
//! with no persistence, read with `redis-cli`, and killed by pid when the mode ends.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// In the URL the gateway gets, so the shared-state link authenticates as in production.
const PASSWORD: &str = "flexload-redis-7c2e";

pub struct Server {
    pub port: u16,
    pub pid: u32,
    child: Child,
}

impl Server {
    pub async fn start(dir: &Path) -> Result<Server> {
        if !installed().await {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis/install.sh");
            let ok = Command::new("bash").arg(script).status().await.is_ok_and(|s| s.success());
            if !ok || !installed().await {
                bail!("redis-server is missing and {script} could not install it");
            }
        }
        // redis-server cannot bind port 0: take a free port from the kernel and let go of it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(dir.join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", PASSWORD])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        let pid = child.id().context("redis-server has no pid")?;
        let server = Server { port, pid, child };
        for _ in 0..200 {
            if server.cli(&["PING"]).await.is_ok_and(|r| r == "PONG") {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("redis-server did not answer on port {port} within 5 s (see {})", dir.join("redis.log").display())
    }

    pub fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    /// One `redis-cli` command's raw output, trimmed.
    pub async fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "-a", PASSWORD, "--no-auth-warning", "--raw"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running redis-cli")?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Calls to Redis so far: its script calls (`EVALSHA`, `EVAL`, `SCRIPT LOAD`), the
    /// only commands the gateway sends once connected. Commandstats also counts the
    /// commands a script runs, and this driver's own reads, so the rest is left out.
    pub async fn commands(&self) -> Result<u64> {
        let stats = self.cli(&["INFO", "commandstats"]).await?;
        let mut total = 0;
        for line in stats.lines() {
            let Some((name, rest)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
                continue;
            };
            if !(name.starts_with("eval") || name.starts_with("script")) {
                continue;
            }
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls=")).context("odd commandstats line")?;
            total += calls.parse::<u64>()?;
        }
        Ok(total)
    }

    /// A hash's fields and values.
    pub async fn hash(&self, key: &str) -> Result<Vec<(String, String)>> {
        let all = self.cli(&["HGETALL", key]).await?;
        let lines: Vec<&str> = all.lines().collect();
        Ok(lines.chunks(2).filter_map(|p| Some(((*p.first()?).to_owned(), (*p.get(1)?).to_owned()))).collect())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn installed() -> bool {
    let ok = |name: &'static str| async move {
        Command::new(name).arg("--version").output().await.is_ok_and(|o| o.status.success())
    };
    ok("redis-server").await && ok("redis-cli").await
}
