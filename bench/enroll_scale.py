#!/usr/bin/env python3
"""Enrollment at scale (issue #14): 1,000 faces enrolled one by one, the
rate per 250 faces, the node's CPU while enrolling and the number of
background training rounds.

The node: `ocellus serve --roles recognize --without-models` on a fresh
data dir (lbph is the default algorithm and no resnet descriptor is
computed, so the run is about LBPH updates and the Eigen/Fisher trainer).
One client, one connection, sends ENROLL requests one after the other, each
with ONE face, and waits for each RESULT.

Faces: the ORL faces (DATA/faces/orl/sN/*.pgm, 40 people x 10) and the Yale
faces (DATA/faces/yale/subjectNN.*, 15 people x 11), person by person, as
greyscale PNG crops (the ENROLL form a detection node sends to a
recognition node: `"crops"`, docs/PROTOCOL.md); when they run out, the same
faces mirrored left to right, for the same people (new photos: nothing is
"already stored"). `--photos` sends them as photos to a node with every
role instead (the node detects the face; `largest_face`), which adds
detection to each enrollment.

Reported:

* faces/s for faces 1-250, 251-500, 501-750, 751-1000 (wall time from the
  first send of the slice to its last RESULT);
* the node's CPU while enrolling, in cores (utime + stime from
  /proc/PID/stat over the wall time), and per thread name
  (/proc/PID/task/*/stat), so the trainer's share shows beside the workers';
* training rounds: "models retrained" lines of the node's log during the
  enrollment, and in all once the node is idle again.

    python3 bench/enroll_scale.py [--faces 1000] [--slice 250] [--photos]
        [--bin target/release/ocellus] [--data DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The face benchmark's node and protocol helpers.
_spec = importlib.util.spec_from_file_location("face_load", REPO / "bench" / "face_load.py")
face_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(face_load)

ENROLL = face_load.ENROLL
TICK = os.sysconf("SC_CLK_TCK")


def face_files(data: Path) -> list[tuple[str, Path]]:
    """(person, file) for the ORL then the Yale faces, person by person."""
    out = []
    orl = data / "faces" / "orl"
    people = sorted((d for d in orl.iterdir() if d.is_dir()), key=lambda d: int(d.name[1:]))
    for d in people:
        files = sorted(d.glob("*.pgm"), key=lambda f: int(f.stem))
        out += [(f"orl-{d.name}", f) for f in files]
    yale = data / "faces" / "yale"
    for f in sorted(p for p in yale.iterdir() if p.name.startswith("subject")):
        out.append((f"yale-{f.name.split('.')[0]}", f))
    if not out:
        sys.exit(f"no faces under {data / 'faces'}")
    return out


def faces(data: Path, count: int) -> list[tuple[str, bytes]]:
    """`count` (person, PNG bytes) faces: the files, then mirrored."""
    from PIL import Image, ImageOps

    files = face_files(data)
    out = []
    variant = 0
    while len(out) < count:
        for person, path in files:
            if len(out) == count:
                break
            with Image.open(path) as im:
                im = im.convert("L")
                if variant % 2 == 1:
                    im = ImageOps.mirror(im)
                if variant >= 2:  # a third pass and beyond: shifted by a pixel per pass
                    im = im.crop((variant // 2, 0, im.width, im.height))
                buf = io.BytesIO()
                im.save(buf, "PNG")
            out.append((person, buf.getvalue()))
        variant += 1
    return out


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """{tid: (thread name, utime + stime)} of a process's live threads."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(task.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


def by_name(before: dict, after: dict, seconds: float) -> dict[str, float]:
    """CPU cores used per thread name between two thread_ticks samples
    (threads that ended in between are missed)."""
    used: dict[str, float] = collections.defaultdict(float)
    for tid, (name, ticks) in after.items():
        used[name] += (ticks - before.get(tid, (name, 0))[1]) / TICK / seconds
    return dict(sorted(used.items(), key=lambda kv: -kv[1]))


