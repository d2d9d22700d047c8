//! Progress of a running workload, on stderr so stdout keeps only the report: a live
//! bar (indicatif) when stderr is a terminal, otherwise one plain line per tenth of the
//! run, so CI logs and pipes get a few readable lines instead of control codes.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use super::Observed;

/// How a run shows its progress.
pub struct Progress {
    mode: Mode,
    total: usize,
    done: AtomicUsize,
    errors: AtomicUsize,
    started: Instant,
}

enum Mode {
    Bar(ProgressBar),
    Lines,
    Hidden,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub fn for_stderr(total: usize) -> Self {
        if std::io::stderr().is_terminal() { Self::bar(total) } else { Self::with_mode(Mode::Lines, total) }
    }

    /// Shows nothing (tests, library use).
    pub fn hidden(total: usize) -> Self {
        Self::with_mode(Mode::Hidden, total)
    }

    fn bar(total: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr_with_hz(10));
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(100));
        Self::with_mode(Mode::Bar(bar), total)
    }

    fn with_mode(mode: Mode, total: usize) -> Self {
        Self { mode, total, done: AtomicUsize::new(0), errors: AtomicUsize::new(0), started: Instant::now() }
    }

    /// Count one finished request.
    pub fn record(&self, outcome: &Observed) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let errors = self.errors.fetch_add(usize::from(!outcome.ok()), Ordering::Relaxed) + usize::from(!outcome.ok());
        match &self.mode {
            Mode::Bar(bar) => {
                bar.inc(1);
                if errors > 0 {
                    bar.set_message(format!("{errors} errors"));
                }
            }
            Mode::Lines => {
                if crosses_tenth(done, self.total) {
                    self.line(done, errors);
                }
            }
            Mode::Hidden => {}
        }
    }

    /// Clear the bar (the report follows on stdout).
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }

    /// A plain progress line, for a stderr that is not a terminal.
    fn line(&self, done: usize, errors: usize) {
        let pct = done * 100 / self.total.max(1);
        let secs = self.started.elapsed().as_secs_f64();
        let total = self.total;
        crate::output::diagnostic(format_args!(
            "progress: {done}/{total} requests ({pct}%), {errors} errors, {secs:.1}s"
        ));
    }
}

/// Whether `done` is the first count at or past the next tenth of `total`.
fn crosses_tenth(done: usize, total: usize) -> bool {
    if total == 0 || done > total {
        return false;
    }
    let tenth = |n: usize| n * 10 / total;
    done == total || tenth(done) > tenth(done - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_at_each_tenth() {
        let hits: Vec<usize> = (1..=200).filter(|&d| crosses_tenth(d, 200)).collect();
        assert_eq!(hits, vec![20, 40, 60, 80, 100, 120, 140, 160, 180, 200]);
        let small: Vec<usize> = (1..=3).filter(|&d| crosses_tenth(d, 3)).collect();
        assert_eq!(small, vec![1, 2, 3]);
        assert!(!crosses_tenth(0, 0));
    }
}
