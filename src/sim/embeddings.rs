//! `POST /v1/embeddings` answers: one deterministic unit vector per input (a function of
//! the input text and the dimension only), as float arrays or, with
//! `encoding_format: "base64"` (the Python SDK's default), base64 of little-endian f32s.
//! Each model answers in its real dimension (`text-embedding-3-small` and
//! `text-embedding-ada-002` 1536, `text-embedding-3-large` 3072). `dimensions` shortens
//! the vector as `OpenAI` does (the native vector's first components, scaled back to unit
//! length); more than the native dimension, or any on `ada-002`, is a 400.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use super::body::Payload;
use super::errors::ApiError;
use super::pipeline::Gen;
use super::text::{fnv1a, splitmix64};
use super::usage;

/// The native dimension of an embedding model, and whether it accepts `dimensions`.
pub fn native_dimensions(model: &str) -> (usize, bool) {
    if model.starts_with("text-embedding-3-large") {
        (3072, true)
    } else if model.starts_with("text-embedding-3-small") {
        (1536, true)
    } else {
        (1536, false)
    }
}

/// The input texts: a string, or an array (strings, or token arrays as their JSON text).
fn inputs(json: &Value) -> Result<Vec<String>, ApiError> {
    let invalid =
        || ApiError::invalid_param("input", "Invalid 'input': expected a non-empty string or a non-empty array.");
    let texts = match json.get("input") {
        None | Some(Value::Null) => return Err(ApiError::missing_param("input")),
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if items.is_empty() => return Err(invalid()),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) => {
            items.iter().map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned)).collect()
        }
        Some(_) => return Err(invalid()),
    };
    if texts.is_empty() || texts.iter().any(String::is_empty) {
        return Err(invalid());
    }
    Ok(texts)
}

pub(crate) fn prompt_tokens(json: &Value) -> Result<u64, ApiError> {
    let texts = inputs(json)?;
    dimensions(json)?;
    encoding(json)?;
    Ok(usage::prompt_tokens(texts.iter().map(|t| t.chars().count())))
}

fn dimensions(json: &Value) -> Result<usize, ApiError> {
    let model = json.get("model").and_then(Value::as_str).unwrap_or_default();
    let (native, reducible) = native_dimensions(model);
    match json.get("dimensions") {
        None | Some(Value::Null) => Ok(native),
        Some(_) if !reducible => {
            Err(ApiError::invalid_param("dimensions", "This model does not support specifying dimensions."))
        }
        Some(value) => {
            value.as_u64().and_then(|d| usize::try_from(d).ok()).filter(|d| (1..=native).contains(d)).ok_or_else(|| {
                ApiError::invalid_param(
                    "dimensions",
                    format!("Invalid value for 'dimensions' = {value}. Must be between 1 and {native} for {model}."),
                )
            })
        }
    }
}

fn encoding(json: &Value) -> Result<bool, ApiError> {
    match json.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(ApiError::invalid_param(
            "encoding_format",
            format!("Invalid 'encoding_format': '{other}'. Expected 'float' or 'base64'."),
        )),
    }
}

/// The embedding of `text`: `dims` components, unit length. The raw components are one
/// sequence per text, so a shorter vector is a longer one's prefix renormalized.
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes());
    let raw: Vec<f64> = (0..dims)
        .map(|_| {
            state = splitmix64(state);
            // Top 53 bits as a uniform value in [-1, 1).
            #[expect(clippy::cast_precision_loss, reason = "53-bit integer is exact in f64")]
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            unit * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    raw.iter().map(|x| narrow(x / norm)).collect()
}

#[expect(clippy::cast_possible_truncation, reason = "embeddings are f32 on the wire")]
fn narrow(x: f64) -> f32 {
    x as f32
}

pub(crate) fn render(generation: &Gen) -> Payload {
    // Already validated in `prompt_tokens`; the fallbacks are never taken.
    let texts = inputs(&generation.json).unwrap_or_default();
    let dims = dimensions(&generation.json).unwrap_or(1);
    let base64 = encoding(&generation.json).unwrap_or(false);
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let v = vector(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": generation.model,
        "usage": generation.usage.embeddings_wire()
    });
    Payload::Json(Bytes::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_unit_vectors() {
        let a = vector("hello", 8);
        assert_eq!(a, vector("hello", 8));
        assert_ne!(a, vector("hullo", 8));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(vector("hello", 1536).len(), 1536);
        // A reduced vector is the native one's prefix, renormalized.
        let long = vector("hello", 1536);
        let norm = long[..8].iter().map(|x| x * x).sum::<f32>().sqrt();
        for (short, long) in a.iter().zip(&long[..8]) {
            assert!((short - long / norm).abs() < 1e-5);
        }
    }

    #[test]
    fn input_validation() {
        assert!(inputs(&json!({})).is_err());
        assert!(inputs(&json!({"input": ""})).is_err());
        assert!(inputs(&json!({"input": []})).is_err());
        assert_eq!(inputs(&json!({"input": ["a", "b"]})).unwrap().len(), 2);
        assert_eq!(inputs(&json!({"input": [1, 2, 3]})).unwrap().len(), 1);
        assert_eq!(inputs(&json!({"input": [[1, 2], [3]]})).unwrap().len(), 2);
        let small = |extra: Value| {
            let mut body = json!({"model": "text-embedding-3-small"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            dimensions(&body)
        };
        assert!(small(json!({"dimensions": 0})).is_err());
        assert!(small(json!({"dimensions": 1537})).is_err());
        assert_eq!(small(json!({"dimensions": 3})).unwrap(), 3);
        assert_eq!(small(json!({})).unwrap(), 1536);
        assert_eq!(dimensions(&json!({"model": "text-embedding-3-large"})).unwrap(), 3072);
        assert_eq!(dimensions(&json!({"model": "text-embedding-3-large", "dimensions": 3072})).unwrap(), 3072);
        assert!(dimensions(&json!({"model": "text-embedding-ada-002", "dimensions": 8})).is_err());
        assert_eq!(dimensions(&json!({"model": "text-embedding-ada-002"})).unwrap(), 1536);
        assert!(encoding(&json!({"encoding_format": "hex"})).is_err());
    }
}
