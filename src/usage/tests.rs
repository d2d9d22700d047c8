//! Tests for usage extraction from finished bodies: realistic OpenAI bodies (cached and
//! reasoning tokens, missing details, nulls, wrong types) and garbage. Stream tests live
//! in `tests/streams.rs`, property tests in `tests/prop.rs`.

use super::{BodyReport, Endpoint, EventVerdict, StreamUsage, Usage, from_body, scan_body};
use crate::sse::SseParser;
use Endpoint::{ChatCompletions as Chat, Completions, Embeddings, Other, Responses};

mod prop;
mod streams;

const fn usage(input: u64, cached_input: u64, output: u64, reasoning: u64) -> Usage {
    Usage { input, cached_input, cache_write: 0, output, reasoning }
}

/// `usage` with `cache_write` tokens (part of `input`, like `cached_input`).
const fn written(input: u64, cached_input: u64, cache_write: u64, output: u64, reasoning: u64) -> Usage {
    Usage { input, cached_input, cache_write, output, reasoning }
}

const CHAT_BODY: &str = r#"{"id":"chatcmpl-CU2","object":"chat.completion","created":1762000000,
 "model":"gpt-5-2025-08-07","choices":[{"index":0,"message":{"role":"assistant",
 "content":"{\"usage\": 1, \"service_tier\": \"priority\"}","refusal":null,"annotations":[]},
 "finish_reason":"stop"}],"usage":{"prompt_tokens":5000,"completion_tokens":1800,
 "total_tokens":6800,"prompt_tokens_details":{"cached_tokens":4096,"audio_tokens":0},
 "completion_tokens_details":{"reasoning_tokens":1536,"audio_tokens":0,
 "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
 "service_tier":"flex","system_fingerprint":null}"#;

const RESPONSES_BODY: &str = r#"{"id":"resp_1","object":"response","created_at":1762000000,
 "status":"completed","error":null,"model":"o3-2025-04-16","output":[{"type":"reasoning",
 "id":"rs_1","summary":[]},{"type":"message","id":"msg_1","status":"completed","role":"assistant",
 "content":[{"type":"output_text","text":"hi","annotations":[]}]}],"service_tier":"default",
 "usage":{"input_tokens":300,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},
 "output_tokens":2100,"output_tokens_details":{"reasoning_tokens":2048},"total_tokens":2400}}"#;

/// `(endpoint, body, usage, service_tier, model)`.
type BodyCase = (Endpoint, &'static str, Option<Usage>, Option<&'static str>, Option<&'static str>);

const BODY_CASES: &[BodyCase] = &[
    (Chat, CHAT_BODY, Some(usage(5000, 4096, 1800, 1536)), Some("flex"), Some("gpt-5-2025-08-07")),
    (Responses, RESPONSES_BODY, Some(usage(300, 0, 2100, 2048)), Some("default"), Some("o3-2025-04-16")),
    // Cache writes (GPT-5.6 and later), in both dialects' details.
    (
        Chat,
        r#"{"model":"gpt-5.6-sol","usage":{"prompt_tokens":2600,"completion_tokens":40,"total_tokens":2640,
        "prompt_tokens_details":{"cached_tokens":2000,"cache_write_tokens":400,"audio_tokens":0},
        "completion_tokens_details":{"reasoning_tokens":8}}}"#,
        Some(written(2600, 2000, 400, 40, 8)),
        None,
        Some("gpt-5.6-sol"),
    ),
    (
        Responses,
        r#"{"model":"gpt-6-astra","service_tier":"flex","usage":{"input_tokens":18014,
        "input_tokens_details":{"cached_tokens":0,"cache_write_tokens":18011,
        "cache_write_tokens_details":{"ttl_30m_tokens":18011,"ttl_12h_tokens":0}},
        "output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":18019}}"#,
        Some(written(18014, 0, 18011, 5, 0)),
        Some("flex"),
        Some("gpt-6-astra"),
    ),
    (
        Chat,
        r#"{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cache_write_tokens":null}}}"#,
        Some(usage(9, 0, 0, 0)),
        None,
        None,
    ),
    // Missing details objects (older models, compatible servers).
    (
        Chat,
        r#"{"model":"gpt-4o","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
        Some(usage(12, 0, 3, 0)),
        None,
        Some("gpt-4o"),
    ),
    // Nulls everywhere.
    (
        Chat,
        r#"{"model":null,"service_tier":null,"usage":{"prompt_tokens":7,"completion_tokens":null,
        "prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":null}}}"#,
        Some(usage(7, 0, 0, 0)),
        None,
        None,
    ),
    (Chat, r#"{"model":"gpt-5","usage":null,"service_tier":"priority"}"#, None, Some("priority"), Some("gpt-5")),
    (Chat, r#"{"usage":{}}"#, None, None, None),
    (
        Completions,
        r#"{"object":"text_completion","model":"gpt-3.5-turbo-instruct","choices":[],
        "usage":{"prompt_tokens":4,"completion_tokens":16,"total_tokens":20}}"#,
        Some(usage(4, 0, 16, 0)),
        None,
        Some("gpt-3.5-turbo-instruct"),
    ),
    (
        Embeddings,
        r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2]}],
        "model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#,
        Some(usage(8, 0, 0, 0)),
        None,
        Some("text-embedding-3-small"),
    ),
    // A Responses-dialect body on a chat endpoint (and vice versa) is still read.
    (Chat, r#"{"usage":{"input_tokens":10,"output_tokens":2}}"#, Some(usage(10, 0, 2, 0)), None, None),
    (Responses, r#"{"usage":{"prompt_tokens":10,"completion_tokens":2}}"#, Some(usage(10, 0, 2, 0)), None, None),
    (
        Other,
        r#"{"usage":{"type":"tokens","input_tokens":50,"output_tokens":9,"input_token_details":{}}}"#,
        Some(usage(50, 0, 9, 0)),
        None,
        None,
    ),
    // Wrongly typed fields are dropped one by one, the rest is kept.
    (
        Chat,
        r#"{"model":42,"service_tier":["flex"],"usage":{"prompt_tokens":"12","completion_tokens":-3,
        "prompt_tokens_details":{"cached_tokens":1.5},"completion_tokens_details":7},"x":{"model":"y"}}"#,
        None,
        None,
        None,
    ),
    (
        Chat,
        r#"{"model":"gpt-5","usage":{"prompt_tokens":9,"completion_tokens":2.0}}"#,
        Some(usage(9, 0, 0, 0)),
        None,
        Some("gpt-5"),
    ),
    (Chat, r#"{"model":"gpt-\u0035","service_tier":"fl\u0065x"}"#, None, Some("flex"), Some("gpt-5")),
    // Not a usable body at all.
    (Chat, "", None, None, None),
    (Chat, "[1,2]", None, None, None),
    (Chat, "{\"model\":\"gpt-5\"", None, None, None),
    (Chat, "\u{FFFD}garbage", None, None, None),
    (
        Chat,
        r#"{"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
        None,
        None,
        None,
    ),
];

