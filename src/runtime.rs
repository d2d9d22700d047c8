//! The gateway's threads: one tokio current-thread runtime per thread, each serving the
//! client connections handed to it, so a request never changes thread.
//!
//! A proxy's request hops between tasks (the client connection, timers, the upstream
//! socket), and on tokio's work-stealing runtime any hop may land on another worker,
//! which the kernel must first wake: about 1.3 `futex` calls per request at 2,000
//! requests/s on the benchmark machine, ~15 µs of CPU and ~25 µs of latency per request
//! (docs/benchmarks.md). Here each connection lives on one thread for its whole life: the
//! accept loop hands connections out in turn, and the upstream pool keeps each thread's
//! idle connections apart ([`current`]), so the sockets a request touches are all
//! registered with the thread that serves it. Several threads still matter: a burst of
//! streamed chunks on many connections is spread over the cores instead of queueing on
//! one.
//!
//! Thread 0 is the one that runs `serve` itself (it also accepts); [`Workers`] starts the
//! others.

use std::cell::Cell;
use std::io;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// This thread's index among the gateway's threads (0 outside them, as in tests).
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// A current-thread runtime with I/O and timers.
pub fn single() -> io::Result<Runtime> {
    Builder::new_current_thread().enable_all().build()
}

/// The threads beyond the first, each running its own runtime until dropped.
pub struct Workers {
    handles: Vec<Handle>,
    threads: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Workers {
    /// No extra threads: everything runs on the caller's runtime.
    pub fn none() -> Self {
        Self { handles: Vec::new(), threads: Vec::new() }
    }

    /// Start `threads - 1` threads (thread 0 is the caller's).
    pub fn start(threads: usize) -> io::Result<Self> {
        let mut workers = Self::none();
        for index in 1..threads {
            let runtime = single()?;
            let (stop, stopped) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            let thread = std::thread::Builder::new().name(format!("flexgate-{index}")).spawn(move || {
                INDEX.with(|i| i.set(index));
                // Tasks of a current-thread runtime run while its thread is inside
                // `block_on`; they are dropped with the runtime when this returns.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
            workers.threads.push((stop, thread));
        }
        Ok(workers)
    }

    /// The extra threads' runtimes, in order (thread 1 first).
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (stop, thread) in self.threads.drain(..) {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}
