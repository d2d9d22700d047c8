//! One task per batch drives it through OpenAI's statuses, reading where it is from the
//! store each step, so a restarted process picks up exactly where the last one stopped:
//! `validating` (check the input file, index its lines) → `in_progress` (run the lines
//! not yet done, at most `batch.max_in_flight` at once) → `finalizing` (write the files)
//! → `completed` or `expired`; a cancel goes `cancelling` → `cancelled`.
//!
//! In passthrough mode the lines need the creating client's key, which only memory holds:
//! a batch resumed after a restart waits (still `in_progress`) until its owner's key
//! arrives with a request (the client's next poll).

use std::collections::VecDeque;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::finalize::{self, Ending};
use super::line::{self, LineResult, Setup};
use super::objects::BatchRow;
use super::{caller, files, validate};
use crate::config::AuthConfig;
use crate::state::AppState;
use crate::state::Control;
use crate::store::{Store, StoreError, unix_now};

/// Start batch `id`'s runner unless one already runs in this process.
pub fn spawn(state: AppState, id: String) {
    let Some(control) = state.batches.register(&id) else { return };
    tokio::spawn(async move {
        state.metrics.batch.started();
        if let Err(error) = drive(&state, &id, &control).await {
            tracing::error!(batch = %id, error = %error, "batch runner stopped; it resumes on restart");
        }
        state.metrics.batch.stopped();
        state.batches.finished(&id);
    });
}

async fn load(store: &Store, id: &str) -> Result<BatchRow, StoreError> {
    let key = id.to_owned();
    let sql = format!("SELECT {} FROM batches WHERE id = ?1", BatchRow::COLUMNS);
    store.call(move |c| c.query_row(&sql, [key], BatchRow::from_row)).await
}

async fn drive(state: &AppState, id: &str, control: &Control) -> Result<(), StoreError> {
    let store = state.store.get().await?.clone();
    // Whether this runner moved the batch, so that its end is counted once.
    let mut moved = false;
    loop {
        let batch = load(&store, id).await?;
        let status = batch.status.as_str();
        if moved && is_end(status) {
            state.metrics.batch.ended(status);
            tracing::info!(batch = %id, status, completed = batch.counts[1], failed = batch.counts[2], "batch ended");
        }
        moved = true;
        match status {
            "validating" => check(&store, &batch).await?,
            "in_progress" | "cancelling" => {
                if !execute(state, &store, &batch, control).await? {
                    return Ok(());
                }
            }
            "finalizing" => {
                let end = if batch.expired_at().is_some() { Ending::Expired } else { Ending::Completed };
                finalize::finish(&store, id, end).await?;
            }
            _ => return Ok(()),
        }
    }
}

fn is_end(status: &str) -> bool {
    super::api::TERMINAL.contains(&status)
}

/// `validating` → `in_progress` with every line indexed, or → `failed` with the problems,
/// in one transaction.
async fn check(store: &Store, batch: &BatchRow) -> Result<(), StoreError> {
    let path = files::path_of(store, &batch.input_file_id);
    let endpoint = batch.endpoint.clone();
    let checked = tokio::task::spawn_blocking(move || validate::check(&path, &endpoint, files::MAX_BATCH_FILE))
        .await
        .map_err(|_| StoreError::Worker)?
        .unwrap_or_else(|_| validate::Checked {
            errors: vec![serde_json::json!({"code": "file_not_found", "line": null,
                "message": "The input file could not be read.", "param": "input_file_id"})],
            ..validate::Checked::default()
        });
    let (id, now) = (batch.id.clone(), unix_now());
    store
        .call(move |c| {
            let tx = c.transaction()?;
            if checked.errors.is_empty() {
                let mut insert = tx.prepare(
                    "INSERT INTO batch_lines (batch_id, line, start, len, custom_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for l in &checked.lines {
                    let (start, len) = (i64::try_from(l.start).unwrap_or(0), i64::try_from(l.len).unwrap_or(0));
                    insert.execute(rusqlite::params![id, l.line, start, len, l.custom_id])?;
                }
                drop(insert);
                tx.execute(
                    "UPDATE batches SET total = ?2, model = ?3, in_progress_at = ?4, \
                     status = CASE status WHEN 'validating' THEN 'in_progress' ELSE status END WHERE id = ?1",
                    rusqlite::params![id, checked.lines.len(), checked.model, now],
                )?;
            } else {
                let errors = serde_json::Value::Array(checked.errors).to_string();
                tx.execute(
                    "UPDATE batches SET status = 'failed', failed_at = ?2, errors = ?3 WHERE id = ?1",
                    rusqlite::params![id, now, errors],
                )?;
            }
            tx.commit()
        })
        .await
}

/// Why the runner stopped taking lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancelled,
    Expired,
}

