//! Usage extraction: the token counts, reported `service_tier` and model of a finished
//! JSON body ([`from_body`]) or of an SSE stream observed event by event
//! ([`StreamUsage`]). Pure and panic-free on any input; it neither prices nor records
//! metrics, and it never guesses usage that was not reported: it only measures the
//! content a stream carried, for the budget's estimate of a stream that ends without
//! its usage.

pub(crate) mod raw;
#[cfg(test)]
mod tests;

use crate::endpoint::Endpoint;
use crate::json_scan;
use crate::sse::SseEvent;
use memchr::memmem::Finder;
use raw::{RawEvent, RawObject};
use std::sync::LazyLock;

// SIMD substring searchers for the chunk pre-check, built once.
static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static TIER_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"service_tier\""));
static ERROR_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
// The keys whose string values are a stream's content, by dialect.
static CONTENT_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"content\""));
static ARGUMENTS_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"arguments\""));
static TEXT_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"text\""));
static DELTA_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"delta\""));

/// Token counts of one request, in OpenAI's billing convention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt/input tokens, cached ones included.
    pub input: u64,
    /// The part of `input` served from the prompt cache.
    pub cached_input: u64,
    /// The part of `input` written to the prompt cache (`cache_write_tokens`, reported by
    /// models that bill cache writes). `OpenAI` counts these inside `prompt_tokens` /
    /// `input_tokens`, like `cached_tokens`: the SDKs' usage-API types define input as
    /// "including cached and cache-write tokens" and uncached input as "excluding
    /// cache-write tokens", and the prompt-caching guide's example adds up the same way
    /// (input 2,600 = 2,000 read + 400 written + 200 neither). Pricing takes them out of
    /// the uncached input so they are billed once, at the cache-write rate.
    pub cache_write: u64,
    /// Completion/output tokens, reasoning ones included.
    pub output: u64,
    /// The part of `output` spent on reasoning.
    pub reasoning: u64,
}

impl Usage {
    /// Field-wise maximum. Streams merge with it (`TensorZero`'s rule): it is right both
    /// when chunks repeat cumulative totals and when each field arrives in one chunk.
    #[must_use]
    pub fn max(self, other: Usage) -> Usage {
        Usage {
            input: self.input.max(other.input),
            cached_input: self.cached_input.max(other.cached_input),
            cache_write: self.cache_write.max(other.cache_write),
            output: self.output.max(other.output),
            reasoning: self.reasoning.max(other.reasoning),
        }
    }
}

/// What a finished (non-streaming) JSON response body reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BodyReport {
    pub usage: Option<Usage>,
    pub service_tier: Option<String>,
    pub model: Option<String>,
}

/// Read usage, tier and model from a response body. Never fails: anything missing,
/// `null`, wrongly typed or unparsable comes back as `None`.
pub fn from_body(endpoint: Endpoint, body: &[u8]) -> BodyReport {
    // The same reading as `scan_body`, whose `None` (not JSON) reports nothing.
    scan_body(endpoint, body).unwrap_or_default()
}

/// Check that a body is JSON and read its report in the same pass: `None` when it is not
/// JSON, else what [`from_body`] returns. Answers are scanned once instead of twice.
pub fn scan_body(endpoint: Endpoint, body: &[u8]) -> Option<BodyReport> {
    fast_report(endpoint, body).or_else(|| serde_report(endpoint, body))
}

