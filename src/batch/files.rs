//! The Files API under the lane: upload (multipart, streamed to disk as it arrives, so a
//! 200 MB file never sits in memory), list, retrieve, content (the raw bytes), delete,
//! and the sweeper that deletes expired files.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::StreamExt as _;
use http::header;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::caller::Caller;
use super::http::internal;
use super::objects::{FileRow, file_id, list as list_object};
use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::{Store, StoreError, unix_now};

/// OpenAI's cap on one file.
const MAX_FILE: u64 = 512 << 20;
/// OpenAI's cap on a batch input file (200 MB).
pub const MAX_BATCH_FILE: u64 = 200_000_000;
/// Purposes an upload may name (`batch_output` is only produced).
const PURPOSES: [&str; 6] = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"];
/// A batch file's default lifetime, and the bounds of `expires_after[seconds]`.
pub const THIRTY_DAYS: i64 = 2_592_000;
const MIN_EXPIRY: i64 = 3600;

fn bad(param: &'static str, message: impl Into<String>) -> GatewayError {
    GatewayError::InvalidParam { param, message: message.into() }
}

/// The file's content on disk.
pub fn path_of(store: &Store, id: &str) -> PathBuf {
    store.files_dir().join(id)
}

/// What the multipart form said besides the file.
#[derive(Default)]
struct Form {
    purpose: Option<String>,
    anchor: Option<String>,
    seconds: Option<String>,
    filename: Option<String>,
    bytes: u64,
    /// The first byte that is not whitespace, to refuse a batch file that is not JSONL.
    first: Option<u8>,
}

pub async fn upload(state: &AppState, caller: &Caller, request: Request) -> Result<Value, GatewayError> {
    let boundary = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| multer::parse_boundary(c).ok())
        .ok_or_else(|| bad("file", "Uploads must be `multipart/form-data` with a `file` and a `purpose`."))?;
    let store = state.store.get().await.map_err(internal)?;
    let id = file_id();
    let part = store.files_dir().join(format!("{id}.part"));
    let read = read_form(state, request.into_body(), boundary, &part).await;
    let checked = read.and_then(|form| check(form, unix_now()));
    let (purpose, filename, bytes, expires_at) = match checked {
        Ok(ok) => ok,
        Err(error) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(error);
        }
    };
    tokio::fs::rename(&part, path_of(store, &id)).await.map_err(internal)?;
    let row = FileRow {
        id: id.clone(),
        purpose,
        filename,
        bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
        created_at: unix_now(),
        expires_at,
    };
    let (owner, stored) = (caller.owner.clone(), row.clone());
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO files (id, owner, purpose, filename, bytes, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    stored.id,
                    owner,
                    stored.purpose,
                    stored.filename,
                    stored.bytes,
                    stored.created_at,
                    stored.expires_at
                ],
            )
        })
        .await
        .map_err(internal)?;
    Ok(row.to_json())
}

/// Read the form, writing the `file` part to `part` chunk by chunk.
async fn read_form(state: &AppState, body: Body, boundary: String, part: &PathBuf) -> Result<Form, GatewayError> {
    let silence = state.config.server.body_timeout;
    let stalled = || GatewayError::BodyTimeout { silence: humantime::format_duration(silence).to_string() };
    let unreadable = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            GatewayError::BodyTooLarge { limit: usize::try_from(MAX_FILE).unwrap_or(usize::MAX) }
        }
        other => bad("file", format!("The multipart body could not be read: {other}")),
    };
    let limits = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(MAX_FILE + (1 << 20)));
    let mut multipart = multer::Multipart::with_constraints(body.into_data_stream(), boundary, limits);
    let mut form = Form::default();
    while let Some(mut field) =
        tokio::time::timeout(silence, multipart.next_field()).await.map_err(|_| stalled())?.map_err(unreadable)?
    {
        match field.name().unwrap_or_default() {
            "file" => {
                form.filename = Some(field.file_name().unwrap_or("upload.jsonl").to_owned());
                let mut file = tokio::fs::File::create(part).await.map_err(internal)?;
                while let Some(chunk) =
                    tokio::time::timeout(silence, field.chunk()).await.map_err(|_| stalled())?.map_err(unreadable)?
                {
                    if form.first.is_none() {
                        form.first = chunk.iter().copied().find(|b| !b.is_ascii_whitespace());
                    }
                    form.bytes += chunk.len() as u64;
                    file.write_all(&chunk).await.map_err(internal)?;
                }
                file.flush().await.map_err(internal)?;
                file.sync_all().await.map_err(internal)?;
            }
            name @ ("purpose" | "expires_after[anchor]" | "expires_after[seconds]") => {
                let name = name.to_owned();
                let text = field.text().await.map_err(unreadable)?;
                let slot = match name.as_str() {
                    "purpose" => &mut form.purpose,
                    "expires_after[anchor]" => &mut form.anchor,
                    _ => &mut form.seconds,
                };
                *slot = Some(text.trim().to_owned());
            }
            _ => while field.chunk().await.map_err(unreadable)?.is_some() {},
        }
    }
    Ok(form)
}

