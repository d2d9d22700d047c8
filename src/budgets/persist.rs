//! Budget spend in the embedded store (`budget_spend`): restored when the gateway
//! starts, and written behind the request path by one task that wakes when spend
//! changes, at most once per [`WRITE_EVERY`]. A settle never waits for SQLite; a crash
//! loses at most the spend booked since the last write (a tenth of a second's worth),
//! and a clean shutdown writes what is left.

use std::sync::Arc;
use std::time::Duration;

use super::{Budgets, ClientBudget};
use crate::store::{Store, StoreError, unix_now};

/// Wait after a failed write before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The least time from one write to the next: spend settled meanwhile goes into the
/// next write. A write per settle (a transaction on the blocking pool, and a thread
/// woken for it) cost more CPU than the request itself at 2,000 requests/s
/// (docs/benchmarks.md, "Budgets and shared state on the request path"); ten writes a
/// second cost under a microsecond per request there.
pub const WRITE_EVERY: Duration = Duration::from_millis(100);

/// Load each client's spend for its current period.
pub async fn restore(budgets: &Budgets, store: &Store) -> Result<(), StoreError> {
    let now = super::now_secs();
    let wanted: Vec<(Arc<ClientBudget>, u64)> =
        budgets.iter().map(|b| (Arc::clone(b), b.balance(now).period_start)).collect();
    let keys: Vec<(String, i64)> =
        wanted.iter().map(|(b, start)| (b.limits.client.clone(), i64::try_from(*start).unwrap_or(i64::MAX))).collect();
    let found: Vec<Option<i64>> = store
        .call(move |c| {
            let mut query =
                c.prepare("SELECT spent_nanos FROM budget_spend WHERE client = ?1 AND period_start = ?2")?;
            keys.iter()
                .map(|(client, start)| {
                    let mut rows = query.query(rusqlite::params![client, start])?;
                    rows.next()?.map(|row| row.get::<_, i64>(0)).transpose()
                })
                .collect()
        })
        .await?;
    for ((budget, start), spent) in wanted.iter().zip(found) {
        if let Some(spent) = spent.and_then(|s| u64::try_from(s).ok()) {
            budget.restore(*start, spent);
        }
    }
    Ok(())
}

/// Write every client's changed spend (the period's whole amount) in one transaction.
pub async fn flush(budgets: &Budgets, store: &Store) -> Result<(), StoreError> {
    let changed: Vec<(Arc<ClientBudget>, u64, u64)> =
        budgets.iter().filter_map(|b| b.take_dirty().map(|(start, spent)| (Arc::clone(b), start, spent))).collect();
    if changed.is_empty() {
        return Ok(());
    }
    let rows: Vec<(String, i64, i64)> = changed
        .iter()
        .map(|(b, start, spent)| {
            let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            (b.limits.client.clone(), as_i64(*start), as_i64(*spent))
        })
        .collect();
    let written = store
        .call(move |c| {
            let tx = c.transaction()?;
            for (client, start, spent) in &rows {
                tx.execute(
                    "INSERT INTO budget_spend (client, period_start, spent_nanos, updated_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (client, period_start) DO UPDATE SET spent_nanos = max(spent_nanos, excluded.spent_nanos), \
                     updated_at = excluded.updated_at",
                    rusqlite::params![client, start, spent, unix_now()],
                )?;
            }
            tx.commit()
        })
        .await;
    if written.is_err() {
        // Not written: try these again with the next write.
        for (b, _, _) in &changed {
            b.mark_dirty();
        }
    }
    written
}

/// Write spend whenever it changes, at most once per [`WRITE_EVERY`], for as long as
/// the gateway runs.
pub async fn write_behind(budgets: Arc<Budgets>, store: Store) {
    loop {
        budgets.changed.notified().await;
        let written = tokio::time::Instant::now();
        if let Err(error) = flush(&budgets, &store).await {
            tracing::warn!(error = %error, "could not write budget spend to the store; retrying");
            tokio::time::sleep(RETRY_AFTER).await;
            budgets.changed.notify_one();
        }
        // Settles meanwhile leave one permit behind: the next write takes them all.
        tokio::time::sleep_until(written + WRITE_EVERY).await;
    }
}
