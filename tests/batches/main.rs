//! The Files and Batches API under the background lane, end to end over real sockets
//! against the simulator: the whole flow, validation, cancel, ownership, a flex storm
//! inside a short window, and a restart on the same store.
//!
//! The modules are `#[cfg(test)]` so clippy's `allow-unwrap-in-tests` covers helpers too.

#[cfg(test)]
#[path = "../common/harness.rs"]
mod common;

#[cfg(test)]
mod flow;
#[cfg(test)]
mod storm;
#[cfg(test)]
mod support;