def rounds(log: Path) -> list[dict]:
    """The node's "models retrained" lines, as {generation, faces, ms}."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if "models retrained" in line:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            out.append({k: int(fields[k]) for k in ("generation", "faces", "ms") if k in fields})
    return out


def retrained(log: Path) -> int:
    return len(rounds(log))


def wait_trained(log: Path, generation: int, timeout: float = 600.0) -> float:
    """Waits until a round trained on `generation` is logged; returns the
    seconds waited (the timeout if it never came)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if any(r.get("generation") == generation for r in rounds(log)):
            break
        time.sleep(0.2)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=1000)
    ap.add_argument("--slice", type=int, default=250)
    ap.add_argument("--photos", action="store_true", help="ENROLL photos on a node with every role")
    ap.add_argument("--bin", type=Path, default=REPO / "target" / "release" / "ocellus")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    todo = faces(args.data, args.faces)
    with tempfile.TemporaryDirectory(prefix="ocellus-enroll-scale-") as tmp:
        tmp = Path(tmp)
        log = tmp / "node.log"
        cmd = [str(args.bin), "serve", "--listen", "127.0.0.1:0", "--http", "off", "--without-models",
               "--data-dir", str(tmp / "data")]
        if not args.photos:
            cmd += ["--roles", "recognize"]
        proc, addr = face_load.start(cmd, log)
        try:
            rows = run(proc, addr, log, todo, args)
        finally:
            face_load.stop(proc)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def run(proc, addr: str, log: Path, todo: list[tuple[str, bytes]], args) -> dict:
    pid = proc.pid
    slices = []
    stored = 0
    generation = 0
    with face_load.connect(addr) as sock:
        t_start = time.perf_counter()
        cpu_start, threads_start = cpu_ticks(pid), thread_ticks(pid)
        t0, c0 = t_start, cpu_start
        for i, (person, png) in enumerate(todo, 1):
            if args.photos:
                header = {"name": person, "images": [len(png)], "largest_face": True}
            else:
                header = {"name": person, "images": [len(png)], "crops": [{}]}
            result = face_load.call(sock, ENROLL, i, header, png)
            generation = max(generation, result.get("generation", 0))
            if args.photos:
                stored += sum(im.get("message") == "stored" for im in result["images"])
            else:
                stored += result["outcomes"].count("stored")
            if i % args.slice == 0 or i == len(todo):
                t1, c1 = time.perf_counter(), cpu_ticks(pid)
                n = i - (slices[-1]["last"] if slices else 0)
                slices.append({
                    "first": i - n + 1, "last": i, "faces_per_s": n / (t1 - t0),
                    "node_cores": (c1 - c0) / TICK / (t1 - t0), "rounds_so_far": retrained(log),
                })
                t0, c0 = t1, c1
        wall = time.perf_counter() - t_start
        cpu_end, threads_end = cpu_ticks(pid), thread_ticks(pid)
    rounds_burst = retrained(log)
    # The Eigen/Fisher models of the last enrollment, then an idle node.
    trained_after = wait_trained(log, generation)
    cpu_trained = cpu_ticks(pid)
    idle_wait = face_load.wait_idle([proc])
    rows = {
        "faces": len(todo), "stored": stored, "wall_s": wall, "slices": slices,
        "node_cores": (cpu_end - cpu_start) / TICK / wall,
        "threads": by_name(threads_start, threads_end, wall),
        "rounds_during_burst": rounds_burst, "rounds_total": retrained(log), "rounds": rounds(log),
        "generation": generation, "trained_after_s": trained_after,
        "training_cpu_after_s": (cpu_trained - cpu_end) / TICK,
        "idle_after_s": idle_wait, "mode": "photos" if args.photos else "crops",
        "bin": str(args.bin),
    }
    print(f"{rows['faces']} faces enrolled one by one ({rows['mode']}), {stored} stored, {wall:.1f} s")
    print(f"{'faces':>11} {'faces/s':>8} {'node cores':>10} {'rounds':>7}")
    for s in slices:
        print(f"{s['first']:>5}-{s['last']:<5} {s['faces_per_s']:>8.1f} {s['node_cores']:>10.2f} "
              f"{s['rounds_so_far']:>7}")
    print(f"node CPU while enrolling: {rows['node_cores']:.2f} cores; by thread: "
          + ", ".join(f"{k} {v:.2f}" for k, v in rows["threads"].items() if v >= 0.01))
    print(f"training rounds: {rounds_burst} during the enrollment, {rows['rounds_total']} in all; "
          f"models of the last face (generation {generation}) {trained_after:.1f} s after it "
          f"({rows['training_cpu_after_s']:.1f} s of CPU)")
    print("rounds (generation faces ms): "
          + ", ".join(f"{r.get('generation')} {r.get('faces')} {r.get('ms')}" for r in rows["rounds"]))
    return rows


if __name__ == "__main__":
    sys.exit(main())
