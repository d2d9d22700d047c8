//! The fault matrix: one test per upstream or client failure, driven by the simulator's
//! scripted faults (`x-sim-fault`). Each asserts what the client received, what the
//! simulator received, and what the metrics say. `docs/reliability.md` maps every
//! scenario to its test.
//!
//! The modules are `#[cfg(test)]` so clippy's `allow-unwrap-in-tests` covers helpers too.

#[cfg(test)]
mod admission;
#[cfg(test)]
#[path = "../common/harness.rs"]
mod common;
#[cfg(test)]
#[path = "../common/memory.rs"]
mod memory;
#[cfg(test)]
#[path = "../common/poll.rs"]
mod poll;
#[cfg(test)]
#[path = "../common/process.rs"]
mod process;
#[cfg(test)]
mod shutdown;
#[cfg(test)]
mod slow_clients;
#[cfg(test)]
mod storms;
#[cfg(test)]
mod support;
#[cfg(test)]
mod upstream;
