//! Client-side tools shipped in the same binary: `flexgate demo`, the workloads it and
//! `flexgate replay` send, and `flexgate batch run`, a Batch API client. They are clients of the gateway, over HTTP like any other;
//! the gateway never imports this module.

pub mod batch_run;
pub mod demo;
pub mod workload;
