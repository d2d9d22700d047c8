//! The fast formatter against the stock one: the same events must give the same bytes.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use parking_lot::Mutex;
use proptest::prelude::*;
use tracing_subscriber::fmt::MakeWriter;

use super::escape::{Escaped, escape_into};
use super::time::{Clock, YEAR_10000};
use super::{JsonLines, KEPT_CAPACITY, Scratch, with_scratch};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().clone()).unwrap()
    }
}

#[derive(Debug)]
struct Oops;

impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("it \"broke\"\n\tbadly")
    }
}

impl std::error::Error for Oops {}

/// Every kind of field the visitor handles, plus escapes and non-ASCII.
fn events() {
    let weird = "quote \" backslash \\ newline \n tab \t bell \u{7} del \u{7f} nul \u{0} é ✓ 𝄞";
    let err = Oops;
    tracing::info!(
        request_id = %"fg-1",
        upstream_request_id = "",
        method = %http::Method::POST,
        status = 200_u16,
        attempts = 3_u32,
        escalated = false,
        delta = -42_i64,
        ratio = 0.25_f64,
        big = 1e20_f64,
        nan = f64::NAN,
        inf = f64::INFINITY,
        wide = u128::MAX,
        text = weird,
        debug = ?weird,
        list = ?vec!["a", "b"],
        error = &err as &dyn std::error::Error,
        "request"
    );
    // The request line's shape: `&str` fields and integers at their extremes.
    tracing::info!(
        method = http::Method::from_bytes(b"PATCH").unwrap().as_str(),
        "quote\"in name" = "ends with a quote\"",
        "\u{1f}" = "\u{1f}starts with a control",
        zero = 0_u64,
        max = u64::MAX,
        min = i64::MIN,
        long = "a clean value longer than eight bytes, with é ✓ 𝄞 and \u{7f} in it",
        "request"
    );
    // Longer than the line buffer keeps; the next line must not carry any of it over.
    tracing::info!(huge = "x".repeat(20_000).as_str(), "huge");
    tracing::info!(after = "short", "after");
    tracing::warn!("plain message with {} and {:?}", 5, "q\"");
    tracing::error!(weird, "no fields but this one");
    tracing::debug!(x = 1, "below the filter");
    tracing::info!(target: "other_crate", x = 1, "another crate's event");
    let span = tracing::info_span!("outer", id = 7);
    let _entered = span.enter();
    tracing::info!(inside = true, "in a span");
}

fn capture(fast: bool) -> String {
    let out = Capture::default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(out.clone())
        .json()
        .flatten_event(true)
        .with_current_span(false);
    if fast {
        tracing::subscriber::with_default(builder.event_format(JsonLines::new()).finish(), events);
    } else {
        tracing::subscriber::with_default(builder.finish(), events);
    }
    out.text()
}

/// The line with its timestamp value cut out (the two runs differ only there).
fn without_timestamp(line: &str) -> (String, String) {
    let rest = line.strip_prefix("{\"timestamp\":\"").unwrap_or_else(|| panic!("no timestamp first: {line}"));
    let (stamp, tail) = rest.split_once('"').unwrap();
    (stamp.to_owned(), tail.to_owned())
}

#[test]
fn lines_match_the_stock_json_formatter() {
    let (fast, stock) = (capture(true), capture(false));
    let (fast, stock): (Vec<&str>, Vec<&str>) = (fast.lines().collect(), stock.lines().collect());
    assert_eq!(fast.len(), 8, "{fast:#?}");
    assert_eq!(fast.len(), stock.len());
    for (f, s) in fast.iter().zip(&stock) {
        let ((fast_stamp, f), (stock_stamp, s)) = (without_timestamp(f), without_timestamp(s));
        assert_eq!(f, s);
        // Both name the same moment (the runs are apart by no more than the test's time).
        let [a, b] = [&fast_stamp, &stock_stamp].map(|t| humantime::parse_rfc3339(t).unwrap());
        let apart = a.duration_since(b).or_else(|_| b.duration_since(a)).unwrap();
        assert!(apart < std::time::Duration::from_secs(60), "{fast_stamp} vs {stock_stamp}");
        // 2026-11-27T21:17:09.760847Z
        let shape: String = fast_stamp.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect();
        assert_eq!(shape, "9999-99-99T99:99:99.999999Z", "{fast_stamp}");
    }
    assert!(fast[0].contains(",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":\"fg-1\""), "{}", fast[0]);
    assert!(fast[0].ends_with("\"target\":\"flexgate::logging::json::tests\"}"), "{}", fast[0]);
    assert!(fast[7].contains("\"spans\":["), "events in a span keep the span list: {}", fast[7]);
    let parsed: serde_json::Value = serde_json::from_str(fast[0]).unwrap();
    assert_eq!(parsed["status"], 200);
    assert_eq!(parsed["nan"], serde_json::Value::Null);
}

