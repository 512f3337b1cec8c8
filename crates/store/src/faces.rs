//! Face crops: adding an enrollment and reading the training set, with each
//! face's embedding (the `resnet` chip and descriptor) when it has one.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;
use crate::name::validate_name;
use crate::people::{PersonId, find_or_create_person};
use crate::store::{Store, bump_generation, unix_now};

/// A face crop's id: increasing in insertion order, never reused.
pub type FaceId = i64;

/// The eight bytes every PNG file starts with.
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// A face crop to enroll.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFace {
    /// Hash (for example SHA-256) of the source image the face was cut from:
    /// the same source is stored at most once per person.
    pub source_hash: [u8; 32],
    /// The crop, PNG-encoded.
    pub png: Vec<u8>,
    /// Width of the crop in pixels.
    pub width: u32,
    /// Height of the crop in pixels.
    pub height: u32,
    /// The face's embedding, if it was computed before storing.
    pub embedding: Option<Embedding>,
}

/// Length of a stored descriptor.
pub const DESCRIPTOR_LEN: usize = 128;

/// A face's `resnet` data: its aligned chip and its descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The aligned 150x150 RGB chip, PNG-encoded.
    pub chip_png: Vec<u8>,
    /// The 128-d descriptor.
    pub descriptor: [f32; DESCRIPTOR_LEN],
}

/// A stored face's descriptor, for the `resnet` index.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDescriptor {
    /// The face's id.
    pub id: FaceId,
    /// Whose face it is.
    pub person: PersonId,
    /// The descriptor.
    pub descriptor: [f32; DESCRIPTOR_LEN],
}

/// What [`Store::add_faces`] did with one face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// The face was stored under this new id.
    Added(FaceId),
    /// The person already has a face from the same source (same
    /// `source_hash`), stored under this id; nothing was stored.
    Duplicate(FaceId),
}

impl AddOutcome {
    /// The id of the stored face, new or existing.
    pub fn face_id(self) -> FaceId {
        match self {
            AddOutcome::Added(id) | AddOutcome::Duplicate(id) => id,
        }
    }

    /// Whether the face was newly stored.
    pub fn is_added(self) -> bool {
        matches!(self, AddOutcome::Added(_))
    }
}

/// A stored face crop, as read back for training.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFace {
    /// The face's id.
    pub id: FaceId,
    /// Whose face it is (the training label).
    pub person: PersonId,
    /// The crop, PNG-encoded.
    pub png: Vec<u8>,
    /// Width of the crop in pixels.
    pub width: u32,
    /// Height of the crop in pixels.
    pub height: u32,
}

impl Store {
    /// Adds faces of the person called `name` (created if new) in ONE
    /// transaction, committed (and synced to disk) before returning: once
    /// this returns `Ok`, the enrollment survives a crash. On error nothing
    /// is stored.
    ///
    /// Returns the person's id and one outcome per face, in order; a face
    /// whose `source_hash` the person already has (or that repeats an earlier
    /// face of the same call) is a [`AddOutcome::Duplicate`]. The generation
    /// is bumped iff at least one face was added. At least one face is
    /// required ([`StoreError::NoFaces`]), each must look like a PNG of
    /// non-zero size ([`StoreError::BadFace`]).
    pub fn add_faces(
        &mut self,
        name: &str,
        faces: &[NewFace],
    ) -> Result<(PersonId, Vec<AddOutcome>), StoreError> {
        validate_name(name)?;
        if faces.is_empty() {
            return Err(StoreError::NoFaces);
        }
        for (index, face) in faces.iter().enumerate() {
            check_face(index, face)?;
        }
        let now = unix_now();
        // IMMEDIATE takes the write lock up front, so the transaction cannot
        // fail half-way with "database is locked" when it starts writing.
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let person = find_or_create_person(&transaction, name, now)?;
        let outcomes = faces
            .iter()
            .map(|face| insert_face(&transaction, person, face, now))
            .collect::<Result<Vec<_>, _>>()?;
        if outcomes.iter().any(|outcome| outcome.is_added()) {
            bump_generation(&transaction)?;
        }
        transaction.commit()?;
        Ok((person, outcomes))
    }

    /// Every stored face in insertion (id) order: the training set.
    pub fn faces(&self) -> Result<Vec<StoredFace>, StoreError> {
        self.faces_after(FaceId::MIN)
    }

