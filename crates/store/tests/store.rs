//! Behaviour of the face store on real database files: round trips,
//! duplicates, generations, snapshots, names, schema checks and durability
//! of acknowledged enrollments across a SIGKILL.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Cursor, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use ocellus_store::{
    AddOutcome, DATABASE_FILE_NAME, Embedding, NameProblem, NewFace, PersonSummary, SCHEMA_VERSION,
    Store, StoreError,
};
use ocellus_testdata::noise_bytes;

/// A real PNG crop whose pixels (noise) and source hash are determined by
/// `seed`.
fn face(seed: u64) -> NewFace {
    let (width, height) = (24 + (seed % 7) as u32, 30);
    let pixels = image::GrayImage::from_raw(
        width,
        height,
        noise_bytes(seed, width as usize * height as usize),
    )
    .expect("buffer of width x height bytes");
    let mut png = Vec::new();
    pixels
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode PNG");
    NewFace {
        source_hash: hash(seed),
        png,
        width,
        height,
        embedding: None,
    }
}

/// A source hash that differs for every seed.
fn hash(seed: u64) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&seed.to_le_bytes());
    hash[31] = 0xA5;
    hash
}

fn added_ids(outcomes: &[AddOutcome]) -> Vec<i64> {
    outcomes
        .iter()
        .filter(|o| o.is_added())
        .map(|o| o.face_id())
        .collect()
}

#[test]
fn round_trip_on_disk_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested").join("data");
    let (alice, bob, alice_faces);
    {
        let mut store = Store::open(&data_dir).unwrap();
        assert!(data_dir.join(DATABASE_FILE_NAME).is_file());
        assert_eq!(store.people().unwrap(), vec![]);
        let outcomes;
        (alice, outcomes) = store.add_faces("Alice", &[face(1), face(2)]).unwrap();
        alice_faces = added_ids(&outcomes);
        assert_eq!(alice_faces.len(), 2);
        let (bob_id, _) = store.add_faces("Bob", &[face(3)]).unwrap();
        bob = bob_id;
        assert_ne!(alice, bob);
        store.save_snapshot("lbph", 2, b"model bytes").unwrap();
    }
    let store = Store::open(&data_dir).unwrap();
    assert_eq!(
        store.people().unwrap(),
        vec![
            PersonSummary {
                id: alice,
                name: "Alice".into(),
                faces: 2
            },
            PersonSummary {
                id: bob,
                name: "Bob".into(),
                faces: 1
            },
        ]
    );
    assert_eq!(store.person_id("Alice").unwrap(), Some(alice));
    assert_eq!(store.person_id("alice").unwrap(), None, "names are exact");
    let faces = store.faces().unwrap();
    let expected: Vec<_> = [(alice, face(1)), (alice, face(2)), (bob, face(3))]
        .into_iter()
        .map(|(person, new)| (person, new.png, new.width, new.height))
        .collect();
    let got: Vec<_> = faces
        .iter()
        .map(|f| (f.person, f.png.clone(), f.width, f.height))
        .collect();
    assert_eq!(got, expected);
    assert!(faces.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(faces[0].id, alice_faces[0]);
    assert_eq!(store.generation().unwrap(), 2);
    let snapshot = store.load_snapshot("lbph").unwrap().unwrap();
    assert_eq!(
        (snapshot.generation, &snapshot.bytes[..]),
        (2, &b"model bytes"[..])
    );
    assert_eq!(
        store.names().unwrap(),
        BTreeMap::from([(alice, "Alice".to_string()), (bob, "Bob".to_string())])
    );
}

