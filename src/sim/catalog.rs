//! The simulated model catalogue: which models exist, which endpoint serves them, which
//! are flex-capable or reasoning models, which report (and bill) prompt-cache writes, how
//! a requested `service_tier` maps to the tier served, and the `/v1/models` answers. Dated snapshots (`gpt-5-2025-08-07`) resolve to
//! their base model.

use serde_json::{Value, json};

use super::errors::ApiError;

/// Which endpoint family serves a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Chat Completions, Responses (and legacy completions).
    Chat,
    /// Legacy completions only.
    Instruct,
    Embedding,
    Speech,
}

#[derive(Debug)]
pub(crate) struct ModelInfo {
    pub id: &'static str,
    pub kind: Kind,
    pub flex: bool,
    pub reasoning: bool,
    /// Reports `cache_write_tokens` (GPT-5.6 and later, which bill cache writes).
    pub cache_write: bool,
    pub created: u64,
}

const fn chat(id: &'static str, flex: bool, reasoning: bool, created: u64) -> ModelInfo {
    ModelInfo { id, kind: Kind::Chat, flex, reasoning, cache_write: false, created }
}

/// A flex-capable reasoning model of GPT-5.6 or later, with cache writes.
const fn cache_writing(id: &'static str, created: u64) -> ModelInfo {
    ModelInfo { id, kind: Kind::Chat, flex: true, reasoning: true, cache_write: true, created }
}

const fn other(id: &'static str, kind: Kind, created: u64) -> ModelInfo {
    ModelInfo { id, kind, flex: false, reasoning: false, cache_write: false, created }
}

/// The catalogue, in the order `/v1/models` lists it.
const MODELS: &[ModelInfo] = &[
    chat("gpt-5", true, true, 1_754_425_777),
    chat("gpt-5-mini", true, true, 1_754_425_928),
    chat("gpt-5-nano", true, true, 1_754_426_384),
    chat("gpt-5-chat-latest", false, false, 1_754_073_306),
    chat("gpt-5.1", true, true, 1_762_800_000),
    chat("gpt-5.2", true, true, 1_765_400_000),
    chat("gpt-5.4", true, true, 1_772_600_000),
    chat("gpt-5.4-mini", true, true, 1_772_600_000),
    chat("gpt-5.4-nano", true, true, 1_772_600_000),
    chat("gpt-5.5", true, true, 1_777_000_000),
    cache_writing("gpt-5.6-sol", 1_783_000_000),
    cache_writing("gpt-5.6-terra", 1_783_000_000),
    cache_writing("gpt-5.6-luna", 1_783_000_000),
    cache_writing("gpt-6-astra", 1_788_000_000),
    chat("o3", true, true, 1_744_225_308),
    chat("o4-mini", true, true, 1_744_225_351),
    chat("gpt-4.1", false, false, 1_744_316_542),
    chat("gpt-4.1-mini", false, false, 1_744_318_173),
    chat("gpt-4.1-nano", false, false, 1_744_321_707),
    chat("gpt-4o", false, false, 1_715_367_049),
    chat("gpt-4o-mini", false, false, 1_721_172_741),
    other("gpt-3.5-turbo-instruct", Kind::Instruct, 1_692_901_427),
    other("text-embedding-3-small", Kind::Embedding, 1_705_948_997),
    other("text-embedding-3-large", Kind::Embedding, 1_705_953_180),
    other("text-embedding-ada-002", Kind::Embedding, 1_671_217_299),
    other("tts-1", Kind::Speech, 1_681_940_951),
    other("gpt-4o-mini-tts", Kind::Speech, 1_742_403_959),
];

/// Strips a `-YYYY-MM-DD` snapshot suffix.
fn base_name(model: &str) -> &str {
    let bytes = model.as_bytes();
    let n = bytes.len();
    let is_date = n > 11
        && bytes[n - 11] == b'-'
        && bytes[n - 6] == b'-'
        && bytes[n - 3] == b'-'
        && [10, 9, 8, 7, 5, 4, 2, 1].iter().all(|&back| bytes[n - back].is_ascii_digit());
    if is_date { &model[..n - 11] } else { model }
}

/// The catalogue entry of `model` (or of its dated snapshot's base).
pub(crate) fn lookup(model: &str) -> Option<&'static ModelInfo> {
    let base = base_name(model);
    MODELS.iter().find(|m| m.id == base)
}

