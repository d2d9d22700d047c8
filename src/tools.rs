//! Client-side tools shipped in the same binary: `flexgate demo` and the workloads it and
//! `flexgate replay` send. They are clients of the gateway, over HTTP like any other;
//! the gateway never imports this module.

pub mod demo;
pub mod workload;
