//! Reads the few top-level fields routing needs from a JSON request body, and rewrites
//! them in place without re-serialising the document.
//!
//! Parsing borrows: every field is kept as a raw slice of the original bytes, so the
//! rewrite splices new text into exactly those spans and copies the rest verbatim.

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::GatewayError;

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
            }
        };
        let (object_open, object_empty) =
            after_brace(body, 0).ok_or_else(|| GatewayError::InvalidJson("the body must be a JSON object".into()))?;
        let mut info = BodyInfo { object_open, object_empty, ..BodyInfo::default() };
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

    /// The body with `service_tier` set to `tier` (when given) and, when `force_usage`,
    /// `stream_options.include_usage` set to `true`. Untouched bytes are copied verbatim;
    /// the one allocation is the new body (this runs on every routed request), and a body
    /// that already says so is returned as is, without a copy.
    pub fn rewrite(&self, body: &Bytes, tier: Option<&str>, force_usage: bool) -> Bytes {
        self.rewritten(body, tier, force_usage).unwrap_or_else(|| body.clone())
    }

    /// Whether attempts ask the upstream for streamed usage (`stream_options.include_usage`),
    /// which flexgate needs to meter a stream of these endpoints.
    pub fn forces_usage(&self, endpoint: crate::usage::Endpoint) -> bool {
        use crate::usage::Endpoint;
        self.stream && matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
    }

    /// [`BodyInfo::rewrite`], or `None` when the body needs no change.
    pub fn rewritten(&self, body: &[u8], tier: Option<&str>, force_usage: bool) -> Option<Bytes> {
        self.rewritten_with_info(body, tier, force_usage).map(|(body, _)| body)
    }

    /// [`BodyInfo::rewritten`] with the routing info of the new body, worked out from the
    /// edits instead of scanning the new body again (`model` and `service_tier` are kept
    /// from `self`). Tested against [`BodyInfo::parse`] of the new body.
    pub fn rewritten_with_info(&self, body: &[u8], tier: Option<&str>, force_usage: bool) -> Option<(Bytes, BodyInfo)> {
        // At most three edits: the tier, the usage flag, and new members after the `{`.
        let mut edits: [Option<(usize, usize, Edit<'_>)>; 3] = [None, None, None];
        let mut members = Members { tier: None, usage: false, comma: !self.object_empty };
        if let Some(tier) = tier {
            match self.service_tier_span {
                // Already the wanted text (a body rewritten before): nothing to copy.
                Some(s) if is_quoted(&body[s.start..s.end], tier) => {}
                Some(s) => edits[0] = Some((s.start, s.end, Edit::TierValue(tier))),
                None => members.tier = Some(tier),
            }
        }
        if force_usage && !self.include_usage {
            edits[1] = match self.stream_options {
                Some(StreamOptionsSpans { include_usage: Some(s), .. }) => Some((s.start, s.end, Edit::True)),
                Some(StreamOptionsSpans { open: Some((open, empty)), .. }) => {
                    Some((open, open, Edit::IncludeUsageMember { comma: !empty }))
                }
                Some(StreamOptionsSpans { whole, open: None, .. }) => {
                    Some((whole.start, whole.end, Edit::IncludeUsageObject))
                }
                None => {
                    members.usage = true;
                    None
                }
            };
        }
        if members.tier.is_some() || members.usage {
            edits[2] = Some((self.object_open, self.object_open, Edit::Members(members)));
        }
        if edits.iter().all(Option::is_none) {
            return None;
        }
        edits.sort_by_key(|e| e.as_ref().map_or(usize::MAX, |e| e.0));
        let mut out = Vec::with_capacity(body.len() + 80);
        let mut at = 0;
        let mut placed: [Option<Placed<'_, '_>>; 3] = [None, None, None];
        for (slot, (start, end, edit)) in placed.iter_mut().zip(edits.iter().flatten()) {
            out.extend_from_slice(&body[at..*start]);
            let from = out.len();
            edit.write(&mut out);
            *slot = Some((*start, *end, edit, from, out.len() - from));
            at = *end;
        }
        out.extend_from_slice(&body[at..]);
        let info = self.after_edits(&placed);
        Some((Bytes::from(out), info))
    }

    /// The info of the body the `placed` edits produced.
    fn after_edits(&self, placed: &[Option<Placed<'_, '_>>]) -> BodyInfo {
        // An offset the edits did not touch moves by the growth of every edit before it:
        // a replacement ending at or before it, an insertion strictly before it.
        let shift = |p: usize| {
            placed.iter().flatten().fold(p, |q, &(start, end, _, _, len)| {
                if end < p || (end == p && start < end) { q + len - (end - start) } else { q }
            })
        };
        let moved = |s: Span| Span { start: shift(s.start), end: shift(s.end) };
        let mut info = self.clone();
        info.service_tier_span = self.service_tier_span.map(moved);
        info.stream_options = self.stream_options.map(|o| StreamOptionsSpans {
            whole: moved(o.whole),
            open: o.open.map(|(at, empty)| (shift(at), empty)),
            include_usage: o.include_usage.map(moved),
        });
        // `"include_usage":true` placed at `at`: the options object it opens or joins.
        let usage_member =
            |at: usize| Span { start: at + INCLUDE_USAGE_KEY.len(), end: at + INCLUDE_USAGE_KEY.len() + 4 };
        for &(_, _, edit, from, len) in placed.iter().flatten() {
            match edit {
                Edit::TierValue(_) => info.service_tier_span = Some(Span { start: from, end: from + len }),
                Edit::True => {
                    if let Some(o) = &mut info.stream_options {
                        o.include_usage = Some(Span { start: from, end: from + 4 });
                    }
                }
                Edit::IncludeUsageMember { .. } => {
                    if let Some(o) = &mut info.stream_options {
                        o.open = o.open.map(|(at, _)| (at, false));
                        o.include_usage = Some(usage_member(from));
                    }
                }
                Edit::IncludeUsageObject => {
                    let whole = Span { start: from, end: from + len };
                    info.stream_options = Some(StreamOptionsSpans {
                        whole,
                        open: Some((from + 1, false)),
                        include_usage: Some(usage_member(from + 1)),
                    });
                }
                Edit::Members(m) => {
                    info.object_empty = false;
                    let mut at = from;
                    if let Some(tier) = m.tier {
                        let value = at + SERVICE_TIER_KEY.len();
                        info.service_tier_span = Some(Span { start: value, end: value + tier.len() + 2 });
                        at = value + tier.len() + 2 + 1;
                    }
                    if m.usage {
                        let value = at + STREAM_OPTIONS_KEY.len();
                        let whole = Span { start: value, end: value + INCLUDE_USAGE_OBJECT.len() };
                        let (open, include_usage) = (Some((value + 1, false)), Some(usage_member(value + 1)));
                        info.stream_options = Some(StreamOptionsSpans { whole, open, include_usage });
                    }
                }
            }
            if matches!(edit, Edit::True | Edit::IncludeUsageMember { .. } | Edit::IncludeUsageObject)
                || matches!(edit, Edit::Members(m) if m.usage)
            {
                info.include_usage = true;
            }
        }
        info
    }
}

/// Where an edit's text landed: its span of the old body, the edit, and its offset and
/// length in the new body.
type Placed<'e, 't> = (usize, usize, &'e Edit<'t>, usize, usize);

const SERVICE_TIER_KEY: &str = "\"service_tier\":";
const STREAM_OPTIONS_KEY: &str = "\"stream_options\":";
const INCLUDE_USAGE_KEY: &str = "\"include_usage\":";
const INCLUDE_USAGE_OBJECT: &str = "{\"include_usage\":true}";

/// Whether `raw` is exactly `"text"`.
fn is_quoted(raw: &[u8], text: &str) -> bool {
    raw.len() == text.len() + 2
        && raw.starts_with(b"\"")
        && raw.ends_with(b"\"")
        && &raw[1..=text.len()] == text.as_bytes()
}

/// Text that replaces a span of the body (or is inserted at an empty span).
enum Edit<'a> {
    /// `"<tier>"` in place of an existing `service_tier` value.
    TierValue(&'a str),
    /// `true` in place of an existing `include_usage` value.
    True,
    /// `"include_usage":true` as the first member of an existing `stream_options` object.
    IncludeUsageMember { comma: bool },
    /// `{"include_usage":true}` in place of a `stream_options` that is not an object.
    IncludeUsageObject,
    /// New top-level members, right after the body's opening `{`.
    Members(Members<'a>),
}

struct Members<'a> {
    tier: Option<&'a str>,
    usage: bool,
    /// The object already had members, so the new ones end with a comma.
    comma: bool,
}

impl Edit<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Edit::TierValue(tier) => quoted(out, tier),
            Edit::True => out.extend_from_slice(b"true"),
            Edit::IncludeUsageMember { comma } => {
                out.extend_from_slice(INCLUDE_USAGE_KEY.as_bytes());
                out.extend_from_slice(b"true");
                if *comma {
                    out.push(b',');
                }
            }
            Edit::IncludeUsageObject => out.extend_from_slice(INCLUDE_USAGE_OBJECT.as_bytes()),
            Edit::Members(m) => {
                if let Some(tier) = m.tier {
                    out.extend_from_slice(SERVICE_TIER_KEY.as_bytes());
                    quoted(out, tier);
                }
                if m.usage {
                    if m.tier.is_some() {
                        out.push(b',');
                    }
                    out.extend_from_slice(STREAM_OPTIONS_KEY.as_bytes());
                    out.extend_from_slice(INCLUDE_USAGE_OBJECT.as_bytes());
                }
                if m.comma {
                    out.push(b',');
                }
            }
        }
    }
}

/// `"text"`; tier names are plain words, never needing escapes.
fn quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests;