/// The entry of `model` if it exists and one of `kinds` serves it; else 404 `model_not_found`.
pub(crate) fn require(model: &str, kinds: &[Kind]) -> Result<&'static ModelInfo, ApiError> {
    lookup(model).filter(|m| kinds.contains(&m.kind)).ok_or_else(|| ApiError::model_not_found(model))
}

/// Whether `model` may be served on flex.
pub fn is_flex_capable(model: &str) -> bool {
    lookup(model).is_some_and(|m| m.flex)
}

/// Whether `model` spends reasoning tokens (o3, o4-mini, gpt-5* except gpt-5-chat*).
pub fn is_reasoning_model(model: &str) -> bool {
    lookup(model).is_some_and(|m| m.reasoning)
}

/// Whether `model` reports the prompt tokens it wrote to the cache.
pub fn writes_cache(model: &str) -> bool {
    lookup(model).is_some_and(|m| m.cache_write)
}

/// Maps the request's `service_tier` to the tier served: absent/`auto`/`default` →
/// `default`, `priority`/`fast` → `priority`, `flex` → `flex` on flex-capable models.
/// Anything else is a 400 with `param: "service_tier"` so a gateway mistake is visible.
pub(crate) fn resolve_tier(requested: Option<&Value>, model: &ModelInfo) -> Result<&'static str, ApiError> {
    let invalid = |message: String| ApiError::bad_request(message).param("service_tier");
    match requested {
        None | Some(Value::Null) => Ok("default"),
        Some(Value::String(tier)) => match tier.as_str() {
            "auto" | "default" => Ok("default"),
            "priority" | "fast" => Ok("priority"),
            "flex" if model.flex => Ok("flex"),
            "flex" => Err(invalid(format!(
                "Invalid service_tier argument: flex processing is not available for model `{}`.",
                model.id
            ))),
            other => Err(invalid(format!(
                "Invalid value for 'service_tier': '{other}'. Supported values are: 'auto', \
                 'default', 'flex', 'priority' and 'fast'."
            ))),
        },
        Some(other) => Err(invalid(format!("Invalid type for 'service_tier': expected a string, but got {other}."))),
    }
}

fn model_json(id: &str, created: u64) -> Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": "system"})
}

/// Body of `GET /v1/models`.
pub(crate) fn list_json() -> Value {
    let data: Vec<Value> = MODELS.iter().map(|m| model_json(m.id, m.created)).collect();
    json!({"object": "list", "data": data})
}

/// Body of `GET /v1/models/{id}`.
pub(crate) fn retrieve_json(id: &str) -> Result<Value, ApiError> {
    lookup(id).map(|m| model_json(id, m.created)).ok_or_else(|| ApiError::model_not_found(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_resolve() {
        assert_eq!(lookup("gpt-5-2025-08-07").map(|m| m.id), Some("gpt-5"));
        assert_eq!(lookup("gpt-4o-2024-08-06").map(|m| m.id), Some("gpt-4o"));
        assert!(lookup("gpt-5-2025-08-0x").is_none());
        assert!(lookup("gpt-7").is_none());
        assert!(is_flex_capable("o4-mini-2025-04-16"));
        assert!(!is_flex_capable("gpt-4.1"));
        assert!(writes_cache("gpt-5.6-sol") && writes_cache("gpt-6-astra-2026-09-01"));
        assert!(!writes_cache("gpt-5.5") && !writes_cache("gpt-5"));
    }

    #[test]
    fn tier_mapping() {
        let gpt5 = lookup("gpt-5").unwrap();
        let gpt4o = lookup("gpt-4o").unwrap();
        let tier = |v: Value, m| resolve_tier(Some(&v), m).map_err(|e| e.param);
        assert_eq!(resolve_tier(None, gpt5).unwrap(), "default");
        assert_eq!(tier(json!("auto"), gpt5), Ok("default"));
        assert_eq!(tier(json!("default"), gpt4o), Ok("default"));
        assert_eq!(tier(json!("fast"), gpt4o), Ok("priority"));
        assert_eq!(tier(json!("priority"), gpt5), Ok("priority"));
        assert_eq!(tier(json!("flex"), gpt5), Ok("flex"));
        assert_eq!(tier(json!("flex"), gpt4o), Err(Some("service_tier")));
        assert_eq!(tier(json!("scale"), gpt5), Err(Some("service_tier")));
        assert_eq!(tier(json!(3), gpt5), Err(Some("service_tier")));
    }
}
