//! Integration tests of the simulated `OpenAI` upstream: in-process through
//! `Router::oneshot` (paused time where timing matters) and over a real socket.
//!
//! The modules are `#[cfg(test)]` so clippy's `allow-unwrap-in-tests` covers helpers too.

#[cfg(test)]
#[path = "../common/poll.rs"]
mod poll;

#[cfg(test)]
mod answers;
#[cfg(test)]
mod faults;
#[cfg(test)]
mod limits;
#[cfg(test)]
mod passthrough;
#[cfg(test)]
mod realtime;
#[cfg(test)]
mod shapes;
#[cfg(test)]
mod socket;
#[cfg(test)]
mod streams;
#[cfg(test)]
mod support;
