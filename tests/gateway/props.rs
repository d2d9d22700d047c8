//! Property tests over the parsers that read client and upstream input, through their
//! public API: no input makes any of them panic, and what they accept stays in bounds.
//! (The SSE parser's split-invariance, the body rewriter's field-level property and the
//! retry schedule are property-tested beside their code; this adds the byte-level
//! rewrite property, the deadline and size parsers, the wait hints and the path guard.)

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use flexgate::body::BodyInfo;
use flexgate::config::{Config, parse_size};
use flexgate::routing::effective_deadline;
use flexgate::sse::SseParser;
use flexgate::upstream::backoff::{parse_go_duration, parse_retry_after, retry_hint};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

fn config() -> Config {
    Config::for_upstream("http://127.0.0.1:9/v1").unwrap()
}

/// Text that looks like durations: digits, dots, signs, exponents and unit names.
fn durationish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[0-9]{1,25}",
        Just(".".to_owned()),
        Just("-".to_owned()),
        Just("e".to_owned()),
        Just(" ".to_owned()),
        prop_oneof![
            Just("h"),
            Just("m"),
            Just("s"),
            Just("ms"),
            Just("us"),
            Just("µs"),
            Just("ns"),
            Just("min"),
            Just("d"),
            Just("w"),
            Just("y"),
            Just("sec"),
            Just("hours"),
        ]
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|parts| parts.concat())
}

/// Arbitrary bytes that are legal in a header value (visible ASCII, space, tab, obs-text).
fn header_value() -> impl Strategy<Value = HeaderValue> {
    let byte = prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff];
    prop::collection::vec(byte, 0..40).prop_map(|bytes| HeaderValue::from_bytes(&bytes).unwrap())
}