proptest! {
    #[test]
    fn escaping_matches_serde_json(text in any::<String>()) {
        let mut ours = String::from("\"");
        Escaped(&mut ours).write_str(&text).unwrap();
        ours.push('"');
        prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
    }

    #[test]
    fn escaping_matches_serde_json_for_ascii_controls(text in "[\\x00-\\x7f]{0,40}") {
        let mut ours = String::from("\"");
        Escaped(&mut ours).write_str(&text).unwrap();
        ours.push('"');
        prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
    }
}

/// The same bytes as `serde_json` once quoted (its escapes are the stock formatter's).
fn escaped(text: &str) -> String {
    let mut ours = String::from("\"");
    escape_into(&mut ours, text);
    ours.push('"');
    ours
}

#[test]
fn escaping_finds_every_special_byte_at_every_position() {
    // Every ASCII byte and a few multi-byte characters, alone and at each position of
    // clean text from shorter than one word to past two, so that the short path, whole
    // words and the overlapping last word all meet each of them: first, last and between.
    let specials = (0_u8..0x80).map(char::from).chain(['é', '✓', '𝄞', '\u{80}', '\u{2028}']);
    for special in specials {
        for len in 0..=20 {
            for at in 0..=len {
                let text: String = (0..len).map(|i| if i == at { special } else { 'a' }).collect();
                let text = if at == len { format!("{text}{special}") } else { text };
                assert_eq!(escaped(&text), serde_json::to_string(&text).unwrap(), "{text:?}");
            }
        }
    }
    for text in ["", "\"", "\\", "\u{1f}", "\u{7f}", "\u{0}\u{0}", "clean text!", "\u{1f}0123456789abcdef\""] {
        assert_eq!(escaped(text), serde_json::to_string(text).unwrap(), "{text:?}");
    }
    // DEL is no control character to JSON.
    assert_eq!(escaped("\u{7f}\u{1f}"), "\"\u{7f}\\u001f\"");
}

#[test]
fn the_line_buffer_is_cleared_and_not_shared_when_taken() {
    with_scratch(|outer: &mut Scratch| {
        outer.line.push_str("outer");
        with_scratch(|inner| {
            assert!(inner.line.is_empty());
            inner.line.push_str("inner");
        });
        assert_eq!(outer.line, "outer");
    });
    with_scratch(|scratch| {
        assert!(scratch.line.is_empty(), "{}", scratch.line);
        scratch.line.push_str(&"x".repeat(KEPT_CAPACITY + 1));
    });
    with_scratch(|scratch| assert!(scratch.line.is_empty() && scratch.line.capacity() <= KEPT_CAPACITY));
}

fn timestamp(clock: &mut Clock, since_epoch: Duration) -> String {
    let mut ours = String::new();
    clock.push(&mut ours, since_epoch);
    ours
}

/// humantime's RFC 3339 text is the stock timer's (`lines_match_the_stock_json_formatter`
/// checks the shape against a live one).
fn humantime_text(since_epoch: Duration) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + since_epoch).to_string()
}

#[test]
fn timestamps_match_humantime_every_day_and_at_the_edges() {
    // Every day from 1970 into 2200 (leap years, 2000 and the non-leap 2100 included),
    // twice in the same second: the clock's kept text must serve the second time.
    let mut clock = Clock::new();
    for day in 0..84_000 {
        for at in [Duration::new(day * 86_400 + 43_210, 123_456_789), Duration::new(day * 86_400 + 43_210, 7_000)] {
            assert_eq!(timestamp(&mut clock, at), humantime_text(at), "{at:?}");
        }
    }
    for (secs, nanos) in [
        (0, 0),
        (0, 999),
        (59, 999_999_999),
        (86_399, 1_000),
        (951_782_399, 0),   // 2000-02-28T23:59:59Z
        (951_868_800, 0),   // 2000-03-01T00:00:00Z
        (951_782_399, 10),  // back a day: the kept second is replaced
        (4_107_542_400, 0), // 2100-03-01T00:00:00Z
        (YEAR_10000 - 1, 999_999_999),
    ] {
        let at = Duration::new(secs, nanos);
        assert_eq!(timestamp(&mut clock, at), humantime_text(at), "{at:?}");
        assert_eq!(timestamp(&mut Clock::new(), at), humantime_text(at), "{at:?}");
    }
    let last = Duration::new(YEAR_10000 - 1, 999_999_999);
    assert_eq!(timestamp(&mut Clock::new(), last), "9999-12-31T23:59:59.999999Z");
}

proptest! {
    #[test]
    fn timestamps_match_humantime(secs in 0..YEAR_10000, nanos in 0..1_000_000_000_u32, later in 0..1_000_000_000_u32) {
        let mut clock = Clock::new();
        for at in [Duration::new(secs, nanos), Duration::new(secs, later)] {
            prop_assert_eq!(timestamp(&mut clock, at), humantime_text(at));
        }
    }
}
