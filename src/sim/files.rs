//! In-memory `/v1/files`: uploads (multipart `file` + `purpose`), listing, retrieval,
//! raw content and deletion, so a gateway's generic forwarding of multipart uploads and
//! binary downloads can be tested byte for byte. Files survive `Sim::reset`.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::errors::ApiError;
use super::multipart;
use super::text::{Ids, unix_now};

struct StoredFile {
    id: String,
    meta: Value,
    bytes: Bytes,
}

/// Uploaded files in upload order.
#[derive(Default)]
pub(crate) struct FileStore {
    files: Mutex<Vec<StoredFile>>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", format!("No such File object: {id}")).param("id")
}

impl FileStore {
    /// `POST /v1/files`: stores the `file` part, answers the `file` object.
    pub fn upload(&self, ids: &Ids, headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
        let boundary = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(multipart::boundary)
            .ok_or_else(|| ApiError::bad_request("Expected a multipart/form-data body with a boundary."))?;
        let parts = multipart::parse(body, &boundary)
            .ok_or_else(|| ApiError::bad_request("Could not parse the multipart form body."))?;
        let field = |name: &str| parts.iter().find(|p| p.name == name);
        let file = field("file").ok_or_else(|| ApiError::missing_param("file"))?;
        let purpose = field("purpose").ok_or_else(|| ApiError::missing_param("purpose"))?;
        let id = ids.object_id("file-", 22);
        let meta = json!({
            "id": id,
            "object": "file",
            "bytes": file.data.len(),
            "created_at": unix_now(),
            "expires_at": null,
            "filename": file.filename.as_deref().unwrap_or("upload"),
            "purpose": String::from_utf8_lossy(&purpose.data),
            "status": "processed",
            "status_details": null
        });
        self.files.lock().push(StoredFile { id, meta: meta.clone(), bytes: file.data.clone() });
        Ok(meta)
    }

    /// `GET /v1/files`.
    pub fn list(&self) -> Value {
        let data: Vec<Value> = self.files.lock().iter().map(|f| f.meta.clone()).collect();
        json!({"object": "list", "data": data, "has_more": false})
    }

    /// `GET /v1/files/{id}`.
    pub fn retrieve(&self, id: &str) -> Result<Value, ApiError> {
        self.with(id, |f| f.meta.clone())
    }

    /// `GET /v1/files/{id}/content`: the stored bytes, verbatim.
    pub fn content(&self, id: &str) -> Result<Bytes, ApiError> {
        self.with(id, |f| f.bytes.clone())
    }

    /// `DELETE /v1/files/{id}`.
    pub fn delete(&self, id: &str) -> Result<Value, ApiError> {
        let mut files = self.files.lock();
        let index = files.iter().position(|f| f.id == id).ok_or_else(|| not_found(id))?;
        files.remove(index);
        Ok(json!({"id": id, "object": "file", "deleted": true}))
    }

    fn with<T>(&self, id: &str, read: impl FnOnce(&StoredFile) -> T) -> Result<T, ApiError> {
        self.files.lock().iter().find(|f| f.id == id).map(read).ok_or_else(|| not_found(id))
    }
}
