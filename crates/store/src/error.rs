//! The store's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Why a person's name was rejected by [`crate::validate_name`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameProblem {
    /// The name is the empty string.
    #[error("the name is empty")]
    Empty,
    /// The name has more characters than [`crate::MAX_NAME_CHARS`].
    #[error("the name has {chars} characters, more than the limit of {limit}")]
    TooLong {
        /// Number of characters (Unicode scalar values) in the name.
        chars: usize,
        /// The limit, [`crate::MAX_NAME_CHARS`].
        limit: usize,
    },
    /// The name contains a control character such as `\0` or `\n`.
    #[error("the name contains the control character {character:?} at character {position}")]
    ControlCharacter {
        /// The offending character.
        character: char,
        /// Its index, counted in characters from 0.
        position: usize,
    },
}

/// Everything that can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A person's name is not acceptable (see [`crate::validate_name`]).
    #[error("invalid person name: {0}")]
    BadName(#[from] NameProblem),
    /// A model algorithm name is not acceptable (see [`crate::validate_algorithm`]).
    #[error(
        "invalid algorithm name {0:?}: expected 1 to {max} ASCII letters, digits, '-' or '_'",
        max = crate::MAX_ALGORITHM_CHARS
    )]
    BadAlgorithm(String),
    /// A face handed to [`crate::Store::add_faces`] is not acceptable.
    #[error("face #{index} is invalid: {reason}")]
    BadFace {
        /// Position of the face in the slice, from 0.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`crate::Store::add_faces`] was called without any face.
    #[error("no faces to add: an enrollment needs at least one face")]
    NoFaces,
    /// A number does not fit the store's (SQLite's signed 64-bit) range.
    #[error("{what} {value} is out of range for the store")]
    OutOfRange {
        /// What the number is.
        what: &'static str,
        /// The number.
        value: u64,
    },
    /// Every person id that fits an `i32` recognizer label has been used.
    #[error("no more person ids: ids are never reused and must fit a 32-bit label")]
    PersonIdsExhausted,
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not an SQLite database, or it is damaged.
    #[error("{path} is not a readable SQLite database (corrupt or not a database): {source}")]
    NotADatabase {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        source: rusqlite::Error,
    },
    /// The file is an SQLite database, but not an Ocellus one.
    #[error("{path} is an SQLite database that does not belong to Ocellus; refusing to modify it")]
    ForeignDatabase {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer Ocellus with a schema this one does not know.
    #[error(
        "the database schema version is {found}, newer than the {supported} this program \
         understands: upgrade Ocellus (the file was left untouched)"
    )]
    NewerSchema {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows, [`crate::SCHEMA_VERSION`].
        supported: i64,
    },
    /// A stored value is impossible (for example a negative width): the file was altered.
    #[error("the database holds an invalid value: {0}")]
    Corrupt(String),
    /// Any other SQLite failure (I/O error, disk full, locked for too long...).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}