/// Run the lines not yet done; `false` when the runner must stop without a status change
/// (it resumes on restart).
async fn execute(state: &AppState, store: &Store, batch: &BatchRow, control: &Control) -> Result<bool, StoreError> {
    let left = u64::try_from(batch.expires_at() - unix_now()).unwrap_or(0);
    let window_end = Instant::now() + Duration::from_secs(left);
    let mut stop = (batch.status == "cancelling" || control.is_cancelled()).then_some(Stop::Cancelled);
    let managed = matches!(state.config.auth, AuthConfig::Managed { .. });
    let mut authorization = None;
    if stop.is_none() && !managed && batch.owner.starts_with("key:") {
        match wait_for_key(state, &batch.owner, control, window_end).await {
            Ok(key) => authorization = Some(key),
            Err(why) => stop = Some(why),
        }
    }
    let setup = Setup {
        state: state.clone(),
        endpoint: batch.endpoint.clone(),
        client: caller::client_of(&batch.owner).map(str::to_owned),
        authorization,
        window_end,
    };
    if stop.is_none() {
        stop = run_lines(state, store, batch, control, &setup).await?;
    }
    let (code, message) = match stop {
        Some(Stop::Cancelled) => ("batch_cancelled", "This request was not executed because the batch was cancelled."),
        _ => ("batch_expired", "This request could not be executed before the completion window expired."),
    };
    for _ in 0..mark_unrun(store, &batch.id, code, message).await? {
        state.metrics.batch.line(false, rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO);
    }
    if stop == Some(Stop::Cancelled) {
        finalize::finish(store, &batch.id, Ending::Cancelled).await?;
        return Ok(true);
    }
    let (id, now, expired) = (batch.id.clone(), unix_now(), stop == Some(Stop::Expired));
    store
        .call(move |c| {
            c.execute(
                "UPDATE batches SET status = 'finalizing', finalizing_at = ?2, \
                 expired_at = CASE WHEN ?3 THEN ?2 ELSE expired_at END WHERE id = ?1 AND status = 'in_progress'",
                rusqlite::params![id, now, expired],
            )
        })
        .await?;
    Ok(true)
}

/// Wait for the owner's key (passthrough), the cancel or the window's end.
async fn wait_for_key(state: &AppState, owner: &str, control: &Control, end: Instant) -> Result<HeaderValue, Stop> {
    loop {
        let arrived = state.batches.key_arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        if let Some(key) = state.batches.key(owner) {
            return Ok(key);
        }
        tokio::select! {
            () = arrived => {}
            () = control.cancelled() => return Err(Stop::Cancelled),
            () = tokio::time::sleep_until(end) => return Err(Stop::Expired),
        }
    }
}

/// The pending lines: (line, start, len).
async fn pending(store: &Store, id: &str) -> Result<Vec<(i64, u64, usize)>, StoreError> {
    let key = id.to_owned();
    store
        .call(move |c| {
            let mut q = c.prepare(
                "SELECT line, start, len FROM batch_lines WHERE batch_id = ?1 AND outcome = 0 ORDER BY line",
            )?;
            let rows = q.query_map([key], |r| {
                let (line, start, len): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
                Ok((line, u64::try_from(start).unwrap_or(0), usize::try_from(len).unwrap_or(0)))
            })?;
            rows.collect()
        })
        .await
}

async fn run_lines(
    state: &AppState,
    store: &Store,
    batch: &BatchRow,
    control: &Control,
    setup: &Setup,
) -> Result<Option<Stop>, StoreError> {
    let path = files::path_of(store, &batch.input_file_id);
    let input = tokio::task::spawn_blocking(move || std::fs::File::open(path)).await.map_err(|_| StoreError::Worker)?;
    let input =
        Arc::new(input.map_err(|source| StoreError::Create { path: batch.input_file_id.clone().into(), source })?);
    let mut lines = Lines { queue: pending(store, &batch.id).await?.into(), read: VecDeque::new(), input };
    let mut in_flight: JoinSet<(i64, LineResult)> = JoinSet::new();
    let max = state.config.batch.max_in_flight;
    let mut stop = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        while stop.is_none() && in_flight.len() < max {
            if control.is_cancelled() {
                stop = Some(Stop::Cancelled);
            } else if Instant::now() >= setup.window_end {
                stop = Some(Stop::Expired);
            } else if let Some((line, text)) = lines.next().await? {
                let setup = setup.clone();
                in_flight.spawn(async move { (line, line::run(&setup, &text).await) });
                continue;
            }
            break;
        }
        if stop == Some(Stop::Cancelled) && drain_until.is_none() {
            drain_until = Some(Instant::now() + state.config.server.drain_timeout);
        }
        if in_flight.is_empty() {
            return Ok(stop);
        }
        let drain = drain_until.unwrap_or(setup.window_end + Duration::from_secs(86_400));
        tokio::select! {
            joined = in_flight.join_next() => {
                // The lines that finished meanwhile are committed with it, in one
                // transaction: one commit per wake-up, not per line.
                let mut done: Vec<(i64, LineResult)> = joined.into_iter().filter_map(Result::ok).collect();
                while let Some(joined) = in_flight.try_join_next() {
                    done.extend(joined.ok());
                }
                for (_, outcome) in &done {
                    state.metrics.batch.line(outcome.ok, outcome.cost, outcome.savings);
                }
                record(store, &batch.id, done).await?;
            }
            () = control.cancelled(), if stop.is_none() => stop = Some(Stop::Cancelled),
            () = tokio::time::sleep_until(setup.window_end), if stop.is_none() => stop = Some(Stop::Expired),
            // Lines still in flight when a cancel's drain time is over are abandoned.
            () = tokio::time::sleep_until(drain), if drain_until.is_some() => in_flight.abort_all(),
        }
    }
}

