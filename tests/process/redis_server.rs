//! A `redis-server` of a test's own: Debian's package, installed by
//! `tests/redis/install.sh` when missing, started on a free port (or a given one, to come
//! back where it was), and stopped by pid when dropped.

use std::process::{Child, Command, Stdio};

use crate::poll;

/// Redis's password in the tests: it is in the URL the gateways get, and never in their logs.
pub const PASSWORD: &str = "redis-secret-4e1d7c";

/// A `redis-server` of the test's own, killed by pid when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    /// Start on `port` (0: a free one), with no persistence: a restart loses the data.
    pub async fn start(port: u16) -> Self {
        if Command::new("redis-server").arg("--version").output().is_err() {
            let root = env!("CARGO_MANIFEST_DIR");
            let installed = Command::new("bash").arg(format!("{root}/tests/redis/install.sh")).status();
            assert!(installed.is_ok_and(|s| s.success()), "redis-server is missing and tests/redis/install.sh failed");
        }
        // redis-server cannot bind port 0: take a free port from the kernel and let go of it.
        let port = if port == 0 {
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        } else {
            port
        };
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", PASSWORD])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = Self { child, port };
        let up = poll::eventually(|| redis.cli(&["PING"]) == "PONG").await;
        assert!(up, "redis-server did not answer on port {port}");
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "-a", PASSWORD, "--no-auth-warning"])
            .args(args)
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
    }

    /// The client's hashes as (field, value) pairs.
    pub fn fields(&self, client: &str) -> Vec<(String, u64)> {
        let keys = self.cli(&["--raw", "KEYS", &format!("flexgate:budget:{client}:*")]);
        let mut fields = Vec::new();
        for key in keys.lines().filter(|k| !k.is_empty()) {
            let all = self.cli(&["--raw", "HGETALL", key]);
            let lines: Vec<&str> = all.lines().collect();
            for pair in lines.chunks(2) {
                if let [field, value] = pair {
                    fields.push(((*field).to_owned(), value.parse().unwrap_or(0)));
                }
            }
        }
        fields
    }

    /// What the replicas count against the client's limit (nano-dollars): every field
    /// but the spend fields (`s:REPLICA`).
    pub fn counted(&self, client: &str) -> u64 {
        self.fields(client).iter().filter(|(f, _)| !f.starts_with("s:")).map(|(_, v)| v).sum()
    }

    /// Freeze the server (SIGSTOP): connections stay open and nothing answers, as with
    /// a Redis stalled on a slow disk or a long command.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Let a paused server answer again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let sent = Command::new("kill").args([which, &self.child.id().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {which} redis-server");
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
