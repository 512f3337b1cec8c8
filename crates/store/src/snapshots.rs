//! Model snapshots: the latest trained model of each algorithm.

use rusqlite::OptionalExtension;

use crate::error::StoreError;
use crate::store::{Store, unix_now};

/// The longest accepted algorithm name, in characters.
pub const MAX_ALGORITHM_CHARS: usize = 32;

/// A stored model snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The face-set generation the model was trained on: the snapshot is
    /// stale if [`Store::generation`] has moved on.
    pub generation: u64,
    /// The serialised model, as given to [`Store::save_snapshot`].
    pub bytes: Vec<u8>,
    /// When it was saved, in seconds since the Unix epoch.
    pub created_unix_s: i64,
}

/// Checks an algorithm name: 1 to [`MAX_ALGORITHM_CHARS`] ASCII letters,
/// digits, `-` or `_` (such as "eigen", "fisher", "lbph"), so that names stay
/// short keys and a typo cannot smuggle odd text into the database.
pub fn validate_algorithm(algorithm: &str) -> Result<(), StoreError> {
    let well_formed = !algorithm.is_empty()
        && algorithm.len() <= MAX_ALGORITHM_CHARS
        && algorithm
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if well_formed {
        Ok(())
    } else {
        Err(StoreError::BadAlgorithm(algorithm.to_owned()))
    }
}

impl Store {
    /// Stores the model snapshot of `algorithm` trained on face-set
    /// `generation`, replacing the previous snapshot of that algorithm, in one
    /// committed transaction.
    pub fn save_snapshot(
        &mut self,
        algorithm: &str,
        generation: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        validate_algorithm(algorithm)?;
        let stored_generation = i64::try_from(generation).map_err(|_| StoreError::OutOfRange {
            what: "snapshot generation",
            value: generation,
        })?;
        self.connection
            .prepare_cached(
                "INSERT INTO snapshots (algorithm, generation, bytes, created)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (algorithm) DO UPDATE SET
                     generation = excluded.generation,
                     bytes = excluded.bytes,
                     created = excluded.created",
            )?
            .execute((algorithm, stored_generation, bytes, unix_now()))?;
        Ok(())
    }

    /// The latest snapshot of `algorithm`, if one was saved.
    pub fn load_snapshot(&self, algorithm: &str) -> Result<Option<Snapshot>, StoreError> {
        validate_algorithm(algorithm)?;
        let row = self
            .connection
            .prepare_cached(
                "SELECT generation, bytes, created FROM snapshots WHERE algorithm = ?1",
            )?
            .query_row([algorithm], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get(2)?,
                ))
            })
            .optional()?;
        row.map(|(generation, bytes, created_unix_s)| {
            let generation = u64::try_from(generation).map_err(|_| {
                StoreError::Corrupt(format!("negative snapshot generation {generation}"))
            })?;
            Ok(Snapshot {
                generation,
                bytes,
                created_unix_s,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names() {
        for good in ["eigen", "fisher", "lbph", "lbph-v2", "a_1"] {
            assert!(validate_algorithm(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(MAX_ALGORITHM_CHARS + 1);
        for bad in ["", "eigen faces", "../x", "é", "a;b", too_long.as_str()] {
            assert!(
                matches!(validate_algorithm(bad), Err(StoreError::BadAlgorithm(_))),
                "{bad:?}"
            );
        }
    }
}
