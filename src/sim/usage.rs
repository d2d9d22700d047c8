//! Deterministic token accounting of the simulator. Tests elsewhere hand-compute costs
//! from these formulas, so they are pure functions of the request and nothing else:
//!
//! - **Prompt tokens** = Σ over input items of `ceil(chars / 4) + 3`, at least 1. An item
//!   is a chat message, a Responses input item (a string `input` is one item, and
//!   `instructions` is one more), a legacy completions prompt string, or an embeddings
//!   input string. `chars` counts Unicode scalar values of the item's text (string
//!   content, or the `text` of its content parts).
//! - **Output tokens** (`completion_tokens` / `output_tokens`) = `max_completion_tokens`,
//!   `max_tokens` or `max_output_tokens` when given, else 16.
//! - **Reasoning tokens** = output / 2 (rounded down) for reasoning models (o3, o4-mini,
//!   gpt-5* except gpt-5-chat*), else 0. They are part of the output tokens; the visible
//!   text is `output − reasoning` words, one word per stream chunk.
//! - **Cached tokens** = if prompt ≥ 1024, the largest multiple of 128 ≤ prompt / 2, else 0.
//!   They are part of the prompt tokens.
//! - **Cache-write tokens**, reported only by models that bill cache writes (gpt-5.6-*,
//!   gpt-6-astra) = if prompt ≥ 1024, the largest multiple of 128 ≤ (prompt − cached) / 2,
//!   else 0. They are part of the prompt tokens too, as `OpenAI` counts them: uncached =
//!   prompt − cached − cache-write. Other models send no `cache_write_tokens` in chat
//!   usage and 0 in Responses usage (where the field is required).
//! - **Total** = prompt + output. Embeddings have no output tokens.
//!
//! This is the usage of a plain text answer with one choice. Answers that are JSON or
//! tool calls, cut by `stop`, or have `n` choices count their generated tokens instead
//! (see `answer`).
//!
//! Streaming and non-streaming answers to the same request report identical usage.

use serde::Serialize;

use super::catalog;

/// Output tokens when the request sets no limit.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 16;
/// Per-item overhead (role markers, separators) added to every input item.
pub const ITEM_OVERHEAD_TOKENS: u64 = 3;
/// Prompts shorter than this are never cached, as with `OpenAI` prompt caching.
pub const CACHE_MIN_PROMPT_TOKENS: u64 = 1024;

/// Usage the sim reports for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SimUsage {
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    /// `None` for models that do not report cache writes.
    pub cache_write_tokens: Option<u64>,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
}

impl SimUsage {
    /// Output tokens that are visible text (one streamed word each).
    pub fn visible_tokens(&self) -> u64 {
        self.completion_tokens - self.reasoning_tokens
    }

    /// `CompletionUsage` of chat and legacy completions.
    pub(crate) fn chat_wire(&self) -> ChatUsageWire {
        ChatUsageWire {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            prompt_tokens_details: PromptDetails {
                cached_tokens: self.cached_tokens,
                cache_write_tokens: self.cache_write_tokens,
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: self.reasoning_tokens,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        }
    }

    /// `ResponseUsage` of the Responses API.
    pub(crate) fn responses_wire(&self) -> ResponsesUsageWire {
        ResponsesUsageWire {
            input_tokens: self.prompt_tokens,
            input_tokens_details: CachedDetails {
                cached_tokens: self.cached_tokens,
                cache_write_tokens: self.cache_write_tokens.unwrap_or(0),
            },
            output_tokens: self.completion_tokens,
            output_tokens_details: ReasoningDetails { reasoning_tokens: self.reasoning_tokens },
            total_tokens: self.total_tokens,
        }
    }

    /// Embeddings usage: prompt and total only.
    pub(crate) fn embeddings_wire(&self) -> EmbeddingsUsageWire {
        EmbeddingsUsageWire { prompt_tokens: self.prompt_tokens, total_tokens: self.total_tokens }
    }
}

// Wire shapes are typed structs rather than `json!` trees: usage is serialized on every
// answer, and building a map per answer showed up in profiles.

#[derive(Clone, Copy, Serialize)]
pub(crate) struct ChatUsageWire {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Clone, Copy, Serialize)]
struct PromptDetails {
    cached_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_tokens: Option<u64>,
    audio_tokens: u64,
}

#[derive(Clone, Copy, Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

#[derive(Clone, Copy, Serialize)]
pub(crate) struct ResponsesUsageWire {
    input_tokens: u64,
    input_tokens_details: CachedDetails,
    output_tokens: u64,
    output_tokens_details: ReasoningDetails,
    total_tokens: u64,
}

#[derive(Clone, Copy, Serialize)]
struct CachedDetails {
    cached_tokens: u64,
    cache_write_tokens: u64,
}