/// The fast path of [`scan_body`]: one [`json_scan`] pass over the answer, then only the
/// three fields read are parsed, each from its own slice. `None` whenever the scan cannot
/// vouch for the body or a field's parse fails outright (a repeated key, bad UTF-8), so
/// `serde_report` decides exactly as before.
fn fast_report(endpoint: Endpoint, body: &[u8]) -> Option<BodyReport> {
    let mut spans: [Option<std::ops::Range<usize>>; 3] = [None, None, None];
    json_scan::members(body, |key, value| {
        let slot = match key {
            b"model" => 0,
            b"service_tier" => 1,
            b"usage" => 2,
            _ => return Some(()),
        };
        spans[slot].replace(value).is_none().then_some(())
    })?;
    let [model, tier, usage] = spans.map(|s| s.map(|r| &body[r]));
    let usage = usage.map(raw::read_usage).transpose().ok()?.flatten();
    Some(BodyReport {
        usage: usage.and_then(|u| u.to_usage(endpoint)),
        service_tier: tier.map(raw::read_str).transpose().ok()?.flatten(),
        model: model.map(raw::read_str).transpose().ok()?.flatten(),
    })
}

fn serde_report(endpoint: Endpoint, body: &[u8]) -> Option<BodyReport> {
    match serde_json::from_slice::<RawObject<'_>>(body) {
        // Only well-formed JSON deserialises, so this is also the validation.
        Ok(obj) => Some(report(endpoint, obj)),
        // JSON of another shape (a string, a repeated key) is valid but reports nothing.
        Err(_) => serde_json::from_slice::<serde::de::IgnoredAny>(body).ok().map(|_| BodyReport::default()),
    }
}

fn report(endpoint: Endpoint, obj: RawObject<'_>) -> BodyReport {
    BodyReport {
        usage: obj.usage.as_ref().and_then(|u| u.to_usage(endpoint)),
        service_tier: obj.service_tier.map(String::from),
        model: obj.model.map(String::from),
    }
}

/// What the gateway should do with the bytes of one observed event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventVerdict {
    /// Forward as is.
    Keep,
    /// A chat/completions chunk with no `choices` (missing, null or `[]`) and a non-null
    /// `usage`: the extra chunk `stream_options.include_usage` adds; the gateway may cut
    /// it when the client did not ask for usage.
    UsageOnlyChunk,
    /// An in-stream failure: a payload with a non-null top-level `error`, an
    /// `event: error` / Responses `error` event, or `response.failed` (which is also
    /// terminal, see [`StreamUsage::saw_terminal`]).
    Error,
    /// The normal end: `[DONE]`, `response.completed` or `response.incomplete`.
    Done,
}

/// Incremental observer of one endpoint's SSE stream.
#[derive(Clone, Debug)]
pub struct StreamUsage {
    endpoint: Endpoint,
    usage: Option<Usage>,
    service_tier: Option<String>,
    model: Option<String>,
    terminal: bool,
    /// Bytes of content the stream carried, as JSON text (escapes counted as written).
    streamed: u64,
    /// Whether `streamed` is measured (only a budget reads it).
    measure: bool,
}

// === impl StreamUsage ===

