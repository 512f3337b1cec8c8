#!/usr/bin/env python3
"""Side-by-side timing of `ocellus detect` and OpenCV's detectMultiScale.

Same images (the shared photos set), same cascade files, same parameters,
measured in one run and interleaved image by image (so that load from other
processes hits both sides alike). For each of the three frontal-face
cascades it prints the median over images of the per-image median detection
time, single-threaded and with all threads, and the ratio ours / OpenCV
(below 1.0 means we are faster).

Timing covers detection only, not decoding:
  * OpenCV: one untimed warm-up call, then the median of --repeats calls of
    detectMultiScale on the greyscale image (cv2.setNumThreads(1) for the
    single-thread mode, OpenCV's default thread count otherwise);
  * ours: `ocellus detect --local --json --repeat N`, which reports the
    median "detect_ms" of N runs (RAYON_NUM_THREADS=1 for the single-thread
    mode, rayon's default otherwise).

It also counts the images on which both return the same boxes (JPEG decoding
still differs from cv2.imread until the codec matches libjpeg-turbo, so a few
JPEGs can differ for that reason alone).

Build first:  cargo build --release -p ocellus
Usage:        python3 bench/compare_detect.py [--photos DIR] [--bin PATH]
                  [--repeats N] [--limit N] [--cascades default,alt2,lbp]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".pgm", ".ppm")

CASCADES = {
    "default": {
        "label": "Haar default (minSize 30)",
        "file": "haarcascade_frontalface_default.xml",
        "dirs": ["haarcascades"],
        "cv": {"scaleFactor": 1.1, "minNeighbors": 3, "minSize": (30, 30)},
        "ours": ["--scale-factor", "1.1", "--min-neighbors", "3", "--min-size", "30"],
    },
    "alt2": {
        "label": "Haar alt2 (defaults)",
        "file": "haarcascade_frontalface_alt2.xml",
        "dirs": ["haarcascades"],
        "cv": {},
        "ours": ["--scale-factor", "1.1", "--min-neighbors", "3", "--min-size", "0"],
    },
    "lbp": {
        "label": "LBP improved",
        "file": "lbpcascade_frontalface_improved.xml",
        "dirs": ["lbpcascades"],
        "cv": {"scaleFactor": 1.1, "minNeighbors": 3},
        "ours": ["--scale-factor", "1.1", "--min-neighbors", "3", "--min-size", "0"],
    },
}


def find_cascade(spec):
    roots = []
    if os.environ.get("OCELLUS_CASCADE_DIR"):
        roots.append(Path(os.environ["OCELLUS_CASCADE_DIR"]))
    roots += [Path("/usr/share/opencv4"), Path("/usr/local/share/opencv4")]
    candidates = []
    for root in roots:
        candidates.append(root / spec["file"])
        candidates += [root / d / spec["file"] for d in spec["dirs"]]
    haar_data = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if haar_data:
        candidates.append(Path(haar_data) / spec["file"])
    for c in candidates:
        if c.is_file():
            return c
    sys.exit(f"cannot find {spec['file']} (apt-get install opencv-data)")


def default_bin():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "ocellus"


def default_photos():
    data = os.environ.get("OCELLUS_TEST_DATA")
    base = Path(data) if data else ROOT.parent / "shared" / "data"
    return base / "photos"


def time_opencv(classifier, gray, params, repeats):
    classifier.detectMultiScale(gray, **params)
    times = []
    boxes = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        boxes = classifier.detectMultiScale(gray, **params)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), sorted(map(tuple, (b.tolist() for b in boxes))) if len(boxes) else []


def time_ours(binary, cascade, args, path, repeats, single_thread):
    env = dict(os.environ)
    if single_thread:
        env["RAYON_NUM_THREADS"] = "1"
    else:
        env.pop("RAYON_NUM_THREADS", None)
    cmd = [str(binary), "detect", "--local", "--json", "--repeat", str(repeats),
           "--cascade", str(cascade), *args, str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    line = json.loads(out.stdout.strip().splitlines()[-1])
    boxes = sorted((f["x"], f["y"], f["width"], f["height"]) for f in line["faces"])
    return line["detect_ms"], boxes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=default_photos())
    ap.add_argument("--bin", type=Path, default=default_bin())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--cascades", default="default,alt2,lbp")
    opts = ap.parse_args()

    if not opts.bin.is_file():
        sys.exit(f"{opts.bin} not found: build with `cargo build --release -p ocellus` or pass --bin")
    files = sorted(p for p in opts.photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if opts.limit:
        files = files[: opts.limit]
    grays = {}
    for p in files:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is not None:
            grays[p] = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    files = [p for p in files if p in grays]

    cv2.ocl.setUseOpenCL(False)
    default_threads = cv2.getNumThreads()
    print(f"{len(files)} images from {opts.photos}; {opts.repeats} timed runs per image; "
          f"OpenCV {cv2.__version__} (default threads {default_threads}); "
          f"cpu count {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}", flush=True)

    rows = []
    for key in opts.cascades.split(","):
        spec = CASCADES[key]
        cascade = find_cascade(spec)
        classifier = cv2.CascadeClassifier(str(cascade))
        for single in (True, False):
            cv2.setNumThreads(1 if single else default_threads)
            ours_ms, cv_ms, same = [], [], 0
            for p in files:
                o_ms, o_boxes = time_ours(opts.bin, cascade, spec["ours"], p, opts.repeats, single)
                c_ms, c_boxes = time_opencv(classifier, grays[p], spec["cv"], opts.repeats)
                ours_ms.append(o_ms)
                cv_ms.append(c_ms)
                same += o_boxes == c_boxes
            o, c = statistics.median(ours_ms), statistics.median(cv_ms)
            mode = "1 thread" if single else f"all threads ({default_threads})"
            rows.append((spec["label"], mode, c, o, o / c, same, len(files)))
            print(f"  {spec['label']}, {mode}: OpenCV {c:.1f} ms, ours {o:.1f} ms, "
                  f"ratio {o / c:.2f}, same boxes {same}/{len(files)}", flush=True)
    cv2.setNumThreads(default_threads)

    print()
    print("| cascade | threads | OpenCV ms (median/image) | ours ms (median/image) | ours / OpenCV | same boxes |")
    print("|---|---|---:|---:|---:|---:|")
    for label, mode, c, o, r, same, n in rows:
        print(f"| {label} | {mode} | {c:.1f} | {o:.1f} | {r:.2f} | {same}/{n} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
