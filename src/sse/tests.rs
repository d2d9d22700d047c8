//! Tests for the SSE parser: OpenAI fixtures split at every byte offset, line-ending
//! variants, WHATWG corner cases, the memory cap, and property tests over random splits.

use super::{SseEvent, SseParser};

mod prop;

const CHAT_WITH_USAGE: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sse/chat_with_usage.sse"));
const CHAT_NO_USAGE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sse/chat_no_usage.sse"));
const RESPONSES: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sse/responses.sse"));

/// Parse `chunks` in order, then finish; returns every event.
fn parse_chunks<'a>(parser: &mut SseParser, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<SseEvent> {
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed_into(chunk, &mut out);
    }
    out.extend(parser.finish());
    out
}

fn parse(bytes: &[u8]) -> Vec<SseEvent> {
    parse_chunks(&mut SseParser::default(), [bytes])
}

fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn cr(text: &str) -> String {
    text.replace('\n', "\r")
}

/// Every split point and 1-byte chunks give the same events, and every event's span,
/// parsed on its own, gives the same event again.
fn assert_split_invariant(bytes: &[u8]) -> Vec<SseEvent> {
    let whole = parse(bytes);
    for at in 0..=bytes.len() {
        let (a, b) = bytes.split_at(at);
        assert_eq!(parse_chunks(&mut SseParser::default(), [a, b]), whole, "split at {at}");
    }
    let singles = parse_chunks(&mut SseParser::default(), bytes.chunks(1));
    assert_eq!(singles, whole, "1-byte chunks");
    for ev in &whole {
        let span = &bytes[usize::try_from(ev.start).unwrap()..usize::try_from(ev.end).unwrap()];
        let alone = parse(span);
        assert_eq!(alone.len(), 1, "span of {ev:?}");
        assert_eq!((&alone[0].event, &alone[0].data), (&ev.event, &ev.data));
    }
    whole
}

#[test]
fn chat_stream_with_usage() {
    for text in [CHAT_WITH_USAGE.to_owned(), crlf(CHAT_WITH_USAGE), cr(CHAT_WITH_USAGE)] {
        let events = assert_split_invariant(text.as_bytes());
        assert_eq!(events.len(), 6, "the keep-alive comment block is not an event");
        assert!(events.iter().all(|e| e.event.is_none()));
        assert!(events[4].data.contains(r#""choices":[],"usage":{"prompt_tokens":1200"#));
        assert!(events[2].data.contains("é"));
        assert_eq!(events[5].data, "[DONE]");
        assert_eq!(events[5].end, text.len() as u64);
        assert_eq!(events[0].start, 0);
    }
}

#[test]
fn chat_stream_without_usage() {
    for text in [CHAT_NO_USAGE.to_owned(), crlf(CHAT_NO_USAGE), cr(CHAT_NO_USAGE)] {
        let events = assert_split_invariant(text.as_bytes());
        assert_eq!(events.len(), 4);
        // Events tile the stream exactly: each starts where the previous one ended.
        for pair in events.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(events[3].data, "[DONE]");
    }
}

#[test]
fn responses_stream() {
    for text in [RESPONSES.to_owned(), crlf(RESPONSES), cr(RESPONSES)] {
        let events = assert_split_invariant(text.as_bytes());
        let names: Vec<_> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.completed"
            ]
        );
        assert!(events[5].data.starts_with(r#"{"type":"response.completed""#));
        assert_eq!(events[5].end, text.len() as u64);
    }
}

/// Input and the `(event, data)` pairs it must yield.
type FieldCase = (&'static str, &'static [(Option<&'static str>, &'static str)]);

#[test]
fn field_rules() {
    let cases: &[FieldCase] = &[
        ("data: a\ndata:b\ndata:  c\n\n", &[(None, "a\nb\n c")]),
        ("data\n\n", &[(None, "")]),
        ("data:\ndata:\n\n", &[(None, "\n")]),
        ("event: ping\n\n", &[]),
        (": comment\ndata: x\n: another\n\n", &[(None, "x")]),
        ("id: 7\nretry: 100\nfoo: bar\ndata: y\n\n", &[(None, "y")]),
        ("event: a\ndata: 1\n\ndata: 2\n\n", &[(Some("a"), "1"), (None, "2")]),
        ("event:\ndata: 1\n\n", &[(None, "1")]),
        ("event: a\nevent: b\ndata: 1\n\n", &[(Some("b"), "1")]),
        ("data: unterminated\n", &[]),
        ("data: no newline at all", &[]),
        ("\n\n\ndata: z\n\n\n", &[(None, "z")]),
        ("\u{feff}data: bom\n\n", &[(None, "bom")]),
        ("data: \u{feff}kept\n\n", &[(None, "\u{feff}kept")]),
        ("data: a\r\n\rdata: b\r\r", &[(None, "a"), (None, "b")]),
    ];
    for (input, expected) in cases {
        let got: Vec<_> = assert_split_invariant(input.as_bytes()).into_iter().map(|e| (e.event, e.data)).collect();
        let want: Vec<_> = expected.iter().map(|(e, d)| (e.map(str::to_owned), (*d).to_owned())).collect();
        assert_eq!(got, want, "input {input:?}");
    }
}

#[test]
fn bom_split_across_chunks_is_skipped() {
    let events = parse_chunks(&mut SseParser::default(), [&b"\xEF"[..], b"\xBB", b"\xBFdata: x\n\n"]);
    assert_eq!(events[0].data, "x");
    assert_eq!((events[0].start, events[0].end), (0, 12));
}

#[test]
fn invalid_utf8_is_lossy() {
    let events = assert_split_invariant(b"event: \xFF\ndata: a\xC3\n\n");
    assert_eq!(events[0].event.as_deref(), Some("\u{fffd}"));
    assert_eq!(events[0].data, "a\u{fffd}");
}

#[test]
fn crlf_split_between_cr_and_lf_is_one_line_end() {
    let mut p = SseParser::default();
    assert!(p.feed(b"data: a\r").is_empty());
    assert!(p.feed(b"\n\r").is_empty(), "blank line waits for a possible LF");
    let events = p.feed(b"\n");
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].start, events[0].end), (0, 11));
    assert_eq!((p.offset(), p.pending_start()), (11, 11));
    // A bare CR as the stream's last byte is released by `finish`.
    let mut p = SseParser::default();
    assert!(p.feed(b"data: b\r\r").is_empty());
    assert_eq!(p.finish().map(|e| (e.data, e.end)), Some(("b".to_owned(), 9)));
}