impl StreamUsage {
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint, usage: None, service_tier: None, model: None, terminal: false, streamed: 0, measure: true }
    }

    /// Observe one parsed event.
    pub fn observe(&mut self, ev: &SseEvent) -> EventVerdict {
        if ev.data.trim() == "[DONE]" {
            self.terminal = true;
            return EventVerdict::Done;
        }
        match self.endpoint {
            Endpoint::Responses => self.observe_responses(ev),
            _ => self.observe_chunk(ev, true),
        }
    }

    /// Usage merged over the stream (field-wise maximum); `None` if none was reported.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The last non-null `service_tier` seen: chat chunks carry it on every chunk,
    /// Responses in the `response` of lifecycle events, where the final one wins.
    pub fn service_tier(&self) -> Option<&str> {
        self.service_tier.as_deref()
    }

    /// The first non-null model reported (a response does not change model mid-stream).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Bytes of content the stream carried so far: the string values of chat deltas'
    /// `content` and tool-call `arguments`, completions' `text`, and Responses' `*.delta`
    /// events' `delta`, as JSON text. Hidden reasoning is never streamed, so never here.
    pub fn streamed(&self) -> u64 {
        self.streamed
    }

    /// Measure the content from here on, or stop (a stream no budget reads: its
    /// chunks are then spared the search, about 30 ns each).
    pub fn measure_content(&mut self, on: bool) {
        self.measure = on;
    }

    /// `[DONE]`, `response.completed`, `response.incomplete` or `response.failed` seen.
    pub fn saw_terminal(&self) -> bool {
        self.terminal
    }

    /// Chat/completions chunks. `cheap`: skip parsing chunks that cannot change anything
    /// (tests turn it off to check that it never changes the outcome).
    fn observe_chunk(&mut self, ev: &SseEvent, cheap: bool) -> EventVerdict {
        if ev.event.as_deref() == Some("error") {
            return EventVerdict::Error;
        }
        let data = ev.data.as_bytes();
        if self.measure {
            self.measure_chunk(data);
        }
        if cheap && !self.chunk_may_matter(data) {
            return EventVerdict::Keep;
        }
        let Ok(obj) = serde_json::from_str::<RawObject<'_>>(&ev.data) else {
            return EventVerdict::Keep;
        };
        let has_usage = self.record(&obj);
        if obj.error.is_some() {
            EventVerdict::Error
        } else if has_usage
            && obj.has_no_choices()
            && matches!(self.endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
        {
            EventVerdict::UsageOnlyChunk
        } else {
            EventVerdict::Keep
        }
    }

    /// Count the content of a chat/completions chunk. A chunk carries text or tool-call
    /// arguments, not both: the second search only when the first finds no string (half
    /// the searches on text chunks).
    fn measure_chunk(&mut self, data: &[u8]) {
        let content = match self.endpoint {
            Endpoint::Completions => string_values(data, &TEXT_KEY),
            _ => string_values(data, &CONTENT_KEY).or_else(|| string_values(data, &ARGUMENTS_KEY)),
        };
        self.streamed = self.streamed.saturating_add(content.unwrap_or(0));
    }

    /// Responses events. Content events (the bulk of a stream) are told apart by their
    /// `event:` name and never parsed; lifecycle events carry the `response` object.
    fn observe_responses(&mut self, ev: &SseEvent) -> EventVerdict {
        if let Some(name) = ev.event.as_deref()
            && name.starts_with("response.")
            && !LIFECYCLE.contains(&name)
        {
            if self.measure && is_delta(name) {
                let delta = string_values(ev.data.as_bytes(), &DELTA_KEY).unwrap_or(0);
                self.streamed = self.streamed.saturating_add(delta);
            }
            return EventVerdict::Keep;
        }
        let parsed = serde_json::from_str::<RawEvent<'_>>(&ev.data).ok();
        let kind = ev.event.as_deref().or_else(|| parsed.as_ref()?.kind.as_deref());
        if self.measure && ev.event.is_none() && kind.is_some_and(|k| k.starts_with("response.") && is_delta(k)) {
            // A relay that forwards only `data:` lines: the content is told by its type.
            self.streamed = self.streamed.saturating_add(string_values(ev.data.as_bytes(), &DELTA_KEY).unwrap_or(0));
        }
        let mut verdict = match kind {
            Some("error" | "response.failed") => EventVerdict::Error,
            Some("response.completed" | "response.incomplete") => EventVerdict::Done,
            _ => EventVerdict::Keep,
        };
        if matches!(kind, Some("response.completed" | "response.incomplete" | "response.failed")) {
            self.terminal = true;
        }
        if let Some(event) = parsed {
            if let Some(response) = &event.response {
                self.record(response);
            }
            if event.error.is_some() {
                verdict = EventVerdict::Error;
            }
        }
        verdict
    }

    /// Take model, tier and usage from a response object or chunk; `true` if it
    /// reported usage.
    fn record(&mut self, obj: &RawObject<'_>) -> bool {
        if self.model.is_none() {
            self.model = obj.model.as_deref().map(str::to_owned);
        }
        if let Some(tier) = obj.service_tier.as_deref()
            && self.service_tier.as_deref() != Some(tier)
        {
            self.service_tier = Some(tier.to_owned());
        }
        let usage = obj.usage.as_ref().and_then(|u| u.to_usage(self.endpoint));
        if let Some(usage) = usage {
            self.usage = Some(self.usage.unwrap_or_default().max(usage));
        }
        usage.is_some()
    }

    /// Cheap pre-check for a chat/completions chunk: three SIMD substring searches.
    /// `false` only when the chunk cannot tell us anything new: the model is known, no
    /// `"error"` key, every `"usage"` key is `null`, and every `"service_tier"` key is
    /// `null` or the tier already recorded. Any doubt answers `true` and the chunk is
    /// parsed. (JSON strings escape `"`, so `"usage"` in content appears as `\"usage\"`.
    /// Keys spelled with `\u` escapes are not recognised; no OpenAI server emits them.)
    fn chunk_may_matter(&self, data: &[u8]) -> bool {
        if self.model.is_none() {
            return true;
        }
        if ERROR_KEY.find(data).is_some() {
            return true;
        }
        let after = |at: usize, key: &Finder<'_>| &data[at + key.needle().len()..];
        let usage_set = USAGE_KEY.find_iter(data).any(|at| !value_is(after(at, &USAGE_KEY), b"null"));
        let tier = self.service_tier.as_deref().unwrap_or_default().as_bytes();
        usage_set
            || TIER_KEY.find_iter(data).any(|at| {
                let rest = after(at, &TIER_KEY);
                !value_is(rest, b"null") && (tier.is_empty() || !value_is_string(rest, tier))
            })
    }
}