#[test]
fn duplicates_are_per_person() {
    let mut store = Store::open_in_memory().unwrap();
    let (alice, first) = store.add_faces("Alice", &[face(1)]).unwrap();
    let AddOutcome::Added(first_id) = first[0] else {
        panic!("first face not added: {first:?}")
    };
    // Same person, same source: not stored again, even inside one call.
    let (again, outcomes) = store
        .add_faces("Alice", &[face(1), face(2), face(2)])
        .unwrap();
    assert_eq!(again, alice);
    let AddOutcome::Added(second_id) = outcomes[1] else {
        panic!("new face not added: {outcomes:?}")
    };
    assert_eq!(
        outcomes,
        vec![
            AddOutcome::Duplicate(first_id),
            AddOutcome::Added(second_id),
            AddOutcome::Duplicate(second_id),
        ]
    );
    // Another person with the same source image: stored.
    let (bob, outcomes) = store.add_faces("Bob", &[face(1)]).unwrap();
    assert_ne!(bob, alice);
    assert!(outcomes[0].is_added());
    assert_eq!(store.faces().unwrap().len(), 3);
    let counts: Vec<_> = store.people().unwrap().iter().map(|p| p.faces).collect();
    assert_eq!(counts, vec![2, 1]);
}

#[test]
fn generation_moves_exactly_when_the_face_set_changes() {
    let mut store = Store::open_in_memory().unwrap();
    assert_eq!(store.generation().unwrap(), 0);
    store.add_faces("Alice", &[face(1), face(2)]).unwrap();
    assert_eq!(store.generation().unwrap(), 1, "one call, one bump");
    store.add_faces("Alice", &[face(1)]).unwrap();
    assert_eq!(store.generation().unwrap(), 1, "only duplicates: no change");
    store.add_faces("Alice", &[face(2), face(3)]).unwrap();
    assert_eq!(
        store.generation().unwrap(),
        2,
        "one new face among duplicates"
    );
    store.save_snapshot("eigen", 2, b"e").unwrap();
    assert_eq!(store.generation().unwrap(), 2, "snapshots are not faces");
    assert_eq!(store.remove_person("Nobody").unwrap(), None);
    assert_eq!(store.generation().unwrap(), 2, "removing nobody: no change");
    assert!(matches!(
        store.add_faces("", &[face(9)]),
        Err(StoreError::BadName(_))
    ));
    assert_eq!(store.generation().unwrap(), 2, "failed add: no change");
    assert_eq!(store.remove_person("Alice").unwrap(), Some(3));
    assert_eq!(store.generation().unwrap(), 3);
}

#[test]
fn remove_person_takes_their_faces_and_never_reuses_the_id() {
    let mut store = Store::open_in_memory().unwrap();
    let (alice, _) = store.add_faces("Alice", &[face(1), face(2)]).unwrap();
    let (bob, _) = store.add_faces("Bob", &[face(3)]).unwrap();
    assert_eq!(store.remove_person("Alice").unwrap(), Some(2));
    assert_eq!(store.person_id("Alice").unwrap(), None);
    assert!(store.faces().unwrap().iter().all(|f| f.person == bob));
    assert_eq!(
        store.names().unwrap().keys().copied().collect::<Vec<_>>(),
        vec![bob]
    );
    // The same name again is a new person with a fresh id, and the old
    // sources are no longer duplicates.
    let (alice_again, outcomes) = store.add_faces("Alice", &[face(1)]).unwrap();
    assert!(alice_again > bob && alice_again != alice);
    assert!(outcomes[0].is_added());
    assert_eq!(store.remove_person("Alice").unwrap(), Some(1));
    assert_eq!(store.remove_person("Alice").unwrap(), None);
}

#[test]
fn faces_after_returns_only_newer_faces_in_order() {
    let mut store = Store::open_in_memory().unwrap();
    store.add_faces("Alice", &[face(1), face(2)]).unwrap();
    let last_seen = store.faces().unwrap().last().unwrap().id;
    assert_eq!(store.faces_after(last_seen).unwrap(), vec![]);
    let (bob, outcomes) = store.add_faces("Bob", &[face(3), face(4)]).unwrap();
    let newer = store.faces_after(last_seen).unwrap();
    assert_eq!(
        newer.iter().map(|f| f.id).collect::<Vec<_>>(),
        added_ids(&outcomes)
    );
    assert!(newer.iter().all(|f| f.person == bob));
    assert_eq!(newer[1].png, face(4).png);
    assert_eq!(store.faces_after(0).unwrap().len(), 4);
}

