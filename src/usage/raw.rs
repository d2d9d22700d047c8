//! Wire shapes of OpenAI response bodies, stream chunks and Responses events, reduced to
//! the few fields usage accounting reads. Unknown fields are skipped without building a
//! value tree; every read field is lenient, so one wrongly typed field yields `None` for
//! that field instead of failing the whole body.

use super::{Endpoint, Usage};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A response object (chat completion, completion, embedding list, Responses `response`)
/// or a chat/completions stream chunk.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawObject<'a> {
    #[serde(default, borrow, deserialize_with = "lenient_str")]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient_str")]
    pub(super) service_tier: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient")]
    pub(super) usage: Option<RawUsage>,
    /// Kept raw: only "is it an empty array" matters, and skipping it costs one scan.
    #[serde(default, borrow)]
    pub(super) choices: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) error: Option<&'a RawValue>,
}

impl RawObject<'_> {
    /// `choices` is missing, null or `[]`: the chunk carries no content for the client.
    pub(super) fn has_no_choices(&self) -> bool {
        self.choices.is_none_or(|raw| {
            let text = raw.get();
            text.strip_prefix('[').is_some_and(|inner| inner.trim_start().starts_with(']'))
        })
    }
}

/// One Responses stream event.
#[derive(Debug, Deserialize)]
pub(super) struct RawEvent<'a> {
    #[serde(default, borrow, rename = "type", deserialize_with = "lenient_str")]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) response: Option<RawObject<'a>>,
    #[serde(default, borrow)]
    pub(super) error: Option<&'a RawValue>,
}

/// `usage` of every endpoint: chat/completions/embeddings name the counts `prompt_*` and
/// `completion_*`, Responses `input_*` and `output_*`. Both spellings are read so an
/// OpenAI-compatible upstream answering in the other dialect is still metered.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawUsage {
    #[serde(default, deserialize_with = "lenient")]
    prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    prompt_tokens_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "lenient")]
    input_tokens_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "lenient")]
    completion_tokens_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "lenient")]
    output_tokens_details: Option<RawDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct RawDetails {
    #[serde(default, deserialize_with = "lenient")]
    cached_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    reasoning_tokens: Option<u64>,
}

impl RawUsage {
    /// The counts in our convention; `None` when neither an input nor an output count is
    /// present (an empty or unrecognised `usage` object is not a report of zero tokens).
    pub(super) fn to_usage(&self, endpoint: Endpoint) -> Option<Usage> {
        let responses = endpoint == Endpoint::Responses;
        let pick = |chat: Option<u64>, resp: Option<u64>| {
            if responses { resp.or(chat) } else { chat.or(resp) }
        };
        let detail = |chat: &Option<RawDetails>, resp: &Option<RawDetails>, f: fn(&RawDetails) -> Option<u64>| {
            pick(chat.as_ref().and_then(f), resp.as_ref().and_then(f))
        };
        let input = pick(self.prompt_tokens, self.input_tokens);
        let output = pick(self.completion_tokens, self.output_tokens);
        if input.is_none() && output.is_none() {
            return None;
        }
        let cached = detail(&self.prompt_tokens_details, &self.input_tokens_details, |d| d.cached_tokens);
        let reasoning = detail(&self.completion_tokens_details, &self.output_tokens_details, |d| d.reasoning_tokens);
        let embeddings = endpoint == Endpoint::Embeddings; // no generated tokens
        Some(Usage {
            input: input.unwrap_or(0),
            cached_input: cached.unwrap_or(0),
            output: if embeddings { 0 } else { output.unwrap_or(0) },
            reasoning: if embeddings { 0 } else { reasoning.unwrap_or(0) },
        })
    }
}

/// Any JSON value; `Some` only if it parses as `T` (e.g. a non-negative integer for
/// `u64`), else `None` instead of an error.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let raw = <&'de RawValue>::deserialize(deserializer)?;
    Ok(serde_json::from_str(raw.get()).ok())
}

/// A JSON string (borrowed unless it has escapes); any other value gives `None`.
fn lenient_str<'de, D>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = <&'de RawValue>::deserialize(deserializer)?;
    if let Ok(text) = serde_json::from_str::<&'de str>(raw.get()) {
        return Ok(Some(Cow::Borrowed(text)));
    }
    Ok(serde_json::from_str::<String>(raw.get()).ok().map(Cow::Owned))
}
