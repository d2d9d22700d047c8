//! Property tests for the SSE parser: random bytes and random split points never panic,
//! and the events never depend on where the stream was split.

use super::parse_chunks;
use crate::sse::{DEFAULT_MAX_EVENT_BYTES, SseParser};
use proptest::prelude::*;

/// Bytes drawn mostly from SSE syntax so random inputs hit the interesting paths.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: x".to_vec()),
        Just(b": c".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"[DONE]".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_splits_never_change_events(
        bytes in prop_oneof![sse_bytes(), proptest::collection::vec(any::<u8>(), 0..300)],
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        max in prop_oneof![Just(DEFAULT_MAX_EVENT_BYTES), 1usize..40],
    ) {
        let whole = parse_chunks(&mut SseParser::with_max_event_bytes(max), [bytes.as_slice()]);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            chunks.push(&bytes[prev..p]);
            prev = p;
        }
        let mut parser = SseParser::with_max_event_bytes(max);
        let split = parse_chunks(&mut parser, chunks);
        prop_assert_eq!(&split, &whole);
        prop_assert_eq!(parser.offset(), bytes.len() as u64);
        for ev in &split {
            prop_assert!(ev.start < ev.end && ev.end <= bytes.len() as u64);
            prop_assert!(ev.end - ev.start <= max as u64);
        }
        for pair in split.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start);
        }
    }
}
