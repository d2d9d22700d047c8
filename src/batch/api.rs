//! The Batches API: create (cheap checks at once, the input file later, as OpenAI does),
//! retrieve, list and cancel. Every answer is given after the change it reports is
//! committed.

use std::time::Duration;

use serde_json::{Map, Value};

use super::caller::Caller;
use super::http::internal;
use super::objects::{BatchRow, batch_id, list as list_object};
use super::{files, runner};
use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::{Store, unix_now};

/// The endpoints a batch may name; the first two run through flex, the others on standard.
pub const ENDPOINTS: [&str; 5] =
    ["/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions", "/v1/moderations"];
/// Statuses a batch ends in.
pub const TERMINAL: [&str; 4] = ["completed", "failed", "expired", "cancelled"];

fn bad(param: &'static str, message: impl Into<String>) -> GatewayError {
    GatewayError::InvalidParam { param, message: message.into() }
}

/// `24h` as OpenAI has it, or (a flexgate extension) any duration from a second to 30 days.
pub fn window(text: &str) -> Option<Duration> {
    let d = humantime::parse_duration(text.trim()).ok()?;
    (d >= Duration::from_secs(1) && d <= Duration::from_secs(30 * 86_400)).then_some(d)
}

/// Check `metadata` as OpenAI does: at most 16 string pairs, keys to 64 and values to 512
/// characters.
fn metadata(value: Option<&Value>) -> Result<Option<Map<String, Value>>, GatewayError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let map = value.as_object().ok_or_else(|| bad("metadata", "'metadata' must be an object."))?;
    let fits = map.len() <= 16
        && map.iter().all(|(k, v)| k.chars().count() <= 64 && v.as_str().is_some_and(|s| s.chars().count() <= 512));
    if fits {
        Ok(Some(map.clone()))
    } else {
        Err(bad("metadata", "'metadata' holds at most 16 string pairs (keys to 64, values to 512 characters)."))
    }
}

pub async fn create(state: &AppState, caller: &Caller, body: &Value) -> Result<Value, GatewayError> {
    let text = |field: &'static str| {
        body.get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(field, format!("Missing required parameter: '{field}'.")))
    };
    let (input_file_id, endpoint, completion_window) =
        (text("input_file_id")?, text("endpoint")?, text("completion_window")?);
    if !ENDPOINTS.contains(&endpoint) {
        return Err(bad("endpoint", format!("Invalid value for 'endpoint': '{endpoint}'. Use one of {ENDPOINTS:?}.")));
    }
    let length = window(completion_window).ok_or_else(|| {
        bad("completion_window", "'completion_window' must be '24h' or a duration such as '30m' (up to 30 days).")
    })?;
    let mut metadata = metadata(body.get("metadata"))?;
    if !matches!(endpoint, "/v1/chat/completions" | "/v1/responses") {
        // Flex exists only for these two: the others run on standard, and the batch says so.
        let map = metadata.get_or_insert_with(Map::new);
        if map.len() < 16 {
            map.insert("flexgate_tier".into(), "standard".into());
        }
    }
    let store = state.store.get().await.map_err(internal)?;
    let file = files::find(store, &caller.owner, input_file_id).await?;
    if file.purpose != "batch" {
        return Err(bad("input_file_id", format!("File {input_file_id} has purpose '{}', not 'batch'.", file.purpose)));
    }
    let now = unix_now();
    let id = batch_id();
    let seconds = i64::try_from(length.as_secs()).unwrap_or(i64::MAX);
    let row = (
        id.clone(),
        caller.owner.clone(),
        endpoint.to_owned(),
        file.id,
        completion_window.to_owned(),
        seconds,
        metadata.map(|m| Value::Object(m).to_string()),
    );
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO batches (id, owner, endpoint, input_file_id, completion_window, window_seconds, \
                 status, metadata, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'validating', ?7, ?8, ?9)",
                rusqlite::params![row.0, row.1, row.2, row.3, row.4, row.5, row.6, now, now.saturating_add(row.5)],
            )
        })
        .await
        .map_err(internal)?;
    let batch = load(store, &caller.owner, &id).await?;
    runner::spawn(state.clone(), id);
    Ok(batch.to_json())
}

