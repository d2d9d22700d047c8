//! The embedded store: one SQLite database in WAL mode plus a folder of file contents,
//! under `store.dir`. It owns opening them, the schema's migrations and the one
//! connection; what is stored belongs to the features that store it.
//!
//! SQLite calls block, so every call from the gateway goes through [`Store::call`], which
//! runs it on tokio's blocking pool, never on an event loop. One connection behind a
//! mutex is enough: writes are serialised by SQLite anyway, and the rows written are
//! small (file contents live in files, not in the database).
//!
//! Migrations are named, not numbered, so features written side by side each add their
//! own without colliding: `schema_version` records every name applied, and [`MIGRATIONS`]
//! runs, in order, each one not yet recorded, inside one transaction with its record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension as _};

/// The database's file name inside `store.dir`.
pub const DATABASE: &str = "flexgate.db";
/// The folder of file contents inside `store.dir`.
pub const FILES: &str = "files";
/// The file whose lock the process that has the store open holds (`store.dir`).
pub const LOCK: &str = "flexgate.lock";

/// One step of the schema: a name recorded once applied, and the SQL that applies it.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in the order they run. Append; never edit or reorder one that shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration { name: "files_and_batches", sql: include_str!("store/files_and_batches.sql") },
    Migration { name: "budget_spend", sql: include_str!("store/budget_spend.sql") },
];

/// Why the store could not be opened or a call on it failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create `{path}`")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process has the store open: two writers would each resume the other's
    /// batches and overwrite each other's budget spend.
    #[error("`{}` is in use by another flexgate process (pid in the file): each process needs a `store.dir` of its own", path.display())]
    Locked { path: PathBuf },
    #[error("SQLite")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration `{name}`")]
    Migration {
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The blocking task was cancelled or panicked.
    #[error("the store's worker stopped")]
    Worker,
}

/// The open store; cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<Inner>);

struct Inner {
    connection: Mutex<Connection>,
    dir: PathBuf,
    files: PathBuf,
    /// Held (locked) for as long as the store is open; the kernel lets go of it when the
    /// process dies, so a killed process leaves no stale lock behind.
    lock: std::fs::File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.0.dir).finish_non_exhaustive()
    }
}

impl Store {
    /// Open (creating when missing) the store under `dir` and run the migrations not yet
    /// applied. Blocking: call it from a blocking context or [`Store::open_async`].
    pub fn open(dir: &Path, migrations: &[Migration]) -> Result<Store, StoreError> {
        let files = dir.join(FILES);
        std::fs::create_dir_all(&files).map_err(|source| StoreError::Create { path: files.clone(), source })?;
        let lock = lock(dir)?;
        let mut connection = Connection::open(dir.join(DATABASE))?;
        // WAL: readers never wait for the writer, and a commit is one append. `NORMAL`
        // sync in WAL mode survives a killed process (not a power cut mid-commit), which
        // is the durability promised: what was acknowledged was committed.
        connection.busy_timeout(Duration::from_secs(5))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut connection, migrations)?;
        Ok(Store(Arc::new(Inner { connection: Mutex::new(connection), dir: dir.to_path_buf(), files, lock })))
    }

    /// [`Store::open`] on the blocking pool.
    pub async fn open_async(dir: PathBuf) -> Result<Store, StoreError> {
        tokio::task::spawn_blocking(move || Store::open(&dir, MIGRATIONS)).await.map_err(|_| StoreError::Worker)?
    }

    /// Run `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || f(&mut inner.connection.lock()))
            .await
            .map_err(|_| StoreError::Worker)?
            .map_err(StoreError::Sqlite)
    }

    /// Run `f` with the connection on the current thread: for code already on the
    /// blocking pool (a file being written there), never on an event loop.
    pub fn call_blocking<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        f(&mut self.0.connection.lock()).map_err(StoreError::Sqlite)
    }

    /// Let another process (or a gateway started again in this one) open the store: the
    /// server calls it when it has stopped and is done with the store.
    pub fn unlock(&self) {
        let _ = self.0.lock.unlock();
    }

    /// The store's folder (`store.dir`).
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// The folder file contents are kept in.
    pub fn files_dir(&self) -> &Path {
        &self.0.files
    }
}

/// Take the store's lock for this process, or say that another process holds it. The
/// holder's pid is written into the file, for whoever looks.
fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::Write as _;
    let path = dir.join(LOCK);
    let create = |source| StoreError::Create { path: path.clone(), source };
    let mut file =
        std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(create)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path }),
        Err(std::fs::TryLockError::Error(source)) => return Err(create(source)),
    }
    file.set_len(0).and_then(|()| writeln!(file, "{}", std::process::id())).map_err(create)?;
    Ok(file)
}

