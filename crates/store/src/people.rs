//! People: listing, lookup, creation and removal.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;
use crate::name::validate_name;
use crate::store::{Store, bump_generation};

/// A person's id: assigned once, never reused (even after removal), and
/// always within `1..=i32::MAX` so it can serve as a recognizer's label.
pub type PersonId = i64;

/// The largest person id handed out, so that ids fit a 32-bit label.
const MAX_PERSON_ID: PersonId = i32::MAX as PersonId;

/// One enrolled person and how many face crops the store holds for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonSummary {
    /// The person's id (the recognizers' label).
    pub id: PersonId,
    /// The person's name, exactly as enrolled.
    pub name: String,
    /// Number of stored faces.
    pub faces: u64,
}

impl Store {
    /// Every person with their face count, sorted by name (Unicode code
    /// point order).
    pub fn people(&self) -> Result<Vec<PersonSummary>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT p.id, p.name, count(f.id)
             FROM people AS p LEFT JOIN faces AS f ON f.person_id = p.id
             GROUP BY p.id
             ORDER BY p.name",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, PersonId>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (id, name, faces) = row?;
            let faces = u64::try_from(faces)
                .map_err(|_| StoreError::Corrupt(format!("negative face count {faces}")))?;
            Ok(PersonSummary { id, name, faces })
        })
        .collect()
    }

    /// How many faces the person `id` has (0 for an unknown id).
    pub fn face_count(&self, id: PersonId) -> Result<u64, StoreError> {
        let faces: i64 = self.connection.query_row(
            "SELECT count(*) FROM faces WHERE person_id = ?1",
            [id],
            |row| row.get(0),
        )?;
        u64::try_from(faces)
            .map_err(|_| StoreError::Corrupt(format!("negative face count {faces}")))
    }

    /// The id of the person called exactly `name`, if enrolled.
    /// An invalid name is reported as [`StoreError::BadName`].
    pub fn person_id(&self, name: &str) -> Result<Option<PersonId>, StoreError> {
        validate_name(name)?;
        find_person(&self.connection, name)
    }

    /// Removes the person called `name` with all their faces, in one
    /// committed transaction, and bumps the generation. Returns the number of
    /// faces removed, or `None` (changing nothing) if there is no such person.
    /// Their id is never handed out again.
    pub fn remove_person(&mut self, name: &str) -> Result<Option<u64>, StoreError> {
        validate_name(name)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(id) = find_person(&transaction, name)? else {
            return Ok(None);
        };
        let faces: i64 = transaction
            .prepare_cached("SELECT count(*) FROM faces WHERE person_id = ?1")?
            .query_row([id], |row| row.get(0))?;
        // The faces go with the person through ON DELETE CASCADE.
        transaction
            .prepare_cached("DELETE FROM people WHERE id = ?1")?
            .execute([id])?;
        bump_generation(&transaction)?;
        transaction.commit()?;
        // Copy the zeroed pages into the database and empty the WAL, so
        // that the faces' old pages do not survive there either. Best
        // effort: a reader holding an old snapshot keeps the WAL until it
        // is done, and the next checkpoint finishes the job.
        let _ = self
            .connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        let faces = u64::try_from(faces)
            .map_err(|_| StoreError::Corrupt(format!("negative face count {faces}")))?;
        Ok(Some(faces))
    }

    /// The name of every person, by id: turns recognizer labels into names.
    pub fn names(&self) -> Result<BTreeMap<PersonId, String>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, name FROM people")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Looks a person up by exact name.
pub(crate) fn find_person(
    connection: &Connection,
    name: &str,
) -> Result<Option<PersonId>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT id FROM people WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?)
}

/// Returns the id of the person called `name`, creating them (inside the
/// caller's transaction) if needed. Fails with
/// [`StoreError::PersonIdsExhausted`] rather than hand out an id beyond
/// `i32::MAX`; the caller's transaction is then rolled back.
pub(crate) fn find_or_create_person(
    connection: &Connection,
    name: &str,
    now: i64,
) -> Result<PersonId, StoreError> {
    if let Some(id) = find_person(connection, name)? {
        return Ok(id);
    }
    connection
        .prepare_cached("INSERT INTO people (name, created) VALUES (?1, ?2)")?
        .execute((name, now))?;
    let id = connection.last_insert_rowid();
    if id > MAX_PERSON_ID {
        return Err(StoreError::PersonIdsExhausted);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AddOutcome, NewFace};

    fn face(seed: u8) -> NewFace {
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        png.push(seed);
        NewFace {
            source_hash: [seed; 32],
            png,
            width: 1,
            height: 1,
            embedding: None,
        }
    }

    #[test]
    fn a_removed_persons_faces_leave_the_file_and_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        // A marker no SQLite page would hold by chance.
        let marker: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
        let mut f = face(9);
        f.png.extend_from_slice(&marker);
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.add_faces("gone", &[f]).unwrap();
            store.add_faces("kept", &[face(1)]).unwrap();
            let contains = |needle: &[u8]| {
                std::fs::read_dir(dir.path()).unwrap().any(|e| {
                    let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
                    bytes.windows(needle.len()).any(|w| w == needle)
                })
            };
            assert!(contains(&marker), "the marker is stored before removal");
            assert_eq!(store.remove_person("gone").unwrap(), Some(1));
            assert!(
                !contains(&marker),
                "the removed face's bytes remain on disk"
            );
        }
    }

    #[test]
    fn person_ids_stop_at_i32_max() {
        let mut store = Store::open_in_memory().unwrap();
        store.add_faces("first", &[face(1)]).unwrap();
        store
            .connection
            .execute(
                "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'people'",
                [MAX_PERSON_ID - 1],
            )
            .unwrap();
        let (last, outcomes) = store.add_faces("last", &[face(2)]).unwrap();
        assert_eq!(last, MAX_PERSON_ID);
        assert!(matches!(outcomes[0], AddOutcome::Added(_)));
        let generation = store.generation().unwrap();
        assert!(matches!(
            store.add_faces("one too many", &[face(3)]),
            Err(StoreError::PersonIdsExhausted)
        ));
        assert_eq!(store.person_id("one too many").unwrap(), None);
        assert_eq!(store.generation().unwrap(), generation);
        assert_eq!(store.faces().unwrap().len(), 2);
        // Existing people can still be enrolled.
        assert!(store.add_faces("last", &[face(4)]).is_ok());
    }
}
