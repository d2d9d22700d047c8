//! The gateway end to end, in one test binary: over real sockets against the simulator
//! (`common`), or in memory on paused time where a test times a fault (`memory`). One
//! module per concern; fixtures live in `tests/common/` and `tests/fixtures/`.
//!
//! The modules are `#[cfg(test)]` so clippy's `allow-unwrap-in-tests` covers helpers too.

#[cfg(test)]
#[path = "../common/harness.rs"]
mod common;
#[cfg(test)]
#[path = "../common/forward_proxy.rs"]
mod forward_proxy;
#[cfg(test)]
#[path = "../common/memory.rs"]
mod memory;
#[cfg(test)]
#[path = "../common/poll.rs"]
mod poll;

#[cfg(test)]
mod auth;
#[cfg(test)]
mod bad_input;
#[cfg(test)]
mod bill;
#[cfg(test)]
mod budgets;
#[cfg(test)]
mod errors;
#[cfg(test)]
mod layout;
#[cfg(test)]
mod metrics;
#[cfg(test)]
mod passthrough;
#[cfg(test)]
mod props;
#[cfg(test)]
mod routing;
#[cfg(test)]
mod streaming;
#[cfg(test)]
mod threads;
#[cfg(test)]
mod tls;
#[cfg(test)]
mod upstream_proxy;
#[cfg(test)]
mod workload;
