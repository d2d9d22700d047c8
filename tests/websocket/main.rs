//! WebSocket passthrough over real sockets: a WebSocket client, flexgate, and the
//! simulator's Realtime endpoint, each on `127.0.0.1:0`.
//!
//! The modules are `#[cfg(test)]` so clippy's `allow-unwrap-in-tests` covers helpers too.

#[cfg(test)]
#[path = "../common/harness.rs"]
mod common;
#[cfg(test)]
#[path = "../common/forward_proxy.rs"]
mod forward_proxy;
#[cfg(test)]
mod lifecycle;
#[cfg(test)]
mod proxy;
#[cfg(test)]
mod responses;
#[cfg(test)]
mod sessions;
#[cfg(test)]
mod support;