#[test]
fn offsets_and_pending_start() {
    let mut p = SseParser::default();
    assert!(p.feed(b": ping\n\n").is_empty());
    assert_eq!((p.offset(), p.pending_start()), (8, 8), "comment block is consumed");
    assert!(p.feed(b"data: a\n").is_empty());
    assert_eq!((p.offset(), p.pending_start()), (16, 8));
    assert!(p.feed(b"data: b").is_empty());
    assert_eq!(p.pending_start(), 8);
    let events = p.feed(b"\n\nda");
    assert_eq!(events, [SseEvent { event: None, data: "a\nb".into(), start: 8, end: 25 }]);
    assert_eq!((p.offset(), p.pending_start()), (27, 25));
}

#[test]
fn oversized_event_is_dropped_and_memory_stays_bounded() {
    let max = 64;
    let big = format!("data: {}\n\n", "x".repeat(1000));
    let stream = format!("data: first\n\n{big}data: last\n\n");
    let mut p = SseParser::with_max_event_bytes(max);
    let mut out = Vec::new();
    for chunk in stream.as_bytes().chunks(7) {
        p.feed_into(chunk, &mut out);
        assert!(p.partial.len() + p.data.len() <= max, "buffers stay under the cap");
        if matches!(p.mode, super::Mode::Skip { .. }) {
            assert_eq!(p.pending_start(), p.offset(), "skipped bytes need not be held back");
        }
    }
    let datas: Vec<_> = out.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(datas, ["first", "last"]);
    assert_eq!(p.dropped_events(), 1);
    let last_start = (13 + big.len()) as u64;
    assert_eq!((out[1].start, out[1].end), (last_start, last_start + 12));
}

#[test]
fn cap_applies_to_the_whole_span_exactly() {
    // "data: abc\n\n" is 11 bytes; with CRLF it is 13.
    for (text, len) in [("data: abc\n\n", 11), ("data: abc\r\n\r\n", 13), ("data: abc\r\r", 11)] {
        for (max, dispatched) in [(len, true), (len - 1, false)] {
            let bytes = text.as_bytes();
            let splits: Vec<Vec<SseEvent>> = (0..=bytes.len())
                .map(|at| {
                    let (a, b) = bytes.split_at(at);
                    parse_chunks(&mut SseParser::with_max_event_bytes(max), [a, b])
                })
                .collect();
            for events in splits {
                assert_eq!(events.len(), usize::from(dispatched), "{text:?} max {max}");
            }
        }
    }
}
