//! Wire shapes of OpenAI response bodies, stream chunks and Responses events, reduced to
//! the few fields usage accounting reads. Unknown fields are skipped without building a
//! value tree; every read field is lenient, so one wrongly typed field yields `None` for
//! that field instead of failing the whole body. The lenient readers also serve the
//! WebSocket sessions' events (`crate::websocket`).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::{Endpoint, Usage};

/// A response object (chat completion, completion, embedding list, Responses `response`)
/// or a chat/completions stream chunk.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawObject<'a> {
    #[serde(default, borrow, deserialize_with = "lenient_str")]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient_str")]
    pub(super) service_tier: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_struct")]
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
    #[serde(default, deserialize_with = "lenient_u64")]
    prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_struct")]
    prompt_tokens_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "lenient_struct")]
    input_tokens_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "lenient_struct")]
    completion_tokens_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "lenient_struct")]
    output_tokens_details: Option<RawDetails>,
}

/// A usage `*_details` object, in every shape that carries one (chat, Responses, Realtime);
/// `audio_tokens` is read by the Realtime meter only.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawDetails {
    #[serde(default, deserialize_with = "lenient_u64")]
    pub(crate) cached_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub(crate) cache_write_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub(crate) reasoning_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub(crate) audio_tokens: Option<u64>,
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
        let written = detail(&self.prompt_tokens_details, &self.input_tokens_details, |d| d.cache_write_tokens);
        let reasoning = detail(&self.completion_tokens_details, &self.output_tokens_details, |d| d.reasoning_tokens);
        let embeddings = endpoint == Endpoint::Embeddings; // no generated tokens
        Some(Usage {
            input: input.unwrap_or(0),
            cached_input: cached.unwrap_or(0),
            cache_write: written.unwrap_or(0),
            output: if embeddings { 0 } else { output.unwrap_or(0) },
            reasoning: if embeddings { 0 } else { reasoning.unwrap_or(0) },
        })
    }
}

/// A lenient string from one value's raw text: `Ok(None)` for another shape, an error if
/// the text does not parse at all (the caller then lets the whole-body parse decide).
pub(super) fn read_str(raw: &[u8]) -> serde_json::Result<Option<String>> {
    lenient_str(&mut serde_json::Deserializer::from_slice(raw)).map(|s| s.map(Cow::into_owned))
}

/// A lenient `usage` object from one value's raw text, as [`read_str`].
pub(super) fn read_usage(raw: &[u8]) -> serde_json::Result<Option<RawUsage>> {
    lenient_struct(&mut serde_json::Deserializer::from_slice(raw))
}

// The lenient readers take any JSON value in the one pass of the enclosing parse: the
// value is kept when it has the expected shape and skipped (`None`) otherwise. Reading each
// field as a raw slice and parsing it again cost about a third of an answer's scan.

/// A non-negative integer, else `None`.
pub(crate) fn lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    deserializer.deserialize_any(Shape(|v| match v {
        Value::U64(n) => Some(n),
        _ => None,
    }))
}

/// A JSON string (borrowed unless it has escapes), else `None`.
pub(crate) fn lenient_str<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    deserializer.deserialize_any(Shape(|v| match v {
        Value::Str(s) => Some(s),
        _ => None,
    }))
}

/// An object read as `T` (whose own fields are lenient), else `None`.
pub(crate) fn lenient_struct<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_any(Object(PhantomData))
}

/// The scalar shapes a lenient field can take.
enum Value<'de> {
    U64(u64),
    Str(Cow<'de, str>),
    Other,
}

/// Visits any value, hands scalars to `F`, and skips arrays and objects.
struct Shape<F>(F);

impl<'de, T, F: FnOnce(Value<'de>) -> Option<T>> Visitor<'de> for Shape<F> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_u64<E>(self, v: u64) -> Result<Option<T>, E> {
        Ok((self.0)(Value::U64(v)))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Option<T>, E> {
        Ok((self.0)(Value::Other))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<T>, E> {
        Ok((self.0)(Value::Other))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Option<T>, E> {
        Ok((self.0)(Value::Other))
    }
    fn visit_unit<E>(self) -> Result<Option<T>, E> {
        Ok((self.0)(Value::Other))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Option<T>, E> {
        Ok((self.0)(Value::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<T>, E> {
        Ok((self.0)(Value::Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<T>, A::Error> {
        skip_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        skip_map(map).map(|()| None)
    }
}

/// Visits any value and reads an object as `T`.
struct Object<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<T>, A::Error> {
        skip_seq(seq).map(|()| None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Option<T>, E> {
        Ok(None)
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}
