//! The batching writer: every line arrives, whole and in order, while running and at exit.

use std::io::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::batched;

/// The writer thread's output, with a signal for each batch written.
#[derive(Clone, Default)]
struct Sink {
    written: Arc<(Mutex<Vec<u8>>, Condvar)>,
}

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.0.lock().extend_from_slice(buf);
        self.written.1.notify_all();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn text(&self) -> String {
        String::from_utf8(self.written.0.lock().clone()).unwrap()
    }

    /// Wait (bounded) until `n` lines were written.
    fn wait_lines(&self, n: usize) -> String {
        let mut written = self.written.0.lock();
        let _ = self.written.1.wait_while_for(
            &mut written,
            |w| memchr::memchr_iter(b'\n', w).count() < n,
            Duration::from_secs(10),
        );
        String::from_utf8(written.clone()).unwrap()
    }
}

#[test]
fn lines_are_written_without_dropping_the_guard() {
    let sink = Sink::default();
    let (writer, _guard) = batched(sink.clone()).unwrap();
    (&writer).write_all(b"one\n").unwrap();
    (&writer).write_all(b"two\n").unwrap();
    assert_eq!(sink.wait_lines(2), "one\ntwo\n");
}

#[test]
fn a_line_wakes_a_writer_that_went_to_sleep_and_steady_lines_need_no_wake() {
    let sink = Sink::default();
    let (writer, _guard) = batched(sink.clone()).unwrap();
    (&writer).write_all(b"one\n").unwrap();
    assert_eq!(sink.wait_lines(1), "one\n");
    // After its idle ticks the writer sleeps (bounded wait for that state, not a sleep).
    let asleep = || writer.shared.pending.lock().asleep;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !asleep() && tokio::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(asleep(), "the writer never went to sleep");
    // Without the producer's wake-up this line would wait forever.
    (&writer).write_all(b"two\n").unwrap();
    assert!(!asleep());
    assert_eq!(sink.wait_lines(2), "one\ntwo\n");
    // Awake, the writer finds lines on its tick: writing one does not mark it for waking.
    (&writer).write_all(b"three\n").unwrap();
    assert!(!asleep());
    assert_eq!(sink.wait_lines(3), "one\ntwo\nthree\n");
}

#[test]
fn dropping_the_guard_writes_everything_from_every_thread_in_order() {
    let sink = Sink::default();
    let (writer, guard) = batched(sink.clone()).unwrap();
    let writer = Arc::new(writer);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    (&*writer).write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    drop(guard);
    let text = sink.text();
    assert_eq!(text.lines().count(), 20_000);
    for t in 0..4 {
        let mine: Vec<usize> =
            text.lines().filter_map(|l| l.strip_prefix(&format!("{t} "))).map(|i| i.parse().unwrap()).collect();
        assert_eq!(mine, (0..5_000).collect::<Vec<_>>(), "thread {t}'s lines whole and in order");
    }
}

#[test]
fn a_full_buffer_makes_producers_wait_instead_of_dropping() {
    let sink = Sink::default();
    let (writer, guard) = batched(sink.clone()).unwrap();
    // Far more than the pending cap, in big lines.
    let line = vec![b'x'; 64 << 10];
    for _ in 0..200 {
        (&writer).write_all(&line).unwrap();
    }
    drop(guard);
    assert_eq!(sink.written.0.lock().len(), 200 * line.len());
}
