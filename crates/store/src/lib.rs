//! The Ocellus face store: people, their face crops and model snapshots.
//!
//! A node's recognition role keeps everything it learns in one SQLite file,
//! `ocellus.sqlite3`, in its data directory:
//!
//! - **people**: a stable numeric id (never reused, fits an `i32` so it can be
//!   a recognizer label) and a name, which is data only (never a path);
//! - **faces**: the PNG crop of each enrolled face with the hash of the image
//!   it came from; the same source image is never stored twice for one person;
//!   with, once computed, its `resnet` embedding (aligned chip and 128-d
//!   descriptor);
//! - **snapshots**: the latest serialised model of each algorithm, tagged with
//!   the *generation* of the face set it was trained on, so that a restarted
//!   node can reuse a snapshot unless the faces have changed since.
//!
//! Every change is one transaction that has committed (and reached the disk,
//! see [`Store::open`]) before the call returns: an acknowledged enrollment
//! survives a crash. The API is synchronous; callers that need concurrency
//! wrap the [`Store`] in a mutex and call it from blocking threads.

#![warn(missing_docs)]

mod error;
mod faces;
mod name;
mod people;
mod schema;
mod snapshots;
mod store;

pub use error::{NameProblem, StoreError};
pub use faces::{
    AddOutcome, DESCRIPTOR_LEN, Embedding, FaceId, NewFace, StoredDescriptor, StoredFace,
};
pub use name::{MAX_NAME_CHARS, validate_name};
pub use people::{PersonId, PersonSummary};
pub use schema::{DATABASE_FILE_NAME, SCHEMA_VERSION};
pub use snapshots::{MAX_ALGORITHM_CHARS, Snapshot, validate_algorithm};
pub use store::Store;