#[test]
fn bodies() {
    for &(endpoint, body, usage, tier, model) in BODY_CASES {
        let want = BodyReport { usage, service_tier: tier.map(str::to_owned), model: model.map(str::to_owned) };
        assert_eq!(from_body(endpoint, body.as_bytes()), want, "{endpoint:?} {body}");
        // Both paths of the answer scan, where the fast one answers, say the same.
        if let Some(fast) = super::fast_report(endpoint, body.as_bytes()) {
            assert_eq!(Some(&fast), super::serde_report(endpoint, body.as_bytes()).as_ref(), "{body}");
            assert_eq!(fast, want, "{body}");
        }
    }
    let objects = BODY_CASES.iter().filter(|c| c.1.starts_with('{')).count();
    let fast = BODY_CASES.iter().filter(|c| super::fast_report(c.0, c.1.as_bytes()).is_some()).count();
    assert!(fast + 2 >= objects, "the fast path reads nearly every object: {fast} of {objects}");
    assert_eq!(from_body(Chat, b"{\"model\":\"\xFF\"}"), BodyReport::default());
}

#[test]
fn usage_max_is_field_wise() {
    let a = written(10, 0, 5, 7, 3);
    assert_eq!(a.max(written(4, 2, 1, 9, 0)), written(10, 2, 5, 9, 3));
    assert_eq!(Usage::default().max(a), a);
}

#[test]
fn endpoint_labels_are_distinct() {
    let labels = [Chat, Responses, Completions, Embeddings, Other].map(Endpoint::as_str);
    assert_eq!(labels, ["chat_completions", "responses", "completions", "embeddings", "other"]);
}

/// Parse a whole SSE text and observe every event, with the cheap pre-check on or off.
fn run_stream(endpoint: Endpoint, text: &str, cheap: bool) -> (StreamUsage, Vec<EventVerdict>) {
    let mut parser = SseParser::default();
    let mut events = parser.feed(text.as_bytes());
    events.extend(parser.finish());
    let mut observer = StreamUsage::new(endpoint);
    let verdicts = events
        .iter()
        .map(|ev| match endpoint {
            Endpoint::Responses => observer.observe(ev),
            _ if ev.data.trim() == "[DONE]" => observer.observe(ev),
            _ => observer.observe_chunk(ev, cheap),
        })
        .collect();
    (observer, verdicts)
}

/// Observe `text` with and without the cheap pre-check; both must agree.
fn run(endpoint: Endpoint, text: &str) -> (StreamUsage, Vec<EventVerdict>) {
    let fast = run_stream(endpoint, text, true);
    let slow = run_stream(endpoint, text, false);
    assert_eq!(fast.1, slow.1, "cheap pre-check changed verdicts");
    assert_eq!(
        (fast.0.usage(), fast.0.service_tier(), fast.0.model()),
        (slow.0.usage(), slow.0.service_tier(), slow.0.model())
    );
    fast
}

#[test]
fn scan_body_validates_and_reports_in_one_pass() {
    let answer = br#"{"model":"gpt-5-mini","service_tier":"flex","usage":{"prompt_tokens":10,"completion_tokens":4}}"#;
    for body in [
        &answer[..],
        br#"{"model":"a","model":"b"}"#,
        br#"["not", "an", "object"]"#,
        br#""text""#,
        br#"{"usage": {"prompt_tokens": "many"}}"#,
        br#"{"usage": 5, "choices": []} "#,
        b"",
        b"{",
        br#"{"model":"gpt-5"} trailing"#,
        br#"{"model":"\ud800"}"#,
        b"[1, 2,]",
    ] {
        let valid = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
        let scanned = scan_body(Endpoint::ChatCompletions, body);
        assert_eq!(scanned.is_some(), valid, "{}", String::from_utf8_lossy(body));
        if let Some(report) = scanned {
            assert_eq!(report, from_body(Endpoint::ChatCompletions, body), "{}", String::from_utf8_lossy(body));
        }
    }
    let report = scan_body(Endpoint::ChatCompletions, answer).unwrap();
    assert_eq!(report.usage.map(|u| (u.input, u.output)), Some((10, 4)));
    assert_eq!(report.service_tier.as_deref(), Some("flex"));
}
