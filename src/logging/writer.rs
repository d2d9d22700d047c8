//! A buffered, lossless log writer: request threads append whole lines to a shared buffer,
//! and one background thread writes the buffer out in batches.
//!
//! Writing each line to stderr as it is made costs a system call per request (about 3 %
//! of the proxy's CPU in a profile, and on a file the write takes the inode lock). Here a
//! line costs a short lock and a copy, and no system call while lines keep coming: the
//! writer thread then wakes on its own every [`TICK`] and writes what gathered with one
//! call. Waking it from a request instead costs a `futex` call, and the thread's wake-up,
//! on the request's path (at 2,000 requests/s about one request in four paid it). After
//! [`IDLE_TICKS`] ticks with nothing to write it sleeps until a line arrives; that line
//! wakes it, and it waits [`LINGER`] for more to gather. Nothing is dropped: a producer
//! that finds [`MAX_PENDING`] bytes waiting blocks until they are written, and dropping
//! the [`FlushGuard`] writes everything still pending before it returns.

use std::io::{self, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread lets lines gather after the first one: short enough that a
/// person tailing the log sees no delay, long enough to batch a busy gateway's lines.
const LINGER: Duration = Duration::from_millis(2);
/// How often the writer looks for lines while the gateway is logging: the longest a line
/// waits, short enough that a person tailing the log sees no delay.
const TICK: Duration = Duration::from_millis(10);
/// Empty ticks after which the writer sleeps until a line wakes it (a quiet gateway's
/// thread does not wake a hundred times a second for nothing).
const IDLE_TICKS: u32 = 10;
/// Pending bytes at which a producer wakes the writer without waiting for its tick.
const EAGER: usize = 256 << 10;
/// Pending bytes beyond which producers wait for the writer (stderr is blocked or slow).
const MAX_PENDING: usize = 4 << 20;
/// How long dropping the guard waits for the last batch (a stuck stderr must not hang exit).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

struct Pending {
    lines: Vec<u8>,
    /// The writer waits for a wake-up, not for its next tick.
    asleep: bool,
    closed: bool,
    /// Set by the writer thread once its last batch is out.
    finished: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// The buffer went from empty to non-empty, or the guard closed it.
    filled: Condvar,
    /// The writer took a batch (producers waiting on a full buffer), or finished.
    drained: Condvar,
}

/// The [`MakeWriter`] handed to the subscriber.
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Keeps the writer thread alive; dropping it flushes every pending line and stops it.
#[must_use = "dropping the guard stops the log writer"]
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Start the writer thread over `out` (stderr in the gateway).
pub fn batched<W: Write + Send + 'static>(out: W) -> io::Result<(BatchWriter, FlushGuard)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending { lines: Vec::new(), asleep: false, closed: false, finished: false }),
        filled: Condvar::new(),
        drained: Condvar::new(),
    });
    let worker = Arc::clone(&shared);
    let thread = std::thread::Builder::new().name("flexgate-log".into()).spawn(move || run(&worker, out))?;
    Ok((BatchWriter { shared: Arc::clone(&shared) }, FlushGuard { shared, thread: Some(thread) }))
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.pending.lock();
        let mut empty_ticks = 0;
        while pending.lines.is_empty() && !pending.closed {
            if empty_ticks < IDLE_TICKS {
                shared.filled.wait_for(&mut pending, TICK);
                empty_ticks += 1;
                continue;
            }
            pending.asleep = true;
            while pending.asleep && !pending.closed {
                shared.filled.wait(&mut pending);
            }
            if !pending.closed {
                // Woken by the first line after a quiet spell: let the lines of a busy
                // moment gather; producers never wait for this.
                drop(pending);
                std::thread::sleep(LINGER);
                pending = shared.pending.lock();
            }
        }
        pending.asleep = false;
        std::mem::swap(&mut pending.lines, &mut batch);
        let closing = pending.closed;
        drop(pending);
        shared.drained.notify_all();
        // A failed write (stderr closed) loses that batch but never blocks the gateway.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if closing && shared.pending.lock().lines.is_empty() {
            break;
        }
    }
    shared.pending.lock().finished = true;
    shared.drained.notify_all();
}

impl Write for &BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.shared.pending.lock();
        while pending.lines.len() >= MAX_PENDING && !pending.finished {
            self.shared.drained.wait(&mut pending);
        }
        if pending.finished {
            // The guard is gone and the process is exiting: nothing would write it.
            return Ok(line.len());
        }
        pending.lines.extend_from_slice(line);
        // Only a sleeping writer, or a full batch, is woken; otherwise its tick comes soon.
        let wake = pending.asleep || pending.lines.len() >= EAGER;
        pending.asleep = false;
        drop(pending);
        if wake {
            self.shared.filled.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;
    fn make_writer(&'a self) -> &'a BatchWriter {
        self
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        let mut pending = self.shared.pending.lock();
        pending.closed = true;
        self.shared.filled.notify_one();
        let finished = !self.shared.drained.wait_while_for(&mut pending, |p| !p.finished, SHUTDOWN_WAIT).timed_out();
        drop(pending);
        if finished && let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests;
