#!/usr/bin/env python3
"""Load benchmark of `ocellus serve`: N clients x M images over loopback.

Side by side, in the same run and on the same files (rounds interleaved so
that a change in machine load hits every system alike):

* `ocellus serve`, driven by N client threads (one connection each, one
  request at a time, as users of the original system did);
* `ocellus filter --local` doing the same work in one process (the ceiling:
  server overhead ratio = server images/s / local images/s, target >= 0.9);
* bench/baseline_server.py, the original design (ThreadingTCPServer +
  Pillow GaussianBlur(5) + JPEG), driven by the same clients (target: ours
  >= 5x its images/s).

With --compare-tls, a fourth system: the same `ocellus serve` with TLS on
its port (the clients verify it against --ca; without --tls-cert the run
makes a throwaway self-signed certificate with `openssl`), and the ratio
TLS / plain images/s. --key KEY (or env OCELLUS_KEY) makes every client
connection send AUTH first; give the node its keys with --serve-arg.

Reports images/s, p50/p99 latency (send to last byte of the result) and the
server's peak memory (VmHWM of its process), as a markdown table; medians
over the rounds. Default: blur=5 on 1080p JPEGs made from
../shared/data/photos, 8 clients x 8 images, 3 rounds.

    python3 bench/load.py [--clients 8] [--images 8] [--rounds 3] [--quick]
    python3 bench/load.py --compare-tls [--tls-cert C --tls-key K --ca CA] [--key KEY]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"

_spec = importlib.util.spec_from_file_location("python_client", REPO / "examples" / "python_client.py")
proto = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(proto)


# ------------------------------------------------------------------ inputs


def make_images(count: int, data: Path) -> list[Path]:
    """`count` distinct 1920x1080 JPEGs (quality 90) cut from the photos."""
    from PIL import Image, ImageOps

    folder = OUT / "load_images"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"load_{i:03d}.jpg" for i in range(count)]
    if all(p.is_file() for p in paths):
        return paths
    sources = []
    for p in sorted((data / "photos").iterdir()):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
            with Image.open(p) as im:
                if im.width >= 900 and im.height >= 600:
                    sources.append(p)
    if not sources:
        sys.exit(f"no photos of at least 900x600 in {data / 'photos'}")
    for i, path in enumerate(paths):
        if path.is_file():
            continue
        variant = i // len(sources)
        with Image.open(sources[i % len(sources)]) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            scale = max(1920 / im.width, 1080 / im.height) * (1 + 0.1 * variant)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR)
            left = (im.width - 1920) * ((variant % 3) + 1) // 4
            top = (im.height - 1080) // 2
            im = im.crop((left, top, left + 1920, top + 1080))
            if variant % 2:
                im = ImageOps.mirror(im)
            im.save(path, "JPEG", quality=90)
    return paths


# ------------------------------------------------------------------ servers


def start(cmd: list[str]) -> tuple[subprocess.Popen, str]:
    """Starts a server that prints `listening on ADDR` first; returns it and ADDR."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=60)
    except queue.Empty:
        proc.kill()
        sys.exit(f"{cmd[0]} did not start")
    if not first.startswith("listening on "):
        proc.kill()
        sys.exit(f"{cmd}: unexpected first line {first!r}")
    return proc, first.split()[-1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a running process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------ clients


def ocellus_request(sock: socket.socket, image: bytes, ops: str, request_id: int) -> bytes:
    sock.sendall(proto.encode_frame(proto.FILTER, request_id, {"ops": ops, "images": [len(image)]}, image))
    while True:
        op, rid, header, payload = proto.read_frame(sock)
        if rid not in (0, request_id):
            continue
        if op == proto.RESULT:
            return payload
        if op in (proto.ERROR, proto.BUSY):
            raise RuntimeError(f"ocellus answered {op}: {header}")


LENGTH = struct.Struct(">I")


def baseline_request(sock: socket.socket, image: bytes, _ops: str, _request_id: int) -> bytes:
    sock.sendall(LENGTH.pack(len(image)) + image)
    (n,) = LENGTH.unpack(proto._read_exactly(sock, LENGTH.size))
    return proto._read_exactly(sock, n)


def drive(addr: str, request, work: list[list[tuple[str, bytes]]], ops: str, link=proto.PLAIN) -> dict:
    """One thread per client; each sends its images one after the other
    (over `link`: TLS, AUTH first). Returns wall time, latencies and the
    results by file name."""
    barrier = threading.Barrier(len(work) + 1)
    latencies: list[float] = []
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(jobs):
        try:
            with proto.connect(addr, 600, link) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                barrier.wait()
                for i, (name, image) in enumerate(jobs, start=1):
                    t = time.perf_counter()
                    out = request(sock, image, ops, i)
                    dt = time.perf_counter() - t
                    with lock:
                        latencies.append(dt)
                        results[name] = out
        except BaseException as e:  # reported after the run
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(jobs,)) for jobs in work]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {"wall": wall, "latencies": latencies, "results": results}


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# ------------------------------------------------------------------ systems