const LIFECYCLE: [&str; 6] = [
    "response.created",
    "response.in_progress",
    "response.queued",
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// After a key: optional whitespace, `:`, optional whitespace, then `literal`.
fn value_is(after_key: &[u8], literal: &[u8]) -> bool {
    value_start(after_key).is_some_and(|v| v.starts_with(literal))
}

/// After a key: the value is the JSON string `"text"` (no escapes).
fn value_is_string(after_key: &[u8], text: &[u8]) -> bool {
    value_start(after_key)
        .and_then(|v| v.strip_prefix(b"\""))
        .and_then(|v| v.strip_prefix(text))
        .is_some_and(|v| v.starts_with(b"\""))
}

/// A Responses event that carries content (`response.output_text.delta`,
/// `response.function_call_arguments.delta`, ...); event names, not file names.
fn is_delta(name: &str) -> bool {
    name.as_bytes().ends_with(b".delta")
}

/// Bytes inside the string values of every `key` in `data` (JSON text, unescaped only
/// as far as finding each string's end); `None` when no `key` has a string value.
/// Content is escaped, so a key spelled inside it reads `\"key\"` and is not matched.
fn string_values(data: &[u8], key: &Finder<'_>) -> Option<u64> {
    let len = key.needle().len();
    let mut total = None::<u64>;
    for at in key.find_iter(data) {
        let Some(value) = value_start(&data[at + len..]).and_then(|v| v.strip_prefix(b"\"")) else {
            continue;
        };
        let bytes = u64::try_from(string_len(value)).unwrap_or(u64::MAX);
        total = Some(total.unwrap_or(0).saturating_add(bytes));
    }
    total
}

/// The length of a JSON string's text up to its closing quote (all of `s` when it has
/// none, as in a chunk cut mid-string).
fn string_len(s: &[u8]) -> usize {
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'"', &s[from..]) {
        let end = from + at;
        let backslashes = s[..end].iter().rev().take_while(|&&b| b == b'\\').count();
        if backslashes % 2 == 0 {
            return end;
        }
        from = end + 1;
    }
    s.len()
}

fn value_start(after_key: &[u8]) -> Option<&[u8]> {
    after_key.trim_ascii_start().strip_prefix(b":").map(<[u8]>::trim_ascii_start)
}
