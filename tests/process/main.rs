//! The real `flexgate` binary as a child process: its command line, its log lines, its
//! signals, and the secrets its whole log output must never contain.
//!
//! The modules are `#[cfg(test)]` so clippy's `allow-unwrap-in-tests` covers helpers too.

#[cfg(test)]
#[path = "../common/harness.rs"]
mod common;
#[cfg(test)]
#[path = "../common/poll.rs"]
mod poll;
#[cfg(test)]
#[path = "../common/process.rs"]
mod process;

#[cfg(test)]
mod batch_cli;
#[cfg(test)]
mod binary;
#[cfg(test)]
mod crash;
#[cfg(test)]
mod peers;
#[cfg(test)]
mod redis_server;
#[cfg(test)]
mod secrets;
#[cfg(test)]
mod shared;
