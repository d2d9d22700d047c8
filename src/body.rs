//! The request-body model, shared by the proxy (routing reads it) and the upstream
//! attempt (which rewrites it per tier): reads the few top-level fields routing needs
//! from a JSON request body, and rewrites them in place without re-serialising it.
//!
//! Parsing borrows: every field is kept as a raw slice of the original bytes, so the
//! rewrite splices new text into exactly those spans and copies the rest verbatim.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::GatewayError;

mod rewrite;
mod scan;

/// `service_tier` values the OpenAI API accepts on requests.
const KNOWN_TIERS: [&str; 7] = ["auto", "default", "flex", "priority", "fast", "scale", "ultrafast"];

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow, default, deserialize_with = "keep_null")]
    model: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    service_tier: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    stream_options: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptions<'a> {
    #[serde(borrow, default, deserialize_with = "keep_null")]
    include_usage: Option<&'a RawValue>,
}

/// Deserialize a present field as its raw text even when it is `null`, so its span is known.
fn keep_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A byte range of the original body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// What routing learned from a request body, plus where to edit it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyInfo {
    pub model: Option<String>,
    pub stream: bool,
    /// The client's explicit `service_tier`, if any (`None` for absent or `null`).
    pub service_tier: Option<String>,
    /// `stream_options.include_usage` as the client sent it.
    pub include_usage: bool,
    /// The output cap the client set (`max_completion_tokens`, `max_output_tokens` or
    /// `max_tokens`, the largest when several), for the budget's estimate; `None` when
    /// none is a whole number above 0 (then 0); at most `u32::MAX`. Never validated
    /// here: the upstream judges it. (Narrow, as is `choices`: a held request keeps this
    /// struct, and the two fit beside its flags.)
    pub max_output: u32,
    /// `n`, the number of choices asked for (1 when absent or not a whole number).
    pub choices: u8,
    /// Offset just after the top-level `{`, and whether the object is empty.
    object_open: usize,
    object_empty: bool,
    service_tier_span: Option<Span>,
    stream_options: Option<StreamOptionsSpans>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamOptionsSpans {
    whole: Span,
    /// Offset after the options object's `{` (None when it is `null`).
    open: Option<(usize, bool)>,
    include_usage: Option<Span>,
}

fn span_of(body: &[u8], raw: &str) -> Span {
    // The raw value borrows from `body`, so its address lies inside it.
    let start = raw.as_ptr().addr() - body.as_ptr().addr();
    Span { start, end: start + raw.len() }
}

/// Offset just after the first `{` at or after `from`, and whether only `}` follows it.
fn after_brace(body: &[u8], from: usize) -> Option<(usize, bool)> {
    let open = from + body[from..].iter().position(|&b| b == b'{')? + 1;
    let next = body[open..].iter().find(|b| !b.is_ascii_whitespace());
    Some((open, next == Some(&b'}')))
}

fn invalid(param: &'static str, message: &str) -> GatewayError {
    GatewayError::InvalidParam { param, message: message.to_owned() }
}

impl BodyInfo {
    /// Parse a request body for routing. Type errors in the routed fields are client errors.
    pub fn parse(body: &[u8]) -> Result<BodyInfo, GatewayError> {
        // `from_slice` does not check UTF-8 inside strings it skips (messages, tools...), so
        // without this a body the upstream must reject would cost it a round trip.
        let text = std::str::from_utf8(body)
            .map_err(|e| GatewayError::InvalidJson(format!("the body is not valid UTF-8 ({e})")))?;
        // The fast scan when it can vouch for the body, else serde_json (and its error).
        let top = if let Some(fields) = scan::top_fields(text) {
            fields
        } else {
            let top: Top<'_> = serde_json::from_str(text).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
            scan::Fields {
                model: top.model.map(RawValue::get),
                stream: top.stream.map(RawValue::get),
                service_tier: top.service_tier.map(RawValue::get),
                stream_options: top.stream_options.map(RawValue::get),
                // Left to the default cap: the budget's estimate never fails a request.
                ..scan::Fields::default()
            }
        };
        let (object_open, object_empty) =
            after_brace(body, 0).ok_or_else(|| GatewayError::InvalidJson("the body must be a JSON object".into()))?;
        let whole = |raw: Option<&str>| raw.and_then(|r| r.parse::<u64>().ok());
        let max_output = [top.max_completion_tokens, top.max_output_tokens, top.max_tokens]
            .into_iter()
            .filter_map(whole)
            .max()
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
        // The API takes at most 128 choices.
        let choices = whole(top.n).map_or(1, |n| u8::try_from(n.clamp(1, 128)).unwrap_or(128));
        let mut info = BodyInfo { max_output, choices, object_open, object_empty, ..BodyInfo::default() };
        if let Some(raw) = top.model.filter(|r| *r != "null") {
            info.model =
                Some(serde_json::from_str::<String>(raw).map_err(|_| invalid("model", "`model` must be a string."))?);
        }
        if let Some(raw) = top.stream.filter(|r| *r != "null") {
            info.stream =
                serde_json::from_str::<bool>(raw).map_err(|_| invalid("stream", "`stream` must be a boolean."))?;
        }
        if let Some(raw) = top.service_tier {
            info.service_tier_span = Some(span_of(body, raw));
            if raw != "null" {
                let tier = serde_json::from_str::<String>(raw)
                    .ok()
                    .filter(|t| KNOWN_TIERS.contains(&t.as_str()))
                    .ok_or_else(|| {
                        invalid(
                            "service_tier",
                            "`service_tier` must be one of `auto`, `default`, `flex`, `priority`, `fast`, `scale`.",
                        )
                    })?;
                info.service_tier = Some(tier);
            }
        }
        if let Some(raw) = top.stream_options {
            let whole = span_of(body, raw);
            let mut spans = StreamOptionsSpans { whole, open: None, include_usage: None };
            if raw != "null" {
                let not_object = || {
                    invalid("stream_options", "`stream_options` must be an object such as {\"include_usage\": true}.")
                };
                // serde would also accept an array for a struct; the API wants an object.
                if !raw.starts_with('{') {
                    return Err(not_object());
                }
                let opts: StreamOptions<'_> = serde_json::from_str(raw).map_err(|_| not_object())?;
                spans.open = after_brace(body, whole.start);
                if let Some(iu) = opts.include_usage {
                    // `opts` borrows from `raw`, itself a slice of `body`.
                    let inner = span_of(body, iu.get());
                    spans.include_usage = Some(inner);
                    if iu.get() != "null" {
                        info.include_usage = serde_json::from_str::<bool>(iu.get()).map_err(|_| {
                            invalid("stream_options", "`stream_options.include_usage` must be a boolean.")
                        })?;
                    }
                }
            }
            info.stream_options = Some(spans);
        }
        Ok(info)
    }

    /// Whether attempts ask the upstream for streamed usage (`stream_options.include_usage`),
    /// which flexgate needs to meter a stream of these endpoints.
    pub fn forces_usage(&self, endpoint: crate::endpoint::Endpoint) -> bool {
        use crate::endpoint::Endpoint;
        self.stream && matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
    }
}

#[cfg(test)]
mod tests;
