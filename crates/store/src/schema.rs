//! The database schema, its versioning and the connection settings.
//!
//! The schema version lives in SQLite's `PRAGMA user_version`; each entry of
//! [`MIGRATIONS`] moves the schema one version forward, so a file written by an
//! older build is upgraded on open, and a file from a newer build is refused
//! untouched. `PRAGMA application_id` marks the file as ours, so that pointing
//! the node at some other SQLite database cannot alter it.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::error::StoreError;

/// Name of the database file inside the data directory.
pub const DATABASE_FILE_NAME: &str = "ocellus.sqlite3";

/// The schema version this build writes (and the newest it can read).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `PRAGMA application_id` of an Ocellus store: "OCLS" in ASCII.
const APPLICATION_ID: i32 = 0x4F43_4C53;

/// How long a statement waits for another connection's write lock before
/// failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migration `i` turns a version-`i` schema into version `i + 1`.
/// Never edit a published entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // Version 1: people, faces, model snapshots and the face-set generation.
    // STRICT tables reject values of the wrong type, so a stored width is
    // always an integer. UNIQUE(person_id, source_hash) both forbids storing
    // one source image twice for a person and indexes faces by person.
    "CREATE TABLE people (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         name TEXT NOT NULL UNIQUE,
         created INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE faces (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         person_id INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
         source_hash BLOB NOT NULL CHECK (length(source_hash) = 32),
         png BLOB NOT NULL,
         width INTEGER NOT NULL CHECK (width > 0),
         height INTEGER NOT NULL CHECK (height > 0),
         added INTEGER NOT NULL,
         UNIQUE (person_id, source_hash)
     ) STRICT;
     CREATE TABLE snapshots (
         algorithm TEXT PRIMARY KEY,
         generation INTEGER NOT NULL CHECK (generation >= 0),
         bytes BLOB NOT NULL,
         created INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE meta (
         key TEXT PRIMARY KEY,
         value INTEGER NOT NULL
     ) STRICT;
     INSERT INTO meta (key, value) VALUES ('generation', 0);",
    // Version 2: the `resnet` recognizer's data of each face: its aligned
    // 150x150 RGB chip (PNG) and its 128-d descriptor (128 little-endian
    // f32, 512 bytes). NULL for faces stored before, or by a node without
    // the model files, until the recognition role computes them.
    "ALTER TABLE faces ADD COLUMN chip BLOB;
     ALTER TABLE faces ADD COLUMN descriptor BLOB
         CHECK (descriptor IS NULL OR length(descriptor) = 512);",
];

/// Turns an SQLite error met while first reading a file into a clear
/// "not a database" error when that is what it means.
pub(crate) fn classify_open_error(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::NotADatabase {
            path: path.to_path_buf(),
            source: error,
        },
        _ => StoreError::Sqlite(error),
    }
}

/// Applies the connection settings, checks the file is ours and brings its
/// schema up to [`SCHEMA_VERSION`].
pub(crate) fn prepare(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // Reading the header is the first real I/O: a file that is not SQLite
    // fails here. Check everything before any write (switching to WAL writes
    // the header), so a refused file is left exactly as it was.
    let (version, application_id) =
        read_version(connection).map_err(|e| classify_open_error(path, e))?;
    check_version(version)?;
    check_ours(connection, path, version, application_id)?;

    // WAL lets readers proceed during a write and makes each commit one
    // sequential append. On a file system without shared-memory support SQLite
    // keeps its rollback journal, which is equally safe, only slower; an
    // in-memory database reports "memory".
    let _mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| classify_open_error(path, e))?;
    // With WAL, synchronous=NORMAL only syncs the log at checkpoints: a commit
    // that returned could still be lost on power failure. FULL syncs the log on
    // every commit, so an enrollment acknowledged to a client is on disk. The
    // cost is one fsync per transaction, which is small next to face detection.
    connection.pragma_update(None, "synchronous", "FULL")?;
    // Removing a person removes their faces through ON DELETE CASCADE.
    connection.pragma_update(None, "foreign_keys", true)?;
    // Faces are biometric data: a removed face's crop, chip and descriptor
    // are overwritten with zeros in the file, not merely unlinked. Until
    // the WAL is checkpointed, older copies of those pages stay in the
    // `-wal` file; `remove_person` checkpoints it right after the delete.
    connection.pragma_update(None, "secure_delete", true)?;

    migrate(connection)
}

/// Reads `user_version` and `application_id` from the database header.
fn read_version(connection: &Connection) -> rusqlite::Result<(i64, i32)> {
    let version = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let application_id = connection.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    Ok((version, application_id))
}

/// Refuses a schema newer than this build understands.
fn check_version(version: i64) -> Result<(), StoreError> {
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Accepts a file marked as ours, or a brand-new empty one; refuses any other
/// SQLite database.
fn check_ours(
    connection: &Connection,
    path: &Path,
    version: i64,
    application_id: i32,
) -> Result<(), StoreError> {
    if application_id == APPLICATION_ID {
        return Ok(());
    }
    let objects: i64 = connection
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(|e| classify_open_error(path, e))?;
    if application_id == 0 && version == 0 && objects == 0 {
        return Ok(());
    }
    Err(StoreError::ForeignDatabase {
        path: path.to_path_buf(),
    })
}

/// Applies the missing migrations in one transaction. The version is read
/// again under the write lock, as another process may have migrated the file
/// in the meantime.
fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    check_version(version)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let first = usize::try_from(version)
        .map_err(|_| StoreError::Corrupt(format!("negative schema version {version}")))?;
    for migration in &MIGRATIONS[first..] {
        transaction.execute_batch(migration)?;
    }
    transaction.pragma_update(None, "application_id", APPLICATION_ID)?;
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()?;
    Ok(())
}
