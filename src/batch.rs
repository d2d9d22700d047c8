//! OpenAI's Files and Batches API, served by flexgate itself under the lane prefixes
//! (`/flex/v1/files`, `/flex/v1/batches`) and run through flex: the same objects, statuses
//! and JSONL formats as OpenAI, so the official SDKs work unchanged. Under `/v1` both
//! APIs pass through to OpenAI like any other path; this module never sees them.
//!
//! What lives where:
//! - `http.rs` dispatches a request to the file and batch endpoints; `caller.rs` says
//!   whose it is (the gateway key's client in managed mode, the SHA-256 of the key in
//!   passthrough mode, whose key is kept in memory only, in `crate::state::Batches`);
//! - `files.rs` uploads (streamed to disk), lists, serves and deletes files, and sweeps
//!   expired ones; `objects.rs` renders the File and Batch objects and makes ids;
//! - `api.rs` creates, retrieves, lists and cancels batches;
//! - `runner.rs` drives one batch through its statuses: `validate.rs` checks the input
//!   file, `line.rs` sends one line through the proxy (the same routing, retry loop,
//!   admission and accounting as a client's request), `finalize.rs` writes the output
//!   and error files.
//!
//! Durability: every state change is committed to the store before it is acknowledged,
//! and a line's result is committed with the batch's counters in one transaction, so a
//! `kill -9` loses at most the lines in flight (sent again on restart, at most
//! `batch.max_in_flight` of them) and never writes a `custom_id` twice.

mod api;
mod caller;
mod files;
mod finalize;
mod http;
mod line;
mod objects;
mod runner;
mod validate;

use crate::state::AppState;

pub use http::{handle, is_batch_path};

/// At start-up: remove what a crash left in the files folder, resume every unfinished
/// batch in the store (if it is open), and start the sweeper of expired files, whose
/// handle the server stops at shutdown.
pub async fn start(state: &AppState) -> tokio::task::JoinHandle<()> {
    if let Some(store) = state.store.if_open() {
        match files::remove_orphans(store).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed file contents a crash left behind"),
            Err(error) => tracing::warn!(error = %error, "cannot look for file contents a crash left behind"),
        }
        match api::unfinished(store).await {
            Ok(ids) => {
                if !ids.is_empty() {
                    tracing::info!(batches = ids.len(), "resuming unfinished batches");
                }
                for id in ids {
                    runner::spawn(state.clone(), id);
                }
            }
            Err(error) => tracing::error!(error = %error, "cannot list unfinished batches"),
        }
    }
    tokio::spawn(files::sweeper(state.clone()))
}
