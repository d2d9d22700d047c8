//! The File and Batch objects as stored (rows) and as OpenAI renders them (JSON), the
//! list envelope, and the ids with OpenAI's prefixes.

use rand::Rng as _;
use rand::distr::Alphanumeric;
use rusqlite::Row;
use serde_json::{Value, json};

/// `file-` and 24 letters and digits, as OpenAI's file ids look.
pub fn file_id() -> String {
    let tail: String = rand::rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
    format!("file-{tail}")
}

/// `batch_` and 32 hex digits.
pub fn batch_id() -> String {
    format!("batch_{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// `batch_req_` and 32 hex digits: the id of one output or error line.
pub fn line_id() -> String {
    format!("batch_req_{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// A row of `files`.
#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: String,
    pub purpose: String,
    pub filename: String,
    pub bytes: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl FileRow {
    pub const COLUMNS: &'static str = "id, purpose, filename, bytes, created_at, expires_at";

    pub fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            purpose: row.get(1)?,
            filename: row.get(2)?,
            bytes: row.get(3)?,
            created_at: row.get(4)?,
            expires_at: row.get(5)?,
        })
    }

    /// OpenAI's File object; a stored file is always `processed`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "object": "file", "bytes": self.bytes, "created_at": self.created_at,
            "expires_at": self.expires_at, "filename": self.filename, "purpose": self.purpose,
            "status": "processed", "status_details": null,
        })
    }
}

/// A row of `batches`: the Batch object's fields and the runner's bookkeeping.
#[derive(Debug, Clone)]
pub struct BatchRow {
    pub id: String,
    pub owner: String,
    pub endpoint: String,
    pub model: Option<String>,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: String,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    /// `errors.data` as JSON text, when validation failed.
    pub errors: Option<String>,
    pub metadata: Option<String>,
    /// `created_at`, `in_progress_at`, `expires_at`, `finalizing_at`, `completed_at`,
    /// `failed_at`, `expired_at`, `cancelling_at`, `cancelled_at`.
    pub times: [Option<i64>; 9],
    /// `total`, `completed`, `failed`.
    pub counts: [i64; 3],
    /// Input, cached input, output and reasoning tokens.
    pub tokens: [i64; 4],
    pub cost_usd: String,
}

/// The timestamp columns in the order of [`BatchRow::times`].
const TIMES: [&str; 9] = [
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
];

impl BatchRow {
    pub const COLUMNS: &'static str = "id, owner, endpoint, model, input_file_id, completion_window, status, \
        output_file_id, error_file_id, errors, metadata, created_at, in_progress_at, expires_at, finalizing_at, \
        completed_at, failed_at, expired_at, cancelling_at, cancelled_at, total, completed, failed, input_tokens, \
        cached_tokens, output_tokens, reasoning_tokens, cost_usd";

    pub fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let mut times = [None; 9];
        for (i, t) in times.iter_mut().enumerate() {
            *t = row.get(11 + i)?;
        }
        Ok(Self {
            id: row.get(0)?,
            owner: row.get(1)?,
            endpoint: row.get(2)?,
            model: row.get(3)?,
            input_file_id: row.get(4)?,
            completion_window: row.get(5)?,
            status: row.get(6)?,
            output_file_id: row.get(7)?,
            error_file_id: row.get(8)?,
            errors: row.get(9)?,
            metadata: row.get(10)?,
            times,
            counts: [row.get(20)?, row.get(21)?, row.get(22)?],
            tokens: [row.get(23)?, row.get(24)?, row.get(25)?, row.get(26)?],
            cost_usd: row.get(27)?,
        })
    }

    pub fn expires_at(&self) -> i64 {
        self.times[2].unwrap_or_default()
    }

    pub fn expired_at(&self) -> Option<i64> {
        self.times[6]
    }

    /// OpenAI's Batch object: every field the SDKs model, `null` where unset, and the
    /// cost so far in USD (`flexgate_cost_usd`).
    pub fn to_json(&self) -> Value {
        let parse = |text: &Option<String>| text.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
        let [input, cached, output, reasoning] = self.tokens;
        let mut object = json!({
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "model": self.model,
            "errors": parse(&self.errors).map(|data| json!({"object": "list", "data": data})),
            "input_file_id": self.input_file_id, "completion_window": self.completion_window,
            "status": self.status, "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
            "request_counts": {"total": self.counts[0], "completed": self.counts[1], "failed": self.counts[2]},
            "usage": {
                "input_tokens": input, "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": input + output,
            },
            "metadata": parse(&self.metadata),
            // A flexgate extension (the SDKs keep unknown fields): the lines' cost so far.
            "flexgate_cost_usd": self.cost_usd,
        });
        if let Value::Object(map) = &mut object {
            for (name, value) in TIMES.iter().zip(self.times) {
                map.insert((*name).to_owned(), value.into());
            }
        }
        object
    }
}

/// OpenAI's list envelope.
#[expect(clippy::needless_pass_by_value, reason = "the list takes the data it renders")]
pub fn list(data: Vec<Value>, has_more: bool) -> Value {
    let id = |v: Option<&Value>| v.and_then(|o| o["id"].as_str().map(str::to_owned));
    json!({
        "object": "list", "first_id": id(data.first()), "last_id": id(data.last()),
        "has_more": has_more, "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_openai_prefixes() {
        let f = file_id();
        assert!(f.starts_with("file-") && f.len() == 29 && f[5..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(batch_id().starts_with("batch_") && batch_id().len() == 38);
        assert_ne!(line_id(), line_id());
    }

    #[test]
    fn the_batch_object_has_every_field_the_sdk_models() {
        let row = BatchRow {
            id: "batch_1".into(),
            owner: "client:a".into(),
            endpoint: "/v1/chat/completions".into(),
            model: None,
            input_file_id: "file-1".into(),
            completion_window: "24h".into(),
            status: "failed".into(),
            output_file_id: None,
            error_file_id: None,
            errors: Some(r#"[{"code":"invalid_json_line","line":3,"message":"m","param":null}]"#.into()),
            metadata: None,
            times: [Some(1), None, Some(86401), None, None, Some(2), None, None, None],
            counts: [0, 0, 0],
            tokens: [10, 2, 5, 1],
            cost_usd: "0".into(),
        };
        let v = row.to_json();
        for field in [
            "id",
            "object",
            "endpoint",
            "model",
            "errors",
            "input_file_id",
            "completion_window",
            "status",
            "output_file_id",
            "error_file_id",
            "created_at",
            "in_progress_at",
            "expires_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
            "request_counts",
            "usage",
            "metadata",
        ] {
            assert!(v.get(field).is_some(), "{field} missing");
        }
        assert_eq!(v["errors"]["data"][0]["line"], 3);
        assert_eq!(v["failed_at"], 2);
        assert_eq!(v["usage"]["total_tokens"], 15);
        assert_eq!(list(vec![v], false)["first_id"], "batch_1");
    }
}
