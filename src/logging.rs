//! Tracing subscriber setup: JSON lines or pretty text, filtered by `log.level`.
//!
//! JSON (the gateway's format, one line per request) goes through `json::JsonLines` and
//! a batching writer thread (`writer`); the returned [`LogGuard`] must live until the
//! process is done logging, since dropping it writes out what is still pending. Pretty
//! text is for people at a terminal and is written straight to stderr.

mod json;
mod writer;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Keeps the log writer running; drop it last, after the final log line.
#[must_use = "dropping the guard stops the log writer; hold it until the process is done logging"]
pub struct LogGuard {
    _flush: Option<writer::FlushGuard>,
}

/// Install the global subscriber. Safe to call more than once (later calls are ignored).
pub fn init(log: &LogConfig) -> LogGuard {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only when a person is watching; files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match log.format {
        LogFormat::Json => {
            let json = builder.json().flatten_event(true).with_current_span(false).event_format(json::JsonLines::new());
            if let Ok((out, flush)) = writer::batched(std::io::stderr()) {
                // A second call installs nothing; its writer thread then just stops.
                let _ = json.with_writer(out).try_init();
                LogGuard { _flush: Some(flush) }
            } else {
                // No thread for the writer: log unbuffered rather than not at all.
                let _ = json.with_writer(std::io::stderr).try_init();
                LogGuard { _flush: None }
            }
        }
        LogFormat::Pretty => {
            let _ = builder.with_writer(std::io::stderr).compact().try_init();
            LogGuard { _flush: None }
        }
    }
}