/// The caller's batch `id`, or 404.
pub async fn load(store: &Store, owner: &str, id: &str) -> Result<BatchRow, GatewayError> {
    let (owner, key) = (owner.to_owned(), id.to_owned());
    let sql = format!("SELECT {} FROM batches WHERE id = ?1 AND owner = ?2", BatchRow::COLUMNS);
    let row = store
        .call(move |c| {
            rusqlite::OptionalExtension::optional(c.query_row(&sql, rusqlite::params![key, owner], BatchRow::from_row))
        })
        .await
        .map_err(internal)?;
    row.ok_or_else(|| GatewayError::NoSuchObject { what: "batch", id: id.chars().take(128).collect() })
}

pub async fn retrieve(state: &AppState, caller: &Caller, id: &str) -> Result<Value, GatewayError> {
    let store = state.store.get().await.map_err(internal)?;
    Ok(load(store, &caller.owner, id).await?.to_json())
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    after: Option<String>,
    limit: Option<i64>,
}

/// Newest first, `limit` from 1 to 100 (default 20), paged with `after`.
pub async fn list(state: &AppState, caller: &Caller, query: &str) -> Result<Value, GatewayError> {
    let q: ListQuery = files::serde_urlencoded_query(query)?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(bad("limit", "'limit' must be from 1 to 100."));
    }
    let store = state.store.get().await.map_err(internal)?;
    let owner = caller.owner.clone();
    let sql = format!(
        "SELECT {} FROM batches WHERE owner = ?1 AND \
         (?2 IS NULL OR rowid < (SELECT rowid FROM batches WHERE id = ?2)) ORDER BY rowid DESC LIMIT ?3",
        BatchRow::COLUMNS
    );
    let rows = store
        .call(move |c| {
            let mut statement = c.prepare(&sql)?;
            let rows = statement.query_map(rusqlite::params![owner, q.after, limit + 1], BatchRow::from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
        .map_err(internal)?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let data = rows.iter().take(limit).map(BatchRow::to_json).collect();
    Ok(list_object(data, rows.len() > limit))
}

/// Move the batch to `cancelling` (committed), then tell its runner; a batch already
/// cancelling or cancelled is returned as it is, a finished one is a 400.
pub async fn cancel(state: &AppState, caller: &Caller, id: &str) -> Result<Value, GatewayError> {
    let store = state.store.get().await.map_err(internal)?;
    let batch = load(store, &caller.owner, id).await?;
    if TERMINAL.contains(&batch.status.as_str()) && batch.status != "cancelled" {
        return Err(bad("batch_id", format!("Cannot cancel a batch with status '{}'.", batch.status)));
    }
    let key = batch.id.clone();
    let now = unix_now();
    store
        .call(move |c| {
            c.execute(
                "UPDATE batches SET status = 'cancelling', cancelling_at = ?2 \
                 WHERE id = ?1 AND status IN ('validating', 'in_progress')",
                rusqlite::params![key, now],
            )
        })
        .await
        .map_err(internal)?;
    state.batches.cancel(&batch.id);
    Ok(load(store, &caller.owner, id).await?.to_json())
}

/// The ids of the batches not yet in a final status, oldest first.
pub async fn unfinished(store: &Store) -> Result<Vec<String>, crate::store::StoreError> {
    store
        .call(|c| {
            let mut statement = c.prepare(
                "SELECT id FROM batches WHERE status NOT IN ('completed', 'failed', 'expired', 'cancelled') \
                 ORDER BY rowid",
            )?;
            let ids = statement.query_map([], |r| r.get::<_, String>(0))?;
            ids.collect()
        })
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_are_24h_or_any_duration() {
        assert_eq!(super::window("24h").map(|d| d.as_secs()), Some(86_400));
        assert_eq!(super::window("90s").map(|d| d.as_secs()), Some(90));
        for refused in ["", "soon", "0s", "31days"] {
            assert!(super::window(refused).is_none(), "{refused}");
        }
    }
}