#[test]
fn face_total_counts_everyone_and_follows_removals() {
    let mut store = Store::open_in_memory().unwrap();
    assert_eq!(store.face_total().unwrap(), 0);
    store.add_faces("Alice", &[face(1), face(2)]).unwrap();
    store.add_faces("Bob", &[face(3), face(1)]).unwrap();
    store.add_faces("Bob", &[face(3)]).unwrap();
    assert_eq!(store.face_total().unwrap(), 4);
    store.remove_person("Alice").unwrap();
    assert_eq!(store.face_total().unwrap(), 2);
}

#[test]
fn snapshots_replace_and_are_per_algorithm() {
    let mut store = Store::open_in_memory().unwrap();
    assert_eq!(store.load_snapshot("eigen").unwrap(), None);
    store.save_snapshot("eigen", 1, b"first").unwrap();
    store.save_snapshot("fisher", 1, b"fisher").unwrap();
    store.save_snapshot("eigen", 4, b"second").unwrap();
    let eigen = store.load_snapshot("eigen").unwrap().unwrap();
    assert_eq!(
        (eigen.generation, eigen.bytes.as_slice()),
        (4, &b"second"[..])
    );
    assert!(
        eigen.created_unix_s > 1_600_000_000,
        "{}",
        eigen.created_unix_s
    );
    let fisher = store.load_snapshot("fisher").unwrap().unwrap();
    assert_eq!(fisher.bytes, b"fisher");
    assert_eq!(store.load_snapshot("lbph").unwrap(), None);
    assert!(matches!(
        store.save_snapshot("bad name", 1, b""),
        Err(StoreError::BadAlgorithm(_))
    ));
    assert!(matches!(
        store.save_snapshot("lbph", u64::MAX, b""),
        Err(StoreError::OutOfRange { .. })
    ));
}

#[test]
fn names_are_exact_unicode_data_never_paths() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let names = [
        "Zoë 李",
        "../../etc/passwd",
        "/tmp/x",
        " Alice",
        "Alice",
        "a'; DROP TABLE people; --",
    ];
    for (seed, name) in names.iter().enumerate() {
        store.add_faces(name, &[face(seed as u64)]).unwrap();
    }
    let mut sorted = names.to_vec();
    sorted.sort();
    let listed: Vec<_> = store
        .people()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(listed, sorted);
    for name in names {
        assert!(store.person_id(name).unwrap().is_some(), "{name:?}");
    }
    // Nothing but the database (and its WAL files) was created.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let file_name = entry.unwrap().file_name();
        let file_name = file_name.to_string_lossy();
        assert!(
            file_name.starts_with(DATABASE_FILE_NAME),
            "unexpected file {file_name}"
        );
    }
}

#[test]
fn invalid_input_is_rejected_and_changes_nothing() {
    let mut store = Store::open_in_memory().unwrap();
    let too_long = "x".repeat(ocellus_store::MAX_NAME_CHARS + 1);
    for bad in ["", "new\nline", "nul\0", too_long.as_str()] {
        assert!(
            matches!(
                store.add_faces(bad, &[face(1)]),
                Err(StoreError::BadName(_))
            ),
            "{bad:?}"
        );
        assert!(matches!(
            store.remove_person(bad),
            Err(StoreError::BadName(_))
        ));
        assert!(matches!(store.person_id(bad), Err(StoreError::BadName(_))));
    }
    assert!(matches!(
        store.add_faces("", &[face(1)]),
        Err(StoreError::BadName(NameProblem::Empty))
    ));
    assert!(matches!(
        store.add_faces("Alice", &[]),
        Err(StoreError::NoFaces)
    ));
    let mut not_png = face(2);
    not_png.png = b"GIF89a...".to_vec();
    let mut empty = face(3);
    empty.width = 0;
    for bad in [not_png, empty] {
        let result = store.add_faces("Alice", &[face(1), bad]);
        assert!(
            matches!(result, Err(StoreError::BadFace { index: 1, .. })),
            "{result:?}"
        );
    }
    assert_eq!(store.people().unwrap(), vec![], "no person half-created");
    assert_eq!(store.faces().unwrap(), vec![]);
    assert_eq!(store.generation().unwrap(), 0);
}

