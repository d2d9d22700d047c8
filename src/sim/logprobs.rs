//! Chat `logprobs`: per content token its `token`, a deterministic `logprob`, its UTF-8
//! `bytes` and `top_logprobs` alternatives (the token itself first, then vocabulary words
//! each less likely than the one before), shaped as `OpenAI`'s
//! `choices[].logprobs = {"content": [...], "refusal": null}`.

use serde_json::{Value, json};

use super::text::{splitmix64, word};

/// The `logprobs` object of a whole choice whose content tokens are `pieces`.
pub(crate) fn content(seed: u64, pieces: &[String], top: usize) -> Value {
    let entries: Vec<Value> = pieces.iter().enumerate().map(|(i, piece)| entry(seed, i, piece, top)).collect();
    json!({"content": entries, "refusal": null})
}

/// The `logprobs` object of a stream chunk carrying token `i` only.
pub(crate) fn chunk(seed: u64, i: usize, piece: &str, top: usize) -> Value {
    json!({"content": [entry(seed, i, piece, top)], "refusal": null})
}

/// One token's entry.
fn entry(seed: u64, i: usize, piece: &str, top: usize) -> Value {
    let mix = splitmix64(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    // A probability between about 0.37 and 1: log in (-1, 0].
    #[expect(clippy::cast_precision_loss, reason = "a value below 1000 is exact in f64")]
    let logprob = -((mix % 1000) as f64) / 1000.0;
    let alternatives: Vec<Value> = (0..top)
        .map(|k| {
            if k == 0 {
                return json!({"token": piece, "logprob": logprob, "bytes": piece.as_bytes()});
            }
            let alt = word(mix, k as u64);
            #[expect(clippy::cast_precision_loss, reason = "k is at most 20")]
            let less = logprob - 0.5 - k as f64;
            json!({"token": alt, "logprob": less, "bytes": alt.as_bytes()})
        })
        .collect();
    json!({"token": piece, "logprob": logprob, "bytes": piece.as_bytes(), "top_logprobs": alternatives})
}
