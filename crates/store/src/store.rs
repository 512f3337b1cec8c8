//! The [`Store`] handle: opening the database and the face-set generation.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use crate::error::StoreError;
use crate::schema::{self, DATABASE_FILE_NAME};

/// An open face store: one SQLite connection.
///
/// Methods that change data take `&mut self` and run one transaction each,
/// committed before they return. A `Store` is `Send` but not `Sync`; share it
/// behind a mutex. Several `Store`s (even in several processes) may open the
/// same directory: SQLite serialises their writes.
#[derive(Debug)]
pub struct Store {
    pub(crate) connection: Connection,
}

impl Store {
    /// Opens (creating if needed) `dir/ocellus.sqlite3`, creating `dir` if it
    /// is missing.
    ///
    /// The database runs in WAL mode with `synchronous = FULL` (every commit
    /// is on disk before it is acknowledged), foreign keys on and a busy
    /// timeout. Its schema is migrated forward to [`crate::SCHEMA_VERSION`].
    /// Errors: [`StoreError::NewerSchema`] for a file from a newer Ocellus,
    /// [`StoreError::NotADatabase`] for a corrupt or non-SQLite file,
    /// [`StoreError::ForeignDatabase`] for another program's SQLite file.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DATABASE_FILE_NAME);
        let mut connection =
            Connection::open(&path).map_err(|e| schema::classify_open_error(&path, e))?;
        schema::prepare(&mut connection, &path)?;
        Ok(Store { connection })
    }

    /// Opens a private, empty store in memory (for tests and tools); its
    /// content is lost when it is dropped.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let mut connection = Connection::open_in_memory()?;
        schema::prepare(&mut connection, &PathBuf::from(":memory:"))?;
        Ok(Store { connection })
    }

    /// A counter bumped by every change of the face set (faces added, person
    /// removed), persisted with the data. A model snapshot trained on an older
    /// generation is stale.
    pub fn generation(&self) -> Result<u64, StoreError> {
        let value: i64 = self.connection.query_row(
            "SELECT value FROM meta WHERE key = 'generation'",
            [],
            |row| row.get(0),
        )?;
        u64::try_from(value)
            .map_err(|_| StoreError::Corrupt(format!("negative generation {value}")))
    }
}

/// Adds one to the face-set generation, inside the caller's transaction.
pub(crate) fn bump_generation(connection: &Connection) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'generation'")?
        .execute([])?;
    Ok(())
}

/// Seconds since the Unix epoch (0 if the clock is set before 1970).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma<T: rusqlite::types::FromSql>(store: &Store, name: &str) -> T {
        store
            .connection
            .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn file_store_uses_wal_full_sync_and_foreign_keys() {
        let dir =
            std::env::temp_dir().join(format!("ocellus-store-pragmas-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        let mode: String = pragma(&store, "journal_mode");
        let synchronous: i64 = pragma(&store, "synchronous");
        let foreign_keys: i64 = pragma(&store, "foreign_keys");
        let busy_timeout: i64 = pragma(&store, "busy_timeout");
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(synchronous, 2, "2 is FULL");
        assert_eq!(foreign_keys, 1);
        assert!(busy_timeout > 0);
    }

    #[test]
    fn negative_generation_is_reported_as_corruption() {
        let store = Store::open_in_memory().unwrap();
        store
            .connection
            .execute("UPDATE meta SET value = -1 WHERE key = 'generation'", [])
            .unwrap();
        assert!(matches!(store.generation(), Err(StoreError::Corrupt(_))));
    }
}
