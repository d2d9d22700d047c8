//! Workloads: a mixed stream of interactive and background requests sent to an
//! OpenAI-compatible base URL, and the report of what happened to them.
//!
//! Used by `flexgate demo --workload N` (a generated workload against the in-process
//! simulator and gateway) and `flexgate replay FILE.jsonl` (a file, against any running
//! gateway or OpenAI itself). The pieces, in the order a run uses them:
//!
//! - [`mod@format`] reads the JSONL workload format (a superset of OpenAI Batch API input
//!   lines) into [`Item`]s; [`generate`] makes the demo's mix.
//! - [`runner`] sends items with bounded concurrency and reads each answer (JSON or SSE)
//!   into an [`Observed`]: class, served tier, attempts, escalation, usage, latency, error.
//! - [`progress`] shows a bar on a terminal and plain periodic lines otherwise.
//! - [`stats`] aggregates outcomes (counts, percentiles, cost from usage with the
//!   embedded price table) and [`report`] renders them as text.
//! - [`replay`] is the `flexgate replay` command; [`counters`] reads flexgate's own
//!   counters before and after a run, when the target exposes them.
//!
//! Nothing here touches the gateway's request path: a workload is just a client.

pub mod counters;
pub mod format;
pub mod generate;
pub mod progress;
pub mod replay;
pub mod report;
pub mod runner;
pub mod stats;

use std::fmt;

pub use format::{Item, parse_jsonl};
pub use runner::{Observed, Target};

/// Which of flexgate's two shipped lanes a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    /// Urgent work: `/v1`, the standard tier.
    Interactive,
    /// Work that can wait: `/flex/v1` (or `service_tier: "flex"`), flex first.
    Background,
}

impl Lane {
    /// The class name flexgate gives this lane by default.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Interactive => "interactive",
            Lane::Background => "background",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
