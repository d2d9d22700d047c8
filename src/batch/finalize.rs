//! The end of a batch: its output file (one line per successful request) and error file
//! (every other line) written from the committed results, in input order, registered as
//! `batch_output` files, and the final status committed with them.

use std::io::{BufWriter, Write as _};

use rusqlite::Connection;

use super::files::{THIRTY_DAYS, path_of};
use super::objects::file_id;
use crate::store::{Store, StoreError, unix_now};

/// Which of the final statuses the batch ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Completed,
    Expired,
    Cancelled,
}

impl Ending {
    fn status(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Self::Completed => "completed_at",
            Self::Expired => "expired_at",
            Self::Cancelled => "cancelled_at",
        }
    }
}

fn io(error: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(error))
}

/// Write both files and commit the end. The files are written under temporary names and
/// renamed before the commit, so a crash in between leaves the batch `finalizing` (done
/// again on restart) and at worst an unreferenced file behind.
pub async fn finish(store: &Store, batch_id: &str, end: Ending) -> Result<(), StoreError> {
    let (store2, id) = (store.clone(), batch_id.to_owned());
    store.call(move |c| write(c, &store2, &id, end)).await
}

fn write(c: &mut Connection, store: &Store, batch_id: &str, end: Ending) -> rusqlite::Result<()> {
    let owner: String = c.query_row("SELECT owner FROM batches WHERE id = ?1", [batch_id], |r| r.get(0))?;
    let ids = [file_id(), file_id()];
    let parts = ids.each_ref().map(|id| store.files_dir().join(format!("{id}.part")));
    let mut writers = [0, 1].map(|i| std::fs::File::create(&parts[i]).map(BufWriter::new));
    let mut sizes = [0u64; 2];
    {
        let mut query =
            c.prepare("SELECT outcome, result FROM batch_lines WHERE batch_id = ?1 AND outcome > 0 ORDER BY line")?;
        let mut rows = query.query([batch_id])?;
        while let Some(row) = rows.next()? {
            let which = usize::from(row.get::<_, i64>(0)? != 1);
            let result: String = row.get(1)?;
            let writer = writers[which].as_mut().map_err(|e| io(std::io::Error::new(e.kind(), e.to_string())))?;
            writer.write_all(result.as_bytes()).and_then(|()| writer.write_all(b"\n")).map_err(io)?;
            sizes[which] += result.len() as u64 + 1;
        }
    }
    for (i, writer) in writers.into_iter().enumerate() {
        let file = writer.and_then(|w| w.into_inner().map_err(std::io::IntoInnerError::into_error)).map_err(io)?;
        file.sync_all().map_err(io)?;
        if sizes[i] > 0 {
            std::fs::rename(&parts[i], path_of(store, &ids[i])).map_err(io)?;
        } else {
            let _ = std::fs::remove_file(&parts[i]);
        }
    }
    let now = unix_now();
    let tx = c.transaction()?;
    let mut file_ids: [Option<&str>; 2] = [None, None];
    for (i, name) in ["output", "error"].into_iter().enumerate() {
        if sizes[i] == 0 {
            continue;
        }
        tx.execute(
            "INSERT INTO files (id, owner, purpose, filename, bytes, created_at, expires_at) \
             VALUES (?1, ?2, 'batch_output', ?3, ?4, ?5, ?6)",
            rusqlite::params![
                ids[i],
                owner,
                format!("{batch_id}_{name}.jsonl"),
                i64::try_from(sizes[i]).unwrap_or(i64::MAX),
                now,
                now + THIRTY_DAYS
            ],
        )?;
        file_ids[i] = Some(&ids[i]);
    }
    let sql = format!(
        "UPDATE batches SET status = ?2, output_file_id = ?3, error_file_id = ?4, {column} = COALESCE({column}, ?5) \
         WHERE id = ?1",
        column = end.column()
    );
    tx.execute(&sql, rusqlite::params![batch_id, end.status(), file_ids[0], file_ids[1], now])?;
    tx.commit()
}
