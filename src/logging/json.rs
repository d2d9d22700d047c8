//! The JSON line format: byte for byte what tracing-subscriber's
//! `json().flatten_event(true).with_current_span(false)` writes, but flexgate's own
//! events are rendered by hand into a reused line buffer instead of through serde.
//!
//! The stock formatter drives `serde_json` through an adaptor that re-checks UTF-8 on
//! every small write, and formats the timestamp into a separate string first. Here a line
//! is pushed into a plain `String` (escaping skips over clean text eight bytes at a time,
//! integers go through `itoa`) and handed to the subscriber's writer in one write: the
//! per-request line went from ~11,600 instructions to ~5,800 (callgrind). Events
//! this module cannot reproduce exactly go to the stock formatter: events inside a span
//! (the stock output then carries a `spans` list) and events from other crates (the `log`
//! bridge rewrites their metadata).

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of `log.format = "json"`.
pub struct JsonLines {
    stock: Format<Json, SystemTime>,
}

impl JsonLines {
    pub fn new() -> Self {
        Self { stock: tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false) }
    }
}

thread_local! {
    /// The line being rendered. `Writer` is a `&mut dyn fmt::Write`: one dynamic call per
    /// small piece cost more than rendering into a plain `String` and copying it over once,
    /// and reusing the buffer saves an allocation per line.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A buffer that grew past this for one huge line is not kept for the thread's lifetime.
const KEPT_CAPACITY: usize = 16 * 1024;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        // The same span lookup as the stock formatter, which lists spans when it finds one.
        let in_span = event.parent().and_then(|id| ctx.span(id)).is_some() || ctx.lookup_current().is_some();
        if in_span || !meta.target().starts_with("flexgate") {
            return self.stock.format_event(ctx, writer, event);
        }
        with_line(|line| {
            render(line, event)?;
            writer.write_str(line)
        })
    }
}

/// Runs `use_line` on the thread's cleared line buffer, or on a fresh one when that is
/// taken: a field's `Debug` that logs re-enters here, through the global dispatcher
/// (which, unlike a scoped one, has no re-entrancy guard).
fn with_line<R>(mut use_line: impl FnMut(&mut String) -> R) -> R {
    LINE.try_with(|cell| {
        let mut line = cell.try_borrow_mut().ok()?;
        line.clear();
        let result = use_line(&mut line);
        if line.capacity() > KEPT_CAPACITY {
            *line = String::new();
        }
        Some(result)
    })
    .ok()
    .flatten()
    // Taken, or the thread's locals are being torn down.
    .unwrap_or_else(|| use_line(&mut String::new()))
}

fn render(line: &mut String, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    line.push_str("{\"timestamp\":\"");
    // humantime writes the stock formatter's RFC 3339 text (`2026-11-27T23:07:33.003261Z`)
    // at a fraction of its cost (a third of a log line's, in an instruction profile);
    // outside 1970..=9999, where humantime would fail, the stock one writes it.
    let now = std::time::SystemTime::now();
    if now.duration_since(std::time::UNIX_EPOCH).is_ok_and(|d| d.as_secs() < 253_402_300_800) {
        write!(line, "{}", humantime::format_rfc3339_micros(now))?;
    } else {
        SystemTime.format_time(&mut Writer::new(&mut Escaped(&mut *line)))?;
    }
    line.push_str("\",\"level\":\"");
    line.push_str(meta.level().as_str());
    line.push('"');
    let mut fields = Fields { line: &mut *line, result: Ok(()) };
    event.record(&mut fields);
    fields.result?;
    line.push_str(",\"target\":\"");
    escape_into(line, meta.target());
    line.push_str("\"}\n");
    Ok(())
}

/// Writes each field as `,"name":value`, the way `tracing_serde::SerdeMapVisitor`
/// serialises it: numbers and booleans bare, strings and `Debug` values as JSON strings.
/// The first error (only a `Debug` impl can fail) stops the line, as it does there.
struct Fields<'a> {
    line: &'a mut String,
    result: fmt::Result,
}

