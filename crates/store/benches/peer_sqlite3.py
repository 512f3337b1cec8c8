#!/usr/bin/env python3
"""Side-by-side peer for `cargo bench -p ocellus-store`: the same operations
with Python's sqlite3 module (the C SQLite library), same schema and pragmas
(WAL, synchronous=FULL, foreign keys), 100x100 greyscale PNG faces.

Prints the peer's medians, and the ratio ours/peer when criterion's results
are found under $CARGO_TARGET_DIR/criterion (default ../../target/criterion).

    python3 crates/store/benches/peer_sqlite3.py
"""
import io
import json
import os
import statistics
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 100
SCHEMA = """
CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
                     created INTEGER NOT NULL) STRICT;
CREATE TABLE faces (id INTEGER PRIMARY KEY AUTOINCREMENT,
                    person_id INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
                    source_hash BLOB NOT NULL, png BLOB NOT NULL, width INTEGER NOT NULL,
                    height INTEGER NOT NULL, added INTEGER NOT NULL,
                    UNIQUE (person_id, source_hash)) STRICT;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
INSERT INTO meta VALUES ('generation', 0);
"""


def face_png(seed):
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(SIDE), np.arange(SIDE))
    pixels = np.minimum((x + y) * 255 // (2 * SIDE) + rng.integers(0, 24, (SIDE, SIDE)), 255)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "L").save(out, "PNG")
    return out.getvalue()


def open_db(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    db.executescript(SCHEMA)
    return db


def add_faces(db, name, faces):
    """One enrollment: the same statements as Store::add_faces, one transaction."""
    now = int(time.time())
    db.execute("BEGIN IMMEDIATE")
    row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
    if row is None:
        db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, now))
        person = db.execute("SELECT last_insert_rowid()").fetchone()[0]
    else:
        person = row[0]
    added = False
    for source_hash, png in faces:
        cur = db.execute(
            "INSERT INTO faces (person_id, source_hash, png, width, height, added) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (person_id, source_hash) DO NOTHING",
            (person, source_hash, png, SIDE, SIDE, now))
        added |= cur.rowcount == 1
    if added:
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    db.execute("COMMIT")


def median_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def criterion_median(name):
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path(__file__).resolve().parents[3] / "target"))
    path = target / "criterion" / name / "new" / "estimates.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"] / 1e9


def main():
    parent = os.environ.get("OCELLUS_STORE_BENCH_DIR")
    pngs = [face_png(seed) for seed in range(64)]
    print(f"face PNG size: {len(pngs[0])} bytes")
    results = {}
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        db = open_db(os.path.join(tmp, "add.sqlite3"))
        counter = iter(range(10**9))

        def add_one():
            i = next(counter)
            add_faces(db, "bench person", [(i.to_bytes(32, "little"), pngs[i % 64])])

        for _ in range(50):
            add_one()
        results["add_faces/one_face_one_commit"] = median_of(add_one, 1000)

        db = open_db(os.path.join(tmp, "read.sqlite3"))
        for person in range(50):
            add_faces(db, f"person {person}", [
                ((person * 10 + i).to_bytes(32, "little"), pngs[(person * 10 + i) % 64])
                for i in range(10)])

        def read_all():
            rows = db.execute(
                "SELECT id, person_id, png, width, height FROM faces ORDER BY id").fetchall()
            assert len(rows) == 500

        def people():
            db.execute("SELECT p.id, p.name, count(f.id) FROM people AS p LEFT JOIN faces AS f "
                       "ON f.person_id = p.id GROUP BY p.id ORDER BY p.name").fetchall()

        read_all()
        results["faces/500_faces_100x100_png"] = median_of(read_all, 200)
        results["faces/people_50_with_counts"] = median_of(people, 2000)

    print(f"{'benchmark':36} {'ours':>10} {'peer':>10} {'ours/peer':>9}")
    for name, peer in results.items():
        ours = criterion_median(name)
        ours_text = f"{ours * 1e3:8.3f}ms" if ours else "       n/a"
        ratio = f"{ours / peer:9.2f}" if ours else "      n/a"
        print(f"{name:36} {ours_text} {peer * 1e3:8.3f}ms {ratio}")


if __name__ == "__main__":
    main()