#[test]
fn two_handles_on_one_directory_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Store::open(dir.path()).unwrap();
    let reader = Store::open(dir.path()).unwrap();
    writer.add_faces("Alice", &[face(1)]).unwrap();
    assert_eq!(reader.people().unwrap().len(), 1);
    assert_eq!(reader.generation().unwrap(), 1);
}

fn embedding(seed: u64) -> Embedding {
    let mut descriptor = [0f32; 128];
    for (i, x) in descriptor.iter_mut().enumerate() {
        *x = (seed as f32 + 1.0) * (i as f32 - 64.0) / 1000.0;
    }
    Embedding {
        chip_png: face(seed + 1000).png,
        descriptor,
    }
}

#[test]
fn embeddings_are_stored_with_their_faces_and_can_be_added_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let with = NewFace {
        embedding: Some(embedding(1)),
        ..face(1)
    };
    let (_, outcomes) = store.add_faces("ada", &[with, face(2)]).unwrap();
    let ids = added_ids(&outcomes);
    let generation = store.generation().unwrap();
    let stored = store.descriptors().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, ids[0]);
    assert_eq!(stored[0].descriptor, embedding(1).descriptor, "bit-exact");
    assert_eq!(store.chip(ids[0]).unwrap(), Some(embedding(1).chip_png));
    let missing = store.faces_without_descriptor().unwrap();
    assert_eq!(
        missing.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );

    // Computed afterwards (an upgraded store): no change of the face set.
    assert!(store.set_embedding(ids[1], &embedding(2)).unwrap());
    assert!(!store.set_embedding(ids[1] + 100, &embedding(2)).unwrap());
    assert_eq!(store.generation().unwrap(), generation);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.faces_without_descriptor().unwrap().is_empty());
    let stored = store.descriptors().unwrap();
    assert_eq!(stored[1].descriptor, embedding(2).descriptor);
}

#[test]
fn a_version_1_store_is_upgraded_and_keeps_its_faces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE_FILE_NAME);
    // The version-1 schema, as the first release wrote it.
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT,
                 name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL) STRICT;
             CREATE TABLE faces (id INTEGER PRIMARY KEY AUTOINCREMENT,
                 person_id INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
                 source_hash BLOB NOT NULL CHECK (length(source_hash) = 32),
                 png BLOB NOT NULL, width INTEGER NOT NULL CHECK (width > 0),
                 height INTEGER NOT NULL CHECK (height > 0), added INTEGER NOT NULL,
                 UNIQUE (person_id, source_hash)) STRICT;
             CREATE TABLE snapshots (algorithm TEXT PRIMARY KEY,
                 generation INTEGER NOT NULL CHECK (generation >= 0),
                 bytes BLOB NOT NULL, created INTEGER NOT NULL) STRICT;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
             INSERT INTO meta (key, value) VALUES ('generation', 1);
             INSERT INTO people (name, created) VALUES ('bob', 0);
             PRAGMA application_id = 1329810515;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    let old = face(5);
    connection
        .execute(
            "INSERT INTO faces (person_id, source_hash, png, width, height, added)
             VALUES (1, ?1, ?2, ?3, ?4, 0)",
            (&old.source_hash[..], &old.png[..], old.width, old.height),
        )
        .unwrap();
    drop(connection);

    let mut store = Store::open(dir.path()).unwrap();
    let faces = store.faces().unwrap();
    assert_eq!(faces.len(), 1);
    assert_eq!(faces[0].png, old.png);
    assert_eq!(store.generation().unwrap(), 1);
    assert!(store.descriptors().unwrap().is_empty());
    assert_eq!(store.faces_without_descriptor().unwrap().len(), 1);
    assert!(store.set_embedding(faces[0].id, &embedding(5)).unwrap());
    assert_eq!(store.descriptors().unwrap().len(), 1);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 2);
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let path = dir.path().join(DATABASE_FILE_NAME);
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::NewerSchema { found, supported }) => {
            assert_eq!((found, supported), (newer, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, newer);
}

#[test]
fn garbage_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE_FILE_NAME);
    let garbage: Vec<u8> = b"this is not an SQLite database\n".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let error = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(error, StoreError::NotADatabase { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(DATABASE_FILE_NAME) && message.contains("not"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file was modified"
    );
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE_FILE_NAME);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE accounts (id INTEGER); INSERT INTO accounts VALUES (7);")
        .unwrap();
    let error = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(error, StoreError::ForeignDatabase { .. }),
        "{error:?}"
    );
    let tables: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .unwrap();
    assert_eq!(tables, 1, "the foreign database was modified");
}