def run_ocellus_server(binary: Path, work, ops: str, workers: int | None, link=proto.PLAIN,
                       extra: list[str] = ()) -> dict:
    # The filter role only: this benchmark measures the filter server (and a
    # node with every role would open a face store in the home folder).
    cmd = [str(binary), "serve", "--listen", "127.0.0.1:0", "--http", "off", "--queue-capacity", "4096", "--roles", "filter"]
    # Every client of this benchmark comes from one address: lift the
    # per-client cap too (on builds that have it, so older ones still run).
    if "--max-queued-per-client" in subprocess.run([str(binary), "serve", "--help"], capture_output=True,
                                                   text=True).stdout:
        cmd += ["--max-queued-per-client", "4096"]
    if workers:
        cmd += ["--workers", str(workers)]
    proc, addr = start(cmd + list(extra))
    try:
        drive(addr, ocellus_request, [work[0][:1]], ops, link)  # warm-up
        r = drive(addr, ocellus_request, work, ops, link)
        r["peak_mib"] = peak_rss_mib(proc.pid)
    finally:
        stop(proc)
    return r


def run_baseline(work, ops: str) -> dict:
    proc, addr = start([sys.executable, str(REPO / "bench" / "baseline_server.py")])
    try:
        drive(addr, baseline_request, [work[0][:1]], ops)
        r = drive(addr, baseline_request, work, ops)
        r["peak_mib"] = peak_rss_mib(proc.pid)
    finally:
        stop(proc)
    return r


