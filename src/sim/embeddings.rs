//! `POST /v1/embeddings` answers: one deterministic unit vector per input (a function of
//! the input text and `dimensions` only), as float arrays or, with
//! `encoding_format: "base64"` (the Python SDK's default), base64 of little-endian f32s.
//! `dimensions` defaults to 8, small on purpose so answers stay cheap.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use super::body::Payload;
use super::errors::ApiError;
use super::pipeline::Gen;
use super::text::{fnv1a, splitmix64};
use super::usage;

pub const DEFAULT_DIMENSIONS: usize = 8;
pub const MAX_DIMENSIONS: usize = 3072;

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
    match json.get("dimensions") {
        None | Some(Value::Null) => Ok(DEFAULT_DIMENSIONS),
        Some(value) => value
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
            .ok_or_else(|| {
                ApiError::invalid_param(
                    "dimensions",
                    format!("Invalid 'dimensions': expected 1..={MAX_DIMENSIONS}, got {value}."),
                )
            }),
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

/// The embedding of `text`: `dims` components, unit length.
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes()) ^ dims as u64;
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
    let dims = dimensions(&generation.json).unwrap_or(DEFAULT_DIMENSIONS);
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
    }

    #[test]
    fn input_validation() {
        assert!(inputs(&json!({})).is_err());
        assert!(inputs(&json!({"input": ""})).is_err());
        assert!(inputs(&json!({"input": []})).is_err());
        assert_eq!(inputs(&json!({"input": ["a", "b"]})).unwrap().len(), 2);
        assert_eq!(inputs(&json!({"input": [1, 2, 3]})).unwrap().len(), 1);
        assert_eq!(inputs(&json!({"input": [[1, 2], [3]]})).unwrap().len(), 2);
        assert!(dimensions(&json!({"dimensions": 0})).is_err());
        assert_eq!(dimensions(&json!({"dimensions": 3})).unwrap(), 3);
        assert!(encoding(&json!({"encoding_format": "hex"})).is_err());
    }
}
