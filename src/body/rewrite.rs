//! Rewriting a request body in place: `service_tier` and `stream_options.include_usage`
//! spliced into the original bytes, and the spans of the new body worked out from the
//! edits, so a held flex request keeps one body and never scans it twice.

use bytes::Bytes;

use super::{BodyInfo, Span, StreamOptionsSpans};

impl BodyInfo {
    /// The body with `service_tier` set to `tier` (when given) and, when `force_usage`,
    /// `stream_options.include_usage` set to `true`. Untouched bytes are copied verbatim;
    /// the one allocation is the new body (this runs on every routed request), and a body
    /// that already says so is returned as is, without a copy.
    pub fn rewrite(&self, body: &Bytes, tier: Option<&str>, force_usage: bool) -> Bytes {
        self.rewritten(body, tier, force_usage).unwrap_or_else(|| body.clone())
    }

    /// [`BodyInfo::rewrite`], or `None` when the body needs no change.
    pub fn rewritten(&self, body: &[u8], tier: Option<&str>, force_usage: bool) -> Option<Bytes> {
        self.rewritten_with_info(body, tier, force_usage).map(|(body, _)| body)
    }

    /// [`BodyInfo::rewritten`] with the routing info of the new body, worked out from the
    /// edits instead of scanning the new body again. Only spans and flags are carried over:
    /// `model` and `service_tier` are `None` (routing read them from the original), so this
    /// allocates nothing but the body. Tested against [`BodyInfo::parse`] of the new body.
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
        let mut info = BodyInfo {
            model: None,
            service_tier: None,
            stream: self.stream,
            include_usage: self.include_usage,
            max_output: self.max_output,
            choices: self.choices,
            object_open: self.object_open,
            object_empty: self.object_empty,
            service_tier_span: self.service_tier_span.map(moved),
            stream_options: None,
        };
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
