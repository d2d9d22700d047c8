//! The JSON line format: byte for byte what tracing-subscriber's
//! `json().flatten_event(true).with_current_span(false)` writes, but flexgate's own
//! events are written straight into the line buffer instead of through serde.
//!
//! The stock formatter drives `serde_json` through an adaptor that re-checks UTF-8 on
//! every small write, and formats the timestamp into a separate string first; for the
//! per-request line that was about half of the logging cost in a profile. Events this
//! module cannot reproduce exactly go to the stock formatter: events inside a span (the
//! stock output then carries a `spans` list) and events from other crates (the `log`
//! bridge rewrites their metadata).

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
        writer.write_str("{\"timestamp\":\"")?;
        // humantime writes the stock formatter's RFC 3339 text (`2026-11-27T23:07:33.003261Z`)
        // at a fraction of its cost (a third of a log line's, in an instruction profile);
        // outside 1970..=9999, where humantime would fail, the stock one writes it.
        let now = std::time::SystemTime::now();
        if now.duration_since(std::time::UNIX_EPOCH).is_ok_and(|d| d.as_secs() < 253_402_300_800) {
            write!(writer, "{}", humantime::format_rfc3339_micros(now))?;
        } else {
            SystemTime.format_time(&mut Writer::new(&mut Escaped(&mut writer)))?;
        }
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Fields { out: &mut writer, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        quoted(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`, the way `tracing_serde::SerdeMapVisitor`
/// serialises it: numbers and booleans bare, strings and `Debug` values as JSON strings.
/// The first error stops the line, as it does there.
struct Fields<'a, W: fmt::Write> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: fmt::Write> Fields<'_, W> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .out
                .write_char(',')
                .and_then(|()| quoted(self.out, field.name()))
                .and_then(|()| self.out.write_char(':'))
                .and_then(|()| value(self.out));
        }
    }
}

impl<W: fmt::Write> Visit for Fields<'_, W> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |out| out.write_str(if value { "true" } else { "false" }));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's float text (shortest round-trip, `null` for NaN and infinities).
        self.entry(field, |out| out.write_str(&serde_json::to_string(&value).map_err(|_| fmt::Error)?));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |out| quoted(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |out| {
            out.write_char('"')?;
            write!(Escaped(&mut *out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

fn quoted(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// A writer that escapes what passes through it as the inside of a JSON string, with
/// `serde_json`'s choices: the two-letter escapes for `\b \f \n \r \t`, `\u00xx` (lower
/// case) for the other control characters, and everything else, non-ASCII included, as is.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = text.as_bytes();
        let mut start = 0;
        for (at, &byte) in bytes.iter().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            // Every byte matched above is ASCII, so `start..at` ends on a char boundary.
            self.0.write_str(&text[start..at])?;
            if escape.is_empty() {
                self.0.write_str("\\u00")?;
                self.0.write_char(char::from(HEX[usize::from(byte >> 4)]))?;
                self.0.write_char(char::from(HEX[usize::from(byte & 0xf)]))?;
            } else {
                self.0.write_str(escape)?;
            }
            start = at + 1;
        }
        self.0.write_str(&text[start..])
    }
}

#[cfg(test)]
mod tests;