impl Fields<'_> {
    /// Pushes `,"name":` and returns the line for the value, or `None` after an error.
    fn key(&mut self, field: &Field) -> Option<&mut String> {
        self.result.ok()?;
        self.line.push_str(",\"");
        escape_into(self.line, field.name());
        self.line.push_str("\":");
        Some(self.line)
    }
}

impl Visit for Fields<'_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if let Some(line) = self.key(field) {
            line.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if let Some(line) = self.key(field) {
            line.push_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Some(line) = self.key(field) {
            line.push_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if let Some(line) = self.key(field) {
            // serde_json's float text (shortest round-trip, `null` for NaN and infinities).
            match serde_json::to_string(&value) {
                Ok(text) => line.push_str(&text),
                Err(_) => self.result = Err(fmt::Error),
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(line) = self.key(field) {
            line.push('"');
            escape_into(line, value);
            line.push('"');
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(line) = self.key(field) {
            line.push('"');
            let written = write!(Escaped(&mut *line), "{value:?}");
            line.push('"');
            self.result = written;
        }
    }
}

/// Escapes what is written through it into the inside of a JSON string (`escape_into`),
/// for text that only comes as `fmt` output.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape_into(self.0, text);
        Ok(())
    }
}

/// Appends `text` as the inside of a JSON string, with `serde_json`'s choices: the
/// two-letter escapes for `\" \\ \b \f \n \r \t`, `\u00xx` (lower case) for the other
/// control characters, and everything else, DEL and non-ASCII included, as is.
fn escape_into(line: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(at) = find_escape(bytes, start) {
        // Every byte that needs an escape is ASCII, so `start..at` ends on a char boundary.
        line.push_str(&text[start..at]);
        let byte = bytes[at];
        match byte {
            b'"' => line.push_str("\\\""),
            b'\\' => line.push_str("\\\\"),
            b'\n' => line.push_str("\\n"),
            b'\r' => line.push_str("\\r"),
            b'\t' => line.push_str("\\t"),
            0x08 => line.push_str("\\b"),
            0x0c => line.push_str("\\f"),
            _ => {
                line.push_str("\\u00");
                line.push(char::from(HEX[usize::from(byte >> 4)]));
                line.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        start = at + 1;
    }
    line.push_str(&text[start..]);
}

/// The bytes JSON strings cannot hold as they are: `"`, `\` and the controls below 0x20.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The index of the first byte at or after `from` that needs an escape. Log text is
/// almost always clean, so it is checked a word (eight bytes) at a time.
fn find_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = &bytes[from..];
    if rest.len() < 8 {
        return rest.iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]).map(|at| from + at);
    }
    let word_at = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&rest[at..at + 8]);
        let word = u64::from_le_bytes(word);
        // The lowest flag is exact (the first byte needing an escape); flags above it
        // may be false, so only that one is used.
        let found = escape_flags(word);
        (found != 0).then(|| from + at + found.trailing_zeros() as usize / 8)
    };
    let mut at = 0;
    while at + 8 <= rest.len() {
        if let Some(found) = word_at(at) {
            return Some(found);
        }
        at += 8;
    }
    // The last word overlaps bytes already found clean, so its first flag lies past them.
    if at < rest.len() { word_at(rest.len() - 8) } else { None }
}

/// The high bit of each byte of `word` set where the byte is below 0x20, `"` or `\`, and
/// none set below the first such byte (the classic "has a byte less than n" and "has a
/// zero byte" tricks: a borrow only starts at a flagged byte and only moves upwards).
fn escape_flags(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (control | (quote.wrapping_sub(ONES) & !quote) | (backslash.wrapping_sub(ONES) & !backslash)) & HIGHS
}

#[cfg(test)]
mod tests;
