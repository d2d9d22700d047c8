//! The `flexgate` binary: parse the command line and hand over to [`flexgate::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    flexgate::cli::run(flexgate::cli::Cli::parse())
}
