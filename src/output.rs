//! The command line's own output (`crate::cli` and the client-side tools), and the one
//! place in the crate allowed to print: reports,
//! banners and `check-config`'s verdict on stdout; diagnostics and plain progress lines on
//! stderr. The gateway itself speaks through `tracing` (`crate::logging`).

#![expect(clippy::print_stdout, clippy::print_stderr, reason = "the command line's output goes through here")]

use std::fmt::Display;

/// `text` to stdout as it is (it carries its own line ends).
pub(crate) fn out(text: impl Display) {
    print!("{text}");
}

/// One line to stdout.
pub(crate) fn line(text: impl Display) {
    println!("{text}");
}

/// One line to stderr: a diagnostic for the person at the terminal, or a progress line.
pub(crate) fn diagnostic(text: impl Display) {
    eprintln!("{text}");
}