/// The pending lines' text, read from the input file a block at a time (one trip to the
/// blocking pool for up to [`READ_BLOCK`] bytes of lines, not one per line).
struct Lines {
    queue: VecDeque<(i64, u64, usize)>,
    read: VecDeque<(i64, Bytes)>,
    input: Arc<std::fs::File>,
}

/// Bytes of input read at once (a single longer line is read whole).
const READ_BLOCK: u64 = 1 << 20;

impl Lines {
    async fn next(&mut self) -> Result<Option<(i64, Bytes)>, StoreError> {
        if self.read.is_empty() {
            self.fill().await?;
        }
        Ok(self.read.pop_front())
    }

    async fn fill(&mut self) -> Result<(), StoreError> {
        let Some(&(_, first, _)) = self.queue.front() else { return Ok(()) };
        let mut block = Vec::new();
        while let Some(&(line, start, len)) = self.queue.front() {
            let end = start + len as u64;
            if !block.is_empty() && (end - first > READ_BLOCK || start < first) {
                break;
            }
            block.push((line, start, len));
            self.queue.pop_front();
        }
        let end = block.iter().map(|&(_, start, len)| start + len as u64).max().unwrap_or(first);
        let input = Arc::clone(&self.input);
        let span = usize::try_from(end - first).unwrap_or(0);
        let text = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0; span];
            input.read_exact_at(&mut buffer, first).map(|()| Bytes::from(buffer))
        })
        .await
        .map_err(|_| StoreError::Worker)?
        .unwrap_or_default();
        for (line, start, len) in block {
            let at = usize::try_from(start - first).unwrap_or(0);
            // A file cut short since validation gives an empty line, which fails as such.
            self.read.push_back((line, text.get(at..at + len).map(|_| text.slice(at..at + len)).unwrap_or_default()));
        }
        Ok(())
    }
}

/// Commit finished lines' results with the batch's counters, usage and cost, in one
/// transaction; each line once (a line already recorded is left as it is).
async fn record(store: &Store, id: &str, done: Vec<(i64, LineResult)>) -> Result<(), StoreError> {
    if done.is_empty() {
        return Ok(());
    }
    let key = id.to_owned();
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let cost: String = tx.query_row("SELECT cost_usd FROM batches WHERE id = ?1", [&key], |r| r.get(0))?;
            let mut cost = cost.parse::<rust_decimal::Decimal>().unwrap_or_default();
            let (mut ok, mut failed, mut tokens) = (0i64, 0i64, [0u64; 4]);
            {
                let mut update = tx.prepare(
                    "UPDATE batch_lines SET outcome = ?3, result = ?4 WHERE batch_id = ?1 AND line = ?2 AND outcome = 0",
                )?;
                for (line, outcome) in &done {
                    let changed =
                        update.execute(rusqlite::params![key, line, if outcome.ok { 1 } else { 2 }, outcome.result])?;
                    if changed == 1 {
                        let u = outcome.usage;
                        cost += outcome.cost;
                        if outcome.ok { ok += 1 } else { failed += 1 }
                        for (sum, v) in tokens.iter_mut().zip([u.input, u.cached_input, u.output, u.reasoning]) {
                            *sum += v;
                        }
                    }
                }
            }
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            tx.execute(
                "UPDATE batches SET completed = completed + ?2, failed = failed + ?3, \
                 input_tokens = input_tokens + ?4, cached_tokens = cached_tokens + ?5, \
                 output_tokens = output_tokens + ?6, reasoning_tokens = reasoning_tokens + ?7, cost_usd = ?8 \
                 WHERE id = ?1",
                rusqlite::params![
                    key,
                    ok,
                    failed,
                    n(tokens[0]),
                    n(tokens[1]),
                    n(tokens[2]),
                    n(tokens[3]),
                    cost.normalize().to_string()
                ],
            )?;
            tx.commit()
        })
        .await
}

/// Every line that never ran goes to the error file with `code`, counted as failed; how
/// many did.
async fn mark_unrun(store: &Store, id: &str, code: &'static str, message: &'static str) -> Result<usize, StoreError> {
    let key = id.to_owned();
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let rows: Vec<(i64, String)> = {
                let mut q =
                    tx.prepare("SELECT line, custom_id FROM batch_lines WHERE batch_id = ?1 AND outcome = 0")?;
                q.query_map([&key], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?
            };
            for (line, custom_id) in &rows {
                tx.execute(
                    "UPDATE batch_lines SET outcome = 2, result = ?3 WHERE batch_id = ?1 AND line = ?2",
                    rusqlite::params![key, line, line::unrun(custom_id, code, message)],
                )?;
            }
            tx.execute("UPDATE batches SET failed = failed + ?2 WHERE id = ?1", rusqlite::params![key, rows.len()])?;
            tx.commit().map(|()| rows.len())
        })
        .await
}