#[test]
fn unusable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let error = Store::open(&file.join("data")).unwrap_err();
    assert!(matches!(error, StoreError::CreateDir { .. }), "{error:?}");
}

/// Set in the child process of [`acknowledged_faces_survive_sigkill`]: the
/// store directory it enrolls into.
const CRASH_CHILD_DIR: &str = "OCELLUS_STORE_CRASH_CHILD_DIR";
/// How many acknowledgements the parent waits for before killing the child.
const ACKS_BEFORE_KILL: usize = 40;

/// The child half of the crash test; does nothing in a normal test run.
/// It enrolls faces forever and prints "committed <seed> <face id>" after each
/// `add_faces` returns, until it is killed.
#[test]
fn crash_child_process() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else {
        return;
    };
    let mut store = Store::open(Path::new(&dir)).unwrap();
    let mut stdout = std::io::stdout().lock();
    for seed in 0u64.. {
        // Two faces per commit: one new, one new-or-duplicate.
        let faces = [face(seed), face(seed / 2)];
        let (_, outcomes) = store.add_faces(&crash_name(seed), &faces).unwrap();
        writeln!(stdout, "committed {seed} {}", outcomes[0].face_id()).unwrap();
        stdout.flush().unwrap();
    }
}

fn crash_name(seed: u64) -> String {
    format!("person {}", seed % 5)
}

/// An enrollment acknowledged by `add_faces` is in the database even if the
/// process is killed (SIGKILL, no cleanup) right after, typically in the
/// middle of the next transaction.
#[test]
fn acknowledged_faces_survive_sigkill() {
    if std::env::var_os(CRASH_CHILD_DIR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    let mut parse = |line: String| {
        if let Some(rest) = line.strip_prefix("committed ") {
            let (seed, id) = rest.split_once(' ').unwrap();
            acknowledged.push((seed.parse::<u64>().unwrap(), id.parse::<i64>().unwrap()));
        }
    };
    let mut before_kill = 0;
    while before_kill < ACKS_BEFORE_KILL {
        let Some(line) = lines.next() else { break };
        if line.as_ref().is_ok_and(|l| l.starts_with("committed ")) {
            before_kill += 1;
        }
        parse(line.unwrap());
    }
    child.kill().unwrap(); // SIGKILL on Unix
    // Acknowledgements written before the kill that we had not read yet.
    for line in lines {
        parse(line.unwrap());
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was expected to be killed");
    assert!(
        acknowledged.len() >= ACKS_BEFORE_KILL,
        "the child stopped after {} acknowledgements",
        acknowledged.len()
    );

    let store = Store::open(dir.path()).unwrap();
    let faces: BTreeMap<_, _> = store
        .faces()
        .unwrap()
        .into_iter()
        .map(|f| (f.id, f))
        .collect();
    let names = store.names().unwrap();
    for (seed, id) in &acknowledged {
        let stored = faces
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged face {id} (seed {seed}) is missing"));
        assert_eq!(stored.png, face(*seed).png, "face {id}");
        assert_eq!(names[&stored.person], crash_name(*seed), "face {id}");
    }
    let committed = acknowledged.len() as u64;
    assert!(store.generation().unwrap() >= committed);
}
