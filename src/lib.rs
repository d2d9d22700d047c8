//! flexgate: a self-hosted, OpenAI-compatible gateway that sends latency-tolerant work to
//! OpenAI's flex tier, absorbs 429s with deadline-aware retries and escalation, and
//! exports cost, savings and latency metrics for Prometheus.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod admission;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod health;
pub mod json_scan;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod pricing;
pub mod proxy;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod sim;
pub mod state;
pub mod stream;
pub mod upstream;
pub mod usage;
pub mod workload;

pub use config::Config;
pub use server::Server;
