#!/usr/bin/env python3
"""Side-by-side timing of `ocellus filter` against Pillow, OpenCV and libvips.

In one run, on the same machine and the same images, it measures:

  (a) Gaussian blur sigma 5 alone on RGB images of 640x480, 1920x1080 and
      4000x3000; ours: the `filter_ms` that `ocellus filter --timings
      --repeat N` reports (median of N runs on the decoded image); peers: the
      blur call alone on an image already decoded in memory. Single-threaded
      (ours --threads 1, cv2.setNumThreads(1), VIPS_CONCURRENCY=1) and with
      all threads (everyone's default).
  (b) the per-request pipeline at 1920x1080: JPEG bytes -> decode -> blur
      sigma 5 -> encode JPEG q90; peers in-process, bytes to bytes; ours
      decode_ms + filter_ms + encode_ms from --timings (one process per run).
  (c) the batch: 16 distinct 1080p JPEGs through
      `ocellus filter --local --ops blur=5 --format jpeg --quality 90 -o OUT`
      (wall time of the whole process) against OpenCV's own loop
      imread -> GaussianBlur -> imencode + write over the same 16 files
      (wall time of the loop, in a warmed-up Python process, default threads).

Every figure is a median over the stated number of runs, after one untimed
warm-up. The ratio is ours / peer (below 1: ours is faster). Peers run in
child processes, so that thread settings (VIPS_CONCURRENCY, cv2 threads) are
set before their libraries start; a peer that is not installed is skipped
with a note.

Test images are generated under bench/out/images/ (gitignored) from the real
photographs in shared/data/photos: centre-cropped to the aspect ratio,
resized with Pillow (Lanczos) to the exact size and saved as JPEG q95.

Usage:
    python3 bench/compare_filters.py [--quick] [--runs N] [--bin PATH]
        [--photos DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
SIGMA = 5
JPEG_QUALITY = 90
SIZES = [(640, 480), (1920, 1080), (4000, 3000)]
BATCH_COUNT = 16
# libvips cuts its Gaussian mask where it falls below min_ampl of the peak;
# exp(-4.5) = 0.0111 puts the cut at 3 sigma, the radius OpenCV and ours use
# (the default 0.2 would be a radius of only 1.8 sigma: less work, less blur).
VIPS_MIN_AMPL = 0.011

# ---------------------------------------------------------------- images


def default_photos() -> Path:
    data = os.environ.get("OCELLUS_TEST_DATA")
    base = Path(data) if data else REPO.parent / "shared" / "data"
    return base / "photos"


def fit(im, size):
    """Centre-crops `im` to the aspect ratio of `size`, then resizes to it."""
    from PIL import Image

    w, h = im.size
    tw, th = size
    if w * th > h * tw:  # too wide
        cw, ch = round(h * tw / th), h
    else:
        cw, ch = w, round(w * th / tw)
    left, top = (w - cw) // 2, (h - ch) // 2
    return im.crop((left, top, left + cw, top + ch)).resize(size, Image.LANCZOS)


def make_images(photos: Path) -> tuple[dict[tuple[int, int], Path], list[Path]]:
    """Single images at each size, and the 1080p batch (distinct photos)."""
    from PIL import Image

    folder = OUT / "images"
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        sys.exit(f"no photos found in {photos} (set OCELLUS_TEST_DATA or --photos)")

    def pixels(p: Path) -> int:
        with Image.open(p) as im:
            return im.size[0] * im.size[1]

    # The largest photos first: they need the least upscaling.
    by_size = sorted(files, key=lambda p: (-pixels(p), p.name))
    singles = {}
    for size in SIZES:
        path = folder / f"single_{size[0]}x{size[1]}.jpg"
        if not path.exists():
            with Image.open(by_size[0]) as im:
                fit(im.convert("RGB"), size).save(path, quality=95)
        singles[size] = path
    batch = []
    for i, src in enumerate(by_size[:BATCH_COUNT]):
        path = folder / f"batch1080_{i:02d}.jpg"
        if not path.exists():
            with Image.open(src) as im:
                fit(im.convert("RGB"), (1920, 1080)).save(path, quality=95)
        batch.append(path)
    if len(batch) < BATCH_COUNT:
        sys.exit(f"need {BATCH_COUNT} photos for the batch, found {len(batch)}")
    return singles, batch


# ---------------------------------------------------------------- peers (child processes)


def worker(spec: dict) -> dict:
    """Runs one peer measurement in this (child) process; returns times in ms."""
    peer, task, threads, runs = spec["peer"], spec["task"], spec["threads"], spec["runs"]
    files = [Path(f) for f in spec["files"]]
    clock = time.perf_counter

    if peer == "pillow":
        from PIL import Image, ImageFilter

        def decode(b):
            im = Image.open(io.BytesIO(b))
            im.load()
            return im

        def blur(im):
            return im.filter(ImageFilter.GaussianBlur(SIGMA))

        def encode(im):
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=JPEG_QUALITY)
            return buf.getvalue()

        import PIL

        version = PIL.__version__
    elif peer == "opencv":
        import cv2
        import numpy as np

        cv2.setNumThreads(1 if threads == 1 else spec["default_cv2_threads"])

        def decode(b):
            return cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)

        def blur(a):
            return cv2.GaussianBlur(a, (0, 0), SIGMA)

        def encode(a):
            ok, buf = cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            assert ok
            return buf.tobytes()

        version = cv2.__version__
    elif peer == "pyvips":
        import pyvips  # VIPS_CONCURRENCY was set in our environment by the parent

        pyvips.cache_set_max(0)  # no reuse of results between runs

        def decode(b):
            # Decoded into memory now, so that the blur timing is the blur only.
            im = pyvips.Image.new_from_buffer(b, "", access="sequential")
            mem = im.write_to_memory()
            return (mem, pyvips.Image.new_from_memory(mem, im.width, im.height, im.bands, im.format))

        def blur(d):
            return d[1].gaussblur(SIGMA, min_ampl=VIPS_MIN_AMPL).write_to_memory()

        def pipeline(b):
            im = pyvips.Image.new_from_buffer(b, "", access="sequential")
            return im.gaussblur(SIGMA, min_ampl=VIPS_MIN_AMPL).jpegsave_buffer(Q=JPEG_QUALITY)

        version = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    else:
        raise ValueError(peer)

    times = []
    if task == "blur":
        data = decode(files[0].read_bytes())
        for i in range(runs + 1):
            t = clock()
            blur(data)
            if i:  # the first run is the warm-up
                times.append((clock() - t) * 1e3)
    elif task == "pipeline":
        raw = files[0].read_bytes()
        for i in range(runs + 1):
            t = clock()
            if peer == "pyvips":
                pipeline(raw)
            else:
                encode(blur(decode(raw)))
            if i:
                times.append((clock() - t) * 1e3)
    elif task == "batch":  # OpenCV's own file loop
        import cv2

        out = Path(spec["outdir"])
        out.mkdir(parents=True, exist_ok=True)
        for i in range(runs + 1):
            t = clock()
            for f in files:
                a = cv2.imread(str(f), cv2.IMREAD_COLOR)
                b = cv2.GaussianBlur(a, (0, 0), SIGMA)
                ok, buf = cv2.imencode(".jpg", b, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                (out / f"{f.stem}.jpg").write_bytes(buf.tobytes())
            if i:
                times.append((clock() - t) * 1e3)
    return {"times_ms": times, "version": version}


def run_peer(peer: str, task: str, threads: int | None, files: list[Path], runs: int, **extra):
    env = dict(os.environ)
    if threads == 1:
        env["VIPS_CONCURRENCY"] = "1"
        env["OMP_NUM_THREADS"] = "1"
    else:
        env.pop("VIPS_CONCURRENCY", None)
    spec = {"peer": peer, "task": task, "threads": threads, "files": [str(f) for f in files], "runs": runs}
    spec.update(extra)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{peer} {task}: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def vips_cli_blur(threads: int | None, file: Path, runs: int) -> dict:
    """Fallback when pyvips is absent: the `vips` command on a .v file
    (vips' own uncompressed format), whole process, so it includes startup
    and I/O: an upper bound for the blur time."""
    env = dict(os.environ)
    if threads == 1:
        env["VIPS_CONCURRENCY"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.v"
        subprocess.run(["vips", "copy", str(file), str(src)], check=True, env=env)
        times = []
        for i in range(runs + 1):
            t = time.perf_counter()
            subprocess.run(
                ["vips", "gaussblur", str(src), str(Path(tmp) / "out.v"), str(SIGMA),
                 "--min-ampl", str(VIPS_MIN_AMPL)],
                check=True,
                env=env,
            )
            if i:
                times.append((time.perf_counter() - t) * 1e3)
    version = subprocess.run(["vips", "--version"], capture_output=True, text=True).stdout.strip()
    return {"times_ms": times, "version": version + " (CLI, whole process)"}


# ---------------------------------------------------------------- ours


def ocellus(binary: Path, args: list[str], files: list[Path], outdir: Path) -> subprocess.CompletedProcess:
    cmd = [str(binary), "filter", "--local", *args, "-o", str(outdir), *map(str, files)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()[-800:]}")
    return proc


def timings(proc) -> list[dict]:
    return [json.loads(l) for l in proc.stdout.splitlines() if l.strip().startswith("{")]


def ours_blur(binary, threads, file, runs, outdir) -> float:
    """Median filter_ms over `runs` repeats inside one process (the binary
    computes the median of --repeat runs)."""
    args = ["--ops", f"blur={SIGMA}", "--format", "jpeg", "--timings", "--repeat", str(runs)]
    if threads:
        args += ["--threads", str(threads)]
    ocellus(binary, args, [file], outdir)  # warm-up (page cache, CPU frequency)
    return timings(ocellus(binary, args, [file], outdir))[0]["filter_ms"]


def ours_pipeline(binary, threads, file, runs, outdir) -> float:
    args = ["--ops", f"blur={SIGMA}", "--format", "jpeg", "--quality", str(JPEG_QUALITY), "--timings"]
    if threads:
        args += ["--threads", str(threads)]
    totals = []
    for i in range(runs + 1):
        t = timings(ocellus(binary, args, [file], outdir))[0]
        if i:
            totals.append(t["decode_ms"] + t["filter_ms"] + t["encode_ms"])
    return statistics.median(totals)


def ours_batch(binary, files, runs, outdir) -> float:
    args = ["--ops", f"blur={SIGMA}", "--format", "jpeg", "--quality", str(JPEG_QUALITY)]
    walls = []
    for i in range(runs + 1):
        t = time.perf_counter()
        ocellus(binary, args, files, outdir)
        if i:
            walls.append((time.perf_counter() - t) * 1e3)
    return statistics.median(walls)


# ---------------------------------------------------------------- main


def available_peers() -> tuple[list[str], list[str]]:
    peers, notes = [], []
    for name, module in [("pillow", "PIL"), ("opencv", "cv2"), ("pyvips", "pyvips")]:
        probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        if probe.returncode == 0:
            peers.append(name)
        elif name == "pyvips" and shutil.which("vips"):
            peers.append("vips-cli")
            notes.append("pyvips not importable: libvips timed through the `vips` CLI (blur only, whole process)")
        else:
            notes.append(f"{name} skipped: `import {module}` failed")
    return peers, notes


def fmt_ms(v):
    return "n/a" if v is None else (f"{v:.1f}" if v < 100 else f"{v:.0f}")


def fmt_ratio(ours, peer):
    return "n/a" if ours is None or peer is None or peer == 0 else f"{ours / peer:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", type=Path, default=Path(os.environ.get("OCELLUS_BIN", REPO / "target" / "release" / "ocellus")))
    ap.add_argument("--photos", type=Path, default=default_photos())
    ap.add_argument("--quick", action="store_true", help="fewer runs (3 instead of 7; batch 2 instead of 5)")
    ap.add_argument("--runs", type=int, help="runs per measurement (overrides the default / --quick)")
    ap.add_argument("--json", type=Path, default=OUT / "compare_filters.json", help="where to save the raw figures")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    runs = args.runs or (3 if args.quick else 7)
    batch_runs = args.runs or (2 if args.quick else 5)
    if not args.bin.is_file():
        sys.exit(f"ocellus binary not found at {args.bin} (cargo build --release -p ocellus, or --bin)")
    singles, batch = make_images(args.photos)
    peers, notes = available_peers()
    default_cv2_threads = None
    if "opencv" in peers:
        default_cv2_threads = int(subprocess.run(
            [sys.executable, "-c", "import cv2; print(cv2.getNumThreads())"], capture_output=True, text=True
        ).stdout.strip())
    notes.append("Pillow has no multi-threaded blur: its figure is the same code in both thread rows")

    work = Path(tempfile.mkdtemp(prefix="ocellus-bench-"))
    rows, versions = [], {}
    cores = os.cpu_count()
    thread_modes = [(1, "1"), (None, f"all ({cores})")]

    def measure_peer(peer, task, threads, files, n):
        try:
            if peer == "vips-cli":
                if task != "blur":
                    return None
                r = vips_cli_blur(threads, files[0], n)
            else:
                r = run_peer(peer, task, threads, files, n, default_cv2_threads=default_cv2_threads,
                             outdir=str(work / f"peer_{peer}"))
            versions[peer] = r["version"]
            return statistics.median(r["times_ms"])
        except Exception as e:  # a failing peer must not hide the others
            notes.append(f"{peer} {task} failed: {e}")
            return None

    load_start = os.getloadavg()
    # (a) blur alone
    for size in SIZES:
        for threads, label in thread_modes:
            ours = ours_blur(args.bin, threads, singles[size], runs, work / "ours")
            row = {"case": f"(a) blur σ{SIGMA}", "size": f"{size[0]}x{size[1]}", "threads": label,
                   "runs": runs, "ours": ours}
            for peer in peers:
                row[peer] = measure_peer(peer, "blur", threads, [singles[size]], runs)
            rows.append(row)
            print(f"  {row}", file=sys.stderr)
    # (b) per-request pipeline
    for threads, label in thread_modes:
        f = singles[(1920, 1080)]
        ours = ours_pipeline(args.bin, threads, f, runs, work / "ours")
        row = {"case": f"(b) decode→blur σ{SIGMA}→JPEG q{JPEG_QUALITY}", "size": "1920x1080",
               "threads": label, "runs": runs, "ours": ours}
        for peer in peers:
            row[peer] = measure_peer(peer, "pipeline", threads, [f], runs)
        rows.append(row)
        print(f"  {row}", file=sys.stderr)
    # (c) batch of 16 files, whole process vs OpenCV's loop
    ours = ours_batch(args.bin, batch, batch_runs, work / "ours_batch")
    row = {"case": f"(c) batch of {len(batch)} files (wall)", "size": "1920x1080",
           "threads": f"all ({cores})", "runs": batch_runs, "ours": ours}
    if "opencv" in peers:
        row["opencv"] = measure_peer("opencv", "batch", None, batch, batch_runs)
    rows.append(row)
    load_end = os.getloadavg()

    # ---- report
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# ocellus filter vs peers ({platform.machine()}, {cores} cores, "
          f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; ocellus at git {rev} + working tree)\n")
    print("Milliseconds, median of N runs after one warm-up; ratio = ours / peer (< 1: ours faster).\n")
    labels = {"pillow": "Pillow", "opencv": "OpenCV", "pyvips": "libvips", "vips-cli": "libvips (CLI)"}
    head = ["case", "size", "threads", "N", "ours"]
    for p in peers:
        head += [labels[p], f"ours/{labels[p]}"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["case"], r["size"], r["threads"], str(r["runs"]), fmt_ms(r["ours"])]
        for p in peers:
            cells += [fmt_ms(r.get(p)), fmt_ratio(r["ours"], r.get(p))]
        print("| " + " | ".join(cells) + " |")
    batch_ratio = fmt_ratio(rows[-1]["ours"], rows[-1].get("opencv"))
    print(f"\nBatch ratio ours/OpenCV: {batch_ratio} (target <= 0.8).")
    print("\nVersions: " + ", ".join(f"{labels[k]} {v}" for k, v in versions.items()))
    print("\nNotes:")
    print("- ours (a): `filter_ms` from `ocellus filter --timings --repeat N` (median inside the process);"
          " peers (a): the blur call only, on an image decoded in memory.")
    print("- ours (b): decode_ms + filter_ms + encode_ms from --timings, one process per run;"
          " peers (b): bytes -> decode -> blur -> encode -> bytes in one process.")
    print("- (c): ours = wall time of the whole `ocellus filter` process over the 16 files;"
          " OpenCV = wall time of its imread/GaussianBlur/imencode+write loop in a warmed-up Python process.")
    print(f"- libvips: gaussblur(sigma={SIGMA}, min_ampl={VIPS_MIN_AMPL}) so that its mask reaches 3 sigma like the others.")
    for n in notes:
        print(f"- {n}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "versions": versions, "notes": notes,
                                     "load": [load_start, load_end], "git": rev}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
