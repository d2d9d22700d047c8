//! The real binary as a child process: spawn it, read its log lines, find the address
//! it is listening on. Used by tests that need signals or the process's own logging.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_flexgate");

/// A running `flexgate` process; killed when dropped.
pub struct Process {
    pub child: Child,
    /// Every stdout and stderr line as it arrives.
    pub lines: mpsc::UnboundedReceiver<String>,
    /// Every line so far, kept for scanning after the fact.
    pub all: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BIN);
        command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn tokio::io::AsyncRead + Unpin + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn tokio::io::AsyncRead + Unpin + Send> = Box::new(child.stderr.take().unwrap());
        for reader in [out, err] {
            let (tx, all) = (tx.clone(), all.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(reader).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    all.lock().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        Self { child, lines, all }
    }

    /// Wait (at most 30 s) for a line containing `needle` and return it.
    pub async fn line_with(&mut self, needle: &str) -> String {
        let lines = &mut self.lines;
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        found.ok().flatten().unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", self.all.lock().join("\n")))
    }

    /// The `127.0.0.1:PORT` of the first line containing `needle`.
    pub async fn addr_after(&mut self, needle: &str) -> String {
        let line = self.line_with(needle).await;
        let at = line.find("127.0.0.1:").unwrap_or_else(|| panic!("no address in {line}"));
        line[at..].chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect()
    }

    /// `flexgate sim` on a free port, with extra flags; returns it and its address.
    pub async fn sim(flags: &[&str]) -> (Self, String) {
        let mut args = vec!["sim", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        let mut sim = Self::spawn(&args, &[]);
        let addr = sim.addr_after("listening").await;
        (sim, addr)
    }

    /// `flexgate serve` with `toml` as its config file (JSON logs are expected).
    pub async fn serve(name: &str, toml: &str, env: &[(&str, &str)]) -> (Self, String) {
        let path = std::env::temp_dir().join(format!("flexgate-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, toml).unwrap();
        let mut gw = Self::spawn(&["serve", "--config", path.to_str().unwrap()], env);
        let addr = gw.addr_after("\"listening\"").await;
        let _ = std::fs::remove_file(path);
        (gw, addr)
    }

    pub fn pid(&self) -> String {
        self.child.id().unwrap().to_string()
    }
}
