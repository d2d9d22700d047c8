//! flexgate: a self-hosted, OpenAI-compatible gateway that sends latency-tolerant work to
//! OpenAI's flex tier, absorbs 429s with deadline-aware retries and escalation, and
//! exports cost, savings and latency metrics for Prometheus.
//!
//! The module map, one request's path through it and where to add things: `docs/architecture.md`.

#![forbid(unsafe_code)]

// The request path: listeners, the layer stack and local routes, the proxy handler and
// what it calls (authentication, routing, the upstream client and its retry loop, the
// streamed answer, usage and its accounting), and the one error enum.
pub mod admission;
pub mod app;
pub mod auth;
pub mod batch;
pub mod budgets;
pub mod error;
pub mod health;
pub mod ledger;
pub mod proxy;
pub mod request_id;
pub mod routing;
pub mod server;
pub mod stream;
pub mod tls;
pub mod upstream;
pub mod usage;
pub mod websocket;

// Wire formats and vocabulary shared along the path: the request body, endpoints, tiers,
// server-sent events, JSON scans.
pub mod body;
pub mod endpoint;
pub mod json_scan;
pub mod sse;
pub mod tier;

// Support: configuration, startup, shared state, the embedded store, threads, metrics,
// prices, logs.
pub mod config;
pub mod logging;
pub mod metrics;
pub mod pricing;
pub mod runtime;
pub mod shared;
pub mod startup;
pub mod state;
pub mod store;

// Outside the gateway, which imports none of them: the command line and its output (the
// one module allowed to print), the simulated upstream, and the client-side tools (demo,
// workloads, replay).
pub mod cli;
pub mod output;
pub mod sim;
pub mod tools;

pub use config::Config;
pub use server::Server;
