//! Property tests for usage extraction: no input panics `from_body` or `observe`, and the
//! cheap chunk pre-check never changes what a chat stream reports.

use super::run;
use crate::endpoint::Endpoint;
use crate::sse::SseEvent;
use crate::usage::{StreamUsage, fast_report, from_body, serde_report};
use proptest::prelude::*;

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        Just(Endpoint::ChatCompletions),
        Just(Endpoint::Responses),
        Just(Endpoint::Completions),
        Just(Endpoint::Embeddings),
        Just(Endpoint::Other),
    ]
}

/// JSON-ish text assembled from the keys and values the extractor looks at.
fn jsonish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("null".to_owned()),
        Just("\"usage\":".to_owned()),
        Just("\"service_tier\":".to_owned()),
        Just("\"model\":".to_owned()),
        Just("\"choices\":".to_owned()),
        Just("\"error\":".to_owned()),
        Just("\"response\":".to_owned()),
        Just("\"type\":\"response.completed\"".to_owned()),
        Just("\"prompt_tokens\":".to_owned()),
        Just("\"input_tokens_details\":{\"cached_tokens\":".to_owned()),
        Just("\"flex\"".to_owned()),
        (0u64..u64::MAX).prop_map(|n| n.to_string()),
        Just("-1".to_owned()),
        Just("1e400".to_owned()),
        "[ -~]{0,6}",
    ];
    proptest::collection::vec(token, 0..30).prop_map(|parts| parts.concat())
}

/// A chat chunk with each interesting field present, null, absent or odd.
fn chat_chunk() -> impl Strategy<Value = String> {
    let tier = prop_oneof![
        Just(""),
        Just(r#""service_tier":null,"#),
        Just(r#""service_tier":"flex","#),
        Just(r#""service_tier": "default","#),
        Just(r#""service_tier":"priority","#),
    ];
    let usage = prop_oneof![
        Just(String::new()),
        Just(r#""usage":null,"#.to_owned()),
        (0u64..5000, 0u64..5000, 0u64..500).prop_map(|(p, c, r)| format!(
            r#""usage":{{"prompt_tokens":{p},"completion_tokens":{c},"completion_tokens_details":{{"reasoning_tokens":{r}}}}},"#
        )),
    ];
    let choices = prop_oneof![
        Just(""),
        Just(r#""choices":[],"#),
        Just(r#""choices":[{"delta":{"content":"a \"usage\": b"}}],"#),
        Just(r#""choices":[{"delta":{"content":"error"}}],"#),
    ];
    let error = prop_oneof![
        3 => Just(""),
        1 => Just(r#""error":null,"#),
        1 => Just(r#""error":{"message":"x"},"#),
    ];
    (tier, usage, choices, error).prop_map(|(t, u, c, e)| format!(r#"{{{t}{u}{c}{e}"model":"m"}}"#))
}

proptest! {
    /// The one-pass answer scan, whenever it answers, says what the serde parse says.
    #[test]
    fn the_fast_answer_scan_agrees_with_serde(ep in endpoint(), text in jsonish(), wrap in any::<bool>()) {
        // Wrapped in braces half the time, so many cases are objects the scan accepts.
        let text = if wrap { format!("{{{text}}}") } else { text };
        if let Some(fast) = fast_report(ep, text.as_bytes()) {
            prop_assert_eq!(Some(fast), serde_report(ep, text.as_bytes()), "{}", text);
        }
    }

    #[test]
    fn from_body_never_panics(ep in endpoint(), text in jsonish(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = from_body(ep, text.as_bytes());
        let _ = from_body(ep, &bytes);
    }

    #[test]
    fn observe_never_panics(
        ep in endpoint(),
        events in proptest::collection::vec(
            (proptest::option::of(prop_oneof![Just("error".to_owned()), Just("response.completed".to_owned()), "[a-z._]{0,12}"]), jsonish()),
            0..8,
        ),
    ) {
        let mut obs = StreamUsage::new(ep);
        for (event, data) in events {
            let _ = obs.observe(&SseEvent { event, data, start: 0, end: 0 });
        }
        let _ = (obs.usage(), obs.service_tier(), obs.model(), obs.saw_terminal());
    }

    #[test]
    fn pre_check_never_changes_the_outcome(chunks in proptest::collection::vec(chat_chunk(), 1..8)) {
        let text: String = chunks.iter().map(|c| ["data: ", c, "\n\n"].concat()).collect();
        // `run` asserts that the cheap and the full path agree.
        let _ = run(Endpoint::ChatCompletions, &text);
    }
}