/// Check the form as OpenAI does: (purpose, filename, bytes, `expires_at`).
fn check(form: Form, now: i64) -> Result<(String, String, u64, Option<i64>), GatewayError> {
    let purpose = form.purpose.ok_or_else(|| bad("purpose", "Missing required parameter: 'purpose'."))?;
    if !PURPOSES.contains(&purpose.as_str()) {
        return Err(bad("purpose", format!("Invalid value for 'purpose': '{purpose}'. Use one of {PURPOSES:?}.")));
    }
    let filename = form.filename.ok_or_else(|| bad("file", "Missing required parameter: 'file'."))?;
    if purpose == "batch" {
        let jsonl = std::path::Path::new(&filename).extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
        if !jsonl || form.first.is_some_and(|b| b != b'{') {
            return Err(bad("file", "Invalid file format for Batch API. Must be .jsonl"));
        }
        if form.bytes > MAX_BATCH_FILE {
            return Err(bad("file", "Batch input files are limited to 200 MB."));
        }
    }
    let expires_at = match (form.anchor.as_deref(), form.seconds.as_deref()) {
        (None, None) => (purpose == "batch").then_some(now + THIRTY_DAYS),
        (Some("created_at") | None, Some(seconds)) => match seconds.parse::<i64>() {
            Ok(s) if (MIN_EXPIRY..=THIRTY_DAYS).contains(&s) => Some(now + s),
            _ => return Err(bad("expires_after[seconds]", "Must be an integer from 3600 to 2592000.")),
        },
        _ => return Err(bad("expires_after[anchor]", "The only supported anchor is 'created_at'.")),
    };
    Ok((purpose, filename, form.bytes, expires_at))
}

/// The caller's file `id`, or 404.
pub async fn retrieve(state: &AppState, caller: &Caller, id: &str) -> Result<FileRow, GatewayError> {
    let store = state.store.get().await.map_err(internal)?;
    find(store, &caller.owner, id).await
}

pub async fn find(store: &Store, owner: &str, id: &str) -> Result<FileRow, GatewayError> {
    let (owner, key) = (owner.to_owned(), id.to_owned());
    let sql = format!("SELECT {} FROM files WHERE id = ?1 AND owner = ?2", FileRow::COLUMNS);
    let row = store
        .call(move |c| {
            rusqlite::OptionalExtension::optional(c.query_row(&sql, rusqlite::params![key, owner], FileRow::from_row))
        })
        .await
        .map_err(internal)?;
    row.ok_or_else(|| GatewayError::NoSuchObject { what: "File", id: id.chars().take(128).collect() })
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    after: Option<String>,
    limit: Option<i64>,
    order: Option<String>,
    purpose: Option<String>,
}