/// A JSON value as text, with random whitespace where JSON allows it.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i32>().prop_map(|n| n.to_string()),
        "[a-z \\\\\"{}:,é]{0,10}".prop_map(|s| serde_json::Value::String(s).to_string()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(" ,"))),
            prop::collection::vec(("[a-z]{1,5}", inner), 0..4).prop_map(|members| {
                let members: Vec<String> = members.into_iter().map(|(k, v)| format!("\"{k}\" :\n{v}")).collect();
                format!("{{ {} }}", members.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// `x-flexgate-deadline` and the SDK timeout headers: any value either is refused as
    /// a bad deadline or yields one that is positive and within the class deadline.
    #[test]
    fn deadlines_never_panic_and_never_exceed_the_class(
        deadline in prop::option::of(prop_oneof![durationish().prop_map(|s| HeaderValue::from_str(&s).unwrap()), header_value()]),
        sdk in prop::option::of(prop_oneof![durationish().prop_map(|s| HeaderValue::from_str(&s).unwrap()), header_value()]),
        class_secs in 1u64..100_000,
    ) {
        let config = config();
        let mut headers = HeaderMap::new();
        if let Some(v) = deadline { headers.insert("x-flexgate-deadline", v); }
        if let Some(v) = sdk { headers.insert("x-stainless-timeout", v.clone()); headers.insert("x-stainless-read-timeout", v); }
        let class = Duration::from_secs(class_secs);
        if let Ok(d) = effective_deadline(&config, class, &headers) {
            prop_assert!(d <= class);
            prop_assert!(!d.is_zero() || headers.contains_key("x-stainless-timeout"), "{d:?}");
        }
    }

    #[test]
    fn sizes_never_panic_and_scale_exactly(text in prop_oneof![durationish(), "\\PC{0,30}"], n in 0usize..1 << 40) {
        let _ = parse_size(&text);
        for (unit, scale) in [("", 1usize), ("KiB", 1 << 10), ("MB", 1_000_000), ("GiB", 1 << 30)] {
            let parsed = parse_size(&format!("{n}{unit}"));
            match n.checked_mul(scale) {
                Some(bytes) => prop_assert_eq!(parsed, Ok(bytes)),
                None => prop_assert!(parsed.is_err()),
            }
        }
    }

    /// `retry-after`, `retry-after-ms` and the `x-ratelimit-reset-*` Go durations: any
    /// header values give no hint or one of at most a day.
    #[test]
    fn wait_hints_never_panic_and_stay_bounded(
        values in prop::collection::vec(prop_oneof![durationish().prop_map(|s| HeaderValue::from_str(&s).unwrap()), header_value()], 6),
        remaining_zero in any::<bool>(),
    ) {
        let mut headers = HeaderMap::new();
        let names = ["retry-after", "retry-after-ms", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"];
        for (name, value) in names.iter().zip(values) {
            headers.insert(*name, value);
        }
        if remaining_zero {
            headers.insert("x-ratelimit-remaining-requests", HeaderValue::from_static("0"));
        }
        if let Some(wait) = retry_hint(&headers) {
            prop_assert!(wait <= Duration::from_secs(24 * 3600), "{wait:?}");
        }
        for value in headers.values().filter_map(|v| v.to_str().ok()) {
            let _ = parse_go_duration(value);
            let _ = parse_retry_after(value, SystemTime::now());
        }
    }

    /// Byte-level: replacing `service_tier` changes exactly its value's bytes, and a
    /// rewrite that changes nothing returns the input itself.
    #[test]
    fn the_rewrite_changes_only_the_tier_bytes(
        before in prop::collection::vec(("[a-z]{1,5}", json_text()), 0..4),
        after in prop::collection::vec(("[a-z]{1,5}", json_text()), 0..4),
        space in "[ \t\n]{0,3}",
        old in prop_oneof![Just("auto"), Just("priority"), Just("default")],
        new in prop_oneof![Just("flex"), Just("default")],
    ) {
        let member = |(k, v): &(String, String)| format!("\"x{k}\"{space}:{space}{v}");
        let mut head: Vec<String> = before.iter().map(member).collect();
        head.push(format!("\"service_tier\"{space}:{space}"));
        let tail: Vec<String> = after.iter().map(member).collect();
        let tail = if tail.is_empty() { String::new() } else { format!(",{}", tail.join(",")) };
        let build = |tier: &str| format!("{{{space}{}\"{tier}\"{tail}{space}}}", head.join(","));
        let input = Bytes::from(build(old));
        let info = BodyInfo::parse(&input).unwrap();
        let out = info.rewrite(&input, Some(new), false);
        prop_assert_eq!(String::from_utf8(out.to_vec()).unwrap(), build(new));
        let same = info.rewrite(&input, None, false);
        prop_assert_eq!(same.as_ptr(), input.as_ptr(), "no change, no copy");
    }

    /// The path guard: nothing panics, and whatever is forwarded stays under `/v1` with
    /// no dot segment and no encoded separator that the upstream could decode.
    #[test]
    fn forwarded_paths_never_escape_v1(
        path in prop::collection::vec(prop_oneof![
            Just("/".to_owned()), Just("..".to_owned()), Just(".".to_owned()), Just("v1".to_owned()), Just("flex".to_owned()),
            Just("%2e".to_owned()), Just("%2F".to_owned()), Just("%5c".to_owned()), Just("%00".to_owned()), Just("\\".to_owned()),
            Just("%".to_owned()), "[a-z0-9_-]{1,6}",
        ], 0..12).prop_map(|parts| parts.concat()),
        method in prop_oneof![Just(Method::GET), Just(Method::POST), Just(Method::DELETE)],
    ) {
        let config = config();
        if let Ok(target) = flexgate::proxy::path::target(&config, &method, &path) {
            let lower = target.rest.to_ascii_lowercase();
            prop_assert!(target.rest.starts_with('/'));
            prop_assert!(target.rest.split('/').all(|s| s != ".." && s != "."), "{path}");
            prop_assert!(!lower.contains("%2e") && !lower.contains("%2f") && !lower.contains("%5c") && !target.rest.contains('\\'), "{path}");
        }
    }

    /// Any TOML text: the config loader reports problems, never panics.
    #[test]
    fn config_text_never_panics(text in prop_oneof![
        "\\PC{0,200}",
        prop::collection::vec(prop_oneof![
            Just("[server]\n"), Just("[upstream]\n"), Just("[classes.x]\n"), Just("[[routing.rules]]\n"), Just("[retry]\n"),
            Just("max_body = \"99999999999999999999GiB\"\n"), Just("deadline = \"0s\"\n"), Just("timeout = \"1ns\"\n"),
            Just("tier = \"flex\"\n"), Just("max_attempts = 0\n"), Just("escalate_reserve = \"1000000000h\"\n"),
            Just("base_url = \"file:///etc/passwd\"\n"), Just("listen = \"[::1]:99999\"\n"), Just("class = \"x\"\n"),
        ], 0..12).prop_map(|parts| parts.concat()),
    ]) {
        let _ = Config::from_toml(&text, &HashMap::<String, String>::new());
    }

    /// The SSE parser on arbitrary bytes fed in arbitrary pieces, then finished.
    #[test]
    fn sse_parser_survives_any_bytes(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16), max in 1usize..128) {
        let mut parser = SseParser::with_max_event_bytes(max);
        let mut total = 0u64;
        for chunk in &chunks {
            total += chunk.len() as u64;
            for event in parser.feed(chunk) {
                prop_assert!(event.end <= total && event.end - event.start <= max as u64);
            }
        }
        let _ = parser.finish();
        prop_assert_eq!(parser.offset(), total);
    }
}