/// Apply, in order, each migration `schema_version` does not record yet.
fn migrate(connection: &mut Connection, migrations: &[Migration]) -> Result<(), StoreError> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for migration in migrations {
        let tx = connection.transaction()?;
        let applied: Option<i64> = tx
            .query_row("SELECT applied_at FROM schema_version WHERE name = ?1", [migration.name], |row| row.get(0))
            .optional()?;
        if applied.is_none() {
            let apply = |tx: &rusqlite::Transaction<'_>| {
                tx.execute_batch(migration.sql)?;
                tx.execute(
                    "INSERT INTO schema_version (name, applied_at) VALUES (?1, ?2)",
                    rusqlite::params![migration.name, unix_now()],
                )
            };
            apply(&tx).map_err(|source| StoreError::Migration { name: migration.name, source })?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// The store of a running gateway: opened once, at start-up when `store.dir` already
/// exists (so unfinished work there resumes), else when a feature first needs it (so a
/// gateway that never stores anything leaves no folder behind).
#[derive(Debug)]
pub struct Opened {
    dir: PathBuf,
    cell: tokio::sync::OnceCell<Store>,
}

impl Opened {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, cell: tokio::sync::OnceCell::new() }
    }

    /// The store, opening it on first use.
    pub async fn get(&self) -> Result<&Store, StoreError> {
        self.cell.get_or_try_init(|| Store::open_async(self.dir.clone())).await
    }

    /// The store if it is open already.
    pub fn if_open(&self) -> Option<&Store> {
        self.cell.get()
    }

    /// Open it now if its folder exists (start-up), reporting why it could not be.
    pub async fn open_if_present(&self) -> Result<Option<&Store>, StoreError> {
        if self.dir.is_dir() { self.get().await.map(Some) } else { Ok(None) }
    }
}

/// Seconds since the Unix epoch, as stored timestamps are.
pub fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Migration = Migration { name: "first", sql: "CREATE TABLE a (x INTEGER);" };
    const SECOND: Migration = Migration { name: "second", sql: "CREATE TABLE b (y TEXT);" };

    fn applied(store: &Store) -> Vec<String> {
        store
            .call_blocking(|c| {
                let mut query = c.prepare("SELECT name FROM schema_version ORDER BY rowid")?;
                query.query_map([], |row| row.get(0))?.collect()
            })
            .unwrap()
    }

    #[test]
    fn a_store_open_in_one_process_is_refused_to_another_until_it_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path(), &[FIRST]).unwrap();
        // A second open file description conflicts like a second process would.
        let second = Store::open(dir.path(), &[FIRST]).unwrap_err();
        assert!(matches!(second, StoreError::Locked { .. }), "{second:?}");
        assert!(second.to_string().contains("store.dir"), "{second}");
        let pid = std::fs::read_to_string(dir.path().join(LOCK)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        drop(first);
        Store::open(dir.path(), &[FIRST]).unwrap();
    }

    #[test]
    fn opens_in_wal_mode_and_runs_each_migration_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[FIRST]).unwrap();
        let mode: String = store.call_blocking(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0))).unwrap();
        assert_eq!(mode, "wal");
        assert!(store.files_dir().is_dir());
        store.call_blocking(|c| c.execute("INSERT INTO a (x) VALUES (7)", [])).unwrap();
        drop(store);

        // Reopened with one more migration: the first is not run again (its table and
        // row survive), the second is.
        let store = Store::open(dir.path(), &[FIRST, SECOND]).unwrap();
        assert_eq!(applied(&store), ["first", "second"]);
        let x: i64 = store.call_blocking(|c| c.query_row("SELECT x FROM a", [], |r| r.get(0))).unwrap();
        assert_eq!(x, 7);
        store.call_blocking(|c| c.execute("INSERT INTO b (y) VALUES ('z')", [])).unwrap();
    }

    #[test]
    fn a_failing_migration_is_named_and_leaves_nothing_half_applied() {
        let dir = tempfile::tempdir().unwrap();
        let broken = Migration { name: "broken", sql: "CREATE TABLE c (z INTEGER); NOT SQL;" };
        let error = Store::open(dir.path(), &[FIRST, broken]).unwrap_err();
        assert!(matches!(error, StoreError::Migration { name: "broken", .. }), "{error:?}");
        let store = Store::open(dir.path(), &[FIRST]).unwrap();
        assert_eq!(applied(&store), ["first"]);
        let tables: i64 = store
            .call_blocking(|c| c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'c'", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(tables, 0, "the failed migration's table was rolled back");
    }

    #[tokio::test]
    async fn calls_run_off_the_event_loop() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_async(dir.path().to_path_buf()).await.unwrap();
        let tables: i64 =
            store.call(|c| c.query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))).await.unwrap();
        assert_eq!(usize::try_from(tables).unwrap(), MIGRATIONS.len());
    }
}
