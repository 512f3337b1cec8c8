#!/usr/bin/env python3
"""Side-by-side timing of our face recognizers against OpenCV's.

ORL protocol A (for each of the 40 subjects, images 1-5 train, 6-10 test:
200 training and 200 test faces of 92x112), for Eigenfaces (default: all N
components), Fisherfaces (default: C-1) and LBPH (radius 1, 8 neighbours,
8x8 grid), no threshold.

Measured, as medians over --runs runs after one untimed warm-up:

  - train_s: wall time of training on the 200 faces (fresh recognizer);
  - predict_ms: wall time of one predict(), averaged over the 200 test faces;
  - model size: ours, the binary file `--save-model` writes; OpenCV's, the
    YAML `recognizer.write("x.yml")` writes.

Ours: `ocellus eval --algorithm A --train T --test E --threshold inf --json
--timings` (one process per run; train_s / predict_ms are measured inside
the process around train() and each predict(), images already decoded).
OpenCV: the same calls in this Python process, images decoded beforehand.

Modes: "1 thread": ours with RAYON_NUM_THREADS=1 (rayon and faer then run
sequentially); OpenCV with cv2.setNumThreads(1) and one OpenBLAS thread
(OpenCV's wheel routes matrix products and inversions through its bundled
OpenBLAS, which cv2.setNumThreads does not limit). "all threads": everyone's
default. The ratio is ours / OpenCV (below 1: ours is faster).

The script also checks that both give the same accuracy.

Usage:
    python3 bench/compare_recognize.py [--runs N] [--bin PATH] [--data DIR]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
ALGOS = ["eigen", "fisher", "lbph"]


class OpenBlasThreads:
    """Finds the OpenBLAS that cv2 loaded and sets its thread count."""

    def __init__(self) -> None:
        self.lib = None
        try:
            with open("/proc/self/maps") as maps:
                libs = sorted({l.split()[-1] for l in maps if "openblas" in l.lower()})
        except OSError:
            libs = []
        for path in libs:
            if not os.path.isfile(path):
                continue
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_num_threads.restype = ctypes.c_int
                lib.openblas_set_num_threads.argtypes = [ctypes.c_int]
            except (OSError, AttributeError):
                continue
            if self.lib is None or "opencv" in path:
                self.lib = lib
        self.default = self.get()

    def get(self):
        return int(self.lib.openblas_get_num_threads()) if self.lib else None

    def set(self, n) -> None:
        if self.lib and n is not None:
            self.lib.openblas_set_num_threads(int(n))


def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("OCELLUS_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def make_protocol_a(orl: Path) -> tuple[Path, Path]:
    """bench/out/orl_a/{train,test}/sN/K.pgm as symlinks into the ORL set."""
    root = OUT / "orl_a"
    for part, images in (("train", range(1, 6)), ("test", range(6, 11))):
        for s in range(1, 41):
            d = root / part / f"s{s}"
            d.mkdir(parents=True, exist_ok=True)
            for i in images:
                link = d / f"{i}.pgm"
                if not link.exists():
                    link.symlink_to((orl / f"s{s}" / f"{i}.pgm").resolve())
    return root / "train", root / "test"


def run_ours(binary: str, algo: str, train: Path, test: Path, threads: int | None,
             model_path: Path | None) -> dict:
    cmd = [binary, "eval", "--algorithm", algo, "--train", str(train), "--test", str(test),
           "--threshold", "inf", "--json", "--timings"]
    if model_path is not None:
        cmd += ["--save-model", str(model_path)]
    env = dict(os.environ)
    env.pop("RAYON_NUM_THREADS", None)
    if threads is not None:
        env["RAYON_NUM_THREADS"] = str(threads)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def time_ours(binary, algo, train, test, threads, runs):
    run_ours(binary, algo, train, test, threads, None)  # warm-up (page cache)
    results = [run_ours(binary, algo, train, test, threads, None) for _ in range(runs)]
    return {
        "train_s": statistics.median(r["train_s"] for r in results),
        "predict_ms": statistics.median(r["predict_ms"] for r in results),
        "accuracy": results[0]["accuracy"],
    }


def time_opencv(cv2, np, algo, train_imgs, labels, test_imgs, truth, runs):
    factory = {
        "eigen": cv2.face.EigenFaceRecognizer_create,
        "fisher": cv2.face.FisherFaceRecognizer_create,
        "lbph": cv2.face.LBPHFaceRecognizer_create,
    }[algo]
    m = factory()
    m.train(train_imgs, labels)
    for img in test_imgs[:10]:
        m.predict(img)
    train_s, predict_ms = [], []
    correct = 0
    for _ in range(runs):
        m = factory()
        t0 = time.perf_counter()
        m.train(train_imgs, labels)
        t1 = time.perf_counter()
        preds = [m.predict(img)[0] for img in test_imgs]
        t2 = time.perf_counter()
        train_s.append(t1 - t0)
        predict_ms.append(1e3 * (t2 - t1) / len(test_imgs))
        correct = sum(int(p == t) for p, t in zip(preds, truth))
    return {
        "train_s": statistics.median(train_s),
        "predict_ms": statistics.median(predict_ms),
        "accuracy": correct / len(truth),
    }


def opencv_model_size(cv2, algo, train_imgs, labels) -> int:
    factory = {
        "eigen": cv2.face.EigenFaceRecognizer_create,
        "fisher": cv2.face.FisherFaceRecognizer_create,
        "lbph": cv2.face.LBPHFaceRecognizer_create,
    }[algo]
    m = factory()
    m.train(train_imgs, labels)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, algo + ".yml")
        m.write(path)
        return os.path.getsize(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "ocellus"))
    ap.add_argument("--data", default=None, help="shared data folder (holds faces/orl)")
    ap.add_argument("--json", default=None, help="also write all figures to this file")
    args = ap.parse_args()

    import cv2
    import numpy as np

    orl = data_dir(args.data) / "faces" / "orl"
    if not orl.is_dir():
        print(f"ORL data not found at {orl}", file=sys.stderr)
        return 1
    if not os.path.isfile(args.bin):
        print(f"ocellus binary not found at {args.bin}; build it with "
              "`cargo build --release -p ocellus` or pass --bin", file=sys.stderr)
        return 1
    train_dir, test_dir = make_protocol_a(orl)
    train_keys = [(s, i) for s in range(1, 41) for i in range(1, 6)]
    test_keys = [(s, i) for s in range(1, 41) for i in range(6, 11)]
    load = lambda s, i: cv2.imread(str(orl / f"s{s}" / f"{i}.pgm"), cv2.IMREAD_GRAYSCALE)
    train_imgs = [load(s, i) for s, i in train_keys]
    labels = np.array([s for s, _ in train_keys], dtype=np.int32)
    test_imgs = [load(s, i) for s, i in test_keys]
    truth = [s for s, _ in test_keys]

    blas = OpenBlasThreads()
    cv_default = cv2.getNumThreads()
    results = {"runs": args.runs, "modes": {}, "model_bytes": {}}
    modes = {"1 thread": (1, 1, 1), "all threads": (None, cv_default, blas.default)}
    for mode, (ours_threads, cv_threads, blas_threads) in modes.items():
        cv2.setNumThreads(cv_threads)
        blas.set(blas_threads)
        results["modes"][mode] = {}
        for algo in ALGOS:
            ours = time_ours(args.bin, algo, train_dir, test_dir, ours_threads, args.runs)
            theirs = time_opencv(cv2, np, algo, train_imgs, labels, test_imgs, truth, args.runs)
            results["modes"][mode][algo] = {"ours": ours, "opencv": theirs}
            print(f"{mode:>11} {algo:6} train {ours['train_s']:.4f}s vs {theirs['train_s']:.4f}s, "
                  f"predict {ours['predict_ms']:.4f}ms vs {theirs['predict_ms']:.4f}ms, "
                  f"accuracy {ours['accuracy']:.3f} vs {theirs['accuracy']:.3f}",
                  file=sys.stderr)
    cv2.setNumThreads(cv_default)
    blas.set(blas.default)

    with tempfile.TemporaryDirectory() as tmp:
        for algo in ALGOS:
            path = Path(tmp) / f"{algo}.ocm"
            run_ours(args.bin, algo, train_dir, test_dir, None, path)
            results["model_bytes"][algo] = {
                "ours": path.stat().st_size,
                "opencv": opencv_model_size(cv2, algo, train_imgs, labels),
            }

    print(f"ORL protocol A (200 train, 200 test, 92x112), median of {args.runs} runs; "
          "ratio = ours / OpenCV (below 1: ours faster)\n")
    print("| algorithm | threads | train ours (s) | train OpenCV (s) | ratio "
          "| predict ours (ms/image) | predict OpenCV (ms/image) | ratio | accuracy ours / OpenCV |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, per_algo in results["modes"].items():
        for algo, r in per_algo.items():
            o, c = r["ours"], r["opencv"]
            print(f"| {algo} | {mode} | {o['train_s']:.4f} | {c['train_s']:.4f} | "
                  f"{o['train_s'] / c['train_s']:.3f} | {o['predict_ms']:.4f} | "
                  f"{c['predict_ms']:.4f} | {o['predict_ms'] / c['predict_ms']:.3f} | "
                  f"{o['accuracy']:.3f} / {c['accuracy']:.3f} |")
    print("\n| algorithm | model file ours (bytes) | OpenCV .yml (bytes) | ratio |")
    print("|---|---|---|---|")
    for algo, sizes in results["model_bytes"].items():
        print(f"| {algo} | {sizes['ours']:,} | {sizes['opencv']:,} | "
              f"{sizes['ours'] / sizes['opencv']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