#[derive(Clone, Copy, Serialize)]
struct ReasoningDetails {
    reasoning_tokens: u64,
}

#[derive(Clone, Copy, Serialize)]
pub(crate) struct EmbeddingsUsageWire {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// Tokens of one input item with `chars` characters of text.
pub fn item_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX) + ITEM_OVERHEAD_TOKENS
}

/// Prompt tokens of a request whose input items have the given character counts.
pub fn prompt_tokens(item_chars: impl IntoIterator<Item = usize>) -> u64 {
    item_chars.into_iter().map(item_tokens).fold(0, u64::saturating_add).max(1)
}

/// Cached part of a prompt of `prompt_tokens` tokens.
pub fn cached_tokens(prompt_tokens: u64) -> u64 {
    if prompt_tokens >= CACHE_MIN_PROMPT_TOKENS { prompt_tokens / 2 / 128 * 128 } else { 0 }
}

/// Cache-write part of a prompt of `prompt_tokens` tokens, `cached` of them read.
pub fn cache_write_tokens(prompt_tokens: u64, cached: u64) -> u64 {
    if prompt_tokens >= CACHE_MIN_PROMPT_TOKENS { (prompt_tokens - cached) / 2 / 128 * 128 } else { 0 }
}

/// Usage of a generation request for `model` with `prompt_tokens` of input and the
/// request's output limit (`None` = not set).
pub fn usage_for(model: &str, prompt_tokens: u64, max_output: Option<u64>) -> SimUsage {
    let output = max_output.unwrap_or(DEFAULT_OUTPUT_TOKENS).max(1);
    let reasoning = if catalog::is_reasoning_model(model) { output / 2 } else { 0 };
    let cached = cached_tokens(prompt_tokens);
    SimUsage {
        prompt_tokens,
        cached_tokens: cached,
        cache_write_tokens: catalog::writes_cache(model).then(|| cache_write_tokens(prompt_tokens, cached)),
        completion_tokens: output,
        reasoning_tokens: reasoning,
        total_tokens: prompt_tokens.saturating_add(output),
    }
}

/// Usage of an embeddings request.
pub fn embeddings_usage(prompt_tokens: u64) -> SimUsage {
    SimUsage { prompt_tokens, total_tokens: prompt_tokens, ..SimUsage::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_formula() {
        assert_eq!(item_tokens(0), 3);
        assert_eq!(item_tokens(1), 4);
        assert_eq!(item_tokens(4), 4);
        assert_eq!(item_tokens(5), 5);
        assert_eq!(prompt_tokens([5, 8]), 5 + 5);
        assert_eq!(prompt_tokens([]), 1);
    }

    #[test]
    fn cached_formula() {
        assert_eq!(cached_tokens(1023), 0);
        assert_eq!(cached_tokens(1024), 512);
        assert_eq!(cached_tokens(1300), 640);
        assert_eq!(cached_tokens(2000), 1000 / 128 * 128);
    }

    #[test]
    fn cache_write_formula() {
        assert_eq!(cache_write_tokens(1023, 0), 0);
        assert_eq!(cache_write_tokens(1300, 640), 256);
        assert_eq!(usage_for("gpt-5.6-terra", 1300, None).cache_write_tokens, Some(256));
        assert_eq!(usage_for("gpt-6-astra", 10, None).cache_write_tokens, Some(0));
        assert_eq!(usage_for("gpt-5", 1300, None).cache_write_tokens, None);
        // Reads and writes never exceed the prompt.
        for prompt in [1024, 1025, 4000, 300_000] {
            let u = usage_for("gpt-5.6-sol", prompt, None);
            assert!(u.cached_tokens + u.cache_write_tokens.unwrap() <= prompt, "{prompt}");
        }
    }

    #[test]
    fn reasoning_only_for_reasoning_models() {
        let u = usage_for("gpt-5-mini", 10, Some(9));
        assert_eq!((u.completion_tokens, u.reasoning_tokens), (9, 4));
        assert_eq!(u.visible_tokens(), 5);
        assert_eq!(u.total_tokens, 19);
        let u = usage_for("gpt-5-2025-08-07", 10, None);
        assert_eq!((u.completion_tokens, u.reasoning_tokens), (16, 8));
        let u = usage_for("gpt-4o", 10, None);
        assert_eq!((u.completion_tokens, u.reasoning_tokens), (16, 0));
        let u = usage_for("gpt-5-chat-latest", 10, None);
        assert_eq!(u.reasoning_tokens, 0);
        let u = usage_for("o3", 10, Some(1));
        assert_eq!((u.completion_tokens, u.visible_tokens()), (1, 1));
    }
}