pub async fn list(state: &AppState, caller: &Caller, query: &str) -> Result<Value, GatewayError> {
    let q: ListQuery = serde_urlencoded_query(query)?;
    let limit = q.limit.unwrap_or(10_000);
    if !(1..=10_000).contains(&limit) {
        return Err(bad("limit", "'limit' must be from 1 to 10000."));
    }
    let ascending = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(bad("order", "'order' must be 'asc' or 'desc'.")),
    };
    let store = state.store.get().await.map_err(internal)?;
    let owner = caller.owner.clone();
    let (cmp, dir) = if ascending { (">", "ASC") } else { ("<", "DESC") };
    let sql = format!(
        "SELECT {} FROM files WHERE owner = ?1 AND (?2 IS NULL OR purpose = ?2) AND \
         (?3 IS NULL OR rowid {cmp} (SELECT rowid FROM files WHERE id = ?3)) ORDER BY rowid {dir} LIMIT ?4",
        FileRow::COLUMNS
    );
    let rows = store
        .call(move |c| {
            let mut statement = c.prepare(&sql)?;
            let rows =
                statement.query_map(rusqlite::params![owner, q.purpose, q.after, limit + 1], FileRow::from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
        .map_err(internal)?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let data = rows.iter().take(usize::try_from(limit).unwrap_or(usize::MAX)).map(FileRow::to_json).collect();
    Ok(list_object(data, has_more))
}

/// Parse a query string into `T`, refusing what does not fit with a 400.
pub fn serde_urlencoded_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, GatewayError> {
    let uri: http::Uri = format!("/?{query}").parse().map_err(|_| bad("query", "The query string is malformed."))?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| bad("query", format!("The query string is invalid: {e}")))
}

pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<Value, GatewayError> {
    let file = retrieve(state, caller, id).await?;
    let store = state.store.get().await.map_err(internal)?;
    let key = file.id.clone();
    store.call(move |c| c.execute("DELETE FROM files WHERE id = ?1", [key])).await.map_err(internal)?;
    let _ = tokio::fs::remove_file(path_of(store, &file.id)).await;
    Ok(json!({"id": file.id, "object": "file", "deleted": true}))
}

/// The raw bytes, streamed from disk in 64 KiB reads, as `application/octet-stream`.
pub async fn content(state: &AppState, caller: &Caller, id: &str) -> Result<Response, GatewayError> {
    let file = retrieve(state, caller, id).await?;
    let store = state.store.get().await.map_err(internal)?;
    let opened = tokio::fs::File::open(path_of(store, &file.id)).await.map_err(internal)?;
    let chunks = futures_util::stream::unfold(Some(opened), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0u8; 64 << 10];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = Response::new(Body::from_stream(chunks.boxed()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, http::HeaderValue::from(u64::try_from(file.bytes).unwrap_or(0)));
    Ok(response)
}

/// At start-up, before anything is uploaded: delete what a crash left in the files
/// folder, contents no row names (an output file renamed into place just before a crash
/// in `finalizing`, which is written again under a new name) and `.part` files of
/// uploads and outputs cut short. Returns how many were deleted.
pub async fn remove_orphans(store: &Store) -> Result<usize, StoreError> {
    let files = store.files_dir().to_path_buf();
    store
        .call(move |c| {
            let mut statement = c.prepare("SELECT 1 FROM files WHERE id = ?1")?;
            let mut removed = 0;
            for entry in std::fs::read_dir(&files).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let orphan = name.ends_with(".part") || !statement.exists([name.as_ref()])?;
                if orphan && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
}

/// Every ten minutes, delete the files whose `expires_at` has passed (rows and contents).
pub async fn sweeper(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let Some(store) = state.store.if_open() else { continue };
        let now = unix_now();
        let expired = store
            .call(move |c| {
                let mut statement = c.prepare("DELETE FROM files WHERE expires_at <= ?1 RETURNING id")?;
                let ids = statement.query_map([now], |r| r.get::<_, String>(0))?;
                ids.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await;
        match expired {
            Ok(ids) => {
                for id in &ids {
                    let _ = tokio::fs::remove_file(path_of(store, id)).await;
                }
                if !ids.is_empty() {
                    tracing::info!(files = ids.len(), "expired files deleted");
                }
            }
            Err(error) => tracing::warn!(error = %error, "cannot sweep expired files"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(purpose: &str, filename: &str, first: u8) -> Form {
        Form {
            purpose: Some(purpose.into()),
            filename: Some(filename.into()),
            bytes: 10,
            first: Some(first),
            ..Form::default()
        }
    }

    /// The sweeper's first pass runs at once: a file past its `expires_at` is gone (row
    /// and content), one without expiry stays.
    #[tokio::test]
    async fn the_sweeper_deletes_expired_files() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("[store]\ndir = \"{}\"\n", dir.path().display());
        let env = std::collections::HashMap::new();
        let state = AppState::new(crate::config::Config::from_toml(&text, &env).unwrap()).unwrap();
        let store = state.store.get().await.unwrap().clone();
        for id in ["file-old", "file-kept"] {
            std::fs::write(path_of(&store, id), b"{}").unwrap();
        }
        store
            .call(|c| {
                c.execute_batch(
                    "INSERT INTO files VALUES ('file-old', 'o', 'batch', 'a.jsonl', 2, 0, 1);
                     INSERT INTO files VALUES ('file-kept', 'o', 'user_data', 'b', 2, 0, NULL);",
                )
            })
            .await
            .unwrap();
        let sweeping = tokio::spawn(sweeper(state.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while path_of(&store, "file-old").exists() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sweeping.abort();
        assert!(!path_of(&store, "file-old").exists());
        assert!(path_of(&store, "file-kept").exists());
        let left: i64 = store.call(|c| c.query_row("SELECT count(*) FROM files", [], |r| r.get(0))).await.unwrap();
        assert_eq!(left, 1);
    }

    #[tokio::test]
    async fn what_a_crash_left_in_the_files_folder_is_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::store::MIGRATIONS).unwrap();
        for name in ["file-kept", "file-renamed-before-the-crash", "file-cut.part"] {
            std::fs::write(path_of(&store, name), b"{}").unwrap();
        }
        store
            .call(|c| c.execute("INSERT INTO files VALUES ('file-kept', 'o', 'batch', 'a', 2, 0, NULL)", []))
            .await
            .unwrap();
        assert_eq!(remove_orphans(&store).await.unwrap(), 2);
        let left: Vec<_> = std::fs::read_dir(store.files_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["file-kept"]);
    }

    #[test]
    fn uploads_are_checked_as_openai_checks_them() {
        let (purpose, _, _, expires) = check(form("batch", "in.jsonl", b'{'), 100).unwrap();
        assert_eq!((purpose.as_str(), expires), ("batch", Some(100 + THIRTY_DAYS)));
        assert_eq!(check(form("assistants", "a.txt", b'x'), 100).unwrap().3, None);
        for refused in
            [form("batch", "notes.txt", b'{'), form("batch", "in.jsonl", b'x'), form("batch_output", "a", b'{')]
        {
            assert!(matches!(check(refused, 0), Err(GatewayError::InvalidParam { .. })));
        }
        let mut f = form("batch", "in.jsonl", b'{');
        f.seconds = Some("60".into());
        assert!(matches!(check(f, 0), Err(GatewayError::InvalidParam { param: "expires_after[seconds]", .. })));
        let mut f = form("batch", "in.jsonl", b'{');
        f.seconds = Some("7200".into());
        assert_eq!(check(f, 5).unwrap().3, Some(7205));
    }
}
