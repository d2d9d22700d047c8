//! Incremental Server-Sent Events parser: turns the bytes of a forwarded stream into
//! events with their absolute byte spans. It only observes; it never rewrites bytes.
//!
//! Follows the parts of the WHATWG event-stream rules that matter for OpenAI streams:
//! lines end in `\n`, `\r\n` or `\r` (also when split across chunks), `data:` lines join
//! with `\n`, `event:` names the event, `:` starts a comment, `id:`/`retry:` and unknown
//! fields are ignored, a blank line dispatches, a block without `data` is not dispatched,
//! a leading UTF-8 BOM is skipped and invalid UTF-8 is decoded lossily. Per chunk:
//! one scan of the new bytes; whole lines are read in place, only a trailing
//! partial line is copied, nothing is rescanned.
//!
//! Memory is bounded: a block (event) whose span would exceed
//! [`SseParser::with_max_event_bytes`] is **dropped**, not returned. The parser stops
//! buffering it at once, skips to its terminating blank line and counts it in
//! [`SseParser::dropped_events`]. Dropping (rather than failing) suits a passthrough
//! gateway: the client still receives every byte; only the observer misses one event.

/// Default cap on one event's span: far above any real OpenAI event, small enough that a
/// hostile upstream cannot make the observer hold unbounded memory.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` when absent or empty (the WHATWG default type "message").
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (lossy UTF-8).
    pub data: String,
    /// Absolute offset of the event's first line (comments inside the block and, for the
    /// first event, a leading BOM included).
    pub start: u64,
    /// Absolute offset just past the blank line that dispatched the event.
    pub end: u64,
}

/// Incremental parser; feed it the stream's chunks in order.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: u64,
    /// Bytes consumed so far (absolute offset of the next byte).
    offset: u64,
    /// Absolute offset where the current block began (just after the last blank line).
    block_start: u64,
    /// The start of a line that the previous chunk cut off.
    partial: Vec<u8>,
    /// Accumulated `data` of the current block (joined with `\n`).
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    after_cr: AfterCr,
    mode: Mode,
    /// No line has ended yet, so the current line may start with a BOM.
    at_stream_start: bool,
    dropped: u64,
}

