//! Stream tests for usage extraction: the OpenAI fixtures, in-stream errors, usage split
//! across chunks, tier changes, and the cheap chunk pre-check.

use super::{run, usage, written};
use crate::endpoint::Endpoint;
use crate::sse::SseEvent;
use crate::usage::{EventVerdict, StreamUsage, Usage};
use Endpoint::{ChatCompletions as Chat, Completions, Other, Responses};
use EventVerdict::{Done, Error, Keep, UsageOnlyChunk as UsageOnly};

const CHAT_WITH_USAGE: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sse/chat_with_usage.sse"));
const CHAT_NO_USAGE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sse/chat_no_usage.sse"));
const RESPONSES: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sse/responses.sse"));

/// The content a stream carried is measured for the budget's estimate of a stream that
/// ends without usage: the text of the deltas as written, escapes included.
#[test]
fn streamed_content_is_measured_in_every_dialect() {
    assert_eq!(run(Chat, CHAT_NO_USAGE).0.streamed(), 5, "`Hello`; the role chunk's empty content adds none");
    let data_only = RESPONSES.replace("event: ", "ignored: ");
    for text in [RESPONSES, data_only.as_str()] {
        assert_eq!(run(Responses, text).0.streamed(), 12, r#"`Hi \"usage\"` as written; `done` repeats it"#);
    }
    let tool = r#"data: {"model":"m","choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\"a\": 1}"}}]}}]}

data: {"model":"m","choices":[{"delta":{"content": "ab\\"}}]}

"#;
    assert_eq!(
        run(Chat, tool).0.streamed(),
        10 + 4,
        "tool-call arguments, and a string ending in an escaped backslash"
    );
    let completion = "data: {\"model\":\"m\",\"choices\":[{\"text\":\" world\",\"index\":0}]}\n\n";
    assert_eq!(run(Completions, completion).0.streamed(), 6);
    assert_eq!(run(Chat, completion).0.streamed(), 0, "each dialect its own keys");
}

#[test]
fn content_is_not_measured_for_a_stream_no_budget_reads() {
    let mut parser = crate::sse::SseParser::default();
    let mut observer = StreamUsage::new(Chat);
    observer.measure_content(false);
    for event in parser.feed(CHAT_NO_USAGE.as_bytes()) {
        observer.observe(&event);
    }
    assert_eq!(observer.streamed(), 0);
    assert!(observer.saw_terminal(), "everything else is observed as before");
}

#[test]
fn fixture_streams() {
    let (obs, verdicts) = run(Chat, CHAT_WITH_USAGE);
    assert_eq!(verdicts, [Keep, Keep, Keep, Keep, UsageOnly, Done]);
    assert_eq!(obs.usage(), Some(usage(1200, 1024, 350, 256)));
    assert_eq!((obs.service_tier(), obs.model()), (Some("flex"), Some("gpt-5-mini-2025-08-07")));
    assert!(obs.saw_terminal());

    let (obs, verdicts) = run(Chat, CHAT_NO_USAGE);
    assert_eq!(verdicts, [Keep, Keep, Keep, Done]);
    assert_eq!((obs.usage(), obs.service_tier()), (None, Some("flex")));
    assert!(obs.saw_terminal());

    // With and without `event:` lines (some relays forward only `data:`).
    let data_only = RESPONSES.replace("event: ", "ignored: ");
    for text in [RESPONSES, data_only.as_str()] {
        let (obs, verdicts) = run(Responses, text);
        assert_eq!(verdicts, [Keep, Keep, Keep, Keep, Keep, Done]);
        assert_eq!(obs.usage(), Some(usage(2048, 1536, 900, 640)));
        assert_eq!(obs.service_tier(), Some("flex"), "the final lifecycle event wins over `auto`");
        assert_eq!(obs.model(), Some("gpt-5-2025-08-07"));
        assert!(obs.saw_terminal());
    }
}

/// `(endpoint, stream, verdicts, usage, tier, terminal)`.
type StreamCase = (Endpoint, &'static str, &'static [EventVerdict], Option<Usage>, Option<&'static str>, bool);

const STREAM_CASES: &[StreamCase] = &[
    (
        Chat,
        "data: {\"model\":\"gpt-5\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
            data: {\"error\":{\"message\":\"The server is overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":\"server_is_overloaded\"}}\n\n",
        &[Keep, Error],
        None,
        None,
        false,
    ),
    (Chat, "event: error\ndata: {\"message\":\"boom\"}\n\n", &[Error], None, None, false),
    (Chat, "data: {\"model\":\"m\",\"error\":null,\"choices\":[]}\n\n", &[Keep], None, None, false),
    // Usage in a content chunk: recorded, but the chunk must not be cut.
    (
        Chat,
        "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n",
        &[Keep],
        Some(usage(5, 0, 1, 0)),
        None,
        false,
    ),
    // Usage split across chunks, and cumulative usage: field-wise maximum.
    (
        Chat,
        "data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":0,\"prompt_tokens_details\":{\"cached_tokens\":64}}}\n\n\
            data: {\"model\":\"m\",\"choices\":[ ],\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":42,\"completion_tokens_details\":{\"reasoning_tokens\":10}}}\n\ndata: [DONE]\n\n",
        &[UsageOnly, UsageOnly, Done],
        Some(usage(100, 64, 42, 10)),
        None,
        true,
    ),
    (
        Chat,
        "data: {\"model\":\"m\",\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1}}\n\n\
            data: {\"model\":\"m\",\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":7}}\n\n",
        &[UsageOnly, UsageOnly],
        Some(usage(10, 0, 7, 0)),
        None,
        false,
    ),
    // Cache writes in a chat stream's usage chunk and in `response.completed`.
    (
        Chat,
        "data: {\"model\":\"gpt-5.6-terra\",\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":null}\n\n\
            data: {\"model\":\"gpt-5.6-terra\",\"choices\":[],\"usage\":{\"prompt_tokens\":1300,\"completion_tokens\":16,\
            \"prompt_tokens_details\":{\"cached_tokens\":640,\"cache_write_tokens\":256}}}\n\ndata: [DONE]\n\n",
        &[Keep, UsageOnly, Done],
        Some(written(1300, 640, 256, 16, 0)),
        None,
        true,
    ),
    (
        Responses,
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"service_tier\":\"default\",\
            \"usage\":{\"input_tokens\":300000,\"input_tokens_details\":{\"cached_tokens\":149888,\"cache_write_tokens\":75008},\
            \"output_tokens\":64,\"output_tokens_details\":{\"reasoning_tokens\":32}}}}\n\n",
        &[Done],
        Some(written(300_000, 149_888, 75_008, 64, 32)),
        Some("default"),
        true,
    ),
    // The tier changing mid-stream is noticed even on otherwise skippable chunks.
    (
        Chat,
        "data: {\"model\":\"m\",\"service_tier\":\"priority\",\"choices\":[{}],\"usage\":null}\n\n\
            data: {\"model\":\"m\",\"service_tier\" : \"default\",\"choices\":[{}],\"usage\":null}\n\n\
            data: {\"model\":\"m\",\"service_tier\":null,\"choices\":[{}]}\n\n",
        &[Keep, Keep, Keep],
        None,
        Some("default"),
        false,
    ),
    (Chat, "data: not json\n\ndata: {\"model\":\n\n: comment\n\n", &[Keep, Keep], None, None, false),
    (
        Completions,
        "data: {\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9}}\n\ndata: [DONE]\n\n",
        &[UsageOnly, Done],
        Some(usage(3, 0, 9, 0)),
        None,
        true,
    ),
    (
        Other,
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n",
        &[Keep],
        Some(usage(3, 0, 0, 0)),
        None,
        false,
    ),
    (
        Responses,
        "event: error\ndata: {\"type\":\"error\",\"code\":\"server_is_overloaded\",\"message\":\"busy\",\"param\":null,\"sequence_number\":3}\n\n",
        &[Error],
        None,
        None,
        false,
    ),
    (
        Responses,
        "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"service_tier\":\"flex\",\
            \"error\":{\"code\":\"server_error\",\"message\":\"x\"},\"usage\":{\"input_tokens\":11,\"output_tokens\":0}}}\n\n",
        &[Error],
        Some(usage(11, 0, 0, 0)),
        Some("flex"),
        true,
    ),
    (
        Responses,
        "data: {\"type\":\"response.queued\",\"response\":{\"service_tier\":\"default\",\"usage\":null}}\n\n\
            data: {\"type\":\"response.incomplete\",\"response\":{\"status\":\"incomplete\",\"usage\":{\"input_tokens\":20,\
            \"input_tokens_details\":{\"cached_tokens\":null},\"output_tokens\":64,\"output_tokens_details\":{\"reasoning_tokens\":64}}}}\n\n",
        &[Keep, Done],
        Some(usage(20, 0, 64, 64)),
        Some("default"),
        true,
    ),
    (
        Responses,
        "event: response.output_text.delta\ndata: {\"error\":{}}\n\ndata: {\"type\":\"x\",\"error\":{\"message\":\"y\"}}\n\ndata: [DONE]\n\n",
        &[Keep, Error, Done],
        None,
        None,
        true,
    ),
    (Responses, "data: []\n\ndata: {\"type\":7,\"response\":\"nope\"}\n\n", &[Keep, Keep], None, None, false),
];

#[test]
fn stream_cases() {
    for &(endpoint, text, verdicts, want_usage, tier, terminal) in STREAM_CASES {
        let (obs, got) = run(endpoint, text);
        assert_eq!(got, verdicts, "{text}");
        assert_eq!((obs.usage(), obs.service_tier(), obs.saw_terminal()), (want_usage, tier, terminal), "{text}");
    }
}

#[test]
fn chunk_pre_check_skips_plain_deltas_only() {
    let mut obs = StreamUsage::new(Endpoint::ChatCompletions);
    let chunk = |data: &str| SseEvent { event: None, data: data.to_owned(), start: 0, end: 0 };
    let delta = r#"{"model":"m","service_tier":"flex","choices":[{"delta":{"content":"say \"usage\": \"error\""}}],"usage":null}"#;
    assert!(obs.chunk_may_matter(delta.as_bytes()), "model unknown yet");
    assert_eq!(obs.observe(&chunk(delta)), EventVerdict::Keep);
    assert!(!obs.chunk_may_matter(delta.as_bytes()));
    for needs_parse in [
        r#"{"model":"m","service_tier":"default"}"#,
        r#"{"model":"m","usage":{"prompt_tokens":1}}"#,
        r#"{"model":"m","error":{"message":"x"}}"#,
        r#"{"model":"m","choices":[{"delta":{"content":"error"}}]}"#,
    ] {
        assert!(obs.chunk_may_matter(needs_parse.as_bytes()), "{needs_parse}");
    }
}
