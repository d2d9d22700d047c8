//! The `flexgate` binary: parse the command line and hand over to [`flexgate::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = flexgate::cli::Cli::parse();
    match flexgate::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            #[expect(clippy::print_stderr, reason = "the last resort for errors before or outside logging")]
            {
                eprintln!("flexgate: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