/// What the previous chunk's final `\r` leaves open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterCr {
    /// The previous chunk did not end in `\r`.
    Nothing,
    /// A `\n` opening the next chunk completes that `\r\n` instead of ending a line.
    SkipLf,
    /// As `SkipLf`, and that `\r` ended the blank line closing the block. The block is
    /// closed once we know whether the `\n` belongs to it, so `end` does not depend on
    /// where the stream was split.
    SkipLfThenClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Collect,
    /// Dropping an oversized block up to its blank line; `line_has_bytes`: the current
    /// (unstored) line is not blank.
    Skip {
        line_has_bytes: bool,
    },
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser that drops any event whose span (`end - start`) exceeds `max` bytes.
    pub fn with_max_event_bytes(max: usize) -> Self {
        Self {
            max_event_bytes: u64::try_from(max).unwrap_or(u64::MAX),
            offset: 0,
            block_start: 0,
            partial: Vec::new(),
            data: Vec::new(),
            has_data: false,
            event: None,
            after_cr: AfterCr::Nothing,
            mode: Mode::Collect,
            at_stream_start: true,
            dropped: 0,
        }
    }

    /// Feed the next chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.feed_into(chunk, &mut out);
        out
    }

    /// Feed the next chunk, appending the events it completed to `out` (lets the caller
    /// reuse one `Vec` for the whole stream).
    pub fn feed_into(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        if chunk.is_empty() {
            return;
        }
        let base = self.offset;
        self.offset += chunk.len() as u64;
        let after_cr = std::mem::replace(&mut self.after_cr, AfterCr::Nothing);
        let mut pos = usize::from(after_cr != AfterCr::Nothing && chunk[0] == b'\n');
        if after_cr == AfterCr::SkipLfThenClose {
            self.close_block(base + pos as u64, out);
        }
        while pos < chunk.len() {
            let rest = &chunk[pos..];
            let Some(eol) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.stash_partial(rest);
                return;
            };
            let is_cr = rest[eol] == b'\r';
            // A `\r` ending the chunk may be the first half of a split `\r\n`.
            let cr_at_chunk_end = is_cr && eol + 1 == rest.len();
            pos += eol + 1 + usize::from(is_cr && rest.get(eol + 1) == Some(&b'\n'));
            self.complete_line(&rest[..eol], base + pos as u64, cr_at_chunk_end, out);
        }
    }

    /// Signal the end of the stream. Returns an event whose closing blank line ended in a
    /// bare `\r` as the stream's last byte (it waits for a possible `\n`); an unterminated
    /// trailing block is discarded, as WHATWG prescribes.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if std::mem::replace(&mut self.after_cr, AfterCr::Nothing) == AfterCr::SkipLfThenClose {
            self.close_block(self.offset, &mut out);
        }
        self.partial.clear();
        self.reset_block();
        self.mode = Mode::Collect;
        self.block_start = self.offset;
        out.pop()
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Absolute offset where the block being accumulated began; equals [`Self::offset`]
    /// between events. While an oversized block is being skipped it also equals
    /// `offset()`: that block will never be dispatched, so a caller holding bytes back
    /// to cut events out of the stream may release them.
    pub fn pending_start(&self) -> u64 {
        match self.mode {
            Mode::Collect => self.block_start,
            Mode::Skip { .. } => self.offset,
        }
    }

    /// Number of oversized blocks dropped so far.
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    fn stash_partial(&mut self, rest: &[u8]) {
        // A first line of at most 3 bytes may be a lone BOM, i.e. blank; keep it (bounded)
        // so that whether it closes a block does not depend on where the stream was split.
        let maybe_lone_bom = self.at_stream_start && self.partial.len() + rest.len() <= BOM.len();
        if self.mode == Mode::Collect && !maybe_lone_bom && self.offset - self.block_start > self.max_event_bytes {
            self.start_skipping();
        }
        match &mut self.mode {
            Mode::Collect => self.partial.extend_from_slice(rest),
            Mode::Skip { line_has_bytes } => *line_has_bytes = true,
        }
    }

    /// Handle one complete line; `end` is the absolute offset past its terminator,
    /// `cr_last`: that terminator is a `\r` ending the chunk.
    fn complete_line(&mut self, tail: &[u8], end: u64, cr_last: bool, out: &mut Vec<SseEvent>) {
        if cr_last {
            self.after_cr = AfterCr::SkipLf;
        }
        let first_line = std::mem::take(&mut self.at_stream_start);
        if let Mode::Skip { line_has_bytes } = &mut self.mode {
            if !std::mem::take(line_has_bytes) && tail.is_empty() {
                self.close_or_defer(end, cr_last, out);
            }
            return;
        }
        // Reuse the partial-line buffer without reallocating: take it, read, put it back.
        let mut joined = std::mem::take(&mut self.partial);
        let mut line = if joined.is_empty() {
            tail
        } else {
            joined.extend_from_slice(tail);
            joined.as_slice()
        };
        if first_line {
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            self.close_or_defer(end, cr_last, out);
        } else if end - self.block_start > self.max_event_bytes {
            self.start_skipping();
        } else {
            self.field(line);
        }
        joined.clear();
        self.partial = joined;
    }

    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return; // comment / keep-alive
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event = (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned());
            }
            _ => {} // `id`, `retry` and unknown fields carry nothing the gateway uses
        }
    }

    fn close_or_defer(&mut self, end: u64, defer: bool, out: &mut Vec<SseEvent>) {
        if defer {
            self.after_cr = AfterCr::SkipLfThenClose;
        } else {
            self.close_block(end, out);
        }
    }

    /// The blank line ending at `end` closes the current block.
    fn close_block(&mut self, end: u64, out: &mut Vec<SseEvent>) {
        let start = std::mem::replace(&mut self.block_start, end);
        let skipped = std::mem::replace(&mut self.mode, Mode::Collect) != Mode::Collect;
        if skipped || end - start > self.max_event_bytes {
            self.dropped += 1;
        } else if self.has_data {
            // One allocation per event; `from_utf8` first: the lossy decoder is slower.
            let data = std::str::from_utf8(&self.data)
                .map_or_else(|_| String::from_utf8_lossy(&self.data).into_owned(), str::to_owned);
            out.push(SseEvent { event: self.event.take(), data, start, end });
        }
        self.reset_block();
    }

    fn start_skipping(&mut self) {
        self.mode = Mode::Skip { line_has_bytes: false };
        self.partial.clear();
        self.reset_block();
    }

    fn reset_block(&mut self) {
        self.data.clear();
        self.has_data = false;
        self.event = None;
    }
}

#[cfg(test)]
mod tests;
