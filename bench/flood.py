#!/usr/bin/env python3
"""Flood benchmark of `ocellus serve`: one client floods, another waits.

Client A opens 63 connections (from 127.0.0.1) and keeps each one busy with
big jobs (a 1080p image, `median=5`), resending as soon as an answer comes
back, BUSY included (after a short pause). Client B (from 127.0.0.2: a
different client as far as the node can tell) sends small jobs one at a
time (a 320x240 image, `invert`). Reported: B's p50/p99 latency under the
flood, B's latency on an idle node, one big job's run time alone, and the
node's throughput (the flood's jobs per second), with the target

    B's p99 under the flood <= 2 x (B idle p50) + one big job's run time

Each binary given with --bin runs the same schedule in the same run
(interleaved rounds), so `--bin before --bin after` compares two builds:

    python3 bench/flood.py --bin /tmp/ocellus-before --bin target/release/ocellus
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("load", REPO / "bench" / "load.py")
load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load)
proto = load.proto


def encode_png(width: int, height: int, seed: int) -> bytes:
    """A noise PNG through the node itself is overkill: Pillow makes it."""
    import random
    from io import BytesIO

    from PIL import Image

    rnd = random.Random(seed)
    image = Image.frombytes("RGB", (width, height), bytes(rnd.getrandbits(8) for _ in range(width * height * 3)))
    out = BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def connect(addr: str, source: str) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(600)
    sock.connect((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request(sock: socket.socket, image: bytes, ops: str, rid: int) -> int:
    """Sends one FILTER and waits for its terminal event; returns its op."""
    sock.sendall(proto.encode_frame(proto.FILTER, rid, {"ops": ops, "images": [len(image)], "format": "png"}, image))
    while True:
        op, got, _header, _payload = proto.read_frame(sock)
        if got not in (0, rid):
            continue
        if op in (proto.RESULT, proto.ERROR, proto.BUSY):
            return op


def small_latencies(addr: str, image: bytes, count: int, stop: threading.Event | None = None) -> list[float]:
    sock = connect(addr, "127.0.0.2")
    out = []
    for i in range(1, count + 1):
        if stop is not None and stop.is_set():
            break
        t = time.perf_counter()
        op = request(sock, image, "invert", i)
        if op != proto.RESULT:
            raise RuntimeError(f"client B's job {i} answered op {op}")
        out.append(time.perf_counter() - t)
    sock.close()
    return out


def flood(addr: str, image: bytes, connections: int, stop: threading.Event, done: list[int]) -> list[threading.Thread]:
    def one(k: int) -> None:
        try:
            sock = connect(addr, "127.0.0.1")
        except OSError:
            return
        rid = 0
        while not stop.is_set():
            rid += 1
            try:
                op = request(sock, image, "median=5", rid)
            except OSError:
                return
            if op == proto.RESULT:
                done[0] += 1
            else:
                time.sleep(0.05)
        sock.close()

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(connections)]
    for t in threads:
        t.start()
    return threads


def run(binary: Path, big: bytes, small: bytes, args) -> dict:
    cmd = [str(binary), "serve", "--listen", "127.0.0.1:0", "--http", "off", "--roles", "filter",
           "--workers", str(args.workers)]
    # One big job's run time on one core, as each runs under the flood
    # (a lone job would spread over every core): best of three.
    import os
    one_core = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "RAYON_NUM_THREADS": "1"})
    first = one_core.stdout.readline()
    one_addr = first.split()[-1]
    sock = connect(one_addr, "127.0.0.1")
    times = []
    for i in range(3):
        t = time.perf_counter()
        request(sock, big, "median=5", i + 1)
        times.append(time.perf_counter() - t)
    big_s = min(times)
    sock.close()
    load.stop(one_core)
    proc, addr = load.start(cmd)
    try:
        # B on the idle node.
        idle = small_latencies(addr, small, 20)
        # The flood.
        stop = threading.Event()
        done = [0]
        threads = flood(addr, big, args.connections, stop, done)
        time.sleep(args.warmup)
        t0 = time.perf_counter()
        start_done = done[0]
        loaded = small_latencies(addr, small, args.small)
        # Throughput over a window of at least --window seconds.
        while time.perf_counter() - t0 < args.window:
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        big_done = done[0] - start_done
        stop.set()
        proc.terminate()
        for th in threads:
            th.join(timeout=5)
        return {
            "big_s": big_s,
            "idle_p50": statistics.median(idle),
            "p50": statistics.median(loaded),
            "p99": load.percentile(loaded, 99),
            "throughput": big_done / wall,
        }
    finally:
        load.stop(proc)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", action="append", type=Path, help="ocellus binaries (default target/release/ocellus)")
    p.add_argument("--connections", type=int, default=63)
    p.add_argument("--small", type=int, default=15, help="client B's jobs under the flood")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of flood before B starts")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--window", type=float, default=20.0, help="seconds over which the flood's jobs/s is counted")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    binaries = args.bin or [REPO / "target" / "release" / "ocellus"]
    big = encode_png(1920, 1080, 1)
    small = encode_png(320, 240, 2)
    runs: dict[str, list[dict]] = {str(b): [] for b in binaries}
    for _ in range(args.rounds):
        for b in binaries:
            runs[str(b)].append(run(b, big, small, args))
    print(f"load average {open('/proc/loadavg').read().split()[0]}; {args.connections} flooding connections, "
          f"{args.workers} workers, {args.small} jobs of client B, median of {args.rounds} round(s)\n")
    print("| binary | one big job, one core (s) | B idle p50 (ms) | B p50 under flood (ms) | B p99 under flood (ms) | target p99 (ms) | big jobs/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for b, rs in runs.items():
        m = {k: statistics.median(r[k] for r in rs) for k in ("big_s", "idle_p50", "p50", "p99", "throughput")}
        target = 2 * m["idle_p50"] + m["big_s"]
        m["target_p99"] = target
        summary[b] = m
        print(f"| `{b}` | {m['big_s']:.2f} | {m['idle_p50']*1e3:.1f} | {m['p50']*1e3:.0f} | {m['p99']*1e3:.0f} | "
              f"{target*1e3:.0f} | {m['throughput']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
