#!/usr/bin/env python3
"""Side-by-side timing of ocellus-embed against dlib on the oracle faces.

The faces are the 313 of data/oracle/dlib_*.json: the network runs on
dlib's own chips (data/oracle/dlib_chips/), landmarks and chips on the
photos with the oracle boxes. Measured in one run:

  - net_ms: the network alone on one chip, one thread (median over faces of
    the median of --repeats calls after one untimed call); also the CPU time
    per face, since the machine is shared and wall time overstates it;
  - batch faces/s: all chips with --threads workers. Ours: one
    `descriptors()` call on a rayon pool of that size. dlib starts no threads
    on this path, so it gets --threads worker processes, each with its share;
  - landmarks_ms and chip_ms: one face, one thread.

Ours runs as `crates/embed/examples/embed_timing` (built with cargo
--release unless --bin is given); dlib is the dlib-bin wheel
(`pip install dlib-bin`). The ratio is ours / dlib (below 1: ours is
faster).

Usage:
    python3 bench/compare_embed.py [--data DIR] [--models DIR] [--repeats N]
        [--threads N] [--limit N] [--bin PATH] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLES = ["dlib_people.json", "dlib_people_lbpboxes.json", "dlib_photos.json"]
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE = "shape_predictor_5_face_landmarks.dat"


def oracle_faces(data, limit):
    faces = []
    for name in ORACLES:
        with open(os.path.join(data, "oracle", name)) as f:
            v = json.load(f)
        folder = v["folders"][0]
        folder = os.path.join(data, folder[len("data/"):] if folder.startswith("data/") else folder)
        for key, rec in v["images"].items():
            for face in rec.get("faces", []):
                b = face["box"]
                png = face["chip_png"]
                faces.append((os.path.join(folder, key),
                              (b["left"], b["top"], b["right"], b["bottom"]),
                              os.path.join(data, png[len("data/"):] if png.startswith("data/") else png)))
    return faces[:limit]


def median_call(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def load_chip(path):
    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))


def dlib_worker(args):
    models, pngs = args
    import dlib
    net = dlib.face_recognition_model_v1(os.path.join(models, RESNET))
    chips = [load_chip(p) for p in pngs]
    for c in chips:
        net.compute_face_descriptor(c, 0)
    return len(chips)


def time_dlib(faces, models, repeats, threads):
    import dlib
    sp = dlib.shape_predictor(os.path.join(models, SHAPE))
    net = dlib.face_recognition_model_v1(os.path.join(models, RESNET))
    chips = [load_chip(png) for _, _, png in faces]
    net_ms = []
    cpu0, n_calls = time.thread_time(), 0
    for c in chips:
        net_ms.append(median_call(lambda: net.compute_face_descriptor(c, 0), repeats))
        n_calls += repeats + 1
    net_cpu = (time.thread_time() - cpu0) * 1e3 / n_calls
    lms, chip_ms = [], []
    last = None
    for path, box, _ in faces:
        if last is None or last[0] != path:
            last = (path, np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))))
        img = last[1]
        rect = dlib.rectangle(*box)
        lms.append(median_call(lambda: sp(img, rect), repeats))
        shape = sp(img, rect)
        chip_ms.append(median_call(lambda: dlib.get_face_chip(img, shape, 150, 0.25), repeats))
    # Throughput: `threads` processes, each with its share of the chips
    # (each process loads the model before the clock starts).
    pngs = [png for _, _, png in faces]
    shares = [pngs[i::threads] for i in range(threads)]
    with mp.get_context("fork").Pool(threads) as pool:
        pool.map(dlib_worker, [(models, s[:1]) for s in shares])  # warm the pool
        t0 = time.perf_counter()
        done = sum(pool.map(dlib_worker, [(models, s) for s in shares]))
        batch_s = time.perf_counter() - t0
    # The workers' load time counts against dlib here; measure it to report.
    t0 = time.perf_counter()
    dlib.face_recognition_model_v1(os.path.join(models, RESNET))
    load_ms = (time.perf_counter() - t0) * 1e3
    return {
        "impl": "dlib " + dlib.__version__,
        "faces": len(chips),
        "net_ms_per_face_1thread": statistics.median(net_ms),
        "net_cpu_ms_per_face_1thread": net_cpu,
        "landmarks_ms": statistics.median(lms),
        "chip_ms": statistics.median(chip_ms),
        "threads": threads,
        "batch_faces_per_s": done / batch_s,
        "batch_note": f"{threads} processes; each loads the network inside the timed "
                      f"section ({load_ms:.0f} ms per load)",
    }


def time_ours(args):
    if args.bin:
        cmd = [args.bin]
    else:
        cmd = ["cargo", "run", "-q", "--release", "-p", "ocellus-embed", "--example", "embed_timing", "--"]
    cmd += ["--data", args.data, "--models", args.models, "--repeats", str(args.repeats),
            "--threads", str(args.threads)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("OCELLUS_TEST_DATA",
                                                     os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--models", default=os.environ.get(
        "OCELLUS_MODEL_DIR", os.path.expanduser("~/.local/share/ocellus/models")))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="first N faces only")
    ap.add_argument("--bin", help="a built embed_timing binary")
    ap.add_argument("--json", help="write both results here")
    args = ap.parse_args()
    args.data = os.path.abspath(args.data)

    faces = oracle_faces(args.data, args.limit or None)
    print(f"{len(faces)} faces; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    ours = time_ours(args)
    theirs = time_dlib(faces, args.models, args.repeats, args.threads)

    rows = [("network, 1 thread (ms/face, wall)", "net_ms_per_face_1thread"),
            ("network, 1 thread (ms/face, CPU)", "net_cpu_ms_per_face_1thread"),
            (f"batch, {args.threads} workers (faces/s)", "batch_faces_per_s"),
            ("landmarks (ms/face)", "landmarks_ms"),
            ("chip (ms/face)", "chip_ms")]
    print(f"{'step':40} {'ours':>10} {'dlib':>10} {'ours/dlib':>10}")
    for label, key in rows:
        a, b = ours[key], theirs[key]
        print(f"{label:40} {a:10.3f} {b:10.3f} {a / b:10.3f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ours": ours, "dlib": theirs, "loadavg": os.getloadavg()}, f, indent=1)


if __name__ == "__main__":
    main()