def run_local(binary: Path, files: list[Path], ops: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="ocellus-load-") as out:
        cmd = [str(binary), "filter", "--local", "--ops", ops, "-o", out, *map(str, files)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit(f"ocellus filter --local failed: {proc.stderr.read().decode()[-2000:]}")
        results = {p.stem: p.read_bytes() for p in Path(out).iterdir()}
    return {"wall": wall, "latencies": [], "results": results, "peak_mib": usage.ru_maxrss / 1024}


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost and 127.0.0.1, and its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


# ------------------------------------------------------------------ main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--images", type=int, default=8, help="images per client")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ops", default="blur=5")
    p.add_argument("--workers", type=int, help="ocellus serve --workers (default: its own, the CPU count)")
    p.add_argument("--quick", action="store_true", help="4 clients x 2 images, 1 round")
    p.add_argument("--bin", default=os.environ.get("OCELLUS_BIN", REPO / "target" / "release" / "ocellus"))
    p.add_argument("--data", default=os.environ.get("OCELLUS_TEST_DATA", REPO.parent / "shared" / "data"))
    p.add_argument("--compare-tls", action="store_true", help="also run the node with TLS; print TLS / plain")
    p.add_argument("--tls", action="store_true", help="the ocellus clients speak TLS (implied by --compare-tls)")
    p.add_argument("--tls-cert", help="the node's certificate chain (PEM; default: a self-signed one)")
    p.add_argument("--tls-key", help="the node's key (PEM)")
    p.add_argument("--ca", help="the CA the clients trust (default: --tls-cert)")
    p.add_argument("--key", default=os.environ.get("OCELLUS_KEY"), help="API key sent with AUTH on every connection")
    p.add_argument("--serve-arg", action="append", default=[], help="extra `ocellus serve` argument (repeatable)")
    args = p.parse_args()
    if args.quick:
        args.clients, args.images, args.rounds = 4, 2, 1
    binary = Path(args.bin)
    if not binary.is_file():
        sys.exit(f"{binary} not found: cargo build --release -p ocellus (or --bin / OCELLUS_BIN)")
    if args.ops != "blur=5":
        print(f"note: the baseline always runs GaussianBlur(5); ours runs {args.ops}", file=sys.stderr)

    files = make_images(args.clients * args.images, Path(args.data))
    images = {f.stem: f.read_bytes() for f in files}
    work = [[(f.stem, images[f.stem]) for f in files[c * args.images:(c + 1) * args.images]]
            for c in range(args.clients)]
    n = len(files)
    tls_dir = tempfile.TemporaryDirectory(prefix="ocellus-load-tls-")
    tls_serve: list[str] = []
    tls_link = None
    if args.compare_tls or args.tls:
        if args.tls_cert and args.tls_key:
            cert, key = Path(args.tls_cert), Path(args.tls_key)
        else:
            cert, key = self_signed(Path(tls_dir.name))
        tls_serve = ["--tls-cert", str(cert), "--tls-key", str(key)]
        tls_link = proto.Link(tls=True, ca=args.ca or str(cert), key=args.key)
    plain_link = proto.Link(key=args.key)
    # Without --compare-tls, --tls makes the one server run a TLS one.
    main_link, main_extra = (tls_link, tls_serve) if args.tls and not args.compare_tls else (plain_link, [])
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {"server": [], "local": [], "baseline": []}
    if args.compare_tls:
        runs["server_tls"] = []
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds} ...", file=sys.stderr)
        runs["server"].append(run_ocellus_server(binary, work, args.ops, args.workers, main_link,
                                                 main_extra + args.serve_arg))
        if args.compare_tls:
            runs["server_tls"].append(run_ocellus_server(binary, work, args.ops, args.workers, tls_link,
                                                         tls_serve + args.serve_arg))
        runs["local"].append(run_local(binary, files, args.ops))
        runs["baseline"].append(run_baseline(work, args.ops))
    load_after = os.getloadavg()
    tls_dir.cleanup()

    # Ours over the network must produce exactly what ours in-process does.
    mismatched = [k for k, v in runs["local"][0]["results"].items() if runs["server"][0]["results"].get(k) != v]
    if mismatched:
        print(f"WARNING: server output differs from --local for {len(mismatched)} files: {mismatched[:5]}")

    def summary(key: str) -> dict:
        rs = runs[key]
        return {
            "images_per_s": statistics.median(n / r["wall"] for r in rs),
            "wall_s": statistics.median(r["wall"] for r in rs),
            "p50_ms": statistics.median(percentile(r["latencies"], 50) * 1e3 for r in rs) if rs[0]["latencies"] else None,
            "p99_ms": statistics.median(percentile(r["latencies"], 99) * 1e3 for r in rs) if rs[0]["latencies"] else None,
            "peak_mib": max(r["peak_mib"] for r in rs),
            "rounds_images_per_s": [round(n / r["wall"], 2) for r in rs],
        }

    s = {k: summary(k) for k in runs}
    overhead = s["server"]["images_per_s"] / s["local"]["images_per_s"]
    vs_baseline = s["server"]["images_per_s"] / s["baseline"]["images_per_s"]
    fmt = lambda v, spec=".0f": "-" if v is None else format(v, spec)  # noqa: E731
    print(f"\n`{args.ops}` on {n} 1920x1080 JPEGs; {args.clients} clients x {args.images} images; "
          f"median of {args.rounds} round(s); {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| system | images/s | wall s | p50 ms | p99 ms | peak RSS MiB | images/s per round |")
    print("|---|---:|---:|---:|---:|---:|---|")
    auth = ", AUTH" if args.key else ""
    names = {
        "server": f"ocellus serve ({args.clients} clients over loopback{', TLS' if main_extra else ''}{auth})",
        "server_tls": f"ocellus serve with TLS ({args.clients} clients over loopback{auth})",
        "local": "ocellus filter --local (same files, one process)",
        "baseline": "baseline_server.py (ThreadingTCPServer + Pillow)",
    }
    for key, label in names.items():
        if key not in s:
            continue
        v = s[key]
        print(f"| {label} | {v['images_per_s']:.2f} | {v['wall_s']:.2f} | {fmt(v['p50_ms'])} | "
              f"{fmt(v['p99_ms'])} | {v['peak_mib']:.0f} | {v['rounds_images_per_s']} |")
    print(f"\nserver overhead ratio (server / local images/s): {overhead:.2f} (target >= 0.9: "
          f"{'met' if overhead >= 0.9 else 'NOT met'})")
    print(f"ours / baseline images/s: {vs_baseline:.1f}x (target >= 5x: {'met' if vs_baseline >= 5 else 'NOT met'})")
    print(f"server results identical to --local: {'yes' if not mismatched else 'NO'}")
    tls_ratio = None
    if args.compare_tls:
        tls_ratio = s["server_tls"]["images_per_s"] / s["server"]["images_per_s"]
        same = runs["server_tls"][0]["results"] == runs["server"][0]["results"]
        print(f"TLS / plain images/s: {tls_ratio:.3f}; p50 {fmt(s['server_tls']['p50_ms'])} ms vs "
              f"{fmt(s['server']['p50_ms'])} ms; TLS results identical: {'yes' if same else 'NO'}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "load.json").write_text(json.dumps({
        "ops": args.ops, "clients": args.clients, "images_per_client": args.images, "rounds": args.rounds,
        "load_before": load_before, "load_after": load_after, "summary": s,
        "server_over_local": overhead, "server_over_baseline": vs_baseline, "tls_over_plain": tls_ratio,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
