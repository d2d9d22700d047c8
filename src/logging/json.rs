//! The JSON line format: byte for byte what tracing-subscriber's
//! `json().flatten_event(true).with_current_span(false)` writes, but flexgate's own
//! events are rendered by hand into a reused line buffer instead of through serde.
//!
//! The stock formatter drives `serde_json` through an adaptor that re-checks UTF-8 on
//! every small write, and formats the timestamp into a separate string first. Here a line
//! is pushed into a plain `String` (escaping skips over clean text eight bytes at a time,
//! integers go through `itoa`, the date and time are reused within a second) and handed to
//! the subscriber's writer in one write: the per-request line went from ~11,600
//! instructions to ~3,600 (callgrind). Events this module cannot reproduce exactly go to
//! the stock formatter: events inside a span (the stock output then carries a `spans`
//! list) and events from other crates (the `log` bridge rewrites their metadata).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use self::escape::{Escaped, escape_into, find_escape};
use self::time::{Clock, YEAR_10000};

/// The event formatter of `log.format = "json"`.
pub struct JsonLines {
    stock: Format<Json, SystemTime>,
}

impl JsonLines {
    pub fn new() -> Self {
        Self { stock: tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false) }
    }
}

/// A thread's line buffer, reused, and its clock.
struct Scratch {
    line: String,
    clock: Clock,
}

impl Scratch {
    const fn new() -> Self {
        Self { line: String::new(), clock: Clock::new() }
    }
}

thread_local! {
    /// `Writer` is a `&mut dyn fmt::Write`: one dynamic call per small piece cost more
    /// than rendering into a plain `String` and copying it over once, and reusing the
    /// buffer saves an allocation per line.
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
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
        with_scratch(|scratch| {
            render(scratch, event)?;
            writer.write_str(&scratch.line)
        })
    }
}

/// Runs `use_scratch` on the thread's scratch with its line cleared, or on a fresh one
/// when that is taken: a field's `Debug` that logs re-enters here, through the global
/// dispatcher (which, unlike a scoped one, has no re-entrancy guard).
fn with_scratch<R>(mut use_scratch: impl FnMut(&mut Scratch) -> R) -> R {
    SCRATCH
        .try_with(|cell| {
            let mut scratch = cell.try_borrow_mut().ok()?;
            scratch.line.clear();
            let result = use_scratch(&mut scratch);
            if scratch.line.capacity() > KEPT_CAPACITY {
                scratch.line = String::new();
            }
            Some(result)
        })
        .ok()
        .flatten()
        // Taken, or the thread's locals are being torn down.
        .unwrap_or_else(|| use_scratch(&mut Scratch::new()))
}

fn render(scratch: &mut Scratch, event: &Event<'_>) -> fmt::Result {
    let Scratch { line, clock } = scratch;
    let meta = event.metadata();
    line.push_str("{\"timestamp\":\"");
    // Outside 1970..=9999, which `Clock` does not cover, the stock timer writes it.
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since_epoch) if since_epoch.as_secs() < YEAR_10000 => clock.push(line, since_epoch),
        _ => SystemTime.format_time(&mut Writer::new(&mut Escaped(&mut *line)))?,
    }
    line.push_str("\",\"level\":\"");
    line.push_str(meta.level().as_str());
    line.push('"');
    let mut fields = Fields { line: &mut *line, plain_names: plain_names(meta), result: Ok(()) };
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
    /// No field name needs escaping (`plain_names`).
    plain_names: bool,
    result: fmt::Result,
}

impl Fields<'_> {
    /// Pushes `,"name":` and returns the line for the value, or `None` after an error.
    #[expect(clippy::inline_always, reason = "as a call, its spills and return cost ~15 instructions a field")]
    #[inline(always)]
    fn key(&mut self, field: &Field) -> Option<&mut String> {
        self.result.ok()?;
        self.line.push_str(",\"");
        if self.plain_names {
            self.line.push_str(field.name());
        } else {
            escape_into(self.line, field.name());
        }
        self.line.push_str("\":");
        Some(self.line)
    }
}

thread_local! {
    /// The callsite whose event this thread last found to have plain field names.
    static PLAIN_NAMES: Cell<Option<&'static Metadata<'static>>> = const { Cell::new(None) };
}

/// Whether none of the event's field names needs escaping. They are the callsite's, so
/// the answer is kept for the last callsite asked about: checking the request line's 13
/// names on every line cost ~500 instructions, for the odd name like `"a\"b" = 1`.
fn plain_names(meta: &'static Metadata<'static>) -> bool {
    let same = |last: &Cell<Option<&'static Metadata<'static>>>| last.get().is_some_and(|m| std::ptr::eq(m, meta));
    if PLAIN_NAMES.try_with(same).unwrap_or(false) {
        return true;
    }
    let plain = meta.fields().iter().all(|field| find_escape(field.name().as_bytes()).is_none());
    if plain {
        // Only fails while the thread's locals are torn down: the next line checks again.
        let _ = PLAIN_NAMES.try_with(|last| last.set(Some(meta)));
    }
    plain
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

mod escape;
#[cfg(test)]
mod tests;
mod time;