    /// The faces with an id greater than `after`, in id order (to update an
    /// incremental model such as LBPH with what was enrolled since).
    pub fn faces_after(&self, after: FaceId) -> Result<Vec<StoredFace>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, person_id, png, width, height FROM faces WHERE id > ?1 ORDER BY id",
        )?;
        let rows = statement.query_map([after], stored_face)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many faces the store holds, of everyone.
    pub fn face_total(&self) -> Result<u64, StoreError> {
        let faces: i64 = self
            .connection
            .prepare_cached("SELECT count(*) FROM faces")?
            .query_row([], |row| row.get(0))?;
        u64::try_from(faces)
            .map_err(|_| StoreError::Corrupt(format!("negative face count {faces}")))
    }

    /// The descriptor of every face that has one, in id order.
    pub fn descriptors(&self) -> Result<Vec<StoredDescriptor>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, person_id, descriptor FROM faces
             WHERE descriptor IS NOT NULL ORDER BY id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, FaceId>(0)?,
                row.get::<_, PersonId>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (id, person, bytes) = row?;
            Ok(StoredDescriptor {
                id,
                person,
                descriptor: descriptor_from_bytes(id, &bytes)?,
            })
        })
        .collect()
    }

    /// The faces that have no descriptor yet, in id order.
    pub fn faces_without_descriptor(&self) -> Result<Vec<StoredFace>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, person_id, png, width, height FROM faces
             WHERE descriptor IS NULL ORDER BY id",
        )?;
        let rows = statement.query_map([], stored_face)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the embedding of a stored face, computed after it was
    /// stored (the face set, and so the generation, does not change).
    /// Returns whether the face still exists.
    pub fn set_embedding(&mut self, id: FaceId, embedding: &Embedding) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached("UPDATE faces SET chip = ?2, descriptor = ?3 WHERE id = ?1")?
            .execute((
                id,
                &embedding.chip_png[..],
                descriptor_bytes(&embedding.descriptor),
            ))?;
        Ok(changed == 1)
    }

    /// The aligned chip (PNG) of a face, if it has one.
    pub fn chip(&self, id: FaceId) -> Result<Option<Vec<u8>>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT chip FROM faces WHERE id = ?1")?;
        let mut rows = statement.query([id])?;
        match rows.next()? {
            Some(row) => Ok(row.get(0)?),
            None => Ok(None),
        }
    }
}

fn stored_face(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredFace> {
    Ok(StoredFace {
        id: row.get(0)?,
        person: row.get(1)?,
        png: row.get(2)?,
        width: row.get(3)?,
        height: row.get(4)?,
    })
}

/// A descriptor as stored: 128 little-endian f32.
fn descriptor_bytes(d: &[f32; DESCRIPTOR_LEN]) -> Vec<u8> {
    d.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn descriptor_from_bytes(id: FaceId, bytes: &[u8]) -> Result<[f32; DESCRIPTOR_LEN], StoreError> {
    if bytes.len() != DESCRIPTOR_LEN * 4 {
        return Err(StoreError::Corrupt(format!(
            "face {id} has a descriptor of {} bytes, not {}",
            bytes.len(),
            DESCRIPTOR_LEN * 4
        )));
    }
    let mut d = [0f32; DESCRIPTOR_LEN];
    for (x, b) in d.iter_mut().zip(bytes.chunks_exact(4)) {
        *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(d)
}

/// Rejects a face that cannot be a usable crop.
fn check_face(index: usize, face: &NewFace) -> Result<(), StoreError> {
    let reason = if face.width == 0 || face.height == 0 {
        "its width or height is zero"
    } else if !face.png.starts_with(&PNG_SIGNATURE) {
        "its bytes are not PNG (no PNG signature)"
    } else {
        return Ok(());
    };
    Err(StoreError::BadFace { index, reason })
}

/// Stores one face of `person` unless they already have its source.
fn insert_face(
    connection: &Connection,
    person: PersonId,
    face: &NewFace,
    now: i64,
) -> Result<AddOutcome, StoreError> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO faces
                 (person_id, source_hash, png, width, height, added, chip, descriptor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (person_id, source_hash) DO NOTHING",
        )?
        .execute((
            person,
            &face.source_hash[..],
            &face.png[..],
            face.width,
            face.height,
            now,
            face.embedding.as_ref().map(|e| &e.chip_png[..]),
            face.embedding
                .as_ref()
                .map(|e| descriptor_bytes(&e.descriptor)),
        ))?;
    if inserted == 1 {
        return Ok(AddOutcome::Added(connection.last_insert_rowid()));
    }
    let existing = connection
        .prepare_cached("SELECT id FROM faces WHERE person_id = ?1 AND source_hash = ?2")?
        .query_row((person, &face.source_hash[..]), |row| row.get(0))?;
    Ok(AddOutcome::Duplicate(existing))
}
