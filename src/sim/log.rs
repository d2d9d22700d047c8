//! The log of requests the sim received, in arrival order, for tests that compare what a
//! gateway forwarded. An entry is written on arrival (status 0) and completed when the
//! answer's headers are ready, so a request that hangs still shows up. The log keeps the
//! newest [`LOG_CAPACITY`] entries so long benchmarks do not grow memory without bound.

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Entries kept; older ones are dropped first.
pub const LOG_CAPACITY: usize = 50_000;

/// One request as the sim received and answered it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedRequest {
    pub method: String,
    /// The HTTP version the request came in on (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
    pub path: String,
    pub query: Option<String>,
    /// The `x-request-id` header as received.
    pub request_id: Option<String>,
    pub model: Option<String>,
    /// `service_tier` as sent in the body (a non-string value as its JSON text).
    pub service_tier: Option<String>,
    /// The tier the sim reported back; `None` if it answered an error.
    pub served_tier: Option<String>,
    pub stream: bool,
    /// `stream_options.include_usage` as sent.
    pub include_usage: Option<bool>,
    /// Status answered; 0 while no headers were sent (e.g. `hang`).
    pub status: u16,
    /// The scripted fault step applied, if any.
    pub fault: Option<String>,
    /// Lower-cased request headers in order, `authorization` verbatim (it is a simulator).
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    pub body_sha256: String,
}

/// What a handler learned about a request; carried to the log in a response extension.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    pub model: Option<String>,
    pub service_tier: Option<String>,
    pub served_tier: Option<String>,
    pub stream: bool,
    pub include_usage: Option<bool>,
    pub fault: Option<String>,
}

impl Outcome {
    pub fn apply(self, entry: &mut ReceivedRequest) {
        entry.model = self.model;
        entry.service_tier = self.service_tier;
        entry.served_tier = self.served_tier;
        entry.stream = self.stream;
        entry.include_usage = self.include_usage;
        entry.fault = self.fault;
    }
}

/// Bounded, sequence-numbered request log.
#[derive(Default)]
pub(crate) struct RequestLog {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Sequence number of `items[0]`; a stale sequence number (cleared or evicted entry)
    /// simply finds nothing.
    first_seq: u64,
    items: VecDeque<ReceivedRequest>,
}

impl RequestLog {
    /// Appends an entry and returns its sequence number.
    pub fn push(&self, entry: ReceivedRequest) -> u64 {
        let mut log = self.inner.lock();
        let seq = log.first_seq + log.items.len() as u64;
        log.items.push_back(entry);
        if log.items.len() > LOG_CAPACITY {
            log.items.pop_front();
            log.first_seq += 1;
        }
        seq
    }

    /// Completes entry `seq` if it is still in the log.
    pub fn finish(&self, seq: u64, status: u16, outcome: Option<Outcome>) {
        let mut log = self.inner.lock();
        let Some(index) = seq.checked_sub(log.first_seq) else {
            return;
        };
        let Some(entry) = usize::try_from(index).ok().and_then(|i| log.items.get_mut(i)) else {
            return;
        };
        entry.status = status;
        if let Some(outcome) = outcome {
            outcome.apply(entry);
        }
    }

    pub fn snapshot(&self) -> Vec<ReceivedRequest> {
        self.inner.lock().items.iter().cloned().collect()
    }

    pub fn clear(&self) {
        let mut log = self.inner.lock();
        log.first_seq += log.items.len() as u64;
        log.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> ReceivedRequest {
        ReceivedRequest { path: path.to_owned(), ..ReceivedRequest::default() }
    }

    #[test]
    fn finish_after_clear_is_ignored() {
        let log = RequestLog::default();
        let a = log.push(entry("/a"));
        log.finish(a, 200, None);
        assert_eq!(log.snapshot()[0].status, 200);
        log.clear();
        let b = log.push(entry("/b"));
        log.finish(a, 500, None);
        assert_eq!(log.snapshot(), vec![entry("/b")]);
        log.finish(b, 201, None);
        assert_eq!(log.snapshot()[0].status, 201);
    }

    #[test]
    fn capacity_evicts_oldest() {
        let log = RequestLog::default();
        for i in 0..=LOG_CAPACITY {
            log.push(entry(&i.to_string()));
        }
        let all = log.snapshot();
        assert_eq!(all.len(), LOG_CAPACITY);
        assert_eq!(all[0].path, "1");
    }
}
